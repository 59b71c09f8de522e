#include "mmkit/util/file_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "mmkit/core/error.h"

namespace mmkit {

void copy_file_atomic(const std::string& from, const std::string& to) {
  std::FILE* f = std::fopen(from.c_str(), "rb");
  if (!f) fail("cannot read ", from, ": ", std::strerror(errno));
  std::string bytes;
  char buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
  const bool ok = !std::ferror(f);
  std::fclose(f);
  MMKIT_CHECK(ok, "cannot read ", from);
  write_text_atomic(to, bytes);
}

bool path_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

bool is_directory(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

void make_dirs(const std::string& dir) {
  MMKIT_CHECK(!dir.empty(), "no directory given");
  std::string cur;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if ((i == dir.size() || dir[i] == '/') && !cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
      fail("cannot create directory ", dir, ": ", std::strerror(errno), " (at ", cur, ")");
    if (i < dir.size()) cur += dir[i];
  }
  MMKIT_CHECK(is_directory(dir), dir, " exists and is not a directory");
  MMKIT_CHECK(::access(dir.c_str(), W_OK) == 0, "directory ", dir, " is not writable");
}

void write_text_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot create ", tmp, ": ", std::strerror(errno));
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = (std::fflush(f) == 0) && ok;
  ok = (::fsync(::fileno(f)) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    fail("cannot write ", path, ": ", std::strerror(e));
  }
}

std::string resolve_model_file(const std::string& path, const std::string& hint) {
  const std::string how = hint.empty() ? "" : " (" + hint + ")";
  MMKIT_CHECK(!path.empty(), "no model given (--model FILE or FOLDER)");
  MMKIT_CHECK(path_exists(path), "model ", path, " not found", how);
  if (!is_directory(path)) return path;
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const std::string file = dir + "/model.safetensors";
  if (path_exists(file)) return file;
  fail("model folder ", dir, " has no model.safetensors: a run folder from `mmkit train` or a Hugging Face model ",
       "folder holds one", path_exists(dir + "/pytorch_model.bin") ? " (pytorch_model.bin is not read: convert it "
       "to safetensors)" : "", how);
}

std::string model_display_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t s = p.find_last_of('/');
  if (s == std::string::npos) return p;
  std::string base = p.substr(s + 1);
  if (base != "model.safetensors" || s == 0) return base;
  size_t s2 = p.find_last_of('/', s - 1);
  return p.substr(s2 == std::string::npos ? 0 : s2 + 1);
}

}  // namespace mmkit
