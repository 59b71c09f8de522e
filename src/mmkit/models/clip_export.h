// Writes a CLIP model in the checkpoint layout users load elsewhere:
//   "openai_clip": OpenAI CLIP / OpenCLIP state_dict names (mmkit's own), the
//                  config in the safetensors metadata "config";
//   "hf_clip":     Hugging Face CLIPModel names (q/k/v split, nn.Linear
//                  projections transposed) + config.json beside the file.
//   "hf_siglip":   Hugging Face SiglipModel names (a SigLIP model only: encoder q/k/v split, the
//                  pooling head's in_proj packed as in transformers) + config.json (SiglipConfig).
//                  The tokenizer files (spiece.model ...) are the caller's to place beside it.
// Atomic (temporary file + fsync + rename), like every checkpoint.
#pragma once
#include <map>
#include <string>

#include "mmkit/models/clip.h"

namespace mmkit {

void save_clip_model(const std::string& path, Clip& m, std::map<std::string, std::string> metadata,
                     const std::string& layout = "openai_clip");

// Hugging Face CLIPConfig JSON for `c` (what transformers' CLIPModel.from_pretrained reads).
std::string hf_clip_config_json(const ClipConfig& c);
// Hugging Face SiglipConfig JSON for a SigLIP `c` (what transformers' SiglipModel.from_pretrained reads).
std::string hf_siglip_config_json(const ClipConfig& c);

}  // namespace mmkit
