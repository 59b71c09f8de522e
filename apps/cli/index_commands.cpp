// `mmkit index build`, `mmkit search`: a FAISS image index over a folder,
// embedded with CLIP (mmkit/index/embedding_index.h), and queries against it.
#include <climits>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "mmkit/core/parallel.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/image/image.h"
#include "mmkit/index/embedding_index.h"

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
  char abs[PATH_MAX];
  o.model_path = ::realpath(a.model.c_str(), abs) ? std::string(abs) : a.model;  // searches may run elsewhere
  index::BuildResult res = index::build_index(r, o);
  for (auto& s : res.skipped) std::fprintf(stderr, "skipped %s\n", s.c_str());
  std::printf("%s: %lld images indexed (%lld embedded now, %lld already done, %zu skipped now) kind %s%s\n",
              a.o.out_dir.c_str(), (long long)res.count, (long long)res.embedded, (long long)res.already_done,
              res.skipped.size(), res.kind.empty() ? "-" : res.kind.c_str(),
              res.complete ? "" : " (stopped at --limit; run again to continue)");
  return 0;
}

struct SearchArgs {
  std::string index, model, vocab, image, text;
  int k = 10, nprobe = 0, threads = 0;
  bool json = false;
};

int run_search(const SearchArgs& a) {
  set_num_threads(a.threads);
  MMKIT_CHECK(a.text.empty() != a.image.empty(), "give either a text query or --image FILE");
  auto idx = index::EmbeddingIndex::open(a.index);
  const std::string model = a.model.empty() ? idx->info().value("model", std::string()) : a.model;
  MMKIT_CHECK(!model.empty(), a.index, " does not record its model; pass --model");
  ClipRunner r = ClipRunner::open(model, a.vocab);
  MMKIT_CHECK(r.embed_dim() == idx->dim(), "--model makes ", r.embed_dim(), "-d embeddings, the index holds ",
              idx->dim(), "-d ones");
  Tensor q = a.text.empty() ? r.embed_images({decode_image_file(a.image)}, true) : r.embed_texts({a.text}, true);
  auto t0 = std::chrono::steady_clock::now();
  auto hits = idx->search(q.f32(), a.k, a.nprobe);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < hits.size(); ++i) {
    const auto& it = idx->item(hits[i].id);
    if (a.json)
      out.push_back({{"rank", i + 1}, {"id", hits[i].id}, {"score", hits[i].score}, {"path", it.path}});
    else
      std::printf("%2zu  %.4f  %s\n", i + 1, hits[i].score, it.path.c_str());
  }
  if (a.json) std::cout << out.dump() << "\n";
  else std::fprintf(stderr, "searched %lld images in %.2f ms\n", (long long)idx->size(), ms);
  return 0;
}

}  // namespace

void add_index_commands(Cli& c) {
  auto* ix = c.app->add_subcommand("index", "image search index over a folder");
  ix->require_subcommand(1);
  auto ia = std::make_shared<IndexArgs>();
  auto* ib = ix->add_subcommand("build", "embed a folder of images into a FAISS index (resumable)");
  ib->add_option("--model", ia->model, "CLIP safetensors file")->required();
  ib->add_option("--vocab", ia->vocab, "CLIP tokenizer (not needed to build)");
  ib->add_option("--images", ia->o.images_dir, "folder of PNG/JPEG images")->required();
  ib->add_option("--out", ia->o.out_dir, "index directory (rerun with the same --out to resume)")->required();
  ib->add_option("--kind", ia->o.kind, "auto, flat, ivf or ivfpq")->capture_default_str();
  ib->add_option("--nlist", ia->o.nlist, "IVF lists (0: 4 sqrt(n))")->capture_default_str();
  ib->add_option("--pq-m", ia->o.pq_m, "PQ sub-vectors (0: dim / 8)")->capture_default_str();
  ib->add_option("--batch", ia->o.batch, "images per forward")->capture_default_str();
  ib->add_option("--decode-threads", ia->o.decode_threads, "image decoding threads")->capture_default_str();
  ib->add_option("--limit", ia->o.limit, "stop after embedding this many new images (resume later)");
  add_threads_option(ib, &ia->threads);
  c.on(ib, ia, run_index_build);

  auto qa = std::make_shared<SearchArgs>();
  auto* se = c.app->add_subcommand("search", "top-K images of an index for a text or an image");
  se->add_option("--index", qa->index, "index directory")->required();
  se->add_option("--model", qa->model, "the CLIP model the index was built with (default: the one info.json records)");
  se->add_option("--vocab", qa->vocab, "CLIP tokenizer (default: beside the model)");
  se->add_option("--image", qa->image, "image query");
  se->add_option("text", qa->text, "text query");
  se->add_option("-k", qa->k, "results")->capture_default_str();
  se->add_option("--nprobe", qa->nprobe, "IVF lists to visit (0: min(nlist, 16))")->capture_default_str();
  se->add_flag("--json", qa->json, "print JSON");
  add_threads_option(se, &qa->threads);
  c.on(se, qa, run_search);
}

}  // namespace mmkit::cli
