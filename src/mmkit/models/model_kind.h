// Which kind of model a file holds, from its tensor names and metadata, so a
// caller that takes "any model" (the Python module's mmkit.load) picks the
// right loader without being told.
//
//   mmkit::ModelKind k = mmkit::detect_model_kind("runs/cap");   // ModelKind::caption
#pragma once
#include <string>

namespace mmkit {

enum class ModelKind { clip, vit, vqa, caption };
const char* model_kind_name(ModelKind k);  // "clip", "vit", "vqa", "caption"

// `path`: a .safetensors file, a run folder or a Hugging Face folder
// (resolve_model_file). CLIP: OpenAI/OpenCLIP, Hugging Face or mmkit CLIP names
// (also `mmkit quantize` files); ViT: torchvision, Hugging Face or an mmkit ViT
// config; VQA: a config with "answers"; captioner: "config" + "vocab" metadata.
// Throws naming the file when it is none of these.
ModelKind detect_model_kind(const std::string& path);

}  // namespace mmkit
