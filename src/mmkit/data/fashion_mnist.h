// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) from the gzip'd IDX files that
// Debian's dataset-fashion-mnist installs:
//   <dir>/train-images-idx3-ubyte.gz  (60000 x 28 x 28 u8)
//   <dir>/train-labels-idx1-ubyte.gz  (60000 u8 in [0, 10))
//   <dir>/t10k-images-idx3-ubyte.gz   (10000 x 28 x 28 u8)
//   <dir>/t10k-labels-idx1-ubyte.gz
// Uncompressed copies (same names without .gz) are accepted too.
//
//   auto train = mmkit::data::load_fashion_mnist(mmkit::data::kFashionMnistDir, "train");
//   const uint8_t* img0 = train.pixels.data();   // 28*28 bytes, row-major
//   int y0 = train.labels[0];                    // index into train.class_names
//
// IDX format (http://yann.lecun.com/exdb/mnist/): big-endian u32 magic
// 0x00000800 | (dtype 0x08 = u8) << 8 | ndim, then ndim big-endian u32 sizes,
// then the data. Images: magic 2051, dims (n, rows, cols). Labels: 2049, (n).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmkit::data {

// A set of small 8-bit images with integer labels.
struct ImageSet {
  int64_t n = 0;
  int rows = 0, cols = 0, channels = 1;
  std::vector<uint8_t> pixels;      // n*rows*cols*channels, HWC per image, images contiguous
  std::vector<int32_t> labels;      // n, each in [0, class_names.size())
  std::vector<std::string> class_names;

  int64_t image_size() const { return int64_t(rows) * cols * channels; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * image_size(); }
};

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// split: "train" (60000 images) or "test" (10000, the t10k files).
// Throws mmkit::Error naming the file on: missing file, gzip error or
// truncation, wrong magic, absurd dimensions, image/label count mismatch,
// label out of range, trailing bytes.
ImageSet load_fashion_mnist(const std::string& dir, const std::string& split);

// The first n images of `s` (all of them when n <= 0 or n >= s.n): the
// --limit-train / --limit-test of the trainers.
ImageSet first_images(ImageSet s, int64_t n);

// T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot
const std::vector<std::string>& fashion_mnist_classes();

// Lower-level readers, also usable for MNIST / KMNIST files in the same format.
// Images: returns pixels (n*rows*cols) and sets *n, *rows, *cols.
std::vector<uint8_t> read_idx_images(const std::string& path, int64_t* n, int* rows, int* cols);
std::vector<uint8_t> read_idx_labels(const std::string& path);

}  // namespace mmkit::data
