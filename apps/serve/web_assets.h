// The web page's files (apps/web/*), compiled into the binary by
// cmake/embed_files.cmake so `mmkit serve` needs nothing on disk.
#pragma once
#include <map>
#include <string>

namespace mmkit::web {

struct Asset {
  std::string content_type;
  std::string bytes;
};

// "/index.html", "/app.js", ... -> asset.
const std::map<std::string, Asset>& assets();

}  // namespace mmkit::web
