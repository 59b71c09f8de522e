// Image decode/encode, conversions and resize. PNG and JPEG inputs are made
// here with libpng/libjpeg directly (16-bit, palette, interlaced, CMYK ...),
// and corrupted by hand for the error paths.
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>
#include <zlib.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <jpeglib.h>

#include "mmkit/core/error.h"
#include "mmkit/image/image.h"

using mmkit::Image;

namespace {

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

Image decode(const std::vector<uint8_t>& b, int64_t max_pixels = mmkit::kDefaultMaxPixels) {
  return mmkit::decode_image_memory(b.data(), b.size(), "test.img", max_pixels);
}

Image pattern(int w, int h, int c) {
  Image im(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) im.at(x, y, k) = uint8_t((x * 29 + y * 53 + k * 101 + x * y) & 255);
  return im;
}

// Smooth content so JPEG's error stays small and the bound is meaningful.
Image smooth(int w, int h, int c) {
  Image im(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) im.at(x, y, k) = uint8_t(30 + (x * 150) / w + (y * 40) / h + k * 10);  // <= 240
  return im;
}

// Reports the worst pixel.
void expect_close(const Image& a, const Image& b, int tol, double mean_tol) {
  ASSERT_EQ(a.width, b.width);
  ASSERT_EQ(a.height, b.height);
  ASSERT_EQ(a.channels, b.channels);
  int worst = -1;
  size_t wi = 0;
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    int d = std::abs(int(a.pixels[i]) - int(b.pixels[i]));
    sum += d;
    if (d > worst) worst = d, wi = i;
  }
  size_t px = wi / size_t(a.channels);
  EXPECT_LE(worst, tol) << "worst at x=" << px % size_t(a.width) << " y=" << px / size_t(a.width)
                        << " c=" << wi % size_t(a.channels) << ": " << int(a.pixels[wi]) << " vs " << int(b.pixels[wi]);
  EXPECT_LE(sum / double(a.pixels.size()), mean_tol);
}

// -------------------------------------------------------------- test encoders

struct PngSpec {
  PngSpec(int w_, int h_, int color_type_, int bit_depth_, bool interlace_ = false)
      : w(w_), h(h_), color_type(color_type_), bit_depth(bit_depth_), interlace(interlace_) {}
  int w, h, color_type, bit_depth;
  bool interlace;
  std::vector<std::vector<uint8_t>> rows;  // raw PNG row bytes (big-endian 16-bit)
  std::vector<png_color> palette;
  std::vector<uint8_t> trns;
};

void append_cb(png_structp png, png_bytep d, png_size_t n) {
  auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  v->insert(v->end(), d, d + n);
}

std::vector<uint8_t> make_png(const PngSpec& s) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows;
  for (auto& r : s.rows) rows.push_back(const_cast<png_bytep>(r.data()));
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng failed while making a test PNG";
    return {};
  }
  png_set_write_fn(png, &out, append_cb, nullptr);
  png_set_IHDR(png, info, s.w, s.h, s.bit_depth, s.color_type,
               s.interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!s.palette.empty()) png_set_PLTE(png, info, s.palette.data(), int(s.palette.size()));
  if (!s.trns.empty()) png_set_tRNS(png, info, s.trns.data(), int(s.trns.size()), nullptr);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

struct JpegErrJmp {
  jpeg_error_mgr pub;
  jmp_buf jb;
};

std::vector<uint8_t> make_jpeg(const Image& im, J_COLOR_SPACE space, int quality, bool progressive = false) {
  jpeg_compress_struct c;
  JpegErrJmp err;
  c.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = [](j_common_ptr ci) { longjmp(reinterpret_cast<JpegErrJmp*>(ci->err)->jb, 1); };
  unsigned char* mem = nullptr;
  unsigned long size = 0;
  if (setjmp(err.jb)) {
    jpeg_destroy_compress(&c);
    std::free(mem);
    ADD_FAILURE() << "libjpeg failed while making a test JPEG";
    return {};
  }
  jpeg_create_compress(&c);
  jpeg_mem_dest(&c, &mem, &size);
  c.image_width = unsigned(im.width);
  c.image_height = unsigned(im.height);
  c.input_components = im.channels;
  c.in_color_space = space;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  if (progressive) jpeg_simple_progression(&c);  // libjpeg's standard script: 10 scans for YCbCr
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(im.row(int(c.next_scanline)));
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  std::vector<uint8_t> out(mem, mem + size);
  jpeg_destroy_compress(&c);
  std::free(mem);
  return out;
}

// A PNG consisting of signature + IHDR (with a correct CRC) + IEND only.
std::vector<uint8_t> png_header_only(uint32_t w, uint32_t h) {
  std::vector<uint8_t> v = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  auto be32 = [&](uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
  };
  auto chunk = [&](const char* type, const std::vector<uint8_t>& data) {
    be32(uint32_t(data.size()));
    size_t start = v.size();
    v.insert(v.end(), type, type + 4);
    v.insert(v.end(), data.begin(), data.end());
    be32(uint32_t(crc32(0, v.data() + start, uInt(v.size() - start))));
  };
  std::vector<uint8_t> ihdr;
  for (uint32_t x : {w, h})
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(uint8_t(x >> s));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB
  chunk("IHDR", ihdr);
  chunk("IEND", {});
  return v;
}

std::string temp_path(const char* name) {
  return std::string("/tmp/mmkit_test_image_") + std::to_string(::getpid()) + "_" + name;
}

}  // namespace

// ---------------------------------------------------------------------- PNG

TEST(Png, RoundTripGrayRgbRgba) {
  for (int c : {1, 3, 4}) {
    SCOPED_TRACE(c);
    Image im = pattern(37, 23, c);
    auto bytes = mmkit::encode_png(im);
    EXPECT_EQ(mmkit::detect_image_format(bytes.data(), bytes.size()), mmkit::ImageFormat::png);
    Image back = decode(bytes);
    EXPECT_EQ(back.channels, c);
    expect_close(back, im, 0, 0.0);
  }
}

TEST(Png, WritePngFileIsAtomicAndReadable) {
  std::string path = temp_path("rt.png");
  Image im = pattern(16, 9, 3);
  mmkit::write_png(path, im);
  EXPECT_NE(access(path.c_str(), F_OK), -1);
  EXPECT_EQ(access((path + ".tmp." + std::to_string(getpid())).c_str(), F_OK), -1) << "temp file left behind";
  expect_close(mmkit::decode_image_file(path), im, 0, 0.0);
  std::remove(path.c_str());
  expect_error([] { mmkit::write_png("/nonexistent-dir/x.png", pattern(2, 2, 1)); }, {"/nonexistent-dir/x.png"});
  expect_error([] { mmkit::write_png(temp_path("bad.png"), Image(2, 2, 2)); }, {"channel count 2"});
}

TEST(Png, SixteenBitKeepsHighByte) {
  PngSpec s{5, 3, PNG_COLOR_TYPE_RGB, 16};
  Image expect(5, 3, 3);
  for (int y = 0; y < 3; ++y) {
    std::vector<uint8_t> row;
    for (int x = 0; x < 5; ++x)
      for (int k = 0; k < 3; ++k) {
        uint16_t v = uint16_t(x * 13000 + y * 700 + k * 91 + 255);
        row.push_back(uint8_t(v >> 8));
        row.push_back(uint8_t(v & 255));
        expect.at(x, y, k) = uint8_t(v >> 8);
      }
    s.rows.push_back(row);
  }
  Image im = decode(make_png(s));
  EXPECT_EQ(im.channels, 3);
  expect_close(im, expect, 0, 0.0);

  PngSpec g{4, 2, PNG_COLOR_TYPE_GRAY, 16};
  g.rows = {{0xFF, 0xFF, 0x80, 0x01, 0x00, 0xFF, 0x12, 0x34}, {0, 0, 1, 0, 2, 0, 3, 0}};
  Image gi = decode(make_png(g));
  ASSERT_EQ(gi.channels, 1);
  EXPECT_EQ(gi.pixels, (std::vector<uint8_t>{0xFF, 0x80, 0x00, 0x12, 0, 1, 2, 3}));
}

TEST(Png, PaletteTransparencyAndLowBitDepth) {
  PngSpec p{4, 1, PNG_COLOR_TYPE_PALETTE, 2};
  p.palette = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {9, 8, 7}};
  p.rows = {{0b00011011}};  // indices 0 1 2 3
  Image rgb = decode(make_png(p));
  ASSERT_EQ(rgb.channels, 3);
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7}));

  p.trns = {0, 128};  // index 0 transparent, 1 half, others opaque
  Image rgba = decode(make_png(p));
  ASSERT_EQ(rgba.channels, 4);
  EXPECT_EQ(rgba.pixels, (std::vector<uint8_t>{255, 0, 0, 0, 0, 255, 0, 128, 0, 0, 255, 255, 9, 8, 7, 255}));

  PngSpec b{8, 1, PNG_COLOR_TYPE_GRAY, 1};
  b.rows = {{0b10110001}};
  Image bw = decode(make_png(b));
  ASSERT_EQ(bw.channels, 1);
  EXPECT_EQ(bw.pixels, (std::vector<uint8_t>{255, 0, 255, 255, 0, 0, 0, 255}));

  PngSpec ga{2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8};
  ga.rows = {{10, 200, 250, 0}};
  Image gai = decode(make_png(ga));
  ASSERT_EQ(gai.channels, 4);  // gray+alpha is normalised to RGBA
  EXPECT_EQ(gai.pixels, (std::vector<uint8_t>{10, 10, 10, 200, 250, 250, 250, 0}));
}

TEST(Png, Interlaced) {
  Image im = pattern(19, 13, 3);
  PngSpec s{19, 13, PNG_COLOR_TYPE_RGB, 8, true};
  for (int y = 0; y < 13; ++y) s.rows.emplace_back(im.row(y), im.row(y) + 19 * 3);
  expect_close(decode(make_png(s)), im, 0, 0.0);
}

TEST(Png, Truncated) {
  auto bytes = mmkit::encode_png(pattern(64, 64, 3));
  for (size_t keep : {size_t(9), size_t(30), bytes.size() / 2, bytes.size() - 5}) {
    SCOPED_TRACE(keep);
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(keep));
    expect_error([&] { decode(cut); }, {"test.img", "PNG"});
  }
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(bytes.size() / 2));
  expect_error([&] { decode(cut); }, {"truncated"});
}

TEST(Png, ZeroAndHugeDeclaredSizes) {
  expect_error([] { decode(png_header_only(0, 10)); }, {"test.img", "invalid PNG: empty image (0x10)"});
  expect_error([] { decode(png_header_only(10, 0)); }, {"test.img", "invalid PNG: empty image (10x0)"});
  // 60000 x 60000 = 3.6 gigapixels: refused from the header, before any allocation.
  expect_error([] { decode(png_header_only(60000, 60000)); }, {"60000x60000", "exceeds the limit"});
  auto ok = mmkit::encode_png(pattern(100, 100, 1));
  expect_error([&] { decode(ok, 5000); }, {"100x100", "exceeds the limit of 5000"});
  EXPECT_EQ(decode(ok, 10000).width, 100);
}

TEST(Png, CorruptCrc) {
  auto bytes = mmkit::encode_png(pattern(32, 32, 3));
  bytes[8 + 8 + 13] ^= 0xFF;  // IHDR CRC
  expect_error([&] { decode(bytes); }, {"invalid PNG"});
}

// --------------------------------------------------------------------- JPEG

TEST(Jpeg, RgbRoundTripApproximatelyEqual) {
  Image im = smooth(64, 48, 3);
  auto bytes = make_jpeg(im, JCS_RGB, 95);
  EXPECT_EQ(mmkit::detect_image_format(bytes.data(), bytes.size()), mmkit::ImageFormat::jpeg);
  Image back = decode(bytes);
  EXPECT_EQ(back.channels, 3);
  expect_close(back, im, 12, 1.5);
}

// Issue #23: decoding cost is scans x 8x8 blocks, refused before decoding when it exceeds 20 full
// scans of an image at the pixel limit. A real progressive JPEG (10 scans) decodes with the limit
// at its own size; the same file with its last refinement scan repeated 200 times (a scan bomb:
// the 146 KB 4000x4000 file of the issue had 985 scans and decoded for 5.8 s) is refused, naming
// the scans and blocks.
TEST(Jpeg, ProgressiveScanCostIsBoundedBeforeDecoding) {
  Image im = smooth(96, 64, 3);
  std::vector<uint8_t> p = make_jpeg(im, JCS_RGB, 90, /*progressive=*/true);
  Image back = mmkit::decode_image_memory(p.data(), p.size(), "p.jpg", 96 * 64);
  expect_close(back, im, 14, 2.0);
  // The last scan starts at the last SOS marker (FF DA) and ends at EOI (FF D9).
  size_t last_sos = 0;
  for (size_t i = 0; i + 1 < p.size(); ++i)
    if (p[i] == 0xFF && p[i + 1] == 0xDA) last_sos = i;
  ASSERT_GT(last_sos, 0u);
  ASSERT_EQ(p[p.size() - 2], 0xFF);
  ASSERT_EQ(p[p.size() - 1], 0xD9);
  std::vector<uint8_t> bomb(p.begin(), p.end() - 2);
  const std::vector<uint8_t> scan(p.begin() + long(last_sos), p.end() - 2);
  for (int k = 0; k < 200; ++k) bomb.insert(bomb.end(), scan.begin(), scan.end());
  bomb.push_back(0xFF);
  bomb.push_back(0xD9);
  // 96x64 in 4:2:0 (libjpeg's default): Y 12 x 8 + Cb, Cr 6 x 4 each = 144 blocks; 210 scans;
  // budget 20 x 3 x (96 * 64 / 64) = 5760.
  expect_error([&] { mmkit::decode_image_memory(bomb.data(), bomb.size(), "bomb.jpg", 96 * 64); },
               {"bomb.jpg", "210 scans x 144 blocks", "decoding cost 30240 exceeds the limit of 5760"});
}

TEST(Jpeg, Grayscale) {
  Image im = smooth(40, 30, 1);
  Image back = decode(make_jpeg(im, JCS_GRAYSCALE, 95));
  EXPECT_EQ(back.channels, 1);
  expect_close(back, im, 6, 1.0);
}

// CMYK JPEGs decode to RGB as PIL's open + convert("RGB") does: samples are read as inverted
// (Adobe) CMYK, so stored (c, m, y, k) gives R = c * k / 255 etc. (a byte-exact check against
// Pillow 9.4 is recorded in docs/ROBUSTNESS.md; here the file is lossy, hence the tolerance).
TEST(Jpeg, CmykConvertedToRgbLikePil) {
  Image cmyk(24, 16, 4);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 24; ++x) {
      uint8_t* p = &cmyk.at(x, y, 0);
      p[0] = uint8_t(x < 12 ? 255 : 40);   // regions of constant colour: JPEG keeps them almost exact
      p[1] = uint8_t(y < 8 ? 200 : 90);
      p[2] = 128;
      p[3] = uint8_t(x < 12 ? 255 : 160);
    }
  Image back = decode(make_jpeg(cmyk, JCS_CMYK, 95));
  ASSERT_EQ(back.channels, 3);
  Image want(24, 16, 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 24; ++x)
      for (int c = 0; c < 3; ++c) want.at(x, y, c) = uint8_t(cmyk.at(x, y, c) * cmyk.at(x, y, 3) / 255);
  expect_close(back, want, 12, 3.0);
}

TEST(Jpeg, Truncated) {
  auto bytes = make_jpeg(pattern(64, 64, 3), JCS_RGB, 90);
  for (size_t keep : {size_t(4), size_t(100), bytes.size() / 2, bytes.size() - 2}) {
    SCOPED_TRACE(keep);
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(keep));
    expect_error([&] { decode(cut); }, {"test.img", "JPEG"});
  }
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(bytes.size() / 2));
  expect_error([&] { decode(cut); }, {"truncated"});
}

TEST(Jpeg, HugeAndZeroDeclaredSize) {
  auto bytes = make_jpeg(smooth(16, 16, 3), JCS_RGB, 90);
  size_t sof = 0;
  for (size_t i = 2; i + 9 < bytes.size(); ++i)
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xC0) {
      sof = i;
      break;
    }
  ASSERT_NE(sof, 0u) << "no SOF0 marker in test JPEG";
  auto patch = [&](uint16_t w, uint16_t h) {
    auto b = bytes;
    b[sof + 5] = uint8_t(h >> 8);
    b[sof + 6] = uint8_t(h);
    b[sof + 7] = uint8_t(w >> 8);
    b[sof + 8] = uint8_t(w);
    return b;
  };
  expect_error([&] { decode(patch(65000, 65000)); }, {"65000x65000", "exceeds the limit"});
  expect_error([&] { decode(patch(0, 16)); }, {"test.img", "JPEG"});
}

// -------------------------------------------------------------------- misc

TEST(Decode, GarbageEmptyMissing) {
  std::vector<uint8_t> junk = {'G', 'I', 'F', '8', '8', 'a', 1, 2, 3, 4};
  expect_error([&] { decode(junk); }, {"test.img", "unknown image format", "47 49 46 38 38"});
  // Formats we do not decode are named.
  std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 2, 3, 4};
  expect_error([&] { decode(gif); }, {"test.img", "GIF images are not supported"});
  std::vector<uint8_t> webp = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P'};
  expect_error([&] { decode(webp); }, {"WebP images are not supported"});
  std::vector<uint8_t> tiff = {'I', 'I', '*', 0, 8, 0, 0, 0};
  expect_error([&] { decode(tiff); }, {"TIFF images are not supported"});
  std::vector<uint8_t> bmp = {'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0};
  expect_error([&] { decode(bmp); }, {"BMP images are not supported"});
  expect_error([] { mmkit::decode_image_memory(nullptr, 0, "nothing.png", 100); }, {"nothing.png", "empty"});
  expect_error([] { mmkit::decode_image_file("/nonexistent/cat.jpg"); }, {"/nonexistent/cat.jpg", "cannot open"});
  std::vector<uint8_t> sig_only = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  expect_error([&] { decode(sig_only); }, {"invalid PNG"});
  std::vector<uint8_t> soi_only = {0xFF, 0xD8, 0xFF};
  expect_error([&] { decode(soi_only); }, {"invalid JPEG"});
}

TEST(Convert, GrayAndRgb) {
  Image rgb(5, 1, 3);
  rgb.pixels = {10, 200, 30, 255, 0, 0, 0, 255, 0, 0, 0, 255, 123, 45, 67};
  Image g = mmkit::to_gray(rgb);
  EXPECT_EQ(g.pixels, (std::vector<uint8_t>{124, 76, 150, 29, 71}));  // PIL convert("L")
  Image rgba(1, 1, 4);
  rgba.pixels = {1, 2, 3, 4};
  EXPECT_EQ(mmkit::to_rgb(rgba).pixels, (std::vector<uint8_t>{1, 2, 3}));
  Image gray(2, 1, 1);
  gray.pixels = {7, 9};
  EXPECT_EQ(mmkit::to_rgb(gray).pixels, (std::vector<uint8_t>{7, 7, 7, 9, 9, 9}));
  EXPECT_EQ(mmkit::to_gray(gray).pixels, gray.pixels);
}

// Expected values from Pillow 9.4: Image.fromarray(a, "L").resize((W, H), Image.BILINEAR)
// with a[y][x] = (37x + 91y + 13xy) % 256 on a 7x5 image.
TEST(Resize, MatchesPillowBilinear) {
  Image src(7, 5, 1);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x) src.at(x, y, 0) = uint8_t((x * 37 + y * 91 + x * y * 13) % 256);
  struct Case {
    int w, h;
    std::vector<uint8_t> px;
  };
  const Case cases[] = {
      {3, 4, {58, 125, 166, 154, 151, 120, 123, 153, 155, 117, 132, 120}},
      {11, 8, {0,   17,  40,  64,  87,  111, 135, 158, 182, 205, 222, 40,  59,  86,  113, 140, 168, 124,
               110, 137, 164, 184, 97,  120, 151, 173, 201, 233, 113, 58,  90,  114, 130, 154, 181, 202,
               128, 117, 154, 141, 149, 187, 129, 75,  130, 161, 187, 118, 113, 156, 147, 161, 203, 150,
               101, 27,  62,  108, 145, 189, 237, 132, 93,  140, 179, 206, 68,  106, 146, 108, 121, 174,
               156, 129, 90,  130, 168, 108, 148, 182, 76,  62,  119, 176, 162, 56,  90,  130}},
      {2, 2, {122, 140, 131, 140}},
      {7, 3, {39, 82, 124, 167, 100, 142, 185, 125, 188, 109, 172, 121, 184, 105, 69, 152, 90, 173, 147, 84, 167}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.w) + "x" + std::to_string(c.h));
    Image r = mmkit::resize_bilinear(src, c.w, c.h);
    ASSERT_EQ(r.width, c.w);
    ASSERT_EQ(r.height, c.h);
    Image want(c.w, c.h, 1);
    want.pixels = c.px;
    expect_close(r, want, 0, 0.0);
  }
}

TEST(Resize, ChannelsIndependentConstantAndAreaAverage) {
  Image rgb = pattern(31, 17, 3);
  Image r = mmkit::resize_bilinear(rgb, 12, 9);
  for (int k = 0; k < 3; ++k) {
    Image plane(31, 17, 1);
    for (int i = 0; i < 31 * 17; ++i) plane.pixels[size_t(i)] = rgb.pixels[size_t(i) * 3 + size_t(k)];
    Image rp = mmkit::resize_bilinear(plane, 12, 9);
    for (int i = 0; i < 12 * 9; ++i) ASSERT_EQ(r.pixels[size_t(i) * 3 + size_t(k)], rp.pixels[size_t(i)]) << i;
  }
  Image flat(50, 40, 1);
  std::fill(flat.pixels.begin(), flat.pixels.end(), 77);
  for (auto wh : {std::pair<int, int>{1, 1}, {7, 3}, {120, 90}}) {
    Image f = mmkit::resize_bilinear(flat, wh.first, wh.second);
    for (uint8_t v : f.pixels) ASSERT_EQ(v, 77);
  }
  // 1-pixel checkerboard downscaled 8x averages to mid-grey (no aliasing).
  Image checker(64, 64, 1);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) checker.at(x, y, 0) = ((x + y) & 1) ? 255 : 0;
  Image small = mmkit::resize_bilinear(checker, 8, 8);
  for (uint8_t v : small.pixels) EXPECT_NEAR(int(v), 128, 3);
  EXPECT_EQ(mmkit::resize_bilinear(rgb, 31, 17).pixels, rgb.pixels);
  EXPECT_THROW(mmkit::resize_bilinear(rgb, 0, 5), mmkit::Error);
}

// Random byte flips and cuts must give either an image or mmkit::Error —
// never a crash, hang or a foreign exception type. (Run under ASan to see
// memory errors: cmake -DMMKIT_SANITIZE=ON.)
TEST(Decode, MutatedInputsNeverCrash) {
  const std::vector<std::vector<uint8_t>> seeds = {
      mmkit::encode_png(pattern(24, 16, 3)), mmkit::encode_png(pattern(9, 7, 1)),
      make_jpeg(smooth(24, 16, 3), JCS_RGB, 80), make_jpeg(smooth(16, 8, 1), JCS_GRAYSCALE, 80)};
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(state >> 33);
  };
  int decoded = 0, rejected = 0;
  for (const auto& seed : seeds) {
    for (int trial = 0; trial < 150; ++trial) {
      std::vector<uint8_t> b = seed;
      int flips = 1 + int(next() % 4);
      for (int f = 0; f < flips; ++f) b[3 + next() % (b.size() - 3)] ^= uint8_t(1 + next() % 255);
      if (next() % 4 == 0) b.resize(3 + next() % (b.size() - 3));
      try {
        Image im = decode(b);
        ASSERT_EQ(im.pixels.size(), size_t(im.width) * im.height * im.channels);
        ++decoded;
      } catch (const mmkit::Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(decoded + rejected, 600);
}
