#include "mmkit/image/image.h"

#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>

// jpeglib.h needs size_t/FILE declared first.
#include <jpeglib.h>
#include <jerror.h>

#include "mmkit/core/error.h"

// libpng and libjpeg report errors by longjmp. The pattern used for both:
// the caller owns every C++ object (output Image, row pointer vector) and the
// library handle; a separate *_run() function holds the setjmp and all calls
// that may jump, has only trivially-destructible locals and reads none of
// them after a jump. So no destructor is ever skipped, and the caller turns
// the recorded message into an mmkit::Error after its RAII guard frees the
// library state.

namespace mmkit {
namespace {

constexpr size_t kErrLen = 512;
constexpr int kMaxJpegScans = 1000;  // progressive "scan bombs" cost O(scans * pixels)
// Decoding a JPEG costs about (scans) x (8x8 blocks of the image): every progressive scan
// passes over the coefficient blocks of its components. A 146 KB 4000x4000 file with 985
// refinement scans decoded for 5.8 s. The budget lets an image at the pixel limit have
// kJpegScanBudget full-image scans of all three components (libjpeg's standard progressive
// script has 10 scans, most of one component), so the cost is bounded by the pixel limit.
constexpr int64_t kJpegScanBudget = 20;

// SOS markers in a JPEG stream (its scans), walking the marker segments and skipping
// entropy-coded data (0xFF00 stuffing and RSTn markers belong to it). Stops at EOI or the end.
int64_t count_jpeg_scans(const uint8_t* d, size_t n) {
  int64_t scans = 0;
  size_t i = 2;  // after SOI
  while (i + 4 <= n) {
    if (d[i] != 0xFF) return scans;  // not at a marker: the decoder will complain
    const uint8_t m = d[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0xD9) return scans;  // EOI
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {  // TEM, RSTn: no length
      i += 2;
      continue;
    }
    const size_t len = size_t(d[i + 2]) << 8 | d[i + 3];
    i += 2 + len;
    if (m != 0xDA) continue;
    ++scans;
    // Entropy-coded data: up to the next marker that is not 0xFF00 or RSTn.
    while (i + 1 < n && !(d[i] == 0xFF && d[i + 1] != 0x00 && !(d[i + 1] >= 0xD0 && d[i + 1] <= 0xD7))) ++i;
  }
  return scans;
}

std::string describe_size(uint64_t w, uint64_t h) {
  return std::to_string(w) + "x" + std::to_string(h);
}

// ---------------------------------------------------------------- PNG read

struct PngReadState {
  const uint8_t* data;
  size_t size;
  size_t pos;
  char msg[kErrLen];
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* st = static_cast<PngReadState*>(png_get_error_ptr(png));
  std::snprintf(st->msg, kErrLen, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* st = static_cast<PngReadState*>(png_get_io_ptr(png));
  if (n > st->size - st->pos) png_error(png, "file is truncated");
  std::memcpy(out, st->data + st->pos, n);
  st->pos += n;
}

bool png_decode_run(png_structp png, png_infop info, PngReadState* st, int64_t max_pixels, Image* out,
                    std::vector<png_bytep>* rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, st, png_read_mem);
  png_read_info(png, info);

  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0, interlace = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, nullptr, nullptr);
  if (w == 0 || h == 0) {
    std::snprintf(st->msg, kErrLen, "empty image (%ux%u)", unsigned(w), unsigned(h));
    return false;
  }
  if (uint64_t(w) * h > uint64_t(max_pixels)) {
    std::snprintf(st->msg, kErrLen, "declared size %s = %llu pixels exceeds the limit of %lld pixels",
                  describe_size(w, h).c_str(), (unsigned long long)(uint64_t(w) * h), (long long)max_pixels);
    return false;
  }

  const bool trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  const bool gray = (color & PNG_COLOR_MASK_COLOR) == 0;  // palette has the colour bit
  const bool alpha = (color & PNG_COLOR_MASK_ALPHA) != 0 || trns;
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (gray && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (trns) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_strip_16(png);
  if (gray && alpha) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  const int ch = png_get_channels(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);
  if (png_get_bit_depth(png, info) != 8 || (ch != 1 && ch != 3 && ch != 4) || rowbytes != size_t(w) * ch) {
    std::snprintf(st->msg, kErrLen, "unsupported pixel layout after conversion (%d channels, %d bits)", ch,
                  int(png_get_bit_depth(png, info)));
    return false;
  }
  out->width = int(w);
  out->height = int(h);
  out->channels = ch;
  out->pixels.resize(size_t(w) * h * ch);
  rows->resize(h);
  for (png_uint_32 y = 0; y < h; ++y) (*rows)[y] = out->pixels.data() + size_t(y) * rowbytes;
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);  // validates the chunks after IDAT up to IEND
  return true;
}

Image decode_png(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  // IHDR must be the first chunk (signature 8 + length 4 + "IHDR" 4, then
  // big-endian width and height). Checking it here refuses a bomb before
  // libpng reads anything else; the check after png_read_info covers the rest.
  if (size >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0) {
    auto be32 = [&](size_t o) {
      return uint64_t(data[o]) << 24 | uint64_t(data[o + 1]) << 16 | uint64_t(data[o + 2]) << 8 | data[o + 3];
    };
    const uint64_t w = be32(16), h = be32(20);
    if (w == 0 || h == 0)  // libpng would only say "Invalid IHDR data"
      fail(name, ": invalid PNG: empty image (", describe_size(w, h), ")");
    if (w * h > uint64_t(max_pixels))
      fail(name, ": invalid PNG: declared size ", describe_size(w, h), " = ", w * h,
           " pixels exceeds the limit of ", max_pixels, " pixels");
  }
  PngReadState st{data, size, 0, {0}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, png_on_error, png_on_warning);
  if (!png) fail(name, ": cannot initialise libpng");
  png_infop info = png_create_info_struct(png);
  struct Guard {
    png_structp p;
    png_infop i;
    ~Guard() { png_destroy_read_struct(&p, i ? &i : nullptr, nullptr); }
  } guard{png, info};
  if (!info) fail(name, ": cannot initialise libpng");

  Image out;
  std::vector<png_bytep> rows;
  if (!png_decode_run(png, info, &st, max_pixels, &out, &rows)) fail(name, ": invalid PNG: ", st.msg);
  return out;
}

// ---------------------------------------------------------------- JPEG read

struct JpegErr {
  jpeg_error_mgr pub;  // first, so libjpeg's err pointer converts back to JpegErr*
  jmp_buf jb;
  char msg[kErrLen];
  bool truncated;
};

[[noreturn]] void jpeg_on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErr*>(c->err);
  char buf[JMSG_LENGTH_MAX];
  (*c->err->format_message)(c, buf);
  std::snprintf(e->msg, kErrLen, "%s", buf);
  longjmp(e->jb, 1);
}

// Warnings are tolerated (like PIL) except premature end of data: libjpeg
// pads a cut-off file with grey and carries on, which would hide truncation.
void jpeg_on_message(j_common_ptr c, int level) {
  if (level >= 0) return;
  auto* e = reinterpret_cast<JpegErr*>(c->err);
  if (c->err->msg_code == JWRN_JPEG_EOF) e->truncated = true;
  c->err->num_warnings++;
}

void jpeg_on_progress(j_common_ptr c) {
  if (!c->is_decompressor) return;
  auto* d = reinterpret_cast<j_decompress_ptr>(c);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* e = reinterpret_cast<JpegErr*>(c->err);
    std::snprintf(e->msg, kErrLen, "more than %d progressive scans (refusing a decode-time bomb)", kMaxJpegScans);
    longjmp(e->jb, 1);
  }
}

bool jpeg_decode_run(jpeg_decompress_struct* cinfo, JpegErr* err, jpeg_progress_mgr* progress,
                     const uint8_t* data, size_t size, int64_t max_pixels, Image* out) {
  if (setjmp(err->jb)) return false;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(cinfo, TRUE);

  const uint64_t w = cinfo->image_width, h = cinfo->image_height;
  if (w == 0 || h == 0) {
    std::snprintf(err->msg, kErrLen, "empty image (%llux%llu)", (unsigned long long)w, (unsigned long long)h);
    return false;
  }
  if (w * h > uint64_t(max_pixels)) {
    std::snprintf(err->msg, kErrLen, "declared size %s = %llu pixels exceeds the limit of %lld pixels",
                  describe_size(w, h).c_str(), (unsigned long long)(w * h), (long long)max_pixels);
    return false;
  }
  int ch = 0;
  switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
      cinfo->out_color_space = JCS_GRAYSCALE;
      ch = 1;
      break;
    case JCS_YCbCr:
    case JCS_RGB:
      cinfo->out_color_space = JCS_RGB;
      ch = 3;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      // libjpeg converts YCCK to CMYK; cmyk_to_rgb() below then does what PIL does.
      cinfo->out_color_space = JCS_CMYK;
      ch = 4;
      break;
    default:
      std::snprintf(err->msg, kErrLen, "unsupported JPEG colour space (%d components)", cinfo->num_components);
      return false;
  }
  // Cost check before any coefficient is decoded (scans x 8x8 blocks of every component).
  {
    int64_t blocks = 0;
    for (int c = 0; c < cinfo->num_components; ++c) {
      const jpeg_component_info& ci = cinfo->comp_info[c];
      const int64_t cw = (int64_t(w) * ci.h_samp_factor + cinfo->max_h_samp_factor - 1) / cinfo->max_h_samp_factor;
      const int64_t chh = (int64_t(h) * ci.v_samp_factor + cinfo->max_v_samp_factor - 1) / cinfo->max_v_samp_factor;
      blocks += ((cw + 7) / 8) * ((chh + 7) / 8);
    }
    const int64_t scans = count_jpeg_scans(data, size);
    const int64_t budget = kJpegScanBudget * 3 * ((max_pixels + 63) / 64);
    if (scans * blocks > budget) {
      std::snprintf(err->msg, kErrLen,
                    "%lld scans x %lld blocks: decoding cost %lld exceeds the limit of %lld block-scans (%lld full scans of an "
                    "image at the %lld-pixel limit)",
                    (long long)scans, (long long)blocks, (long long)(scans * blocks), (long long)budget,
                    (long long)kJpegScanBudget, (long long)max_pixels);
      return false;
    }
  }
  cinfo->progress = progress;
  jpeg_start_decompress(cinfo);
  if (cinfo->output_width != w || cinfo->output_height != h || cinfo->output_components != ch) {
    std::snprintf(err->msg, kErrLen, "unexpected decoder output %ux%ux%d", unsigned(cinfo->output_width),
                  unsigned(cinfo->output_height), cinfo->output_components);
    return false;
  }
  out->width = int(w);
  out->height = int(h);
  out->channels = ch;
  out->pixels.resize(size_t(w) * h * ch);
  // Several rows per call (libjpeg-turbo then upsamples and converts a whole iMCU row group at a
  // time instead of returning through its buffering row by row).
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW rows[16];
    const unsigned y0 = cinfo->output_scanline, n = std::min(16u, unsigned(cinfo->output_height) - y0);
    for (unsigned k = 0; k < n; ++k) rows[k] = out->pixels.data() + size_t(y0 + k) * w * ch;
    if (jpeg_read_scanlines(cinfo, rows, n) == 0) {
      std::snprintf(err->msg, kErrLen, "decoder stalled at row %u", unsigned(cinfo->output_scanline));
      return false;
    }
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

// CMYK as libjpeg delivers it -> RGB the way PIL 9.4 opens and converts such a file: the JPEG
// plugin always reads CMYK as inverted ("CMYK;I", Adobe's convention, which Photoshop and most
// writers follow), and convert("RGB") computes r = 255 - min(255, c + k) in its fixed-point form
// nk = 255 - k, r = nk - c * nk / 255 (rounded: ((t >> 8) + t) >> 8 with t = c * nk + 128).
Image cmyk_to_rgb(const Image& cmyk) {
  Image out(cmyk.width, cmyk.height, 3);
  const size_t n = size_t(cmyk.width) * cmyk.height;
  const uint8_t* in = cmyk.pixels.data();
  uint8_t* o = out.pixels.data();
  for (size_t i = 0; i < n; ++i, in += 4, o += 3) {
    const int nk = in[3];  // stored inverted: k = 255 - in[3]
    for (int c = 0; c < 3; ++c) {
      const int cv = 255 - in[c];
      const int t = cv * nk + 128;
      const int v = nk - (((t >> 8) + t) >> 8);
      o[c] = uint8_t(v < 0 ? 0 : v);
    }
  }
  return out;
}

Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);  // so jpeg_destroy is a no-op if create never ran
  JpegErr err;
  std::memset(&err, 0, sizeof err);
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_on_error;
  err.pub.emit_message = jpeg_on_message;
  jpeg_progress_mgr progress;
  std::memset(&progress, 0, sizeof progress);
  progress.progress_monitor = jpeg_on_progress;
  struct Guard {
    jpeg_decompress_struct* c;
    ~Guard() { jpeg_destroy_decompress(c); }
  } guard{&cinfo};

  Image out;
  if (!jpeg_decode_run(&cinfo, &err, &progress, data, size, max_pixels, &out)) fail(name, ": invalid JPEG: ", err.msg);
  if (err.truncated) fail(name, ": invalid JPEG: file is truncated (premature end of data)");
  if (out.channels == 4) return cmyk_to_rgb(out);
  return out;
}

// ---------------------------------------------------------------- PNG write

struct PngWriteState {
  std::vector<uint8_t>* bytes;
  char msg[kErrLen];
};

void png_on_write_error(png_structp png, png_const_charp msg) {
  auto* st = static_cast<PngWriteState*>(png_get_error_ptr(png));
  std::snprintf(st->msg, kErrLen, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

void png_write_mem(png_structp png, png_bytep data, png_size_t n) {
  auto* st = static_cast<PngWriteState*>(png_get_io_ptr(png));
  st->bytes->insert(st->bytes->end(), data, data + n);  // std::bad_alloc here is practically impossible
}

void png_flush_mem(png_structp) {}

bool png_encode_run(png_structp png, png_infop info, PngWriteState* st, const Image* img,
                    std::vector<png_bytep>* rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, st, png_write_mem, png_flush_mem);
  const int color = img->channels == 1   ? PNG_COLOR_TYPE_GRAY
                    : img->channels == 3 ? PNG_COLOR_TYPE_RGB
                                         : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_IHDR(png, info, png_uint_32(img->width), png_uint_32(img->height), 8, color, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows->data());
  png_write_end(png, nullptr);
  return true;
}

void check_image(const Image& img, const char* what) {
  if (img.width <= 0 || img.height <= 0) fail(what, ": empty image (", img.width, "x", img.height, ")");
  if (img.channels != 1 && img.channels != 3 && img.channels != 4)
    fail(what, ": unsupported channel count ", img.channels, " (expected 1, 3 or 4)");
  size_t need = size_t(img.width) * img.height * img.channels;
  if (img.pixels.size() != need)
    fail(what, ": pixel buffer has ", img.pixels.size(), " bytes, expected ", need, " for ", img.width, "x",
         img.height, "x", img.channels);
}

}  // namespace

ImageFormat detect_image_format(const uint8_t* data, size_t size) {
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 8 && std::memcmp(data, png_sig, 8) == 0) return ImageFormat::png;
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::jpeg;
  // Recognised only to name them in the error.
  if (size >= 6 && (std::memcmp(data, "GIF87a", 6) == 0 || std::memcmp(data, "GIF89a", 6) == 0)) return ImageFormat::gif;
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0) return ImageFormat::webp;
  if (size >= 4 && (std::memcmp(data, "II*\0", 4) == 0 || std::memcmp(data, "MM\0*", 4) == 0)) return ImageFormat::tiff;
  if (size >= 14 && data[0] == 'B' && data[1] == 'M') return ImageFormat::bmp;
  return ImageFormat::unknown;
}

Image decode_image_memory(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  if (!data || size == 0) fail(name, ": empty file");
  if (max_pixels <= 0) fail(name, ": max_pixels must be positive, got ", max_pixels);
  switch (detect_image_format(data, size)) {
    case ImageFormat::png:
      return decode_png(data, size, name, max_pixels);
    case ImageFormat::jpeg:
      return decode_jpeg(data, size, name, max_pixels);
    case ImageFormat::gif:
      fail(name, ": GIF images are not supported (still or animated); expected PNG or JPEG");
    case ImageFormat::bmp:
      fail(name, ": BMP images are not supported; expected PNG or JPEG");
    case ImageFormat::webp:
      fail(name, ": WebP images are not supported; expected PNG or JPEG");
    case ImageFormat::tiff:
      fail(name, ": TIFF images are not supported; expected PNG or JPEG");
    default: {
      char head[3 * 8 + 1] = {0};
      for (size_t i = 0; i < std::min<size_t>(size, 8); ++i) std::snprintf(head + 3 * i, 4, "%02x ", data[i]);
      fail(name, ": unknown image format (first bytes: ", head, "); expected PNG or JPEG");
    }
  }
}

Image decode_image_file(const std::string& path, int64_t max_pixels) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path, ": cannot open (", std::strerror(errno), ")");
  struct Closer {
    std::FILE* f;
    ~Closer() { std::fclose(f); }
  } closer{f};
  // The file's bytes go to a per-thread buffer that only grows: a folder of photos is read
  // without an allocation per file. Read in chunks (not by the stat size), so pipes and
  // growing files behave.
  thread_local std::vector<uint8_t> bytes;
  // Compressed size is bounded too: no legitimate image needs more than a few
  // bytes per pixel, and this stops /dev/zero-style inputs.
  const uint64_t max_bytes = uint64_t(std::max<int64_t>(max_pixels, 1 << 20)) * 8;
  constexpr size_t kChunk = 1 << 16;
  size_t used = 0;
  for (;;) {
    if (bytes.size() < used + kChunk) bytes.resize(used + kChunk + used / 2);
    const size_t got = std::fread(bytes.data() + used, 1, kChunk, f);
    used += got;
    if (used > max_bytes) fail(path, ": file larger than ", max_bytes, " bytes");
    if (got < kChunk) {
      if (std::ferror(f)) fail(path, ": read error (", std::strerror(errno), ")");
      break;
    }
  }
  return decode_image_memory(bytes.data(), used, path, max_pixels);
}

std::vector<uint8_t> encode_png(const Image& img) {
  check_image(img, "encode_png");
  std::vector<uint8_t> bytes;
  PngWriteState st{&bytes, {0}};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st, png_on_write_error, png_on_warning);
  if (!png) fail("encode_png: cannot initialise libpng");
  png_infop info = png_create_info_struct(png);
  struct Guard {
    png_structp p;
    png_infop i;
    ~Guard() { png_destroy_write_struct(&p, i ? &i : nullptr); }
  } guard{png, info};
  if (!info) fail("encode_png: cannot initialise libpng");
  std::vector<png_bytep> rows(size_t(img.height));
  for (int y = 0; y < img.height; ++y) rows[size_t(y)] = const_cast<png_bytep>(img.row(y));
  if (!png_encode_run(png, info, &st, &img, &rows)) fail("encode_png: libpng: ", st.msg);
  return bytes;
}

void write_png(const std::string& path, const Image& img) {
  std::vector<uint8_t> bytes;
  try {
    bytes = encode_png(img);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, ": cannot create ", tmp, " (", std::strerror(errno), ")");
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  ok = (std::fflush(f) == 0) && ok;
  int saved = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    fail(path, ": write failed (", std::strerror(saved ? saved : errno), ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    saved = errno;
    std::remove(tmp.c_str());
    fail(path, ": cannot rename ", tmp, " into place (", std::strerror(saved), ")");
  }
}

Image to_gray(const Image& img) {
  check_image(img, "to_gray");
  if (img.channels == 1) return img;
  Image out(img.width, img.height, 1);
  const size_t n = size_t(img.width) * img.height;
  const int c = img.channels;
  const uint8_t* in = img.pixels.data();
  for (size_t i = 0; i < n; ++i, in += c)
    out.pixels[i] = uint8_t((in[0] * 19595u + in[1] * 38470u + in[2] * 7471u + 0x8000u) >> 16);
  return out;
}

Image to_rgb(const Image& img) {
  check_image(img, "to_rgb");
  if (img.channels == 3) return img;
  Image out(img.width, img.height, 3);
  const size_t n = size_t(img.width) * img.height;
  const int c = img.channels;
  const uint8_t* in = img.pixels.data();
  uint8_t* o = out.pixels.data();
  for (size_t i = 0; i < n; ++i, in += c, o += 3) {
    if (c == 1) {
      o[0] = o[1] = o[2] = in[0];
    } else {
      o[0] = in[0];
      o[1] = in[1];
      o[2] = in[2];
    }
  }
  return out;
}

Image fit_image(const Image& src, int64_t size, int64_t channels) {
  Image im = channels == 1 ? to_gray(src) : to_rgb(src);
  if (im.width != size || im.height != size) im = resize_bilinear(im, int(size), int(size));
  return im;
}

}  // namespace mmkit
