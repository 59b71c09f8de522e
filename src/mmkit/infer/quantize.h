// `mmkit quantize`: rewrites a CLIP checkpoint for faster or smaller inference (infer::ClipEngine).
//
//   int8  the four Linears of every transformer block (attn.in_proj, attn.out_proj, mlp.c_fc,
//         mlp.c_proj) of both towers become symmetric per-output-channel int8: "<w>" I8 [out, in]
//         and "<w>_scale" F32 [out] with w ~= q * scale (scale = max|w[o, :]| / 127); every other
//         tensor stays F32. Activations are quantised per token at run time (see packed_linear.h).
//   f16 / bf16  every tensor is stored in that type (round to nearest even).
// The output always uses OpenAI tensor names, carries the config in "config", the input's other
// metadata (e.g. an embedded tokenizer) and "mmkit.quantization" = int8 | f16 | bf16.
// Any CLIP checkpoint load_clip reads is accepted as input (OpenAI/HF layout, F32/F16/BF16).
#pragma once
#include <cstdint>
#include <string>

namespace mmkit::infer {

struct QuantizeReport {
  std::string format;
  int64_t tensors = 0, quantized = 0;  // tensors written / of them converted
  size_t in_bytes = 0, out_bytes = 0;  // file sizes
  // Where the output's embedded tokenizer came from: "the input's metadata", "vocabulary files
  // beside the input" (stored so the output is one self-contained file), or "" (none: text
  // embeddings need --vocab; the message says why). SigLIP: its spiece.model is copied beside
  // the output instead.
  std::string tokenizer, tokenizer_problem;
};

// to: "int8", "f16" or "bf16". Writes `out` atomically.
QuantizeReport quantize_clip(const std::string& in, const std::string& out, const std::string& to);

}  // namespace mmkit::infer
