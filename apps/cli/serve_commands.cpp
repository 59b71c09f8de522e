// `mmkit serve`, `mmkit index build`, `mmkit search`, `mmkit init-clip`,
// `mmkit data shapes`: serving CLIP over HTTP, image search over a folder,
// and the small generated models and images the tests and benchmarks use.
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "api_server.h"
#include "cli.h"
#include "mmkit/core/parallel.h"
#include "mmkit/core/rng.h"
#include "mmkit/data/fmnist_captions.h"
#include "mmkit/text/bpe_trainer.h"
#include "mmkit/infer/classify.h"
#include "mmkit/image/canvas.h"
#include "mmkit/index/embedding_index.h"
#include "mmkit/io/checkpoint.h"
#include "mmkit/train/vit_trainer.h"
#include "mmkit/util/progress.h"

namespace mmkit::cli {
namespace {

struct ServeArgs {
  std::string model, vocab, vqa, caption, classifier, index, host = "127.0.0.1", port_file;
  int port = 8080, max_batch = 32, http_threads = 64, threads = 0;
  double max_wait_ms = 5;
  serve::RequestLimits limits;
  double max_body_mb = 32;
  double request_timeout_s = 30;
};

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

int run_serve(const ServeArgs& a) {
  // Request buffers of up to tens of MB (bodies, base64, decoded images) come and go on many HTTP
  // threads. glibc raises its mmap threshold to the size of each mmapped block freed, after
  // which such buffers live in the per-thread arenas and stay resident when freed: idle RSS grew
  // 32% over a 5-minute mixed load (docs/ROBUSTNESS.md). A fixed threshold keeps them mmapped.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  // SIGINT/SIGTERM set a flag that a watcher thread turns into a clean stop
  // (whichever thread the kernel delivers the signal to).
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  set_num_threads(a.threads);
  serve::BatcherOptions bo;
  bo.max_batch = a.max_batch;
  bo.max_wait_ms = a.max_wait_ms;
  serve::ClipService clip(ClipRunner::open(a.model, a.vocab), bo, bo, a.threads);
  if (!clip.has_text()) std::fprintf(stderr, "serve: text endpoints disabled: %s\n", clip.text_error().c_str());
  serve::ServerModels m;
  m.clip = &clip;
  m.clip_name = a.model.substr(a.model.find_last_of('/') + 1);
  std::unique_ptr<index::EmbeddingIndex> idx;
  if (!a.index.empty()) {
    idx = index::EmbeddingIndex::open(a.index);
    MMKIT_CHECK(idx->dim() == clip.dim(), "--index ", a.index, " holds ", idx->dim(), "-d embeddings but --model makes ",
                clip.dim(), "-d ones: build the index with the same model");
    m.index = idx.get();
  }
  // VQA and captioning forwards hold CLIP's engine mutex too: one forward at a time, each on every core.
  std::unique_ptr<serve::VqaService> vqa;
  if (!a.vqa.empty()) {
    vqa = serve::VqaService::open(a.vqa, &clip.engine_mutex());
    m.vqa = vqa.get();
  }
  std::unique_ptr<serve::CaptionService> cap;
  if (!a.caption.empty()) {
    cap = serve::CaptionService::open(a.caption, &clip.engine_mutex());
    m.caption = cap.get();
  }
  std::shared_ptr<Vit> vit;
  if (!a.classifier.empty()) {
    vit = std::make_shared<Vit>(load_vit(a.classifier));
    m.classify = [vit](const Image& img) {
      Classification c = classify_images(*vit, {img})[0];
      std::vector<serve::LabelProb> out;
      for (size_t k = 0; k < c.probs.size(); ++k)
        out.push_back({k < vit->cfg.class_names.size() ? vit->cfg.class_names[k] : std::to_string(k), c.probs[k]});
      std::stable_sort(out.begin(), out.end(), [](auto& x, auto& y) { return x.prob > y.prob; });
      return out;
    };
  }
  serve::ServerOptions so;
  so.limits = a.limits;
  so.limits.max_body_bytes = size_t(a.max_body_mb * (1 << 20));
  so.http_threads = a.http_threads;
  so.request_timeout_s = a.request_timeout_s;
  serve::ApiServer server(m, so);
  const int port = server.bind(a.host, a.port);
  if (!a.port_file.empty()) {
    std::string tmp = a.port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), a.port_file.c_str());
  }
  std::printf("serving %s on http://%s:%d/ (text %s, index %s, vqa %s, caption %s, batch <= %d, wait <= %.1f ms)\n",
              m.clip_name.c_str(), a.host.c_str(), port, clip.has_text() ? "on" : "off",
              idx ? (std::to_string(idx->size()) + " images").c_str() : "none", vqa ? vqa->name().c_str() : "none",
              cap ? cap->name().c_str() : "none", a.max_batch, a.max_wait_ms);
  std::fflush(stdout);
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    while (!done && !g_stop_signal) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (g_stop_signal) std::fprintf(stderr, "serve: signal %d, stopping\n", int(g_stop_signal));
    server.stop();
  });
  server.run();
  done = true;  // run() also returns if the listener fails
  waiter.join();
  return 0;
}

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

struct InitClipArgs {
  std::string preset = "tiny", out;
  uint64_t seed = 0;
  int bpe_merges = 400;
};

// Captions the stored tokenizer is learned from: Fashion-MNIST captions and
// descriptions of `mmkit data shapes` images, so either kind of query tokenizes
// into whole words.
std::vector<std::string> tokenizer_corpus() {
  std::vector<std::string> c;
  for (uint64_t s = 0; s < 300; ++s)
    for (int k = 0; k < 10; ++k) c.push_back(data::fmnist_caption(k, s));
  const char* colours[] = {"red", "green", "blue", "yellow", "purple", "orange", "black", "brown", "pink", "dark"};
  const char* shapes[] = {"circle", "disc", "square", "stripe", "bar", "line", "shape"};
  for (const char* col : colours)
    for (const char* sh : shapes) {
      c.push_back(std::string("a ") + col + " " + sh);
      c.push_back(std::string("a photo of a ") + col + " " + sh + " on a light background.");
    }
  return c;
}

// "tiny": a few hundred thousand parameters with CLIP's real vocabulary size
// and context, for tests and the browser test; "small": 512-d embeddings (the
// index size of real CLIPs) from small towers, for index benchmarks;
// "vit-b-32": OpenAI ViT-B/32's shapes (random weights) for benchmarks.
ClipConfig preset_config(const std::string& p) {
  if (p == "vit-b-32") return ClipConfig{};
  if (p == "small")
    return ClipConfig::from_json(R"({"embed_dim": 512, "image_resolution": 64, "vision_patch_size": 16,
      "vision_width": 128, "vision_layers": 2, "vision_heads": 4, "context_length": 77, "vocab_size": 49408,
      "transformer_width": 128, "transformer_layers": 2, "transformer_heads": 4})");
  MMKIT_CHECK(p == "tiny", "unknown --preset '", p, "' (expected tiny, small or vit-b-32)");
  return ClipConfig::from_json(R"({"embed_dim": 64, "image_resolution": 64, "vision_patch_size": 16,
    "vision_width": 64, "vision_layers": 2, "vision_heads": 2, "context_length": 77, "vocab_size": 49408,
    "transformer_width": 64, "transformer_layers": 2, "transformer_heads": 2})");
}

int run_init_clip(const InitClipArgs& a) {
  ClipConfig cfg = preset_config(a.preset);
  std::map<std::string, std::string> meta = {{"config", cfg.to_json()}};
  std::string tok_note = "no tokenizer";
  if (a.bpe_merges > 0) {
    auto tok = text::ClipTokenizer::from_merges(text::train_bpe_merges(tokenizer_corpus(), a.bpe_merges));
    MMKIT_CHECK(tok.vocab_size() <= cfg.vocab_size, "--bpe-merges ", a.bpe_merges, " gives ", tok.vocab_size(),
                " tokens, more than the model's ", cfg.vocab_size);
    set_tokenizer_metadata(meta, tok);
    tok_note = "tokenizer of " + std::to_string(tok.vocab_size()) + " tokens";
  }
  Clip m;
  m.init(cfg, a.seed);
  io::save_parameters(a.out, m.parameters(), meta);
  std::printf("wrote %s (%s, seed %llu, %s)\n", a.out.c_str(), a.preset.c_str(), (unsigned long long)a.seed,
              tok_note.c_str());
  return 0;
}

struct ShapesArgs {
  std::string out;
  int64_t n = 100;
  int size = 64;
  uint64_t seed = 0;
};

// Synthetic images: one or two coloured discs / squares / bars on a tinted
// background, deterministic in (seed, index). Names: shape_000123.png.
int run_shapes(const ShapesArgs& a) {
  MMKIT_CHECK(a.n > 0 && a.size >= 16, "--n must be positive and --size at least 16");
  ::mkdir(a.out.c_str(), 0755);
  Progress::Options po;
  po.unit = "img/s";
  Progress bar("shapes", a.n, stderr, po);
  for (int64_t i = 0; i < a.n; ++i) {
    Rng rng(a.seed * 1000003u + uint64_t(i));
    auto u8 = [&](int lo, int hi) { return uint8_t(lo + int(rng.uniform() * float(hi - lo))); };
    const int S = a.size;
    Canvas c(S, S, Rgb{u8(180, 255), u8(180, 255), u8(180, 255)});
    const int shapes = 1 + int(rng.uniform() * 2);
    for (int s = 0; s < shapes; ++s) {
      Rgb col{u8(0, 200), u8(0, 200), u8(0, 200)};
      const double cx = S * (0.25 + 0.5 * rng.uniform()), cy = S * (0.25 + 0.5 * rng.uniform());
      const double r = S * (0.1 + 0.2 * rng.uniform());
      switch (int(rng.uniform() * 3)) {
        case 0: c.disc(cx, cy, r, col); break;
        case 1: c.fill_rect(int(cx - r), int(cy - r), int(2 * r), int(2 * r), col); break;
        default: c.line(cx - r, cy - r, cx + r, cy + r, r / 2, col); break;
      }
    }
    char name[64];
    std::snprintf(name, sizeof name, "/shape_%06lld.png", (long long)i);
    write_png(a.out + name, c.image());
    bar.update(i + 1);
  }
  bar.finish();
  std::printf("wrote %lld images to %s\n", (long long)a.n, a.out.c_str());
  return 0;
}

}  // namespace

void add_serve_commands(Cli& c) {
  auto sa = std::make_shared<ServeArgs>();
  auto* sv = c.app->add_subcommand("serve", "HTTP/JSON API and web page: CLIP (embeddings, zero-shot, search), VQA, captions");
  sv->add_option("--model", sa->model, "CLIP safetensors file")->required();
  sv->add_option("--vocab", sa->vocab, "CLIP tokenizer (default: beside the model); without one, text routes answer 501");
  sv->add_option("--vqa", sa->vqa, "VQA model directory or .safetensors, as `mmkit vqa --model` takes (/v1/vqa)");
  sv->add_option("--caption", sa->caption,
                 "captioning model directory or .safetensors, as `mmkit caption --model` takes (/v1/caption)");
  sv->add_option("--classifier", sa->classifier, "ViT classifier checkpoint (/v1/classify)");
  sv->add_option("--index", sa->index, "index directory from `mmkit index build` (/v1/search)");
  sv->add_option("--host", sa->host, "address to listen on (loopback by default)")->capture_default_str();
  sv->add_option("--port", sa->port, "port (0: any free port; see --port-file)")->capture_default_str();
  sv->add_option("--port-file", sa->port_file, "write the port listened on to this file");
  sv->add_option("--max-batch", sa->max_batch, "largest batch of the dynamic batcher")->capture_default_str();
  sv->add_option("--max-wait-ms", sa->max_wait_ms, "longest a request waits for its batch to fill")->capture_default_str();
  sv->add_option("--http-threads", sa->http_threads, "connections served at once")->capture_default_str();
  sv->add_option("--request-timeout", sa->request_timeout_s,
                 "seconds a request's bytes may take to arrive (slower clients get 408)")->capture_default_str();
  sv->add_option("--threads", sa->threads, "OpenMP threads per forward (0: all cores)")->capture_default_str();
  sv->add_option("--max-body-mb", sa->max_body_mb, "largest request body")->capture_default_str();
  sv->add_option("--max-image-pixels", sa->limits.max_image_pixels, "largest image (width x height)")->capture_default_str();
  sv->add_option("--max-text-bytes", sa->limits.max_text_bytes, "longest text")->capture_default_str();
  sv->add_option("--max-beam", sa->limits.max_beam, "widest beam /v1/caption accepts")->capture_default_str();
  c.on(sv, sa, run_serve);

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
  ib->add_option("--threads", ia->threads, "OpenMP threads (0: all cores)")->capture_default_str();
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
  se->add_option("--threads", qa->threads)->capture_default_str();
  c.on(se, qa, run_search);

  auto ca = std::make_shared<InitClipArgs>();
  auto* ic = c.app->add_subcommand("init-clip", "write a CLIP with seeded random weights (tests, benchmarks)");
  ic->add_option("--preset", ca->preset, "tiny, small or vit-b-32")->capture_default_str();
  ic->add_option("--seed", ca->seed)->capture_default_str();
  ic->add_option("--bpe-merges", ca->bpe_merges,
                 "merges of the BPE tokenizer learned from built-in captions and stored in the file (0: none)")
      ->capture_default_str();
  ic->add_option("--out", ca->out, "output .safetensors")->required();
  c.on(ic, ca, run_init_clip);

  auto ha = std::make_shared<ShapesArgs>();
  auto* sh = c.data->add_subcommand("shapes", "synthetic PNG images of coloured shapes");
  sh->add_option("--out", ha->out, "output folder")->required();
  sh->add_option("--n", ha->n, "number of images")->capture_default_str();
  sh->add_option("--size", ha->size, "side in pixels")->capture_default_str();
  sh->add_option("--seed", ha->seed)->capture_default_str();
  c.on(sh, ha, run_shapes);
}

}  // namespace mmkit::cli
