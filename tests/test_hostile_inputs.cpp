// The hostile-input table (issue #9): every case runs through the real `mmkit` binary and must end
// with the expected exit code — 1 plus "mmkit: error:" and a message naming the problem for refusals,
// 0 for inputs that are odd but valid (CMYK JPEG, 16-bit PNG, empty or very long text) — and never
// crash (a signal gives code 1000 here; under ASan/UBSan any report fails the case too).
// All hostile files are generated here (hand-built bytes, libpng/libjpeg, our own writers).
//
// Cases covered elsewhere and not repeated: byte-level decoder behaviour (tests/test_image.cpp:
// Png.SixteenBitKeepsHighByte, Jpeg.CmykConvertedToRgbLikePil, Png/Jpeg truncation at many offsets,
// Decode.MutatedInputsNeverCrash), the safetensors parser on hundreds of corruptions
// (tests/test_safetensors.cpp), invalid UTF-8 positions and a 1 MB text with the real CLIP vocabulary
// (tests/test_clip_tokenizer.cpp), missing files and folders (tests/test_cli_errors.cpp).
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <cmath>
#include <csetjmp>
#include <functional>
#include <limits>

#include "mmkit/image/image.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/models/clip.h"
#include "mmkit/models/vit.h"
#include "mmkit/text/clip_tokenizer.h"
#include "test_util.h"

using namespace mmkit;

namespace {

std::string str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

Image gradient(int w, int h, int c) {
  Image im(w, h, c);
  for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = uint8_t(i * 7);
  return im;
}

// A PNG written with libpng directly (our writer only does 8-bit).
std::string png_16bit_rgb(int w, int h) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    ADD_FAILURE() << "libpng failed";
    return "";
  }
  png_set_write_fn(png, &out, [](png_structp p, png_bytep d, png_size_t n) {
    auto* o = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
    o->insert(o->end(), d, d + n);
  }, nullptr);
  png_set_IHDR(png, info, w, h, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  std::vector<uint8_t> row(size_t(w) * 6);
  for (int y = 0; y < h; ++y) {
    for (size_t i = 0; i < row.size(); ++i) row[i] = uint8_t(i * 13 + y);
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return str(out);
}

std::string jpeg(const Image& im, J_COLOR_SPACE space) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* mem = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &mem, &size);
  c.image_width = unsigned(im.width);
  c.image_height = unsigned(im.height);
  c.input_components = im.channels;
  c.in_color_space = space;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(im.row(int(c.next_scanline)));
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  std::string out(reinterpret_cast<char*>(mem), size);
  jpeg_destroy_compress(&c);
  std::free(mem);
  return out;
}

// A valid small JPEG whose SOF0 header then claims w x h: the decoder must refuse before allocating.
std::string jpeg_declaring(uint16_t w, uint16_t h) {
  std::string j = jpeg(gradient(8, 8, 3), JCS_RGB);
  size_t sof = j.find("\xff\xc0");
  if (sof == std::string::npos) {
    ADD_FAILURE() << "no SOF0 marker";
    return j;
  }
  // FFC0, length(2), precision(1), height(2), width(2)
  j[sof + 5] = char(h >> 8), j[sof + 6] = char(h & 0xff);
  j[sof + 7] = char(w >> 8), j[sof + 8] = char(w & 0xff);
  return j;
}

// Signature + IHDR (with a correct CRC) + IEND: enough to declare any size.
std::string png_declaring(uint32_t w, uint32_t h) {
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
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  chunk("IHDR", ihdr);
  chunk("IEND", {});
  return str(v);
}

// GIF89a, 2x2, global palette, NETSCAPE2.0 loop extension and two frames: an animated GIF.
std::string animated_gif() {
  std::string g = "GIF89a";
  g += std::string("\x02\x00\x02\x00\x80\x00\x00", 7);          // 2x2, global table of 2 colours
  g += std::string("\x00\x00\x00\xff\xff\xff", 6);              // black, white
  g += std::string("\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00", 19);  // loop forever
  for (int frame = 0; frame < 2; ++frame) {
    g += std::string("\x21\xf9\x04\x00\x0a\x00\x00\x00", 8);    // graphic control: 100 ms
    g += std::string("\x2c\x00\x00\x00\x00\x02\x00\x02\x00\x00", 10);  // image descriptor
    g += std::string("\x02\x02\x44\x01\x00", 5);                // LZW min code 2, data, end
  }
  g += ";";
  return g;
}

// A gzip'd merges list in the OpenAI format that builds a few words, so text cases do not need the
// real vocabulary: header, then "a b" lines.
void write_small_vocab(const std::string& path) {
  std::string m = "#version: test\n";
  for (std::string w : {"the", "photo", "cat"}) {
    std::string prefix(1, w[0]);
    for (size_t k = 1; k < w.size(); ++k) {
      m += prefix + " " + w[k] + (k + 1 == w.size() ? "</w>" : "") + "\n";
      prefix += w[k];
    }
  }
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  gzwrite(f, m.data(), unsigned(m.size()));
  gzclose(f);
}

// The tiny CLIP with one weight replaced.
std::string clip_with(const std::string& dir, const std::string& name, const std::string& tensor, float value) {
  ClipConfig c = test::tiny_clip_config();
  Clip m;
  m.init(c, 1);
  for (Parameter* p : m.parameters())
    if (p->name == tensor) p->value.f32()[p->value.numel() / 2] = value;
  std::string path = dir + "/" + name + ".safetensors";
  io::save_parameters(path, m.parameters(), {{"config", c.to_json()}});
  return path;
}

std::string vit_with_inf(const std::string& dir) {
  VitConfig c;
  c.image_size = 8;
  c.patch_size = 4;
  c.dim = 8;
  c.depth = 1;
  c.heads = 2;
  c.mlp_dim = 16;
  c.num_classes = 3;
  Vit v;
  v.init(c, 1);
  v.head.weight.value.f32()[5] = std::numeric_limits<float>::infinity();
  std::string path = dir + "/vit.safetensors";
  io::save_parameters(path, v.parameters(), {{"config", c.to_json()}});
  return path;
}

struct Case {
  std::string name;
  // Writes whatever the case needs into dir and returns the mmkit arguments.
  std::function<std::string(const std::string& dir)> setup;
  int code;                         // expected exit code
  std::vector<std::string> expect;  // fragments of stderr
};

// Model files go through `mmkit embed --model FILE --image ok.png`.
Case model_case(std::string name, std::string bytes, std::vector<std::string> expect) {
  return {name,
          [name, bytes](const std::string& d) {
            test::write_bytes(d + "/" + name + ".safetensors", bytes);
            return "embed --model " + d + "/" + name + ".safetensors --image " + d + "/ok.png";
          },
          1, expect};
}

// Image files go through `mmkit embed --model clip.safetensors --image FILE`.
Case image_case(std::string name, std::string bytes, int code, std::vector<std::string> expect) {
  return {name,
          [name, bytes](const std::string& d) {
            test::write_bytes(d + "/" + name, bytes);
            return "embed --model " + d + "/clip.safetensors --image " + d + "/" + name;
          },
          code, expect};
}

// Texts go through `mmkit embed --model clip.safetensors --vocab small.txt.gz --text ...`;
// `shell_text` is a shell word (printf escapes reach the binary as raw bytes).
Case text_case(std::string name, std::string shell_text, int code, std::vector<std::string> expect) {
  return {name,
          [shell_text](const std::string& d) {
            return "embed --model " + d + "/clip.safetensors --vocab " + d + "/small.txt.gz --text " + shell_text;
          },
          code, expect};
}

std::vector<Case> table() {
  using test::safetensors_bytes;
  std::string two_f32 = R"("dtype":"F32","shape":[2])";
  std::string png_ok = str(encode_png(gradient(40, 30, 3)));
  std::string jpeg_ok = jpeg(gradient(40, 30, 3), JCS_RGB);
  return {
      // ---- safetensors
      model_case("header_beyond_file", std::string("\x00\x10\x00\x00\x00\x00\x00\x00{}", 10),
                 {"header length 4096 exceeds the file size (10 bytes)"}),
      model_case("header_absurd", std::string("\x00\x00\x00\x00\x00\x01\x00\x00{}", 10), {"is absurd"}),
      model_case("empty_file", "", {"shorter than the 8-byte header length"}),
      model_case("header_not_json", safetensors_bytes("{nope", 0), {"header is not valid JSON"}),
      model_case("overlapping_offsets",
                 safetensors_bytes("{\"a\":{" + two_f32 + R"(,"data_offsets":[0,8]},"b":{)" + two_f32 +
                                       R"(,"data_offsets":[4,12]}})", 12),
                 {"tensor 'b'", "overlaps tensor 'a'"}),
      model_case("offsets_out_of_range",
                 safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
                 {"tensor 'a'", "out of the data buffer (8 bytes)"}),
      model_case("offsets_gap",
                 safetensors_bytes("{\"a\":{" + two_f32 + R"(,"data_offsets":[4,12]}})", 12),
                 {"belong to no tensor"}),
      model_case("trailing_bytes",
                 safetensors_bytes("{\"a\":{" + two_f32 + R"(,"data_offsets":[0,8]}})", 20),
                 {"trailing bytes"}),
      model_case("negative_shape",
                 safetensors_bytes(R"({"a":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}})", 16),
                 {"tensor 'a'", "shape dims must be non-negative integers (got -2)"}),
      model_case("overflowing_shape",
                 safetensors_bytes(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}})", 16),
                 {"tensor 'a'", "overflows the byte count"}),
      model_case("shape_beyond_int64",
                 safetensors_bytes(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}})", 4),
                 {"tensor 'a'", "non-negative integers"}),
      model_case("tensor_name_100k",
                 safetensors_bytes("{\"vision_model.encoder.layers." + std::string(100000, '7') +
                                       R"(.self_attn.q_proj.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4),
                 {"tensor name of 100052 bytes", "longer than the 1024-byte limit"}),
      model_case("unknown_dtype",
                 safetensors_bytes(R"({"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", 4),
                 {"tensor 'a'", "unknown dtype 'F99'"}),
      {"nan_weight_clip",
       [](const std::string& d) {
         return "embed --model " + clip_with(d, "nan", "visual.proj", std::nanf("")) + " --image " + d + "/ok.png";
       },
       1, {"tensor 'visual.proj'", "non-finite value (nan)"}},
      {"inf_weight_clip_text",
       [](const std::string& d) {
         return "embed --model " + clip_with(d, "inf", "token_embedding.weight", -INFINITY) + " --vocab " + d +
                "/small.txt.gz --text cat";
       },
       1, {"tensor 'token_embedding.weight'", "non-finite value (-inf)"}},
      {"inf_weight_vit_classify",
       [](const std::string& d) { return "classify --model " + vit_with_inf(d) + " " + d + "/ok.png"; },
       1, {"tensor 'head.weight'", "non-finite value (inf)"}},
      // ---- images
      image_case("truncated.png", png_ok.substr(0, png_ok.size() / 2), 1, {"truncated.png", "invalid PNG"}),
      image_case("truncated.jpg", jpeg_ok.substr(0, jpeg_ok.size() / 2), 1, {"truncated.jpg", "truncated"}),
      image_case("zero.png", png_declaring(0, 0), 1, {"zero.png", "invalid PNG: empty image (0x0)"}),
      image_case("zero.jpg", jpeg_declaring(0, 8), 1, {"zero.jpg", "invalid JPEG: Empty JPEG image"}),
      image_case("bomb.png", png_declaring(100000, 100000), 1,
                 {"bomb.png", "declared size 100000x100000", "exceeds the limit of 50000000 pixels"}),
      image_case("bomb.jpg", jpeg_declaring(65000, 65000), 1,
                 {"bomb.jpg", "declared size 65000x65000", "exceeds the limit"}),
      // 1x600000 decodes (0.6 Mpixels), but its shorter side resized to 32 would be 32x19200000.
      image_case("elongated.png", str(encode_png(Image(1, 600000, 1))), 1,
                 {"image 1x600000 is too elongated", "limit 16777216"}),
      image_case("animated.gif", animated_gif(), 1, {"animated.gif", "GIF images are not supported"}),
      image_case("empty.png", "", 1, {"empty.png", "empty file"}),
      image_case("text.jpg", "hello, not an image", 1, {"text.jpg", "unknown image format"}),
      image_case("cmyk.jpg", jpeg(gradient(40, 30, 4), JCS_CMYK), 0, {}),  // converted like PIL
      image_case("rgb16.png", png_16bit_rgb(40, 30), 0, {}),                 // down-converted to 8 bit
      // ---- texts
      text_case("invalid_utf8", "\"$(printf 'bad \\377 byte')\"", 1, {"not valid UTF-8 at byte 4"}),
      text_case("overlong_utf8", "\"$(printf 'x\\300\\257')\"", 1, {"not valid UTF-8 at byte 1"}),
      text_case("surrogate_utf8", "\"$(printf '\\355\\240\\200')\"", 1, {"not valid UTF-8 at byte 0"}),
      text_case("truncated_utf8", "\"$(printf 'caf\\303')\"", 1, {"not valid UTF-8 at byte 3"}),
      // 100 KB (one argv string may not exceed 128 KB); the 1 MB case is library-level below.
      text_case("long_text", "\"$(head -c 100000 /dev/zero | tr '\\0' 'a')\"", 0, {}),
      text_case("empty_text", "''", 0, {}),  // valid: [<|startoftext|>, <|endoftext|>], as clip.tokenize("")
      {"nothing_to_embed",
       [](const std::string& d) { return "embed --model " + d + "/clip.safetensors"; },
       1, {"nothing to embed"}},
  };
}

}  // namespace

TEST(HostileInputs, Table) {
  std::string dir = test::make_temp_dir("hostile");
  test::write_bytes(dir + "/ok.png", str(encode_png(gradient(40, 30, 3))));
  test::tiny_clip(dir);
  write_small_vocab(dir + "/small.txt.gz");
  int n = 0;
  for (const Case& c : table()) {
    SCOPED_TRACE(c.name);
    std::string args = c.setup(dir);
    test::RunResult r = test::run_mmkit(args, dir);
    ++n;
    EXPECT_EQ(r.code, c.code) << c.name << ": mmkit " << args.substr(0, 200) << "\n" << r.err;
    if (c.code == 1) {
      EXPECT_NE(r.err.find("mmkit: error:"), std::string::npos) << c.name << ": " << r.err;
    }
    for (const std::string& frag : c.expect)
      EXPECT_NE(r.err.find(frag), std::string::npos) << c.name << ": expected '" << frag << "' in: " << r.err;
    for (const char* bad : {"Sanitizer", "runtime error", "terminate called", "std::bad_alloc"})
      EXPECT_EQ(r.err.find(bad), std::string::npos) << c.name << ": " << r.err;
  }
  EXPECT_EQ(n, 35);
}

// The library side of the text cases: a 1 MB text (too long for one command-line argument)
// tokenizes to exactly the 77 padded ids (truncated, <|endoftext|> kept last), and the same text
// with one invalid byte at its very end is refused naming that byte (the whole text is validated).
TEST(HostileInputs, MegabyteText) {
  std::string dir = test::make_temp_dir("hostile_text");
  write_small_vocab(dir + "/small.txt.gz");
  auto tok = text::ClipTokenizer::from_openai_merges(dir + "/small.txt.gz");
  std::string big;
  while (big.size() < (1u << 20)) big += "the photo cat ";
  std::vector<int32_t> ids = tok.encode_padded(big, 77);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.front(), tok.sot());
  EXPECT_EQ(ids.back(), tok.eot());
  EXPECT_EQ(tok.encode(big).size(), 3 * (big.size() / 14));  // one token per word
  try {
    tok.encode_padded(big + "\xff", 77);
    ADD_FAILURE() << "invalid UTF-8 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid UTF-8 at byte " + std::to_string(big.size())), std::string::npos)
        << e.what();
  }
}
