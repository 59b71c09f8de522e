#include "mmkit/data/caption_jsonl.h"

#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "mmkit/core/error.h"
#include "mmkit/util/file_util.h"

namespace mmkit::data {

namespace {

std::vector<SceneObject> parse_objects(const nlohmann::json& j, const std::function<void(const std::string&)>& bad) {
  if (!j.is_array()) bad("field 'objects' must be an array of {\"color\", \"shape\"} objects");
  std::vector<SceneObject> out;
  for (auto& o : j) {
    if (!o.is_object()) bad("field 'objects' must be an array of {\"color\", \"shape\"} objects");
    SceneObject s;
    for (const char* k : {"color", "shape"}) {
      if (!o.contains(k) || !o[k].is_string() || o[k].get<std::string>().empty())
        bad(std::string("every object needs a non-empty string '") + k + "'");
    }
    s.color = o["color"].get<std::string>();
    s.shape = o["shape"].get<std::string>();
    for (auto [k, dst] : {std::pair<const char*, int*>{"x", &s.x}, {"y", &s.y}}) {
      if (!o.contains(k)) continue;
      if (!o[k].is_number_integer()) bad(std::string("object field '") + k + "' must be an integer");
      *dst = o[k].get<int>();
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

std::vector<CaptionExample> read_caption_jsonl(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MMKIT_CHECK(f.good(), "cannot open caption data ", path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  MMKIT_CHECK(!f.bad(), "error reading ", path);
  return parse_caption_jsonl(text, path);
}

std::vector<CaptionExample> parse_caption_jsonl(const std::string& text, const std::string& path) {
  std::istringstream f(text);
  const std::string dir = parent_dir(path);
  std::vector<CaptionExample> out;
  std::unordered_map<std::string, size_t> by_image;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto bad = [&](const std::string& what) { fail(path, ":", lineno, ": ", what); };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      bad(std::string("invalid JSON (") + e.what() + ")");
    }
    if (!j.is_object()) bad("expected a JSON object");
    if (!j.contains("image")) bad("missing field 'image'");
    if (!j["image"].is_string() || j["image"].get<std::string>().empty()) bad("field 'image' must be a non-empty string");
    const std::string img = j["image"].get<std::string>();
    std::vector<std::string> caps;
    const bool many = j.contains("captions"), one = j.contains("caption");
    if (many == one) bad("expected exactly one of 'captions' (array of strings) or 'caption' (string)");
    if (many) {
      if (!j["captions"].is_array()) bad("field 'captions' must be an array of strings");
      for (auto& c : j["captions"]) {
        if (!c.is_string()) bad("field 'captions' must be an array of strings");
        caps.push_back(c.get<std::string>());
      }
      if (caps.empty()) bad("field 'captions' is empty");
    } else {
      if (!j["caption"].is_string()) bad("field 'caption' must be a string");
      caps.push_back(j["caption"].get<std::string>());
    }
    for (auto& c : caps)
      if (c.find_first_not_of(" \t\r\n") == std::string::npos) bad("a caption is empty");
    std::vector<SceneObject> objects;
    if (j.contains("objects")) objects = parse_objects(j["objects"], bad);

    const std::string resolved = img[0] == '/' ? img : dir + img;
    auto it = by_image.find(resolved);
    if (it == by_image.end()) {
      by_image.emplace(resolved, out.size());
      out.push_back({resolved, caps, objects});
    } else {
      CaptionExample& e = out[it->second];
      e.captions.insert(e.captions.end(), caps.begin(), caps.end());
      if (!objects.empty()) {
        if (!e.objects.empty() && !(e.objects == objects)) bad("objects of " + img + " differ from an earlier line");
        e.objects = objects;
      }
    }
  }
  MMKIT_CHECK(!out.empty(), "caption data ", path, " has no captions");
  return out;
}

std::string caption_example_json(const CaptionExample& e) {
  nlohmann::json j = {{"image", e.image}, {"captions", e.captions}};
  if (!e.objects.empty()) {
    nlohmann::json objs = nlohmann::json::array();
    for (auto& o : e.objects) {
      nlohmann::json x = {{"color", o.color}, {"shape", o.shape}};
      if (o.x >= 0) x["x"] = o.x;
      if (o.y >= 0) x["y"] = o.y;
      objs.push_back(x);
    }
    j["objects"] = objs;
  }
  return j.dump();
}

}  // namespace mmkit::data
