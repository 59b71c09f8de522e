#include "mmkit/models/model_kind.h"

#include <nlohmann/json.hpp>

#include "mmkit/core/error.h"
#include "mmkit/io/layouts.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/models/clip.h"
#include "mmkit/util/file_util.h"

namespace mmkit {

const char* model_kind_name(ModelKind k) {
  switch (k) {
    case ModelKind::clip: return "clip";
    case ModelKind::vit: return "vit";
    case ModelKind::vqa: return "vqa";
    case ModelKind::caption: return "caption";
  }
  return "?";
}

ModelKind detect_model_kind(const std::string& path) {
  const std::string file = resolve_model_file(path);
  io::SafetensorsFile f = io::SafetensorsFile::open(file);
  switch (io::detect_layout(f)) {
    case io::Layout::openai_clip:
    case io::Layout::hf_clip:
    case io::Layout::hf_siglip: return ModelKind::clip;
    case io::Layout::torchvision_vit:
    case io::Layout::hf_vit: return ModelKind::vit;
    case io::Layout::mmkit: break;
  }
  // mmkit's own files: told apart by their metadata (the loaders read the same keys).
  const auto& meta = f.metadata();
  auto cfg = meta.find("config");
  if (cfg == meta.end()) {
    // A Hugging Face folder of another architecture: say what its config.json calls it.
    const size_t slash = file.find_last_of('/');
    const std::string cj = (slash == std::string::npos ? std::string(".") : file.substr(0, slash)) + "/config.json";
    const std::string type = hf_config_model_type(io::read_text_file(cj));
    fail(file, ": no CLIP, SigLIP, ViT, VQA or captioner tensors and no 'config' metadata",
         type.empty() ? std::string() : " (" + cj + " says model_type '" + type + "')",
         "; not a model mmkit reads");
  }
  if (meta.count("vocab")) return ModelKind::caption;  // the captioner stores its word vocabulary beside its config
  nlohmann::json j = nlohmann::json::parse(cfg->second, nullptr, /*allow_exceptions=*/false);
  MMKIT_CHECK(j.is_object(), file, ": metadata 'config' is not a JSON object");
  if (j.contains("answers")) return ModelKind::vqa;
  if (j.contains("embed_dim") && j.contains("transformer_width")) return ModelKind::clip;
  return ModelKind::vit;
}

}  // namespace mmkit
