// An image search index: L2-normalised CLIP embeddings of a folder of images
// in FAISS (inner product = cosine similarity) plus a metadata table.
//
//   mmkit::index::BuildOptions o; o.images_dir = "photos"; o.out_dir = "photos.idx";
//   mmkit::index::build_index(runner, o);                   // resumable; progress bar
//   auto idx = mmkit::index::EmbeddingIndex::open("photos.idx");
//   auto hits = idx->search(query_embedding.data(), 10);    // best first
//
// Directory layout (all written by build_index):
//   info.json        {"version", "dim", "count", "kind", "nlist", "pq_m", "model", "model_config", "model_probe",
//                     "images_dir"}; model_probe: the model's embedding of a fixed input (model_probe()),
//                     so searches can tell that they use the same model (check_index_model)
//   items.tsv        id \t absolute path \t width \t height   (row i = FAISS id i)
//   embeddings.f32   [count, dim] float32, row-aligned with items.tsv
//   skipped.tsv      path \t reason, files that did not decode (not retried on resume)
//   index.faiss      faiss::write_index of the kind chosen
// Interrupting a build (Ctrl-C, kill) loses at most the batch in flight: the
// next run truncates items.tsv / embeddings.f32 to their common complete
// rows and embeds only files not yet listed in either table.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmkit/infer/clip_runner.h"

namespace faiss {
struct Index;
}

namespace mmkit::index {

struct IndexItem {
  std::string path;
  int width = 0, height = 0;
};

struct SearchHit {
  int64_t id = 0;
  float score = 0;  // cosine similarity
};

// "flat": exact search (the default for small collections); "ivf": IVF-Flat
// with nlist lists; "ivfpq": IVF with product quantisation (pq_m sub-vectors
// of 8 bits); "auto": flat below 50,000 images, else ivf.
struct BuildOptions {
  std::string images_dir, out_dir;
  std::string kind = "auto";
  int nlist = 0;          // 0: about 4 * sqrt(count)
  int pq_m = 0;           // 0: dim / 8 (must divide dim)
  int batch = 32;
  int decode_threads = 2;
  bool progress = true;
  int64_t limit = 0;      // > 0: stop after this many newly embedded images (tests interrupt builds with it)
  std::string model_path; // recorded in info.json ("model") so searches can default to it
};

struct BuildResult {
  int64_t total_files = 0, already_done = 0, embedded = 0, count = 0;
  std::vector<std::string> skipped;  // newly skipped in this run: "path: reason"
  std::string kind;
  bool complete = false;  // false when `limit` stopped the run early (index.faiss not written)
};

BuildResult build_index(ClipRunner& runner, const BuildOptions& opt);

class EmbeddingIndex {
 public:
  static std::unique_ptr<EmbeddingIndex> open(const std::string& dir);
  ~EmbeddingIndex();

  // q: [dim] (normalised by the caller for cosine scores). nprobe: IVF lists
  // to visit (0 = min(nlist, 16)). Thread-safe.
  std::vector<SearchHit> search(const float* q, int k, int nprobe = 0) const;

  int64_t size() const { return int64_t(items_.size()); }
  int64_t dim() const { return dim_; }
  const IndexItem& item(int64_t id) const;
  const nlohmann::json& info() const { return info_; }
  const std::string& dir() const { return dir_; }
  // Embedding row `id` as stored (normalised).
  std::vector<float> embedding(int64_t id) const;

 private:
  std::string dir_;
  nlohmann::json info_;
  int64_t dim_ = 0;
  std::vector<IndexItem> items_;
  std::unique_ptr<faiss::Index> index_;
};

// The model's normalised embedding of a fixed synthetic input (a smooth pattern
// of preprocessed pixels at its resolution), [dim]: a fingerprint of its
// weights that survives quantisation but not another model (measured on tiny
// CLIPs by tests/test_cli_conventions.cpp: f32 vs int8 of one model 0.99999,
// two seeds of one config -0.009).
std::vector<float> model_probe(ClipRunner& runner);
inline constexpr double kProbeMinCosine = 0.9;
// Throws unless `runner` is the model the index was built with: same
// embedding size, and (indexes that recorded it) a probe embedding with
// cosine >= kProbeMinCosine to the stored one, else (older indexes) the same
// model config. `model` names the model in the message.
void check_index_model(const nlohmann::json& info, const std::string& index_dir, ClipRunner& runner,
                       const std::string& model);

// items.tsv rows (the metadata table); stops at the first incomplete line.
std::vector<IndexItem> read_items(const std::string& path);

}  // namespace mmkit::index
