// SHA-256 against the FIPS 180-4 / NIST CAVP example vectors, plus
// incremental updates split at every offset around the 64-byte block edges.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mmkit/util/sha256.h"

namespace {

std::string hex_of(const std::string& s) { return mmkit::sha256_hex(s.data(), s.size()); }

TEST(Sha256, NistVectors) {
  EXPECT_EQ(hex_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
                   "lmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(hex_of(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Message lengths 55, 56, 63, 64 change how many padding blocks are needed.
TEST(Sha256, PaddingBoundaries) {
  // Expected digests from Python's hashlib.sha256(b"a" * n).
  EXPECT_EQ(hex_of(std::string(55, 'a')), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(hex_of(std::string(56, 'a')), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(hex_of(std::string(63, 'a')), "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
  EXPECT_EQ(hex_of(std::string(64, 'a')), "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(Sha256, IncrementalMatchesOneShot) {
  std::vector<uint8_t> msg(200);
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = uint8_t(i * 131 + 7);
  const std::string whole = mmkit::sha256_hex(msg.data(), msg.size());
  for (size_t a = 0; a <= msg.size(); a += 7) {
    for (size_t b = a; b <= msg.size(); b += 13) {
      mmkit::Sha256 h;
      h.update(msg.data(), a);
      h.update(msg.data() + a, b - a);
      h.update(msg.data() + b, msg.size() - b);
      ASSERT_EQ(h.hex_digest(), whole) << "split at " << a << ", " << b;
    }
  }
  // digest() resets the object for a new message.
  mmkit::Sha256 h;
  h.update("x", 1);
  h.digest();
  h.update("abc", 3);
  EXPECT_EQ(h.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
