// `mmkit index build`, `mmkit search`: a FAISS image index over a folder,
// embedded with CLIP (mmkit/index/embedding_index.h), and queries against it.
#include <climits>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "live_index_commands.h"
#include "mmkit/core/parallel.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/image/image.h"
#include "mmkit/index/embedding_index.h"
#include "mmkit/index/live_index.h"
#include "mmkit/util/file_util.h"

namespace mmkit::cli {
namespace {

struct IndexArgs {
  std::string model, vocab;
  index::BuildOptions o;
  int threads = 0;
};

int run_index_build(const IndexArgs& a) {
  set_num_threads(a.threads);
  ClipRunner r = ClipRunner::open(a.model, a.vocab);
  index::BuildOptions o = a.o;
  make_dirs(o.out_dir);
  char abs[PATH_MAX];
  o.model_path = ::realpath(a.model.c_str(), abs) ? std::string(abs) : a.model;  // searches may run elsewhere
  index::BuildResult res = index::build_index(r, o);
  for (auto& s : res.skipped) std::fprintf(stderr, "skipped %s\n", s.c_str());
  std::printf("%s: %lld images indexed (%lld embedded now, %lld already done, %zu skipped now) kind %s%s\n",
              a.o.out_dir.c_str(), (long long)res.count, (long long)res.embedded, (long long)res.already_done,
              res.skipped.size(), res.kind.empty() ? "-" : res.kind.c_str(),
              res.complete ? "" : " (stopped at --stop-after; run again to continue)");
  return 0;
}

struct SearchArgs {
  std::string index, model, vocab, image, text, filter;
  int top_k = kDefaultTopK, nprobe = 0, threads = 0;
  double min_score = -1;
  bool json = false;
};

int run_search(const SearchArgs& a) {
  set_num_threads(a.threads);
  MMKIT_CHECK(a.text.empty() != a.image.empty(), "give either a text query or --image FILE");
  if (index::LiveIndex::exists(a.index))
    return run_live_search(a.index, a.model, a.vocab, a.text, a.image, a.top_k, a.filter, a.min_score, a.json);
  MMKIT_CHECK(a.filter.empty() && a.min_score == -1, "--filter and --min-score need a live index (", a.index,
              " was made by mmkit index build)");
  auto idx = index::EmbeddingIndex::open(a.index);
  const std::string model = a.model.empty() ? idx->info().value("model", std::string()) : a.model;
  MMKIT_CHECK(!model.empty(), a.index, " does not record its model; pass --model");
  ClipRunner r = ClipRunner::open(model, a.vocab);
  index::check_index_model(idx->info(), a.index, r, model);
  Tensor q = a.text.empty() ? r.embed_images({decode_image_file(a.image)}, true) : r.embed_texts({a.text}, true);
  auto t0 = std::chrono::steady_clock::now();
  auto hits = idx->search(q.f32(), a.top_k, a.nprobe);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // The keys of /v1/search's answer ("path" here instead of the server's "thumb" URL).
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < hits.size(); ++i) {
    const auto& it = idx->item(hits[i].id);
    if (a.json)
      out.push_back({{"rank", i + 1}, {"id", hits[i].id}, {"score", hits[i].score},
                     {"name", it.path.substr(it.path.find_last_of('/') + 1)}, {"width", it.width},
                     {"height", it.height}, {"path", it.path}});
    else
      std::printf("%2zu  %.4f  %s\n", i + 1, hits[i].score, it.path.c_str());
  }
  if (a.json) std::cout << nlohmann::json{{"results", out}, {"took_ms", ms}}.dump() << "\n";
  else std::fprintf(stderr, "searched %lld images in %.2f ms\n", (long long)idx->size(), ms);
  return 0;
}

}  // namespace

void add_index_commands(Cli& c) {
  auto* ix = c.app->add_subcommand("index", "image search index: built over a folder, or live (add, update, remove)");
  ix->require_subcommand(1);
  auto ia = std::make_shared<IndexArgs>();
  auto* ib = ix->add_subcommand("build", "embed a folder of images into a FAISS index (resumable)");
  add_model_option(ib, &ia->model, "CLIP or SigLIP")->required();
  add_vocab_option(ib, &ia->vocab);
  ib->add_option("--images", ia->o.images_dir, "folder of PNG/JPEG images")->required();
  ib->add_option("--out", ia->o.out_dir, "index folder (created; rerun with the same --out to resume)")->required();
  ib->add_option("--kind", ia->o.kind, "auto, flat, ivf or ivfpq")->capture_default_str();
  ib->add_option("--nlist", ia->o.nlist, "IVF lists (0: 4 sqrt(n))")->capture_default_str();
  ib->add_option("--pq-m", ia->o.pq_m, "PQ sub-vectors (0: dim / 8)")->capture_default_str();
  ib->add_option("--batch", ia->o.batch, "images per forward")->capture_default_str();
  ib->add_option("--decode-threads", ia->o.decode_threads, "image decoding threads")->capture_default_str();
  ib->add_option("--stop-after", ia->o.limit, "stop after embedding this many new images; rerun to continue (0: no limit)")
      ->capture_default_str();
  add_threads_option(ib, &ia->threads);
  c.on(ib, ia, run_index_build);
  add_live_index_commands(c, ix);

  auto qa = std::make_shared<SearchArgs>();
  auto* se = c.app->add_subcommand("search", "top-K images of an index for a text or an image");
  se->add_option("--index", qa->index, "index folder from `mmkit index build`, or a live index folder")->required();
  add_model_option(se, &qa->model, "CLIP or SigLIP")->description(
      "CLIP model the index was built with: a .safetensors file, a run folder or a Hugging Face folder (default: the "
      "one the index records; another model is refused)");
  add_vocab_option(se, &qa->vocab);
  se->add_option("--image", qa->image, "image query (default: none; the text query instead)");
  se->add_option("text", qa->text, "text query");
  add_top_k_option(se, &qa->top_k);
  se->add_option("--nprobe", qa->nprobe, "IVF lists to visit (0: min(nlist, 16))")->capture_default_str();
  se->add_option("--filter", qa->filter, "metadata filter of a live index, JSON (docs/LIVE_INDEX.md; default: every item)");
  se->add_option("--min-score", qa->min_score, "live index only: drop results with a lower cosine similarity")
      ->capture_default_str();
  add_json_flag(se, &qa->json);
  add_threads_option(se, &qa->threads);
  c.on(se, qa, run_search);
}

}  // namespace mmkit::cli
