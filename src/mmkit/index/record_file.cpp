#include "mmkit/index/record_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mmkit/core/error.h"

namespace mmkit::index {

namespace {

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}

uint32_t get_u32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(s[at + size_t(i)])) << (8 * i);
  return v;
}

uint32_t crc_of(const char* p, size_t n) {
  uLong c = crc32(0L, Z_NULL, 0);
  // zlib's length is a uInt: feed huge payloads in pieces.
  while (n > 0) {
    const uInt k = uInt(std::min<size_t>(n, 1u << 30));
    c = crc32(c, reinterpret_cast<const Bytef*>(p), k);
    p += k;
    n -= k;
  }
  return uint32_t(c);
}

}  // namespace

std::string frame_record(const std::string& payload) {
  MMKIT_CHECK(payload.size() <= kMaxRecordBytes, "record of ", payload.size(), " bytes is larger than the limit of ",
              kMaxRecordBytes);
  std::string out;
  out.reserve(payload.size() + 8);
  put_u32(out, uint32_t(payload.size()));
  put_u32(out, crc_of(payload.data(), payload.size()));
  out += payload;
  return out;
}

RecordRead read_records(const std::string& path, const std::string& magic, bool torn_tail_ok) {
  std::ifstream f(path, std::ios::binary);
  MMKIT_CHECK(f.good(), "cannot read ", path, ": ", std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  RecordRead r;
  if (s.size() < magic.size() && torn_tail_ok && magic.compare(0, s.size(), s) == 0) {
    // Created and killed before its first line reached the disk: an empty log.
    r.warning = path + ": only " + std::to_string(s.size()) + " bytes of its header; treated as empty";
    return r;
  }
  MMKIT_CHECK(s.compare(0, magic.size(), magic) == 0, path, ": not a file of this kind (its first bytes are not '",
              magic.substr(0, magic.size() - 1), "')");
  size_t at = magic.size();
  while (at < s.size()) {
    const size_t left = s.size() - at;
    std::string why;
    size_t end = 0;
    if (left < 8) {
      why = "a frame header of " + std::to_string(left) + " bytes (8 expected)";
    } else {
      const size_t len = get_u32(s, at);
      end = at + 8 + len;
      if (len > kMaxRecordBytes || end > s.size())
        why = "a record of " + std::to_string(len) + " bytes with " + std::to_string(left - 8) + " left in the file";
      else if (crc_of(s.data() + at + 8, len) != get_u32(s, at + 4))
        why = "a record whose checksum does not match";
    }
    if (!why.empty()) {
      // A torn append can only be the last thing in the file.
      const bool last = end == 0 || end >= s.size();
      MMKIT_CHECK(torn_tail_ok && last, path, ": damaged at byte ", at, " (record ", r.records.size(), "): ", why,
                  last ? "" : ", followed by more data");
      r.warning = path + ": dropped a torn last record at byte " + std::to_string(at) + " (" + why + "; " +
                  std::to_string(r.records.size()) + " complete records kept): a write the crash interrupted, never acknowledged";
      break;
    }
    r.records.push_back(s.substr(at + 8, end - at - 8));
    at = end;
  }
  r.good_bytes = r.warning.empty() ? s.size() : at;
  return r;
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  MMKIT_CHECK(fd >= 0, "cannot open directory ", dir, ": ", std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  MMKIT_CHECK(rc == 0, "cannot fsync directory ", dir, ": ", std::strerror(errno));
}

void write_records_atomic(const std::string& path, const std::string& magic, const std::vector<std::string>& payloads) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  MMKIT_CHECK(f, "cannot create ", tmp, ": ", std::strerror(errno));
  bool ok = std::fwrite(magic.data(), 1, magic.size(), f) == magic.size();
  for (const std::string& p : payloads) {
    const std::string fr = frame_record(p);
    ok = ok && std::fwrite(fr.data(), 1, fr.size(), f) == fr.size();
  }
  ok = (std::fflush(f) == 0) && ok;
  ok = (::fsync(::fileno(f)) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    fail("cannot write ", path, ": ", std::strerror(e));
  }
  const size_t slash = path.find_last_of('/');
  fsync_dir(slash == std::string::npos ? "." : path.substr(0, slash));
}

}  // namespace mmkit::index
