// Checkpoint layouts other than mmkit's own names: one rename table per
// layout (regex -> mmkit name), plus the few tensor transforms a layout needs
// (packing Hugging Face's separate q/k/v into in_proj, transposing projection
// matrices stored as nn.Linear). F32 tensors that need no transform stay
// views into the mapped file.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mmkit/autograd/parameter.h"
#include "mmkit/io/safetensors.h"

namespace mmkit::io {

// mmkit and openai_clip use mmkit's own names (identity remap).
enum class Layout { mmkit, openai_clip, hf_clip, hf_siglip, torchvision_vit, hf_vit };
const char* layout_name(Layout l);
// Guesses the layout from characteristic tensor names (SigLIP: a Hugging Face CLIP-like file with
// `logit_bias` or the attention-pooling head `vision_model.head.probe`).
Layout detect_layout(const SafetensorsFile& f);

struct Remapped {
  std::map<std::string, Tensor> tensors;  // mmkit name -> f32 tensor
  std::map<std::string, std::string> source;  // mmkit name -> checkpoint name (for messages)
  std::vector<std::string> unused;        // checkpoint names no rule matched
};

Remapped remap(const std::shared_ptr<SafetensorsFile>& f, Layout layout);

// Strict binding: every parameter must be present with its shape; unused
// checkpoint tensors are errors too. Messages use the checkpoint's names.
void bind_remapped(const Remapped& r, const std::vector<Parameter*>& params,
                   const std::string& what);

// Reads a JSON file (e.g. Hugging Face config.json) as text; "" if absent.
std::string read_text_file(const std::string& path);

}  // namespace mmkit::io
