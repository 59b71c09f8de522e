// Shared set-up of the serving and index tests: a tiny seeded CLIP written
// with the project's checkpoint writer, and small generated PNG images.
#pragma once
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "mmkit/core/rng.h"
#include "mmkit/eval/clip_runner.h"
#include "mmkit/text/bpe_trainer.h"
#include "mmkit/image/canvas.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/models/clip.h"
#include "test_util.h"

namespace mmkit::test {

// 32-d embeddings, one layer per tower (test_util.h tiny_clip_config is 16-d).
inline ClipConfig serve_clip_config() {
  return ClipConfig::from_json(R"({"embed_dim": 32, "image_resolution": 32, "vision_patch_size": 16,
    "vision_width": 32, "vision_layers": 1, "vision_heads": 2, "context_length": 77, "vocab_size": 49408,
    "transformer_width": 32, "transformer_layers": 1, "transformer_heads": 2})");
}

// The tiny CLIP with a BPE tokenizer learned from a few captions stored in
// its metadata (with_tokenizer), so text paths need no vocabulary file.
inline std::string write_tiny_clip(const std::string& dir, uint64_t seed = 7, ClipConfig cfg = serve_clip_config(),
                                   bool with_tokenizer = true) {
  std::map<std::string, std::string> meta = {{"config", cfg.to_json()}};
  if (with_tokenizer) {
    std::vector<std::string> corpus;
    for (const char* c : {"red", "green", "blue", "dark"})
      for (const char* s : {"circle", "square", "bar", "cat"}) {
        corpus.push_back(std::string("a photo of a ") + c + " " + s + ".");
        corpus.push_back(std::string("two ") + c + " " + s + "s");
      }
    set_tokenizer_metadata(meta, text::ClipTokenizer::from_merges(text::train_bpe_merges(corpus, 80)));
  }
  Clip m;
  m.init(cfg, seed);
  std::string p = dir + "/clip_tiny_" + std::to_string(seed) + (with_tokenizer ? "" : "_notok") + ".safetensors";
  io::save_parameters(p, m.parameters(), meta);
  return p;
}

// Image i: a disc and a bar in colours and places that depend on i.
inline Image shape_image(int i, int size = 48) {
  Rng rng(1000 + uint64_t(i));
  auto u8 = [&](int lo, int hi) { return uint8_t(lo + int(rng.uniform() * float(hi - lo))); };
  Canvas c(size, size, Rgb{u8(150, 255), u8(150, 255), u8(150, 255)});
  c.disc(size * (0.2 + 0.6 * rng.uniform()), size * (0.2 + 0.6 * rng.uniform()), size * (0.1 + 0.25 * rng.uniform()),
         Rgb{u8(0, 255), u8(0, 120), u8(0, 255)});
  c.line(0, size * rng.uniform(), size, size * rng.uniform(), 2 + 6 * rng.uniform(), Rgb{u8(0, 90), u8(0, 255), u8(0, 90)});
  return c.image();
}

inline std::vector<std::string> write_shape_images(const std::string& dir, int n, int first = 0) {
  std::vector<std::string> out;
  for (int i = first; i < first + n; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "/img_%05d.png", i);
    out.push_back(dir + name);
    write_png(out.back(), shape_image(i));
  }
  return out;
}

}  // namespace mmkit::test
