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
// Guesses the layout from characteristic tensor names. Hugging Face CLIP and SigLIP files share
// their tower prefixes; tensors only one architecture has decide (hf_siglip_tensors), whichever
// towers the file holds. Folders: load_clip checks config.json's model_type against this.
Layout detect_layout(const SafetensorsFile& f);
// True for a Hugging Face file with SigLIP-only tensors (pooling head, patch bias, text head, a [1]
// logit_bias) and none that only CLIP has (class token, pre_layrnorm, projections).
bool hf_siglip_tensors(const SafetensorsFile& f);
// Which towers a Hugging Face CLIP/SigLIP file holds: tensors named vision_model.* / text_model.*.
struct HfTowers {
  bool vision = false, text = false;
};
HfTowers hf_towers(const SafetensorsFile& f);

struct Remapped {
  std::map<std::string, Tensor> tensors;  // mmkit name -> f32 tensor
  std::map<std::string, std::string> source;  // mmkit name -> checkpoint name (for messages)
  std::vector<std::string> unused;        // checkpoint names no rule matched
};

Remapped remap(const std::shared_ptr<SafetensorsFile>& f, Layout layout);

// The renaming step of remap() alone, nothing read or copied: mmkit name -> the file's tensor,
// legacy buffers checked and skipped, optimizer state skipped. Hugging Face q/k/v stay separate
// ("<block>.attn.{q,k,v}.{weight,bias}") and nn.Linear projections keep their "<name>.T" names
// ([out, in] as stored); infer::ClipEngine joins / transposes the few it needs per tower.
struct RenamedViews {
  std::map<std::string, const TensorView*> views;  // into the file's tensors()
  std::vector<std::string> unused;                 // checkpoint names no rule matched
};
RenamedViews rename_views(const SafetensorsFile& f, Layout layout);

// Strict binding: every parameter must be present with its shape; unused
// checkpoint tensors are errors too. Messages use the checkpoint's names.
void bind_remapped(const Remapped& r, const std::vector<Parameter*>& params,
                   const std::string& what);

// Reads a JSON file (e.g. Hugging Face config.json) as text; "" if absent.
std::string read_text_file(const std::string& path);

}  // namespace mmkit::io
