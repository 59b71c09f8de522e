// `mmkit serve`: CLIP (and optionally an index, a classifier, VQA and
// captioning models) over HTTP; the routes are apps/serve/api_server.h's.
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "api_server.h"
#include "cli.h"
#include "mmkit/core/parallel.h"
#include "mmkit/infer/classify.h"
#include "mmkit/index/embedding_index.h"
#include "mmkit/index/live_index.h"
#include "mmkit/train/vit_trainer.h"
#include "mmkit/util/file_util.h"
#include "mmkit/util/stop_signal.h"

namespace mmkit::cli {
namespace {

struct ServeArgs {
  std::vector<std::string> models;  // PATH or NAME=PATH, repeatable; the first is the default
  std::string vocab, api_key_file, tls_cert, tls_key, vqa, caption, classifier, classifier_labels, index, live_index,
      host = "127.0.0.1", port_file;
  int64_t compact_every = 10000;
  int port = 8080, max_batch = 32, http_threads = 64, threads = 0;
  double max_wait_ms = 5;
  serve::RequestLimits limits;
  double max_body_mb = 32;
  double request_timeout_s = 30;
  double drain_s = 0;
  std::vector<std::string> allowed_hosts;
  size_t max_connections = 4096, max_client_connections = 256;
};

// "--model NAME=PATH" or "--model PATH" (named by model_display_name). A NAME is letters, digits
// and . _ - : / (no '='), so a path holding '=' needs a name in front of it.
std::pair<std::string, std::string> named_model(const std::string& arg) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos) return {model_display_name(arg), arg};
  const std::string name = arg.substr(0, eq), path = arg.substr(eq + 1);
  MMKIT_CHECK(!name.empty() && !path.empty(), "--model '", arg, "': want NAME=PATH or PATH");
  for (char ch : name)
    MMKIT_CHECK(std::isalnum(static_cast<unsigned char>(ch)) || std::strchr("._-:/", ch), "--model '", arg,
                "': the name '", name, "' may hold letters, digits and . _ - : / only");
  return {name, path};
}

int run_serve(const ServeArgs& a) {
  // Request buffers of up to tens of MB (bodies, base64, decoded images) come and go on many HTTP
  // threads. glibc raises its mmap threshold to the size of each mmapped block freed, after
  // which such buffers live in the per-thread arenas and stay resident when freed: idle RSS grew
  // 32% over a 5-minute mixed load (docs/ROBUSTNESS.md). A fixed threshold keeps them mmapped.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  // SIGINT/SIGTERM only record the signal (the training loop's mechanism); a
  // watcher thread below polls stop_signal() and turns it into a clean stop.
  // The scope comes first so every thread started below (OpenMP pool, batcher
  // and HTTP workers, which run GEMMs) inherits the signals blocked.
  StopSignalScope signals;

  set_num_threads(a.threads);
  serve::BatcherOptions bo;
  bo.max_batch = a.max_batch;
  bo.max_wait_ms = a.max_wait_ms;
  MMKIT_CHECK(!a.models.empty(), "--model is required");
  std::vector<std::pair<std::string, std::string>> named;
  for (const std::string& arg : a.models) {
    named.push_back(named_model(arg));
    for (size_t i = 0; i + 1 < named.size(); ++i)
      MMKIT_CHECK(named[i].first != named.back().first, "--model: two models are named '", named.back().first,
                  "': give them names with --model NAME=PATH");
  }
  // Every model's forwards hold one engine mutex: one forward at a time, each on every core.
  std::mutex engine;
  std::vector<std::unique_ptr<serve::ClipService>> clips;
  std::unique_ptr<index::EmbeddingIndex> idx;
  std::unique_ptr<index::LiveIndex> live;
  for (size_t i = 0; i < named.size(); ++i) {
    ClipRunner runner = ClipRunner::open(named[i].second, a.vocab);
    if (i == 0 && !a.index.empty()) {  // before the server starts: an index of another model would answer meaningless scores
      idx = index::EmbeddingIndex::open(a.index);
      index::check_index_model(idx->info(), a.index, runner, named[i].second);
    }
    if (i == 0 && !a.live_index.empty()) {  // created for the first --model when missing; otherwise it must be its
      index::LiveIndex::Options lo;
      lo.compact_every = a.compact_every;
      const std::string& path = named[i].second;
      if (index::LiveIndex::exists(a.live_index)) {
        live = index::LiveIndex::open(a.live_index, lo);
        index::check_index_model(live->info(), a.live_index, runner, path);
      } else {
        char abs[PATH_MAX];
        live = index::LiveIndex::create(a.live_index, runner, ::realpath(path.c_str(), abs) ? std::string(abs) : path, lo);
      }
    }
    clips.push_back(std::make_unique<serve::ClipService>(std::move(runner), bo, bo, a.threads, &engine));
    if (!clips.back()->has_text())
      std::fprintf(stderr, "serve: %s: text endpoints disabled: %s\n", named[i].first.c_str(),
                   clips.back()->text_error().c_str());
  }
  serve::ClipService& clip = *clips.front();
  serve::ServerModels m;
  m.clip = &clip;
  m.clip_name = named.front().first;
  for (size_t i = 0; i < named.size(); ++i) m.clips.push_back({named[i].first, clips[i].get()});
  if (idx) m.index = idx.get();
  if (live) m.live = live.get();
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
    if (!a.classifier_labels.empty()) vit->cfg.class_names = read_label_file(a.classifier_labels, vit->cfg.num_classes);
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
  so.allowed_hosts = a.allowed_hosts;
  so.max_connections = a.max_connections;
  so.max_per_client = a.max_client_connections;
  if (!a.api_key_file.empty()) so.api_keys = std::make_shared<serve::ApiKeys>(serve::ApiKeys::load(a.api_key_file));
  so.tls_cert = a.tls_cert;
  so.tls_key = a.tls_key;
  serve::ApiServer server(m, so);
  const int port = server.bind(a.host, a.port);
  if (!a.port_file.empty()) {
    std::string tmp = a.port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), a.port_file.c_str());
  }
  if (live)
    std::printf("live index %s: %lld items, %lld log records\n", a.live_index.c_str(), (long long)live->stats().count,
                (long long)live->stats().wal_records);
  std::string names;
  for (auto& [n, p] : named) names += (names.empty() ? "" : ", ") + n;
  std::printf("serving %s on %s://%s:%d/ (text %s, index %s, vqa %s, caption %s, batch <= %d, wait <= %.1f ms%s)\n",
              names.c_str(), a.tls_cert.empty() ? "http" : "https", a.host.c_str(), port, clip.has_text() ? "on" : "off",
              idx ? (std::to_string(idx->size()) + " images").c_str() : "none", vqa ? vqa->name().c_str() : "none",
              cap ? cap->name().c_str() : "none", a.max_batch, a.max_wait_ms,
              so.api_keys ? (", " + plural(int64_t(so.api_keys->size()), "API key")).c_str() : "");
  std::fflush(stdout);
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    while (!done && !stop_signal()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (int sig = stop_signal()) {
      if (a.drain_s > 0) {
        // /healthz answers 503 while requests are still served: a balancer's checks take this
        // replica out before its connections close (docs/DEPLOYMENT.md).
        std::fprintf(stderr, "serve: signal %d, draining for %g s, then stopping\n", sig, a.drain_s);
        server.drain();
        std::this_thread::sleep_for(std::chrono::duration<double>(a.drain_s));
      } else {
        std::fprintf(stderr, "serve: signal %d, stopping\n", sig);
      }
    }
    server.stop();
  });
  server.run();
  done = true;  // run() also returns if the listener fails
  waiter.join();
  return 0;
}

}  // namespace

void add_serve_commands(Cli& c) {
  auto sa = std::make_shared<ServeArgs>();
  auto* sv = c.app->add_subcommand("serve", "HTTP/JSON API and web page: CLIP (embeddings, zero-shot, search), VQA, captions");
  sv->add_option("--model", sa->models,
                 "CLIP or SigLIP model: a .safetensors file, a run folder or a Hugging Face folder; NAME=PATH serves "
                 "it under NAME (default: the file or folder name). Repeatable: one model per --model; requests pick "
                 "one by their \"model\" field, the first is the default (and the --index's)")
      ->required()
      ->allow_extra_args(false);
  add_vocab_option(sv, &sa->vocab);
  add_model_option(sv, &sa->vqa, "VQA", "--vqa")
      ->description("VQA model for /v1/vqa: a .safetensors file, a run folder or a Hugging Face folder (default: none)");
  add_model_option(sv, &sa->caption, "captioning", "--caption")
      ->description("captioning model for /v1/caption: a .safetensors file, a run folder or a Hugging Face folder "
                    "(default: none)");
  add_model_option(sv, &sa->classifier, "ViT", "--classifier")
      ->description("ViT classifier for /v1/classify: a .safetensors file, a run folder or a Hugging Face folder "
                    "(default: none)");
  sv->add_option("--classifier-labels", sa->classifier_labels,
                 "class names of --classifier, one per line in class order, as `mmkit classify --labels` (default: "
                 "the names stored in the model, else indices)");
  sv->add_option("--index", sa->index, "index folder from `mmkit index build`, built with --model (/v1/search; default: none)");
  sv->add_option("--live-index", sa->live_index,
                 "live index folder for /v1/index/... (add, update, remove, filtered search; created for --model if "
                 "missing; docs/LIVE_INDEX.md; default: none)");
  sv->add_option("--compact-every", sa->compact_every, "compact the live index's log into its snapshot after this many records (0: only when asked)")
      ->capture_default_str();
  sv->add_option("--host", sa->host, "address to listen on (loopback by default)")->capture_default_str();
  sv->add_option("--port", sa->port, "port (0: any free port; see --port-file)")->capture_default_str();
  sv->add_option("--port-file", sa->port_file, "write the port listened on to this file (default: none)");
  sv->add_option("--max-batch", sa->max_batch, "largest batch of the dynamic batcher")->capture_default_str();
  sv->add_option("--max-wait-ms", sa->max_wait_ms, "longest a request waits for its batch to fill")->capture_default_str();
  sv->add_option("--http-threads", sa->http_threads, "connections served at once")->capture_default_str();
  sv->add_option("--request-timeout", sa->request_timeout_s,
                 "seconds a request's bytes may take to arrive (slower clients get 408)")->capture_default_str();
  add_repeatable(sv, "--allowed-host", &sa->allowed_hosts,
                 "a Host name clients may use besides IP addresses and localhost ('*': any; default: none). "
                 "Names not listed are refused so that a DNS-rebinding web page cannot reach the server");
  sv->add_option("--max-connections", sa->max_connections, "open connections at once")->capture_default_str();
  sv->add_option("--max-client-connections", sa->max_client_connections, "open connections at once from one address")
      ->capture_default_str();
  sv->add_option("--api-key-file", sa->api_key_file,
                 "file of API keys, one per line ('#' comments and blank lines ignored): every route but /healthz then "
                 "wants 'Authorization: Bearer <key>' (default: none, no keys asked)");
  sv->add_option("--drain-seconds", sa->drain_s,
                 "on SIGTERM/SIGINT, answer /healthz with 503 for this long while still serving, then stop: behind a "
                 "load balancer, longer than its health-check interval times its fall count")
      ->capture_default_str();
  sv->add_option("--tls-cert", sa->tls_cert, "PEM certificate (chain): serve HTTPS only, with --tls-key (default: none, plain HTTP)");
  sv->add_option("--tls-key", sa->tls_key, "PEM private key of --tls-cert, unencrypted (default: none)");
  add_threads_option(sv, &sa->threads);
  sv->add_option("--max-body-mb", sa->max_body_mb, "largest request body")->capture_default_str();
  sv->add_option("--max-image-pixels", sa->limits.max_image_pixels, "largest image (width x height)")->capture_default_str();
  sv->add_option("--max-text-bytes", sa->limits.max_text_bytes, "longest text")->capture_default_str();
  sv->add_option("--max-beam", sa->limits.max_beam, "widest beam /v1/caption accepts")->capture_default_str();
  c.on(sv, sa, run_serve);
}

}  // namespace mmkit::cli
