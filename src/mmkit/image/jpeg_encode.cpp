#include "mmkit/image/jpeg_encode.h"

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
// jpeglib.h needs size_t/FILE declared first.
#include <jpeglib.h>

#include "mmkit/core/error.h"

namespace mmkit {

namespace {

// libjpeg reports errors by longjmp; the setjmp lives in encode_run, which holds no C++ objects
// whose destructors the jump would skip.
struct JpegWriteErr {
  jpeg_error_mgr pub;  // first, so libjpeg's err pointer converts back
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
};

[[noreturn]] void on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegWriteErr*>(c->err);
  (*c->err->format_message)(c, e->msg);
  longjmp(e->jb, 1);
}

bool encode_run(jpeg_compress_struct* c, JpegWriteErr* err, const Image& img, int quality, unsigned char** buf,
                unsigned long* size) {
  if (setjmp(err->jb)) return false;
  jpeg_create_compress(c);
  jpeg_mem_dest(c, buf, size);
  c->image_width = JDIMENSION(img.width);
  c->image_height = JDIMENSION(img.height);
  c->input_components = img.channels;
  c->in_color_space = img.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(c);
  jpeg_set_quality(c, quality, TRUE);
  jpeg_start_compress(c, TRUE);
  for (int y = 0; y < img.height; ++y) {
    JSAMPROW row = const_cast<JSAMPROW>(img.row(y));
    jpeg_write_scanlines(c, &row, 1);
  }
  jpeg_finish_compress(c);
  return true;
}

}  // namespace

std::vector<uint8_t> encode_jpeg(const Image& src, int quality) {
  MMKIT_CHECK(!src.empty() && (src.channels == 1 || src.channels == 3 || src.channels == 4), "encode_jpeg: expected a ",
              "non-empty gray, RGB or RGBA image, got ", src.width, "x", src.height, "x", src.channels);
  MMKIT_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality ", quality, " outside 1..100");
  const Image img = src.channels == 4 ? to_rgb(src) : src;
  jpeg_compress_struct c;
  std::memset(&c, 0, sizeof c);
  JpegWriteErr err;
  std::memset(&err, 0, sizeof err);
  c.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const bool ok = encode_run(&c, &err, img, quality, &buf, &size);
  jpeg_destroy_compress(&c);
  std::vector<uint8_t> out;
  if (ok) out.assign(buf, buf + size);
  std::free(buf);
  if (!ok) fail("encode_jpeg: ", err.msg);
  return out;
}

}  // namespace mmkit
