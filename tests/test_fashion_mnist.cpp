// Fashion-MNIST IDX reader: the real Debian files when installed, and small
// synthetic/corrupted IDX files written here to exercise every error path.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <numeric>

#include "mmkit/core/error.h"
#include "mmkit/data/fashion_mnist.h"

using mmkit::data::ImageSet;
using mmkit::data::load_fashion_mnist;

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Runs f, expecting mmkit::Error whose message contains every needle.
template <class F>
void expect_error(F f, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "expected mmkit::Error, nothing was thrown";
  } catch (const mmkit::Error& e) {
    std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg << "\nmissing: " << n;
  }
}

void put_be32(std::vector<uint8_t>* v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v->push_back(uint8_t(x >> s));
}

std::vector<uint8_t> idx_images(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t data_bytes) {
  std::vector<uint8_t> v;
  put_be32(&v, magic);
  put_be32(&v, n);
  put_be32(&v, rows);
  put_be32(&v, cols);
  for (size_t i = 0; i < data_bytes; ++i) v.push_back(uint8_t(i * 7 + 3));
  return v;
}

std::vector<uint8_t> idx_labels(uint32_t magic, const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> v;
  put_be32(&v, magic);
  put_be32(&v, uint32_t(labels.size()));
  v.insert(v.end(), labels.begin(), labels.end());
  return v;
}

std::vector<uint8_t> gzip_bytes(const std::vector<uint8_t>& raw) {
  // deflateInit2 with windowBits 16+15 writes a gzip wrapper.
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::vector<uint8_t> out(deflateBound(&z, raw.size()) + 64);
  z.next_in = const_cast<uint8_t*>(raw.data());
  z.avail_in = unsigned(raw.size());
  z.next_out = out.data();
  z.avail_out = unsigned(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

class IdxFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mmkit_fmnist_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                          "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
      std::remove((dir + "/" + f).c_str());
    ::rmdir(dir.c_str());
  }
  // A valid 5-image 4x3 split under prefix ("train" or "t10k").
  void write_valid(const std::string& prefix) {
    write_file(dir + "/" + prefix + "-images-idx3-ubyte.gz", gzip_bytes(idx_images(2051, 5, 4, 3, 5 * 12)));
    write_file(dir + "/" + prefix + "-labels-idx1-ubyte.gz", gzip_bytes(idx_labels(2049, {9, 0, 3, 3, 7})));
  }
  std::string dir;
};

}  // namespace

TEST(FashionMnist, ClassNames) {
  const auto& c = mmkit::data::fashion_mnist_classes();
  ASSERT_EQ(c.size(), 10u);
  EXPECT_EQ(c[0], "T-shirt/top");
  EXPECT_EQ(c[9], "Ankle boot");
}

TEST(FashionMnist, RealFiles) {
  const std::string dir = mmkit::data::kFashionMnistDir;
  if (!exists(dir + "/train-images-idx3-ubyte.gz") && !exists(dir + "/train-images-idx3-ubyte"))
    GTEST_SKIP() << "Fashion-MNIST not installed in " << dir << " (apt-get install dataset-fashion-mnist)";
  struct Expect {
    const char* split;
    int64_t n;
    int per_class;
    int first_label;
    int64_t first_image_sum;  // from Python's gzip+numpy on the same files
  };
  for (const Expect& ex : {Expect{"train", 60000, 6000, 9, 76247}, Expect{"test", 10000, 1000, 9, 33456}}) {
    SCOPED_TRACE(ex.split);
    ImageSet s = load_fashion_mnist(dir, ex.split);
    ASSERT_EQ(s.n, ex.n);
    EXPECT_EQ(s.rows, 28);
    EXPECT_EQ(s.cols, 28);
    EXPECT_EQ(s.channels, 1);
    ASSERT_EQ(s.pixels.size(), size_t(ex.n) * 784);
    ASSERT_EQ(s.labels.size(), size_t(ex.n));
    EXPECT_EQ(s.class_names.size(), 10u);
    std::vector<int64_t> hist(10, 0);
    for (int32_t y : s.labels) hist[size_t(y)]++;
    for (int k = 0; k < 10; ++k) EXPECT_EQ(hist[size_t(k)], ex.per_class) << "class " << k;
    EXPECT_EQ(s.labels[0], ex.first_label);
    EXPECT_EQ(std::accumulate(s.image(0), s.image(0) + 784, int64_t(0)), ex.first_image_sum);
    double mean = std::accumulate(s.pixels.begin(), s.pixels.end(), 0.0) / double(s.pixels.size());
    EXPECT_NEAR(mean, 73.0, 1.0);  // dataset mean 0.286 * 255
  }
}

TEST_F(IdxFiles, SyntheticValid) {
  write_valid("train");
  ImageSet s = load_fashion_mnist(dir, "train");
  ASSERT_EQ(s.n, 5);
  EXPECT_EQ(s.rows, 4);
  EXPECT_EQ(s.cols, 3);
  ASSERT_EQ(s.pixels.size(), 60u);
  for (size_t i = 0; i < 60; ++i) ASSERT_EQ(s.pixels[i], uint8_t(i * 7 + 3)) << "pixel " << i;
  EXPECT_EQ(s.labels, (std::vector<int32_t>{9, 0, 3, 3, 7}));
}

TEST_F(IdxFiles, UncompressedFallback) {
  write_file(dir + "/t10k-images-idx3-ubyte", idx_images(2051, 5, 4, 3, 60));
  write_file(dir + "/t10k-labels-idx1-ubyte", idx_labels(2049, {1, 2, 3, 4, 5}));
  ImageSet s = load_fashion_mnist(dir, "test");
  EXPECT_EQ(s.n, 5);
  EXPECT_EQ(s.labels[4], 5);
}

TEST_F(IdxFiles, MissingFile) {
  expect_error([&] { load_fashion_mnist(dir, "train"); },
               {dir + "/train-images-idx3-ubyte.gz", "apt-get install dataset-fashion-mnist"});
}

TEST_F(IdxFiles, BadSplit) {
  expect_error([&] { load_fashion_mnist(dir, "validation"); }, {"validation", "train"});
}

TEST_F(IdxFiles, TruncatedGzip) {
  write_valid("train");
  auto gz = gzip_bytes(idx_images(2051, 5, 4, 3, 60));
  gz.resize(gz.size() / 2);
  write_file(dir + "/train-images-idx3-ubyte.gz", gz);
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"train-images-idx3-ubyte.gz", "truncated"});
}

TEST_F(IdxFiles, TruncatedPayload) {
  write_valid("train");
  // A complete gzip stream whose content stops short of the declared size.
  write_file(dir + "/train-images-idx3-ubyte.gz", gzip_bytes(idx_images(2051, 5, 4, 3, 59)));
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"train-images-idx3-ubyte.gz", "truncated", "59 of 60"});
}

TEST_F(IdxFiles, CorruptCrc) {
  write_valid("train");
  auto gz = gzip_bytes(idx_images(2051, 5, 4, 3, 60));
  gz[gz.size() - 6] ^= 0x5a;  // inside the CRC32 trailer
  write_file(dir + "/train-images-idx3-ubyte.gz", gz);
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"train-images-idx3-ubyte.gz", "gzip error"});
}

TEST_F(IdxFiles, WrongMagic) {
  write_valid("train");
  write_file(dir + "/train-images-idx3-ubyte.gz", gzip_bytes(idx_images(2049, 5, 4, 3, 60)));
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"train-images-idx3-ubyte.gz", "magic", "got 2049", "expected 2051"});
  write_valid("train");
  write_file(dir + "/train-labels-idx1-ubyte.gz", gzip_bytes(idx_images(2051, 5, 4, 3, 60)));
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"train-labels-idx1-ubyte.gz", "magic", "expected 2049"});
}

TEST_F(IdxFiles, CountMismatch) {
  write_valid("train");
  write_file(dir + "/train-labels-idx1-ubyte.gz", gzip_bytes(idx_labels(2049, {1, 2, 3, 4})));
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"count mismatch", "5 images", "4 labels"});
}

TEST_F(IdxFiles, LabelOutOfRange) {
  write_valid("train");
  write_file(dir + "/train-labels-idx1-ubyte.gz", gzip_bytes(idx_labels(2049, {1, 2, 10, 4, 5})));
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"label 10", "index 2", "out of range"});
}

TEST_F(IdxFiles, AbsurdDimensions) {
  write_valid("train");
  write_file(dir + "/train-images-idx3-ubyte.gz", gzip_bytes(idx_images(2051, 5, 100000, 3, 0)));
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"implausible image size", "100000x3"});
  write_file(dir + "/train-images-idx3-ubyte.gz", gzip_bytes(idx_images(2051, 0, 28, 28, 0)));
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"implausible image count 0"});
  // 4 billion images of 4096x4096 would be exabytes: rejected before allocating.
  write_file(dir + "/train-images-idx3-ubyte.gz", gzip_bytes(idx_images(2051, 90000000, 4096, 4096, 0)));
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"exceeds the limit"});
}

TEST_F(IdxFiles, TrailingBytes) {
  write_valid("train");
  write_file(dir + "/train-labels-idx1-ubyte.gz", gzip_bytes([] {
               auto v = idx_labels(2049, {1, 2, 3, 4, 5});
               v.push_back(0);
               return v;
             }()));
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"train-labels-idx1-ubyte.gz", "trailing"});
}

TEST_F(IdxFiles, NotGzipGarbage) {
  write_valid("train");
  write_file(dir + "/train-images-idx3-ubyte.gz", {0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5});
  expect_error([&] { load_fashion_mnist(dir, "train"); }, {"train-images-idx3-ubyte.gz"});
}
