// `mmkit quantize --model M --to int8|f16|bf16 --out M2`: CLIP weights for faster or smaller
// inference (src/mmkit/infer/quantize.h). The result loads wherever a CLIP model does (embed,
// zero-shot, ClipRunner, load_clip).
#include <chrono>
#include <cstdio>

#include "cli.h"
#include "mmkit/infer/quantize.h"

namespace mmkit::cli {
namespace {

struct QuantizeArgs {
  std::string model, to, out;
};

int run_quantize(const QuantizeArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  make_parent_dirs(a.out);
  infer::QuantizeReport r = infer::quantize_clip(a.model, a.out, a.to);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %lld of %lld tensors as %s, %.1f MB -> %.1f MB (%.2fx) in %.1f s\n", a.out.c_str(),
              (long long)r.quantized, (long long)r.tensors, r.format.c_str(), r.in_bytes / 1e6, r.out_bytes / 1e6,
              r.out_bytes ? double(r.in_bytes) / double(r.out_bytes) : 0.0, s);
  if (!r.tokenizer.empty())
    std::printf(r.tokenizer.rfind("spiece", 0) == 0 || r.tokenizer.rfind("the spiece", 0) == 0
                    ? "tokenizer: %s\n" : "tokenizer stored in the file (from %s)\n",
                r.tokenizer.c_str());
  else
    std::fprintf(stderr, "quantize: no tokenizer stored (%s); text embeddings will need --vocab\n",
                 r.tokenizer_problem.c_str());
  return 0;
}

}  // namespace

void add_quantize_commands(Cli& c) {
  auto qa = std::make_shared<QuantizeArgs>();
  auto* q = c.app->add_subcommand(
      "quantize", "rewrite a CLIP model with int8 (per-channel weights, per-token activations at run time), f16 or bf16 weights");
  add_model_option(q, &qa->model, "CLIP or SigLIP")->required();
  q->add_option("--to", qa->to, "int8, f16 or bf16")->required()->check(CLI::IsMember({"int8", "f16", "bf16"}));
  q->add_option("--out", qa->out, "output .safetensors file (folders created)")->required();
  c.on(q, qa, run_quantize);
}

}  // namespace mmkit::cli
