// 8-bit images: decode (PNG via libpng, JPEG via libjpeg-turbo), PNG encode,
// channel conversion and resizing.
//
//   mmkit::Image im = mmkit::decode_image_file("cat.jpg");     // HWC, 1/3/4 channels
//   mmkit::Image rgb = mmkit::to_rgb(im);
//   mmkit::Image small = mmkit::resize_bilinear(rgb, 224, 224);
//   mmkit::write_png("small.png", small);
//
// Decoding is strict: truncated files, unknown formats, 0x0 images and images
// whose header declares more than max_pixels pixels (checked before any pixel
// buffer is allocated — decompression bombs) throw mmkit::Error naming the file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mmkit {

struct Image {
  int width = 0, height = 0, channels = 0;  // channels: 1 gray, 3 RGB, 4 RGBA
  std::vector<uint8_t> pixels;              // height*width*channels, HWC, row-major

  Image() = default;
  Image(int w, int h, int c) : width(w), height(h), channels(c), pixels(size_t(w) * h * c) {}
  bool empty() const { return pixels.empty(); }
  uint8_t* row(int y) { return pixels.data() + size_t(y) * width * channels; }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * width * channels; }
  uint8_t& at(int x, int y, int c) { return pixels[(size_t(y) * width + x) * channels + c]; }
  uint8_t at(int x, int y, int c) const { return pixels[(size_t(y) * width + x) * channels + c]; }
};

constexpr int64_t kDefaultMaxPixels = 50'000'000;

// gif, bmp, webp and tiff are recognised only so that the error can name them.
enum class ImageFormat { unknown, png, jpeg, gif, bmp, webp, tiff };
// Sniffs magic bytes: PNG "\x89PNG\r\n\x1a\n", JPEG "\xFF\xD8\xFF", GIF "GIF8[79]a",
// WebP "RIFF....WEBP", TIFF "II*\0"/"MM\0*", BMP "BM".
ImageFormat detect_image_format(const uint8_t* data, size_t size);

// PNG: palette, gray < 8 bit, 16 bit, tRNS and interlacing are normalised to
// 8-bit gray (1), RGB (3) or RGBA (4; gray+alpha becomes RGBA). 16-bit
// samples keep their high byte (what PIL does for RGB(A)). Gamma/ICC are ignored.
// JPEG: grayscale -> 1 channel, YCbCr/RGB -> 3 (libjpeg's default ISLOW DCT and
// fancy upsampling, as PIL uses — pixels match Pillow 9.4 on Debian 12 byte for
// byte, baseline and progressive); CMYK/YCCK -> 3 (RGB), converted as PIL's
// open + convert("RGB") does (inverted Adobe CMYK). Other formats (GIF, BMP,
// WebP, TIFF, ...) are refused with an error naming the format.
Image decode_image_file(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);
Image decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors,
                          int64_t max_pixels = kDefaultMaxPixels);

// Writes an 8-bit gray/RGB/RGBA PNG atomically: to "<path>.tmp.<pid>", then
// rename(), so readers never see a partial file.
void write_png(const std::string& path, const Image& img);
// Encodes to memory (e.g. for HTTP responses).
std::vector<uint8_t> encode_png(const Image& img);

// Gray from RGB(A) with ITU-R 601-2 luma (L = (19595 R + 38470 G + 7471 B + 2^15) >> 16,
// PIL's "L" conversion); alpha is dropped. Gray input is copied.
Image to_gray(const Image& img);
// RGB from gray (replicated) or RGBA (alpha dropped, like PIL's convert("RGB")).
Image to_rgb(const Image& img);

// Bilinear resize as PIL's Image.resize(..., BILINEAR) does it: separable
// triangle filter whose support widens with the downscale factor (so large
// downscales average areas instead of aliasing), 8-bit fixed-point passes,
// horizontal then vertical — byte-identical to Pillow 9.4 for gray and RGB
// (tests/test_image.cpp). Any channel count; w, h >= 1. RGBA channels are
// filtered independently (Pillow premultiplies alpha first, so results differ
// where alpha varies).
Image resize_bilinear(const Image& img, int w, int h);

// A model's square input: converted to gray (channels 1) or RGB (3), then
// resized (bilinear) to size x size unless it already has that size.
Image fit_image(const Image& src, int64_t size, int64_t channels);

}  // namespace mmkit
