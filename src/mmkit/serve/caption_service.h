// A loaded image captioner (models/captioner.h + its word vocabulary) shared
// by a server's request threads. Captions are generated under a mutex: one
// image at a time, each using every core through OpenMP; pass ClipService's
// engine_mutex() so caption forwards never overlap CLIP's either. (Batching
// captions across requests would need a DecodeSession over rows of different
// images and beam widths; not done.)
//
//   auto cap = mmkit::serve::CaptionService::open("runs/cap", &clip.engine_mutex());
//   mmkit::GenerateOptions g;  g.beam = 3;
//   mmkit::ImageCaption c = cap->caption(img, g);   // == caption_images(load_captioner(...), {img}, g)[0]
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "mmkit/infer/caption_images.h"

namespace mmkit::serve {

class CaptionService {
 public:
  // engine: the mutex every model forward in the process holds; null: a mutex of its own.
  CaptionService(CaptionModel model, std::string name, std::mutex* engine = nullptr);
  // DIR/model.safetensors or a .safetensors file, as `mmkit caption --model` takes.
  static std::unique_ptr<CaptionService> open(const std::string& path, std::mutex* engine = nullptr);

  // Throws mmkit::Error for options check_generate_options rejects (before any compute).
  ImageCaption caption(const Image& image, const GenerateOptions& g);

  const std::string& name() const { return name_; }
  const CaptionerConfig& config() const { return m_.model.cfg; }
  int64_t max_len() const { return m_.model.cfg.decoder.max_len; }  // most tokens a caption may have (EOS included)
  int64_t vocab_size() const { return m_.vocab.size(); }

 private:
  CaptionModel m_;
  std::string name_;
  std::mutex own_;
  std::mutex* engine_;
};

}  // namespace mmkit::serve
