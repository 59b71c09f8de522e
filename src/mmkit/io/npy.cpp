#include "mmkit/io/npy.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace mmkit::io {

void write_npy(const std::string& path, const Tensor& t) {
  MMKIT_CHECK(t.dtype() == DType::f32, "write_npy: only F32 tensors are supported");
  std::string shape = "(";
  for (int i = 0; i < t.ndim(); ++i) shape += std::to_string(t.dim(i)) + (t.ndim() == 1 || i + 1 < t.ndim() ? "," : "");
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  // magic(6) + version(2) + length(2) + header + '\n' is a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write ", path, ": ", std::strerror(errno));
  uint16_t len = uint16_t(header.size());
  bool ok = std::fwrite("\x93NUMPY\x01\x00", 1, 8, f) == 8 && std::fwrite(&len, 2, 1, f) == 1 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(t.raw(), 1, t.nbytes(), f) == t.nbytes();
  ok = (std::fflush(f) == 0) && ok && ::fsync(fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    fail("cannot write ", path, ": ", std::strerror(e));
  }
}

}  // namespace mmkit::io
