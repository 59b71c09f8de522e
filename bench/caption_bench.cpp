// Caption generation with and without the KV cache (issue #6, acceptance 2).
//
//   build/caption_bench [--tokens 50] [--reps 7] [--threads 0] [--beam 1] [--images 1] [--model RUN_DIR]
//
// Generates exactly --tokens tokens (EOS does not stop it) for --images images, three ways:
//   cached   infer/caption_generate.h with its KV cache: one token per row per step; self-attention
//            keys/values appended to the cache, image keys/values projected once per image
//   naive    the same kernels re-running the whole prefix every step (GenerateOptions::use_cache =
//            false): every step recomputes every position's projections, the causal attention over
//            the prefix and the image keys/values
//   graph    the naive loop through the training forward (caption_decoder_forward on the autograd
//            Graph, recording off), i.e. what generation costs without a dedicated inference path
// The image encoder runs once per image in all three and is timed separately. Without --model the
// model is random, shaped like the trained Sort-of-CLEVR captioner (docs/RESULTS.md): ViT 75/15,
// width 128, 3 layers; decoder width 128, 2 layers, 4 heads, MLP 256, vocabulary 49, 64 positions.
// Prints min and median over --reps runs and the ratios of medians; also checks that the three
// produce the same tokens (exit 1 otherwise).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mmkit/autograd/graph.h"
#include "mmkit/core/parallel.h"
#include "mmkit/core/rng.h"
#include "mmkit/infer/caption_generate.h"
#include "mmkit/ops/gemm.h"
#include "mmkit/train/caption_trainer.h"

using namespace mmkit;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

struct Stats {
  double min, median;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2]};
}

Captioner random_captioner() {
  CaptionerConfig c;
  c.vision.image_size = 75;
  c.vision.patch_size = 15;
  c.vision.channels = 3;
  c.vision.dim = 128;
  c.vision.depth = 3;
  c.vision.heads = 4;
  c.vision.mlp_dim = 256;
  c.vision.num_classes = 0;
  c.vision.norm_first = true;
  c.decoder.vocab_size = 49;
  c.decoder.dim = 128;
  c.decoder.depth = 2;
  c.decoder.heads = 4;
  c.decoder.mlp_dim = 256;
  c.decoder.max_len = 64;
  c.decoder.norm_first = true;
  Captioner m;
  m.init(c, 1);
  return m;
}

// Greedy through the autograd forward, full prefix every step.
std::vector<std::vector<int32_t>> graph_greedy(Captioner& m, const ImageMemory& mem, int64_t tokens) {
  const int64_t N = mem.n, M = mem.M, D = mem.D, V = m.cfg.decoder.vocab_size;
  std::vector<std::vector<int32_t>> seqs(size_t(N), std::vector<int32_t>{m.cfg.decoder.bos_id});
  Arena arena;
  Graph g(arena);
  g.grad_enabled = false;
  for (int64_t t = 0; t < tokens; ++t) {
    g.reset();
    const int64_t T = t + 1;
    Tensor ids = g.alloc(Shape{N, T}, DType::i32);
    for (int64_t i = 0; i < N; ++i) std::copy(seqs[size_t(i)].begin(), seqs[size_t(i)].end(), ids.ptr<int32_t>() + i * T);
    Tensor memory = Tensor::view(mem.memory.f32(), Shape{N, M, D}, DType::f32);
    const float* L = g.data(caption_decoder_forward(g, m.decoder, ids, g.constant(memory)));
    for (int64_t i = 0; i < N; ++i) {
      const float* l = L + (i * T + T - 1) * V;
      seqs[size_t(i)].push_back(int32_t(std::max_element(l, l + V) - l));
    }
  }
  for (auto& s : seqs) s.erase(s.begin());
  return seqs;
}

}  // namespace

int main(int argc, char** argv) {
  apply_default_wait_policy(argc, argv);
  int64_t tokens = 50, images = 1;
  int reps = 7, threads = 0, beam = 1;
  std::string model_dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--tokens") tokens = std::atoll(next().c_str());
    else if (a == "--reps") reps = std::atoi(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--beam") beam = std::atoi(next().c_str());
    else if (a == "--images") images = std::atoll(next().c_str());
    else if (a == "--model") model_dir = next();
    else {
      std::fprintf(stderr, "usage: caption_bench [--tokens N] [--reps N] [--threads N] [--beam K] [--images N] [--model RUN]\n");
      return 2;
    }
  }
  set_num_threads(threads);
  Captioner m;
  if (model_dir.empty()) {
    m = random_captioner();
  } else {
    m = std::move(load_captioner(model_dir).model);
  }
  const VitConfig& v = m.cfg.vision;
  const CaptionDecoderConfig& d = m.cfg.decoder;
  if (tokens > d.max_len) {
    std::fprintf(stderr, "--tokens %lld exceeds the model's %lld positions\n", (long long)tokens, (long long)d.max_len);
    return 2;
  }
  Tensor pixels = Tensor::empty(Shape{images, v.channels, v.image_size, v.image_size});
  Rng rng(3);
  for (int64_t i = 0; i < pixels.numel(); ++i) pixels.f32()[i] = rng.normal();

  std::printf("caption generation: %lld tokens, %lld image(s), beam %d, %d threads, GEMM %s\n", (long long)tokens,
              (long long)images, beam, num_threads(), ops::gemm_backend_name());
  std::printf("model: ViT %lld/%lld width %lld x %lld layers; decoder width %lld x %lld layers, %lld heads, MLP %lld, "
              "vocabulary %lld, %lld positions%s\n",
              (long long)v.image_size, (long long)v.patch_size, (long long)v.dim, (long long)v.depth, (long long)d.dim,
              (long long)d.depth, (long long)d.heads, (long long)d.mlp_dim, (long long)d.vocab_size,
              (long long)d.max_len, model_dir.empty() ? " (random weights)" : (" (" + model_dir + ")").c_str());

  GenerateOptions o;
  o.beam = beam;
  o.max_tokens = tokens;
  o.stop_at_eos = false;
  std::vector<double> t_enc, t_cached, t_naive, t_graph;
  std::vector<std::vector<int32_t>> first_cached;
  bool same = true;
  for (int r = 0; r < reps + 1; ++r) {  // run 0 warms up (allocations, oneDNN kernel generation)
    auto t0 = Clock::now();
    ImageMemory mem = encode_images(m, pixels);
    double enc = ms_since(t0);
    o.use_cache = true;
    t0 = Clock::now();
    auto cached = generate(m, mem, o);
    double c = ms_since(t0);
    o.use_cache = false;
    t0 = Clock::now();
    auto naive = generate(m, mem, o);
    double n = ms_since(t0);
    double gr = 0;
    std::vector<std::vector<int32_t>> graph;
    if (beam == 1) {
      t0 = Clock::now();
      graph = graph_greedy(m, mem, tokens);
      gr = ms_since(t0);
    }
    for (size_t i = 0; i < cached.size(); ++i) {
      same &= cached[i].tokens == naive[i].tokens && int64_t(cached[i].tokens.size()) == tokens;
      if (beam == 1) same &= cached[i].tokens == graph[i];
    }
    if (r == 0) continue;
    t_enc.push_back(enc);
    t_cached.push_back(c);
    t_naive.push_back(n);
    if (beam == 1) t_graph.push_back(gr);
  }
  Stats se = stats(t_enc), sc = stats(t_cached), sn = stats(t_naive);
  std::printf("\n%-44s %10s %10s %12s\n", "", "min ms", "median ms", "ms/token");
  std::printf("%-44s %10.2f %10.2f %12s\n", "image encoder (once per image)", se.min, se.median, "");
  std::printf("%-44s %10.2f %10.2f %12.3f\n", "cached (KV cache)", sc.min, sc.median, sc.median / double(tokens));
  std::printf("%-44s %10.2f %10.2f %12.3f\n", "naive (same kernels, full prefix each step)", sn.min, sn.median,
              sn.median / double(tokens));
  if (beam == 1) {
    Stats sg = stats(t_graph);
    std::printf("%-44s %10.2f %10.2f %12.3f\n", "graph (autograd forward, full prefix)", sg.min, sg.median,
                sg.median / double(tokens));
    std::printf("\nspeed-up of the cache (ratio of medians): %.1fx vs naive, %.1fx vs graph\n", sn.median / sc.median,
                sg.median / sc.median);
  } else {
    std::printf("\nspeed-up of the cache (ratio of medians): %.1fx vs naive\n", sn.median / sc.median);
  }
  std::printf("tokens identical across methods: %s\n", same ? "yes" : "NO");
  return same ? 0 : 1;
}
