// Fuzz target: model config JSON readers — VitConfig::from_json / from_hf_json (Hugging Face
// ViTConfig) and ClipConfig::from_json / from_hf_json (Hugging Face CLIPConfig), plus what the
// loaders derive from an accepted config before allocating (patch grid, preprocessing preset).
// Input: byte 0 picks the reader, the rest is the JSON text.
#include <cstdint>
#include <string>

#include "fuzz_common.h"
#include "mmkit/image/preprocess.h"
#include "mmkit/models/clip.h"
#include "mmkit/models/vit.h"

using namespace mmkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int which = data[0] % 4;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (which < 2) {
    VitConfig c;
    bool ok = fuzz::accepts([&] { c = which == 0 ? VitConfig::from_json(text) : VitConfig::from_hf_json(text, "config.json"); });
    if (!ok) return 0;
    c.validate();  // accepted configs are valid: this must not throw
    (void)c.num_patches();
    if (!c.preprocess.empty()) fuzz::accepts([&] { preprocess_preset(c.preprocess, int(c.image_size)); });
    // The writer's output is readable by the reader and means the same.
    VitConfig back = VitConfig::from_json(c.to_json());
    if (back.to_json() != c.to_json()) fuzz::violated("ViT config JSON round trip");
  } else {
    ClipConfig c;
    bool ok = fuzz::accepts([&] { c = which == 2 ? ClipConfig::from_json(text) : ClipConfig::from_hf_json(text, "config.json"); });
    if (!ok) return 0;
    c.validate();
    ClipConfig back = ClipConfig::from_json(c.to_json());
    if (back.to_json() != c.to_json()) fuzz::violated("CLIP config JSON round trip");
  }
  return 0;
}
