#include "mmkit/infer/quantize.h"

#include <sys/stat.h>

#include <vector>

#include "mmkit/core/error.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/infer/packed_linear.h"
#include "mmkit/io/layouts.h"
#include "mmkit/io/safetensors.h"
#include "mmkit/models/clip.h"
#include "mmkit/util/file_util.h"

namespace mmkit::infer {

namespace {

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

// The block Linears that carry ~99% of CLIP's multiply-adds.
bool is_block_linear(const std::string& name) {
  return name.find("resblocks.") != std::string::npos &&
         (ends_with(name, ".attn.in_proj_weight") || ends_with(name, ".attn.out_proj.weight") ||
          ends_with(name, ".mlp.c_fc.weight") || ends_with(name, ".mlp.c_proj.weight"));
}

size_t file_size(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? size_t(st.st_size) : 0;
}

}  // namespace

QuantizeReport quantize_clip(const std::string& model, const std::string& out, const std::string& to) {
  const std::string in = resolve_model_file(model);  // a run or Hugging Face folder: its model.safetensors
  MMKIT_CHECK(to == "int8" || to == "f16" || to == "bf16", "quantize: --to must be int8, f16 or bf16, got '", to, "'");
  std::unique_ptr<Clip> m = load_clip(in);  // any layout/dtype -> f32 parameters with OpenAI names
  QuantizeReport r;
  r.format = to;
  // Storage for converted tensors; reserved up front so pointers handed to the writer stay valid.
  auto params = m->parameters();  // with the logit bias of a SigLIP or a sigmoid-loss CLIP
  std::vector<std::vector<int8_t>> q8;
  std::vector<std::vector<float>> scales;
  std::vector<std::vector<uint16_t>> halves;
  q8.reserve(params.size());
  scales.reserve(params.size());
  halves.reserve(params.size());
  std::vector<io::TensorToWrite> tensors;
  for (Parameter* p : params) {
    const Tensor& v = p->value;
    const std::vector<int64_t> shape = v.shape().vec();
    const int64_t n = v.numel();
    if (to == "int8" && is_block_linear(p->name)) {
      const int64_t rows = v.dim(0), cols = n / rows;
      q8.emplace_back(size_t(n));
      scales.emplace_back(size_t(rows));
      quantize_rows_s8(v.f32(), rows, cols, q8.back().data(), scales.back().data());
      tensors.push_back({p->name, DType::i8, shape, q8.back().data()});
      tensors.push_back({p->name + "_scale", DType::f32, {rows}, scales.back().data()});
      ++r.quantized;
    } else if (to != "int8") {
      halves.emplace_back(size_t(n));
      uint16_t* h = halves.back().data();
      const float* f = v.f32();
      for (int64_t i = 0; i < n; ++i) h[i] = to == "f16" ? io::f32_to_f16(f[i]) : io::f32_to_bf16(f[i]);
      tensors.push_back({p->name, to == "f16" ? DType::f16 : DType::bf16, shape, h});
      ++r.quantized;
    } else {
      tensors.push_back({p->name, DType::f32, shape, v.raw()});
    }
  }
  std::map<std::string, std::string> meta = m->file->metadata();
  if (m->cfg.siglip()) {
    // SigLIP's SentencePiece model is binary: it goes beside the output as spiece.model (where
    // ClipRunner looks for it), unless the output already sits next to the input's.
    const std::string src = parent_dir(in) + "/spiece.model", dst = parent_dir(out) + "/spiece.model";
    if (!path_exists(src)) {
      r.tokenizer_problem = src + " not found";
    } else if (!path_exists(dst)) {
      write_text_atomic(dst, io::read_text_file(src));
      r.tokenizer = "spiece.model copied beside the output";
    } else {
      r.tokenizer = "the spiece.model beside the output";
    }
  } else if (meta.count(kTokenizerMetadataKey)) {
    r.tokenizer = "the input's metadata";
  } else {
    try {
      set_tokenizer_metadata(meta, *open_clip_tokenizer("", in));
      r.tokenizer = "vocabulary files beside the input";
    } catch (const Error& e) {  // none beside it, or one the merges cannot reproduce
      r.tokenizer_problem = e.what();
    }
  }
  meta["config"] = m->cfg.to_json();
  meta["mmkit.quantization"] = to;
  meta["format"] = "pt";
  io::write_safetensors(out, tensors, meta);
  r.tensors = int64_t(tensors.size());
  r.in_bytes = file_size(in);
  r.out_bytes = file_size(out);
  return r;
}

}  // namespace mmkit::infer
