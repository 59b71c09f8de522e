#include "mmkit/data/fashion_mnist.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "mmkit/core/error.h"

namespace mmkit::data {
namespace {

// Limits that no sane IDX image file exceeds; they stop a corrupt header from
// making us allocate gigabytes before noticing the data is not there.
constexpr int64_t kMaxSide = 4096;
constexpr int64_t kMaxCount = 100'000'000;
constexpr int64_t kMaxBytes = int64_t(4) << 30;

constexpr uint32_t kMagicImages = 0x00000803;  // 2051: u8, 3 dims
constexpr uint32_t kMagicLabels = 0x00000801;  // 2049: u8, 1 dim

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// gzopen reads plain files transparently, so one reader serves .gz and raw.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) fail(path, ": cannot open (", std::strerror(errno), ")");
    gzbuffer(f_, 1 << 17);
  }
  ~GzReader() {
    if (f_) gzclose(f_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads exactly n bytes or throws; `what` names the field for the message.
  void read_exact(void* dst, int64_t n, const char* what) {
    auto* p = static_cast<uint8_t*>(dst);
    int64_t done = 0;
    while (done < n) {
      unsigned chunk = unsigned(std::min<int64_t>(n - done, 1 << 30));
      int got = gzread(f_, p + done, chunk);
      if (got < 0) gz_fail(what);
      if (got == 0) {
        // zlib reports a cut-off stream as Z_BUF_ERROR; say it in plain words.
        int code = 0;
        const char* msg = gzerror(f_, &code);
        fail(path_, ": truncated while reading ", what, " (got ", done, " of ", n, " bytes",
             code != Z_OK && msg && *msg ? std::string("; zlib: ") + msg : std::string(), ")");
      }
      done += got;
    }
  }

  uint32_t read_be32(const char* what) {
    uint8_t b[4];
    read_exact(b, 4, what);
    return uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | uint32_t(b[3]);
  }

  // Reading past the payload also makes zlib verify the gzip CRC and length
  // trailer, so corruption in the last block is caught here.
  void expect_end() {
    uint8_t extra[64];
    int got = gzread(f_, extra, sizeof extra);
    if (got < 0) gz_fail("the end of the data");
    if (got > 0) fail(path_, ": unexpected trailing bytes after the declared data (file larger than its header says)");
  }

 private:
  [[noreturn]] void gz_fail(const char* what) {
    int code = 0;
    const char* msg = gzerror(f_, &code);
    fail(path_, ": gzip error while reading ", what, ": ", msg ? msg : "unknown",
         code == Z_ERRNO ? std::string(" (") + std::strerror(errno) + ")" : std::string());
  }

  std::string path_;
  gzFile f_ = nullptr;
};

// Resolves "<dir>/<stem>.gz", falling back to the uncompressed name.
std::string find_idx(const std::string& dir, const std::string& stem) {
  std::string gz = dir + "/" + stem + ".gz";
  if (file_exists(gz)) return gz;
  std::string raw = dir + "/" + stem;
  if (file_exists(raw)) return raw;
  fail(gz, ": file not found (Fashion-MNIST is packaged in Debian: apt-get install dataset-fashion-mnist)");
}

void check_magic(const std::string& path, uint32_t got, uint32_t expected, const char* kind) {
  if (got == expected) return;
  fail(path, ": wrong IDX magic for ", kind, ": got ", got, " (0x", std::hex, got, std::dec, "), expected ",
       expected, (got >> 16) == 0x1f8b ? " (doubly gzip-compressed?)" : "");
}

}  // namespace

std::vector<uint8_t> read_idx_images(const std::string& path, int64_t* n, int* rows, int* cols) {
  GzReader r(path);
  check_magic(path, r.read_be32("the magic number"), kMagicImages, "images (u8, 3 dims)");
  int64_t cnt = r.read_be32("the image count");
  int64_t h = r.read_be32("the row count");
  int64_t w = r.read_be32("the column count");
  if (cnt < 1 || cnt > kMaxCount)
    fail(path, ": implausible image count ", cnt, " (expected 1..", kMaxCount, ")");
  if (h < 1 || h > kMaxSide || w < 1 || w > kMaxSide)
    fail(path, ": implausible image size ", h, "x", w, " (expected 1..", kMaxSide, " per side)");
  int64_t bytes = cnt * h * w;
  if (bytes > kMaxBytes) fail(path, ": declared data size ", bytes, " bytes exceeds the limit of ", kMaxBytes);
  std::vector<uint8_t> px(static_cast<size_t>(bytes));
  r.read_exact(px.data(), bytes, "the pixel data");
  r.expect_end();
  *n = cnt;
  *rows = int(h);
  *cols = int(w);
  return px;
}

std::vector<uint8_t> read_idx_labels(const std::string& path) {
  GzReader r(path);
  check_magic(path, r.read_be32("the magic number"), kMagicLabels, "labels (u8, 1 dim)");
  int64_t cnt = r.read_be32("the label count");
  if (cnt < 1 || cnt > kMaxCount) fail(path, ": implausible label count ", cnt, " (expected 1..", kMaxCount, ")");
  std::vector<uint8_t> lab(static_cast<size_t>(cnt));
  r.read_exact(lab.data(), cnt, "the labels");
  r.expect_end();
  return lab;
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

ImageSet load_fashion_mnist(const std::string& dir, const std::string& split) {
  std::string prefix;
  if (split == "train")
    prefix = "train";
  else if (split == "test" || split == "t10k")
    prefix = "t10k";
  else
    fail("Fashion-MNIST: unknown split '", split, "' (expected \"train\" or \"test\")");

  std::string img_path = find_idx(dir, prefix + "-images-idx3-ubyte");
  std::string lab_path = find_idx(dir, prefix + "-labels-idx1-ubyte");

  ImageSet s;
  s.pixels = read_idx_images(img_path, &s.n, &s.rows, &s.cols);
  std::vector<uint8_t> lab = read_idx_labels(lab_path);
  if (int64_t(lab.size()) != s.n)
    fail("Fashion-MNIST ", split, ": count mismatch: ", img_path, " has ", s.n, " images but ", lab_path, " has ",
         lab.size(), " labels");

  s.class_names = fashion_mnist_classes();
  const int k = int(s.class_names.size());
  s.labels.resize(lab.size());
  for (size_t i = 0; i < lab.size(); ++i) {
    if (lab[i] >= k) fail(lab_path, ": label ", int(lab[i]), " at index ", i, " out of range [0, ", k, ")");
    s.labels[i] = lab[i];
  }
  s.channels = 1;
  return s;
}

ImageSet first_images(ImageSet s, int64_t n) {
  if (n <= 0 || n >= s.n) return s;
  s.n = n;
  s.pixels.resize(size_t(n * s.image_size()));
  s.labels.resize(size_t(n));
  return s;
}

}  // namespace mmkit::data
