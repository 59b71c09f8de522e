// Shared set-up of the serving, index and captioning tests: a tiny seeded
// CLIP written with the project's checkpoint writer, the tiny captioner
// configuration, small generated PNG images, and an in-process API server on
// an ephemeral loopback port.
#pragma once
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "api_server.h"

#include "mmkit/core/rng.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/text/bpe_trainer.h"
#include "mmkit/image/canvas.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/models/captioner.h"
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

// The captioner of the training and serving tests: a 1-layer pre-norm ViT
// (patch 15; image size, channels and pixel statistics come from the data)
// into a 1-layer pre-norm decoder, both 32-d with 2 heads and a 64-d MLP;
// max_len 0 = longest training caption + 2.
inline CaptionerConfig tiny_captioner_config() {
  CaptionerConfig c;
  VitConfig& v = c.vision;
  v.image_size = 0;
  v.patch_size = 15;
  v.dim = 32;
  v.depth = 1;
  v.heads = 2;
  v.mlp_dim = 64;
  v.num_classes = 0;
  v.norm_first = true;
  CaptionDecoderConfig& d = c.decoder;
  d.dim = 32;
  d.depth = 1;
  d.heads = 2;
  d.mlp_dim = 64;
  d.max_len = 0;
  d.norm_first = true;
  return c;
}

// A client of the server at 127.0.0.1:port. The read timeout is generous
// for a loaded machine; no test asserts on time.
inline httplib::Client loopback_client(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  return c;
}

// An ApiServer bound to an ephemeral loopback port and serving on its own
// thread from construction until destruction (stop, then join), so no exit
// from a test leaves it running. The models must outlive it.
class InProcessServer {
 public:
  InProcessServer(const serve::ServerModels& models, const serve::ServerOptions& opt)
      : server_(models, opt), port_(server_.bind("127.0.0.1", 0)), thread_([this] { server_.run(); }) {}
  ~InProcessServer() {
    server_.stop();
    thread_.join();
  }
  InProcessServer(const InProcessServer&) = delete;
  InProcessServer& operator=(const InProcessServer&) = delete;
  int port() const { return port_; }
  httplib::Client client() const { return loopback_client(port_); }
  // POSTs `body` as JSON to `path`; expects status `want_status` and a JSON
  // reply, which it returns (null when there was no response).
  nlohmann::json post(const std::string& path, const nlohmann::json& body, int want_status = 200) const {
    auto c = client();
    auto r = c.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(r) << path << ": no response";
    if (!r) return nlohmann::json();
    EXPECT_EQ(r->status, want_status) << path << ": " << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json") << path;
    return nlohmann::json::parse(r->body);
  }

 private:
  serve::ApiServer server_;
  int port_;
  std::thread thread_;
};

// An API error response: `status`, error code `code`, and a message containing `needle`.
inline void expect_api_error(const httplib::Result& r, int status, const std::string& code,
                             const std::string& needle) {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r->body;
  EXPECT_EQ(j["error"]["code"], code) << r->body;
  ASSERT_TRUE(j["error"]["message"].is_string()) << r->body;
  EXPECT_NE(j["error"]["message"].get<std::string>().find(needle), std::string::npos)
      << "want '" << needle << "' in " << r->body;
}

}  // namespace mmkit::test
