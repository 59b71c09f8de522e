// Pillow-exact resize and the CLIP / ImageNet preprocessing presets.
//  * tests/fixtures/preprocess.safetensors (tools/fixtures/gen_preprocess_fixture.py, Pillow 9.4 +
//    torchvision 0.14): every resize / center-crop / preset output must be byte-identical, and the
//    normalised tensors bit-identical.
//  * ../shared/reference/clip_tiny (OpenAI CLIP's own transform): pixel statistics and the sha256 of
//    the float32 CHW tensor for each reference image, at the tiny model's 64x64 resolution.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mmkit/core/error.h"
#include "mmkit/image/image.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/image/resample.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/util/sha256.h"
#include "test_util.h"

using mmkit::Filter;
using mmkit::Image;
using nlohmann::json;

namespace {

Image image_from(const mmkit::io::TensorView& t) {
  if (t.dtype != mmkit::DType::u8 || t.shape.size() != 3)
    mmkit::fail("fixture tensor ", t.name, ": expected U8 [H, W, C]");
  Image im(int(t.shape[1]), int(t.shape[0]), int(t.shape[2]));
  std::memcpy(im.pixels.data(), t.data, t.nbytes);
  return im;
}

// Exact equality; on mismatch names the first differing pixel and counts the rest.
::testing::AssertionResult same_pixels(const std::string& what, const Image& got, const Image& want) {
  if (got.width != want.width || got.height != want.height || got.channels != want.channels)
    return ::testing::AssertionFailure() << what << ": got " << got.width << "x" << got.height << "x"
                                         << got.channels << ", expected " << want.width << "x" << want.height
                                         << "x" << want.channels;
  size_t first = SIZE_MAX, n_diff = 0;
  int max_diff = 0;
  for (size_t i = 0; i < got.pixels.size(); ++i) {
    const int d = std::abs(int(got.pixels[i]) - int(want.pixels[i]));
    if (d == 0) continue;
    if (first == SIZE_MAX) first = i;
    ++n_diff;
    max_diff = std::max(max_diff, d);
  }
  if (n_diff == 0) return ::testing::AssertionSuccess();
  const size_t c = size_t(got.channels), px = first / c;
  return ::testing::AssertionFailure()
         << what << ": first difference at x=" << px % size_t(got.width) << " y=" << px / size_t(got.width)
         << " c=" << first % c << ": got " << int(got.pixels[first]) << ", expected " << int(want.pixels[first])
         << " (" << n_diff << " of " << got.pixels.size() << " bytes differ, max |diff| " << max_diff << ")";
}

class PillowFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    file_ = new mmkit::io::SafetensorsFile(
        mmkit::io::SafetensorsFile::open(mmkit::test::fixture("preprocess.safetensors")));
    cases_ = json::parse(file_->metadata().at("cases"));
  }
  static void TearDownTestSuite() {
    delete file_;
    file_ = nullptr;
  }
  static Image input(const json& c) { return image_from(file_->get("in." + c.at("input").get<std::string>())); }
  static Image expected(const json& c) { return image_from(file_->get("out." + c.at("name").get<std::string>())); }
  static int count(const std::string& kind) {
    int n = 0;
    for (const auto& c : cases_) n += c.at("kind") == kind;
    return n;
  }

  static mmkit::io::SafetensorsFile* file_;
  static json cases_;
};
mmkit::io::SafetensorsFile* PillowFixture::file_ = nullptr;
json PillowFixture::cases_;

TEST_F(PillowFixture, ResizeMatchesPillow) {
  ASSERT_GE(count("resize"), 20);
  for (const auto& c : cases_) {
    if (c.at("kind") != "resize") continue;
    const Image got = mmkit::resize_pil(input(c), c.at("w"), c.at("h"), mmkit::filter_from_name(c.at("filter")));
    EXPECT_TRUE(same_pixels(c.at("name"), got, expected(c)));
  }
}

TEST_F(PillowFixture, CenterCropMatchesTorchvision) {
  ASSERT_GE(count("center_crop"), 3);
  for (const auto& c : cases_) {
    if (c.at("kind") != "center_crop") continue;
    const Image got = mmkit::center_crop(input(c), c.at("crop_w"), c.at("crop_h"));
    EXPECT_TRUE(same_pixels(c.at("name"), got, expected(c)));
  }
}

TEST_F(PillowFixture, PresetsMatchTorchvision) {
  ASSERT_GE(count("preset"), 6);
  int normalized = 0;
  for (const auto& c : cases_) {
    if (c.at("kind") != "preset") continue;
    const std::string name = c.at("name");
    const auto cfg = mmkit::preprocess_preset(c.at("preset"), c.at("image_size"));
    const Image in = input(c), want = expected(c);
    const std::vector<uint8_t> u8 = mmkit::preprocess_to_u8(in, cfg);
    Image got(cfg.crop, cfg.crop, 3);
    ASSERT_EQ(u8.size(), got.pixels.size()) << name;
    got.pixels = u8;
    EXPECT_TRUE(same_pixels(name, got, want));
    if (!c.value("normalized", false)) continue;
    ++normalized;
    const auto& ref = file_->get("norm." + name);
    ASSERT_EQ(ref.shape, (std::vector<int64_t>{3, cfg.crop, cfg.crop})) << name;
    std::vector<float> x(size_t(3) * cfg.crop * cfg.crop);
    mmkit::preprocess_image(in, cfg, x.data());
    const float* r = static_cast<const float*>(ref.data);
    for (size_t i = 0; i < x.size(); ++i) {
      uint32_t a, b;
      std::memcpy(&a, &x[i], 4);
      std::memcpy(&b, &r[i], 4);
      ASSERT_EQ(a, b) << name << ": normalised element " << i << " got " << x[i] << ", expected " << r[i];
    }
  }
  EXPECT_GE(normalized, 2);
}

// The RGBA fixtures only prove something if premultiplication changes the result.
TEST_F(PillowFixture, RgbaFixtureExercisesPremultipliedAlpha) {
  const Image rgba = image_from(file_->get("in.rgba_45x33"));
  const Image with_alpha = mmkit::to_rgb(mmkit::resize_pil(rgba, 24, 18, Filter::bicubic));
  const Image straight = mmkit::resize_pil(mmkit::to_rgb(rgba), 24, 18, Filter::bicubic);
  EXPECT_FALSE(same_pixels("rgba vs rgb", with_alpha, straight));
}

TEST(Resample, SameSizeIsCopyAndErrors) {
  Image im(5, 3, 4);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = uint8_t(i * 37);
  // Pillow returns a copy for an unchanged size: no premultiply round trip.
  EXPECT_TRUE(same_pixels("same size", mmkit::resize_pil(im, 5, 3, Filter::bicubic), im));
  EXPECT_THROW(mmkit::resize_pil(im, 0, 3, Filter::bilinear), mmkit::Error);
  EXPECT_THROW(mmkit::resize_pil(Image(), 4, 4, Filter::bilinear), mmkit::Error);
  Image bad(2, 2, 3);
  bad.pixels.pop_back();
  EXPECT_THROW(mmkit::resize_pil(bad, 4, 4, Filter::bicubic), mmkit::Error);
  EXPECT_THROW(mmkit::resize_pil(Image(2, 2, 5), 4, 4, Filter::bicubic), mmkit::Error);
  EXPECT_THROW(mmkit::filter_from_name("lanczos"), mmkit::Error);
  EXPECT_EQ(mmkit::filter_from_name("bicubic"), Filter::bicubic);
}

// A flat image stays flat under any filter and size (weights are normalised).
TEST(Resample, ConstantImageStaysConstant) {
  for (Filter f : {Filter::nearest, Filter::bilinear, Filter::bicubic}) {
    Image im(23, 11, 3);
    std::fill(im.pixels.begin(), im.pixels.end(), 200);
    for (auto [w, h] : {std::pair{7, 3}, {50, 29}, {1, 1}, {23, 40}}) {
      const Image out = mmkit::resize_pil(im, w, h, f);
      for (uint8_t v : out.pixels) ASSERT_EQ(v, 200) << mmkit::filter_name(f) << " " << w << "x" << h;
    }
  }
}

TEST(Preprocess, ResizeSizeAndPresets) {
  // torchvision Resize(int): long side truncated.
  EXPECT_EQ(mmkit::shorter_side_resize_size(451, 300, 64), (std::array<int, 2>{96, 64}));  // 96.21
  EXPECT_EQ(mmkit::shorter_side_resize_size(427, 640, 224), (std::array<int, 2>{224, 335}));  // 335.7
  EXPECT_EQ(mmkit::shorter_side_resize_size(37, 23, 64), (std::array<int, 2>{102, 64}));
  EXPECT_EQ(mmkit::shorter_side_resize_size(50, 50, 8), (std::array<int, 2>{8, 8}));
  auto clip = mmkit::preprocess_preset("clip", 336);
  EXPECT_EQ(clip.size, 336);
  EXPECT_EQ(clip.crop, 336);
  EXPECT_EQ(clip.filter, Filter::bicubic);
  EXPECT_FALSE(clip.rgb_before_resize);
  auto in = mmkit::preprocess_preset("imagenet", 224);
  EXPECT_EQ(in.size, 256);
  EXPECT_EQ(in.crop, 224);
  EXPECT_EQ(in.filter, Filter::bilinear);
  EXPECT_EQ(mmkit::preprocess_preset("imagenet", 384).size, 439);  // round(438.857)
  EXPECT_THROW(mmkit::preprocess_preset("vit", 224), mmkit::Error);
  EXPECT_THROW(mmkit::preprocess_preset("clip", 0), mmkit::Error);
}

// CenterCrop offsets use Python's round(): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2.
TEST(Preprocess, CenterCropRoundsHalfToEven) {
  Image im(1, 8, 1);
  for (int y = 0; y < 8; ++y) im.pixels[size_t(y)] = uint8_t(y);
  EXPECT_EQ(mmkit::center_crop(im, 1, 7).pixels[0], 0);  // (8-7)/2 = 0.5
  EXPECT_EQ(mmkit::center_crop(im, 1, 5).pixels[0], 2);  // 1.5
  EXPECT_EQ(mmkit::center_crop(im, 1, 3).pixels[0], 2);  // 2.5
  EXPECT_EQ(mmkit::center_crop(im, 1, 4).pixels[0], 2);  // 2.0
  // Larger than the image: zero padding, floor of half the deficit before.
  const Image pad = mmkit::center_crop(im, 4, 9);
  EXPECT_EQ(pad.at(1, 0, 0), 0);
  EXPECT_EQ(pad.at(1, 1, 0), 1);
  EXPECT_EQ(pad.at(0, 1, 0), 0);
  EXPECT_EQ(pad.at(1, 8, 0), 0);
}

// ------------------------------------------------------------ shared reference

std::string reference_dir() { return std::string(MMKIT_SOURCE_DIR) + "/../shared/reference"; }

TEST(PreprocessReference, ClipTinyPixelStatsAndSha256) {
  const std::string json_path = reference_dir() + "/clip_tiny/clip_tiny_f32.json";
  if (!mmkit::test::file_exists(json_path))
    GTEST_SKIP() << "reference data not found at " << json_path << " (../shared/reference is optional)";
  std::ifstream f(json_path);
  const json ref = json::parse(f);
  const auto& images = ref.at("images");
  ASSERT_GE(images.size(), 5u);
  const auto shape = ref.at("pixel_shape").get<std::vector<int>>();
  ASSERT_EQ(shape, (std::vector<int>{3, 64, 64}));
  const auto cfg = mmkit::preprocess_preset("clip", shape[1]);
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string name = images[i];
    SCOPED_TRACE(name);
    const Image img = mmkit::decode_image_file(reference_dir() + "/inputs/" + name);
    // image_decoded_sha256 = sha256(np.asarray(PIL image)): HWC bytes in PIL's mode. A mismatch
    // here is a decoder difference, not a preprocessing one.
    EXPECT_EQ(mmkit::sha256_hex(img.pixels.data(), img.pixels.size()), ref.at("image_decoded_sha256")[i])
        << "decoded pixels differ from PIL's";
    std::vector<float> x(size_t(3) * cfg.crop * cfg.crop);
    mmkit::preprocess_image(img, cfg, x.data());
    // Statistics as the reference computed them: float64 mean, population std (numpy ddof=0).
    double sum = 0, lo = x[0], hi = x[0];
    for (float v : x) {
      sum += v;
      lo = std::min(lo, double(v));
      hi = std::max(hi, double(v));
    }
    const double mean = sum / double(x.size());
    double ss = 0;
    for (float v : x) ss += (v - mean) * (v - mean);
    const double sd = std::sqrt(ss / double(x.size()));
    EXPECT_NEAR(mean, ref.at("pixel_mean")[i].get<double>(), 1e-6);
    EXPECT_NEAR(sd, ref.at("pixel_std")[i].get<double>(), 1e-6);
    EXPECT_NEAR(lo, ref.at("pixel_min")[i].get<double>(), 1e-6);
    EXPECT_NEAR(hi, ref.at("pixel_max")[i].get<double>(), 1e-6);
    // pixel_sha256 = sha256 of the float32 [3, 64, 64] tensor's little-endian bytes: bit-exact.
    EXPECT_EQ(mmkit::sha256_hex(x.data(), x.size() * sizeof(float)), ref.at("pixel_sha256")[i]);
  }
}

}  // namespace
