// SHA-256 (FIPS 180-4), for content fingerprints: reference-tensor checks in
// tests, cache keys, checkpoint identity. Not constant-time; not for secrets.
//
//   std::string hex = mmkit::sha256_hex(buf.data(), buf.size());
//   mmkit::Sha256 h; h.update(a, na); h.update(b, nb); std::string hex2 = h.hex_digest();
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace mmkit {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  // Finishes the hash; the object is then reset for a new message.
  std::array<uint8_t, 32> digest();
  std::string hex_digest();  // 64 lowercase hex characters

 private:
  void block(const uint8_t* p);  // one 64-byte block into state_
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buf_;
  size_t buf_len_ = 0;
  uint64_t total_ = 0;  // message length in bytes
};

std::string sha256_hex(const void* data, size_t n);

}  // namespace mmkit
