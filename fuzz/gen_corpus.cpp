// Writes the seed corpora of the fuzz targets into <dir>/<target>/ with the project's own writers
// (write_safetensors, encode_png, the config to_json methods) and libpng/libjpeg for the variants our
// writers do not produce (16-bit and palette PNG, grayscale/progressive/CMYK JPEG).
//   build-fuzz/fuzz/fuzz_gen_corpus fuzz/corpus
// Deterministic: the committed fuzz/corpus/ is exactly its output.
#include <sys/stat.h>

#include <cstddef>
#include <cstdio>
// jpeglib.h needs size_t/FILE declared first.
#include <jpeglib.h>
#include <png.h>
#include <cstring>
#include <array>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mmkit/data/caption_jsonl.h"
#include "mmkit/data/soc_captions.h"
#include "mmkit/data/sort_of_clevr.h"
#include "mmkit/image/image.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/models/clip.h"
#include "mmkit/models/vit.h"
#include "mmkit/serve/request_limits.h"

using namespace mmkit;

namespace {

std::string g_root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  std::string dir = g_root + "/" + target;
  ::mkdir(g_root.c_str(), 0755);
  ::mkdir(dir.c_str(), 0755);
  std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
}

std::string str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

Image pattern(int w, int h, int c) {
  Image im(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) im.at(x, y, k) = uint8_t((x * 37 + y * 59 + k * 83) & 0xff);
  return im;
}

// ------------------------------------------------------------------------------ safetensors

void safetensors_seeds() {
  ::mkdir(g_root.c_str(), 0755);
  const std::string tmp = g_root + "/.tmp.safetensors";
  auto emit = [&](const std::string& name, const std::vector<io::TensorToWrite>& ts,
                  const std::map<std::string, std::string>& md) {
    io::write_safetensors(tmp, ts, md);
    put("safetensors", name, slurp(tmp));
    std::remove(tmp.c_str());
  };
  std::vector<float> f(64);
  for (size_t i = 0; i < f.size(); ++i) f[i] = float(i) * 0.25f - 3.f;
  std::vector<uint16_t> h(8, io::f32_to_f16(1.5f)), b(8, io::f32_to_bf16(-2.f));
  std::vector<int8_t> i8(3, -7);
  std::vector<int64_t> i64(2, 1234567890123ll);
  emit("one_f32", {{"w", DType::f32, {4, 4}, f.data()}}, {{"config", "{\"model\":\"x\"}"}});
  emit("all_dtypes",
       {{"f32", DType::f32, {2, 3}, f.data()},
        {"f16", DType::f16, {8}, h.data()},
        {"bf16", DType::bf16, {2, 4}, b.data()},
        {"i8", DType::i8, {3}, i8.data()},
        {"i64", DType::i64, {2}, i64.data()},
        {"scalar", DType::f32, {}, f.data()},
        {"empty", DType::f32, {0, 5}, nullptr}},
       {});
  // Layout tables: torchvision ViT, Hugging Face ViT and CLIP names (q/k/v packing, transposes).
  emit("torchvision_vit",
       {{"conv_proj.weight", DType::f32, {2, 1, 2, 2}, f.data()},
        {"encoder.pos_embedding", DType::f32, {1, 5, 2}, f.data()},
        {"encoder.layers.encoder_layer_0.ln_1.weight", DType::f32, {2}, f.data()},
        {"encoder.layers.encoder_layer_0.self_attention.in_proj_weight", DType::f32, {6, 2}, f.data()},
        {"heads.head.weight", DType::f32, {3, 2}, f.data()}},
       {{"config", "{\"num_heads\":1}"}});
  emit("hf_vit",
       {{"vit.embeddings.patch_embeddings.projection.weight", DType::f32, {2, 1, 2, 2}, f.data()},
        {"vit.encoder.layer.0.attention.attention.query.weight", DType::f32, {2, 2}, f.data()},
        {"vit.encoder.layer.0.attention.attention.key.weight", DType::f32, {2, 2}, f.data()},
        {"vit.encoder.layer.0.attention.attention.value.weight", DType::f32, {2, 2}, f.data()},
        {"vit.encoder.layer.0.attention.attention.query.bias", DType::f32, {2}, f.data()},
        {"vit.encoder.layer.0.attention.attention.key.bias", DType::f32, {2}, f.data()},
        {"vit.encoder.layer.0.attention.attention.value.bias", DType::f32, {2}, f.data()},
        {"classifier.weight", DType::f32, {3, 2}, f.data()}},
       {});
  emit("hf_clip",
       {{"vision_model.embeddings.patch_embedding.weight", DType::f32, {2, 3, 2, 2}, f.data()},
        {"vision_model.encoder.layers.0.self_attn.q_proj.weight", DType::f32, {2, 2}, f.data()},
        {"vision_model.encoder.layers.0.self_attn.k_proj.weight", DType::f32, {2, 2}, f.data()},
        {"vision_model.encoder.layers.0.self_attn.v_proj.weight", DType::f32, {2, 2}, f.data()},
        {"visual_projection.weight", DType::f16, {2, 2}, h.data()},
        {"text_projection.weight", DType::bf16, {2, 2}, b.data()},
        {"logit_scale", DType::f32, {}, f.data()}},
       {});
  emit("openai_clip", {{"visual.conv1.weight", DType::f32, {2, 3, 2, 2}, f.data()}, {"logit_scale", DType::f32, {}, f.data()}}, {});
}

// ------------------------------------------------------------------------------ configs

void config_seeds() {
  VitConfig v;
  v.class_names = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
  v.pixel_mean = {0.5f};
  v.pixel_std = {0.25f};
  put("config", "vit_mmkit", std::string(1, char(0)) + v.to_json());
  put("config", "vit_hf", std::string(1, char(1)) +
      R"({"architectures":["ViTForImageClassification"],"hidden_size":64,"num_hidden_layers":2,)"
      R"("num_attention_heads":4,"intermediate_size":128,"image_size":32,"patch_size":8,"num_channels":3,)"
      R"("layer_norm_eps":1e-12,"id2label":{"0":"cat","1":"dog"},"label2id":{"cat":0,"dog":1}})");
  ClipConfig c;
  put("config", "clip_openai", std::string(1, char(2)) + c.to_json());
  put("config", "clip_hf", std::string(1, char(3)) +
      R"({"projection_dim":512,"text_config":{"hidden_size":512,"num_hidden_layers":12,"num_attention_heads":8,)"
      R"("max_position_embeddings":77,"vocab_size":49408,"hidden_act":"quick_gelu"},"vision_config":{"hidden_size":768,)"
      R"("num_hidden_layers":12,"num_attention_heads":12,"image_size":224,"patch_size":32,"hidden_act":"quick_gelu",)"
      R"("layer_norm_eps":1e-05}})");
}

// ------------------------------------------------------------------------------ images

std::string png_raw(int w, int h, int depth, int color, bool interlace, const std::vector<png_color>& palette = {}) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) std::abort();
  png_set_write_fn(png, &out, [](png_structp p, png_bytep d, png_size_t n) {
    auto* o = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
    o->insert(o->end(), d, d + n);
  }, nullptr);
  png_set_IHDR(png, info, w, h, depth, color, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) {
    png_set_PLTE(png, info, palette.data(), int(palette.size()));
    std::vector<png_byte> trns = {0, 128};
    png_set_tRNS(png, info, trns.data(), int(trns.size()), nullptr);
  }
  png_write_info(png, info);
  int channels = color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_RGB_ALPHA ? 4
               : color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
  size_t rowbytes = (size_t(w) * channels * depth + 7) / 8;
  std::vector<uint8_t> row(rowbytes);
  int passes = png_set_interlace_handling(png);
  for (int p = 0; p < passes; ++p)
    for (int y = 0; y < h; ++y) {
      for (size_t i = 0; i < rowbytes; ++i) row[i] = uint8_t(i * 31 + y * 7);
      if (!palette.empty())
        for (size_t i = 0; i < rowbytes; ++i) row[i] = uint8_t(row[i] % (depth == 8 ? palette.size() : 1));
      png_write_row(png, row.data());
    }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return str(out);
}

std::string jpeg_raw(int w, int h, int comps, J_COLOR_SPACE in, bool progressive) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* mem = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &mem, &size);
  c.image_width = unsigned(w);
  c.image_height = unsigned(h);
  c.input_components = comps;
  c.in_color_space = in;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 80, TRUE);
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  Image im = pattern(w, h, comps);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = im.row(int(c.next_scanline));
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  std::string out(reinterpret_cast<char*>(mem), size);
  jpeg_destroy_compress(&c);
  std::free(mem);
  return out;
}

void image_seeds() {
  // Byte 0 of each input picks preset (bit 0) and size (bits 1-2) in fuzz_image.cpp.
  auto img = [&](const std::string& name, char sel, const std::string& bytes) { put("image", name, std::string(1, sel) + bytes); };
  img("png_gray", 0, str(encode_png(pattern(9, 7, 1))));
  img("png_rgb", 2, str(encode_png(pattern(20, 11, 3))));
  img("png_rgba", 5, str(encode_png(pattern(6, 13, 4))));
  img("png_1x1", 1, str(encode_png(pattern(1, 1, 3))));
  img("png_16bit_rgb", 3, png_raw(7, 5, 16, PNG_COLOR_TYPE_RGB, false));
  img("png_16bit_gray", 0, png_raw(5, 4, 16, PNG_COLOR_TYPE_GRAY, false));
  img("png_gray_alpha", 4, png_raw(5, 6, 8, PNG_COLOR_TYPE_GRAY_ALPHA, false));
  img("png_gray_2bit", 0, png_raw(9, 3, 2, PNG_COLOR_TYPE_GRAY, false));
  img("png_palette_trns", 2, png_raw(8, 8, 8, PNG_COLOR_TYPE_PALETTE, false, {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}}));
  img("png_interlaced", 6, png_raw(10, 10, 8, PNG_COLOR_TYPE_RGB, true));
  img("jpeg_rgb", 0, jpeg_raw(16, 12, 3, JCS_RGB, false));
  img("jpeg_gray", 3, jpeg_raw(9, 17, 1, JCS_GRAYSCALE, false));
  img("jpeg_progressive", 2, jpeg_raw(24, 8, 3, JCS_RGB, true));
  img("jpeg_cmyk", 1, jpeg_raw(8, 8, 4, JCS_CMYK, false));
}

// ------------------------------------------------------------------------------ texts

void text_seeds() {
  const char* texts[] = {
      "a photo of a cat.",
      "A DIAGRAM of the   Dog's tail, it'll be fine; we've 12345 reasons!",
      "&amp;lt;b&amp;gt; &quot;quoted&quot; &#x41;&#66; &notanentity; &eacute;",
      "Stra\xc3\x9f\x65 \xce\xa3\xce\x91\xce\xa3 \xc4\xb0stanbul \xef\xac\x81 \xe2\x85\xa0",
      "<|startoftext|>hello<|endoftext|> world",
      "\xf0\x9f\x90\x88 \xe7\x8c\xab \xd9\x82\xd8\xb7\xd8\xa9 \t\n\xc2\xa0\xe2\x80\x83 tabs",
      "",
  };
  int k = 0;
  for (const char* t : texts) put("tokenizer", "text" + std::to_string(k++), t);
}

// ------------------------------------------------------------------------------ dataset files

// The first `n` lines of a file.
std::string head_lines(const std::string& path, int n) {
  std::string all = slurp(path), out;
  size_t pos = 0;
  for (int i = 0; i < n && pos < all.size(); ++i) {
    size_t nl = all.find('\n', pos);
    nl = nl == std::string::npos ? all.size() : nl + 1;
    out += all.substr(pos, nl - pos);
    pos = nl;
  }
  return out;
}

void jsonl_seeds() {
  // Byte 0 picks the reader in fuzz_jsonl.cpp: 0 VQA, 1 caption, 2 image-text JSONL, 3 image-text CSV.
  auto seed = [&](const std::string& name, char sel, const std::string& text) { put("jsonl", name, std::string(1, sel) + text); };
  const std::string tmp = g_root + "/.tmp_data";
  ::mkdir(tmp.c_str(), 0755);  // the writers create only their own folder
  data::SortOfClevrOptions so;
  so.out_dir = tmp + "/soc";
  so.train_images = 2;
  so.test_images = 1;
  data::write_sort_of_clevr(so);
  seed("vqa_sort_of_clevr", 0, head_lines(so.out_dir + "/train.jsonl", 4));
  seed("vqa_generic", 0,
       "{\"image\": \"/abs/a.jpg\", \"question\": \"What colour?\", \"answers\": [\"Red \", \"red\"]}\n\n"
       "{\"image\": \"b.png\", \"question\": \"\", \"answers\": [\"no\"], \"type\": \"yes/no\", \"relational\": false}\n");
  data::SocCaptionOptions co;
  co.out_dir = tmp + "/cap";
  co.train_images = 2;
  co.test_images = 1;
  co.captions_per_image = 2;
  data::write_soc_captions(co);
  seed("caption_soc", 1, head_lines(co.out_dir + "/train.jsonl", 2));
  data::CaptionExample e{"images/x.png", {"a cat", "one cat"}, {{"red", "circle", 3, 4}, {"blue", "square", -1, -1}}};
  seed("caption_forms", 1,
       data::caption_example_json(e) + "\n" + nlohmann::json{{"image", "images/x.png"}, {"caption", "a third"}}.dump() + "\n");
  seed("image_text_jsonl", 2,
       nlohmann::json{{"image", "a.jpg"}, {"caption", "a cat"}}.dump() + "\n" +
           nlohmann::json{{"image", "/b.png"}, {"captions", {"x", "caf\u00e9"}}}.dump() + "\n");
  seed("image_text_csv", 3, "\xEF\xBB\xBFid,image,caption\n1,a.jpg,a cat\n2,\"b,c.png\",\"a \"\"quoted\"\"\nline\"\r\n\n");
  std::system(("rm -rf '" + tmp + "'").c_str());
}

// ------------------------------------------------------------------------------ HTTP requests

std::string http_post(const std::string& path, const std::string& type, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string multipart(const std::vector<std::array<std::string, 3>>& parts) {  // name, filename, content
  std::string b;
  for (auto& [name, file, content] : parts) {
    b += "--XyZ\r\nContent-Disposition: form-data; name=\"" + name + "\"";
    if (!file.empty()) b += "; filename=\"" + file + "\"\r\nContent-Type: image/png";
    b += "\r\n\r\n" + content + "\r\n";
  }
  return b + "--XyZ--\r\n";
}

void http_seeds() {
  const std::string png = str(encode_png(pattern(4, 3, 3)));
  const std::string b64 = serve::encode_base64(reinterpret_cast<const uint8_t*>(png.data()), png.size());
  const std::string json = "application/json", form = "multipart/form-data; boundary=XyZ";
  auto seed = [&](const std::string& name, const std::string& bytes) { put("http_request", name, bytes); };
  seed("embeddings_texts", http_post("/v1/embeddings", json, R"({"texts": ["a cat", "two dogs"], "normalize": false})"));
  seed("embeddings_image", http_post("/v1/embeddings", json, "{\"images\": [\"" + b64 + "\"], \"text\": \"x\"}"));
  seed("embeddings_data_url", http_post("/v1/embeddings", "application/json; charset=utf-8",
                                        "{\"image\": \"data:image/png;base64," + b64 + "\"}"));
  seed("embeddings_multipart", http_post("/v1/embeddings", form,
                                         multipart({{"images", "a.png", png}, {"texts", "", "a cat"}, {"normalize", "0"}})));
  seed("zero_shot", http_post("/v1/zero-shot", json,
                              "{\"image\": \"" + b64 + R"(", "labels": "cat, dog", "templates": ["a photo of a {}."]})"));
  seed("zero_shot_multipart", http_post("/v1/zero-shot", form, multipart({{"image", "", png}, {"labels", "", "cat,dog"}})));
  seed("classify", http_post("/v1/classify", form, multipart({{"image", "x.png", png}, {"top_k", "", "3"}})));
  seed("vqa", http_post("/v1/vqa", json, "{\"image\": \"" + b64 + R"(", "question": "What shape?"})"));
  seed("caption", http_post("/v1/caption", form, multipart({{"image", "x.png", png}})));
  seed("search_text", http_post("/v1/search", json, R"({"text": "a red circle", "k": 5})"));
  seed("search_chunked", "POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n7\r\n{\"text\"\r\nb\r\n: \"a cat\"}\r\n0\r\n\r\n");
  seed("no_content_type", "POST /v1/embeddings HTTP/1.1\r\nContent-Length: 16\r\n\r\n{\"texts\": \"ab\"}");
  seed("get_healthz", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  seed("index_add", http_post("/v1/index/items", json,
                              "{\"id\": \"a-1\", \"image\": \"" + b64 + R"(", "metadata": {"year": 2020, "tags": ["x", 1]}})"));
  seed("index_add_multipart", http_post("/v1/index/items", form,
                                        multipart({{"id", "", "b:2"}, {"metadata", "", R"({"a": {"b": null}})"}, {"image", "x.png", png}})));
  seed("index_search_filter",
       http_post("/v1/index/search", json,
                 R"({"text": "a cat", "top_k": 3, "min_score": 0.2, "filter": {"year": {"$gte": 2019, "$lt": 2030}, )"
                 R"("tag": {"$in": ["a", 1]}, "$or": [{"place.city": "Oslo"}, {"$not": {"x": {"$exists": true}}}], )"
                 R"("t": {"$nin": [null, true]}, "u": {"$ne": 2.5}}, "metadata": {"year": 2020, "tag": ["a"]}})"));
  seed("index_duplicates", http_post("/v1/index/duplicates", json, R"({"threshold": 0.9, "filter": {"$and": [{"a": 1}]}})"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR  (writes OUT_DIR/{safetensors,config,image,tokenizer,jsonl,http_request}/)\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  safetensors_seeds();
  config_seeds();
  image_seeds();
  text_seeds();
  jsonl_seeds();
  http_seeds();
  return 0;
}
