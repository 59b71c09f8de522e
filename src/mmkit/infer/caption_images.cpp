#include "mmkit/infer/caption_images.h"

namespace mmkit {

std::vector<ImageCaption> caption_images(CaptionModel& m, const std::vector<Image>& images,
                                         const GenerateOptions& g) {
  check_generate_options(m.model, g);
  if (images.empty()) return {};
  ImageMemory mem = encode_images(m.model, caption_input(m.model, images));
  std::vector<GeneratedCaption> caps = generate(m.model, mem, g);
  std::vector<ImageCaption> out(caps.size());
  for (size_t i = 0; i < caps.size(); ++i) {
    out[i].text = m.vocab.decode(caps[i].tokens);
    out[i].gen = std::move(caps[i]);
  }
  return out;
}

}  // namespace mmkit
