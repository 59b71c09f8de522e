// Mixed good/bad load against `mmkit serve` on loopback (issue #9, acceptance 4): the server must
// keep answering good requests correctly while hostile ones are mixed in, never crash, and not grow.
//
//   build/serve_fault_load [--model clip.safetensors] [--duration 300] [--warmup 30]
//                          [--concurrency 4] [--bad-fraction 0.3] [--slow-clients 1]
//                          [--http-threads 16] [--seed 1] [--mmkit build/mmkit] [--out result.json]
//                          [--max-rss-growth 0.10] [--min-cosine 0.9999] [--bad-workers 0]
//
// 1. The model: --model, else a tiny seeded CLIP with a learned BPE tokenizer written by
//    `mmkit init-clip --preset tiny --bpe-merges 200 --seed 1` into a temporary folder.
// 2. Offline reference: ClipRunner in this process embeds 32 texts and 8 images (normalised), the
//    library path the server must agree with.
// 3. The server: `mmkit serve` as a child on 127.0.0.1 with the limits of hostile_requests.h
//    (body 2 MB, text 1000 bytes, image 1 Mpixel, request timeout 2 s).
// 4. --concurrency workers until --duration seconds (bounded): each request is bad with probability
//    --bad-fraction (a hostile kind from hostile_requests.h, uniformly, on its own connection; it
//    must get exactly its expected 4xx status, JSON error code and message), else good: POST
//    /v1/embeddings on a keep-alive connection with one text, one image, or one of each, whose
//    embeddings must have cosine >= --min-cosine with the offline ones. --slow-clients threads
//    send requests one header byte per 50 ms or stall their body, and must be cut with 408.
//    Every second /healthz must answer ok and the process must be alive.
//    With --bad-workers N > 0 the --concurrency workers send only good requests and N more send
//    only hostile ones, so that good throughput (good_per_s) can be compared with a run without
//    them (--bad-workers 0 --bad-fraction 0 --slow-clients 0; issue #23 acceptance 4).
// 5. RSS of the server (VmRSS, /proc/PID/status) after --warmup seconds and at the end, each with
//    the load paused and the server idle for 0.5 s; growth must stay under --max-rss-growth.
//    Then SIGTERM: the server must exit 0.
// Prints requests per kind and a PASS/FAIL verdict; exit status 0 only on PASS.
#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>

#include "hostile_requests.h"
#include "mmkit/core/rng.h"
#include "mmkit/infer/clip_runner.h"
#include "mmkit/image/canvas.h"
#include "mmkit/util/progress.h"
#include "load_client_util.h"

using namespace mmkit;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

using mmkit::bench::proc_kb;
using mmkit::bench::self_dir;
using mmkit::bench::test_image;

namespace {

double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::string text_of(int i) {
  static const char* w[] = {"red", "green", "blue", "circle", "square", "bar", "photo", "dark", "cat", "two"};
  return std::string("a photo of a ") + w[i % 10] + " " + w[(i / 10) % 10];
}

double cosine(const std::vector<float>& a, const float* b, size_t n) {
  if (a.size() != n) return -2;
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : -2;
}

struct Tally {
  int64_t sent = 0, expected = 0;
  std::string first_failure;
};

pid_t g_server = 0;
void stop_server() {
  if (g_server > 0) {
    ::kill(g_server, SIGKILL);
    ::waitpid(g_server, nullptr, 0);
    g_server = 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, mmkit_bin = self_dir() + "/mmkit", out;
  double duration = 300, warmup = 30, bad_fraction = 0.3, max_rss_growth = 0.10, min_cosine = 0.9999;
  int concurrency = 4, slow_clients = 1, http_threads = 16, bad_workers = 0;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "serve_fault_load: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") model = next();
    else if (a == "--mmkit") mmkit_bin = next();
    else if (a == "--duration") duration = std::stod(next());
    else if (a == "--warmup") warmup = std::stod(next());
    else if (a == "--concurrency") concurrency = std::stoi(next());
    else if (a == "--bad-fraction") bad_fraction = std::stod(next());
    else if (a == "--slow-clients") slow_clients = std::stoi(next());
    else if (a == "--http-threads") http_threads = std::stoi(next());
    else if (a == "--seed") seed = std::stoull(next());
    else if (a == "--max-rss-growth") max_rss_growth = std::stod(next());
    else if (a == "--min-cosine") min_cosine = std::stod(next());
    else if (a == "--out") out = next();
    else if (a == "--bad-workers") bad_workers = std::stoi(next());
    else {
      std::fprintf(stderr, "serve_fault_load: unknown option %s (see the comment at the top of bench/serve_fault_load.cpp)\n", a.c_str());
      return 2;
    }
  }
  if (warmup >= duration) warmup = duration / 3;
  char tmpl[] = "/tmp/mmkit_fault_load_XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);

  // 1. The model.
  if (model.empty()) {
    model = dir + "/clip_tiny.safetensors";
    std::string cmd = mmkit_bin + " init-clip --preset tiny --bpe-merges 200 --seed 1 --out " + model + " > /dev/null";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "serve_fault_load: %s failed\n", cmd.c_str());
      return 1;
    }
  }
  // 2. Offline reference embeddings.
  std::vector<std::string> texts;
  std::vector<std::string> image_b64;
  Tensor ref_text, ref_img;
  int64_t E = 0;
  {
    ClipRunner r = ClipRunner::open(model);
    for (int i = 0; i < 32; ++i) texts.push_back(text_of(i));
    std::vector<Image> imgs;
    for (int i = 0; i < 8; ++i) {
      imgs.push_back(test_image(i, 48 + 8 * i));
      std::vector<uint8_t> png = encode_png(imgs.back());
      image_b64.push_back(serve::encode_base64(png.data(), png.size()));
    }
    ref_text = r.embed_texts(texts, true);
    ref_img = r.embed_images(imgs, true);
    E = r.embed_dim();
  }

  // 3. The server.
  hostile::HostileLimits L;
  const std::vector<hostile::HostileRequest> kinds = hostile::hostile_requests(L);
  const std::string port_file = dir + "/port", log_file = dir + "/serve.log";
  g_server = ::fork();
  if (g_server == 0) {
    if (!std::freopen(log_file.c_str(), "w", stderr)) _exit(126);
    const std::string mb = std::to_string(double(L.max_body_bytes) / (1 << 20)), tb = std::to_string(L.max_text_bytes),
                      px = std::to_string(L.max_image_pixels), rt = std::to_string(L.request_timeout_s),
                      ht = std::to_string(http_threads);
    ::execl(mmkit_bin.c_str(), mmkit_bin.c_str(), "serve", "--model", model.c_str(), "--host", "127.0.0.1", "--port", "0",
            "--port-file", port_file.c_str(), "--max-body-mb", mb.c_str(), "--max-text-bytes", tb.c_str(),
            "--max-image-pixels", px.c_str(), "--request-timeout", rt.c_str(), "--http-threads", ht.c_str(),
            (char*)nullptr);
    std::perror("exec mmkit serve");
    _exit(127);
  }
  std::atexit(stop_server);
  int port = 0;
  for (int i = 0; i < 1200 && !port; ++i) {
    std::ifstream f(port_file);
    if (!(f >> port)) port = 0;
    if (!port && ::waitpid(g_server, nullptr, WNOHANG) == g_server) {
      g_server = 0;
      std::fprintf(stderr, "serve_fault_load: the server exited during start-up (log %s)\n", log_file.c_str());
      return 1;
    }
    if (!port) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!port) {
    std::fprintf(stderr, "serve_fault_load: no port from the server after 60 s\n");
    return 1;
  }
  std::printf("serve_fault_load: server pid %d on 127.0.0.1:%d, model %s (%lld-d), %d workers, %.0f%% bad, %d slow "
              "clients, %.0f s (warm-up %.0f s)\n",
              int(g_server), port, model.c_str(), (long long)E, concurrency, bad_fraction * 100, slow_clients, duration,
              warmup);
  std::fflush(stdout);

  // 4. The load.
  std::mutex mu;
  std::map<std::string, Tally> tally;  // by kind: good_text, good_image, good_both, the hostile names, slow_*
  double worst_cos = 1;
  int64_t transport_errors = 0;
  auto record = [&](const std::string& kind, bool ok, const std::string& why) {
    std::lock_guard<std::mutex> l(mu);
    Tally& t = tally[kind];
    ++t.sent;
    if (ok) ++t.expected;
    else if (t.first_failure.empty()) t.first_failure = why;
  };
  const auto t0 = Clock::now();
  auto running = [&] { return secs(t0, Clock::now()) < duration; };
  // The RSS samples that are compared are taken with the load paused: requests in flight hold
  // multi-MB buffers (2 MB bodies, 1 MB texts, decoded images) that swing RSS by ~30% from one
  // instant to the next, which would drown a leak's trend in noise.
  std::atomic<bool> paused{false};
  std::atomic<int> idle{0};
  auto pause_point = [&] {
    if (!paused) return;
    ++idle;
    while (paused && running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    --idle;
  };
  std::vector<std::thread> ts;
  for (int w = 0; w < concurrency + bad_workers; ++w)
    ts.emplace_back([&, w] {
      const bool bad_only = w >= concurrency, mixed = bad_workers == 0;
      std::mt19937_64 rng(seed * 1000 + uint64_t(w));
      std::uniform_real_distribution<double> u(0, 1);
      httplib::Client c("127.0.0.1", port);
      c.set_keep_alive(true);
      c.set_read_timeout(120, 0);
      while (running()) {
        pause_point();
        if (bad_only || (mixed && u(rng) < bad_fraction)) {
          const hostile::HostileRequest& k = kinds[size_t(rng() % kinds.size())];
          hostile::HttpReply r = hostile::raw_http(port, k.bytes, 0, 15);
          std::string why;
          const bool ok = hostile::matches(r, k, &why);
          record(k.name, ok, why);
          continue;
        }
        const int form = int(rng() % 3);  // 0 text, 1 image, 2 both
        const int ti = int(rng() % texts.size()), ii = int(rng() % image_b64.size());
        json body = json::object();
        if (form != 1) body["texts"] = {texts[size_t(ti)]};
        if (form != 0) body["images"] = {image_b64[size_t(ii)]};
        const std::string kind = form == 0 ? "good_text" : form == 1 ? "good_image" : "good_text+image";
        auto r = c.Post("/v1/embeddings", body.dump(), "application/json");
        if (!r || r->status != 200) {
          std::lock_guard<std::mutex> l(mu);
          ++transport_errors;
          Tally& t = tally[kind];
          ++t.sent;
          if (t.first_failure.empty())
            t.first_failure = r ? "status " + std::to_string(r->status) + ": " + r->body.substr(0, 200)
                                : "transport error " + httplib::to_string(r.error());
          continue;
        }
        json j = json::parse(r->body, nullptr, false);
        bool ok = j.is_object();
        double worst = 1;
        std::string why = "bad JSON";
        if (ok) {
          const json& te = j["text_embeddings"];
          const json& ie = j["image_embeddings"];
          ok = te.size() == (form != 1 ? 1u : 0u) && ie.size() == (form != 0 ? 1u : 0u);
          why = "wrong number of embeddings: " + r->body.substr(0, 200);
          if (ok && form != 1) worst = std::min(worst, cosine(te[0].get<std::vector<float>>(), ref_text.f32() + ti * E, size_t(E)));
          if (ok && form != 0) worst = std::min(worst, cosine(ie[0].get<std::vector<float>>(), ref_img.f32() + ii * E, size_t(E)));
          if (ok && worst < min_cosine) {
            ok = false;
            why = "cosine " + std::to_string(worst) + " with the offline embedding";
          }
        }
        {
          std::lock_guard<std::mutex> l(mu);
          worst_cos = std::min(worst_cos, worst);
        }
        record(kind, ok, why);
      }
    });
  for (int s = 0; s < slow_clients; ++s)
    ts.emplace_back([&, s] {
      const std::string req = hostile::slow_request();
      const std::string msg = "not received within the " + [&] {
        char b[32];
        std::snprintf(b, sizeof b, "%g", L.request_timeout_s);
        return std::string(b);
      }() + " s limit";
      for (int n = s; running(); ++n) {
        pause_point();
        const bool headers = n % 2 == 0;
        hostile::HttpReply r = headers ? hostile::raw_http(port, req, 50, 60)
                                       : hostile::raw_http(port, req, 0, 60, req.size() - 10);
        std::string why;
        record(headers ? "slow_headers" : "stalled_body", hostile::matches(r, 408, "request_timeout", {msg}, &why), why);
      }
    });

  // Monitor: liveness and /healthz every second, RSS after warm-up and at the end.
  long rss_warm = -1, rss_end = -1, rss_max = 0;
  int64_t health_checks = 0, health_failures = 0;
  bool died = false;
  Progress bar("fault load", int64_t(duration), stdout);
  while (running()) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const double t = secs(t0, Clock::now());
    if (::waitpid(g_server, nullptr, WNOHANG) == g_server) {
      died = true;
      g_server = 0;
      break;
    }
    hostile::HttpReply h = hostile::raw_http(port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 0, 30);
    ++health_checks;
    if (h.status != 200 || h.json().value("status", "") != "ok") ++health_failures;
    const long rss = proc_kb(g_server, "VmRSS:");
    rss_max = std::max(rss_max, rss);
    if (rss_warm < 0 && t >= warmup) {  // pause, let the server go idle, sample, resume
      paused = true;
      const int workers = concurrency + bad_workers + slow_clients;
      while (idle < workers && running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      rss_warm = proc_kb(g_server, "VmRSS:");
      paused = false;
    }
    int64_t n = 0;
    {
      std::lock_guard<std::mutex> l(mu);
      for (auto& [k, v] : tally) n += v.sent;
    }
    bar.update(std::min<int64_t>(int64_t(t), int64_t(duration)), std::to_string(n) + " requests, RSS " +
                                                                   std::to_string(rss / 1024) + " MB");
  }
  for (auto& t : ts) t.join();
  bar.finish();
  const double elapsed = secs(t0, Clock::now());
  bool alive_end = !died && g_server > 0 && ::waitpid(g_server, nullptr, WNOHANG) == 0;
  hostile::HttpReply h = alive_end ? hostile::raw_http(port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 0, 30)
                                   : hostile::HttpReply{};
  const bool healthy_end = h.status == 200 && h.json().value("status", "") == "ok";
  if (alive_end) {  // workers joined: idle as at the warm-up sample
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    rss_end = proc_kb(g_server, "VmRSS:");
  }
  const double growth = rss_warm > 0 && rss_end > 0 ? double(rss_end - rss_warm) / double(rss_warm) : 1e9;
  int exit_status = -1;
  if (alive_end) {
    ::kill(g_server, SIGTERM);
    int st = 0;
    ::waitpid(g_server, &st, 0);
    exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    g_server = 0;
  }

  // 5. Report.
  int64_t good = 0, good_ok = 0, bad = 0, bad_ok = 0;
  std::printf("\n%-22s %9s %11s %s\n", "kind", "requests", "as expected", "first failure");
  json jk = json::object();
  for (auto& [k, v] : tally) {
    std::printf("%-22s %9lld %11lld %s\n", k.c_str(), (long long)v.sent, (long long)v.expected, v.first_failure.c_str());
    jk[k] = {{"requests", v.sent}, {"as_expected", v.expected}, {"first_failure", v.first_failure}};
    if (k.rfind("good_", 0) == 0) good += v.sent, good_ok += v.expected;
    else bad += v.sent, bad_ok += v.expected;
  }
  std::printf("good: %lld requests, %lld correct (worst cosine %.7f, %lld errors); bad: %lld requests, %lld answered as "
              "expected\n",
              (long long)good, (long long)good_ok, worst_cos, (long long)transport_errors, (long long)bad,
              (long long)bad_ok);
  std::printf("server: alive at the end %s, /healthz %s (%lld checks, %lld failed), RSS (idle) %ld kB after warm-up, %ld kB "
              "at the end (%+.1f%%; max under load %ld kB), SIGTERM exit %d\n",
              alive_end ? "yes" : "NO", healthy_end ? "ok" : "NOT ok", (long long)health_checks,
              (long long)health_failures, rss_warm, rss_end, growth * 100, rss_max, exit_status);
  const bool bad_expected = bad_workers > 0 || bad_fraction > 0 || slow_clients > 0;
  const bool pass = alive_end && healthy_end && health_failures == 0 && good > 0 && good_ok == good &&
                    (bad > 0 || !bad_expected) && bad_ok == bad && growth < max_rss_growth && exit_status == 0;
  std::printf("%s: %.0f s, %lld requests, good %.1f/s\n", pass ? "PASS" : "FAIL", elapsed, (long long)(good + bad),
              double(good) / elapsed);
  if (!out.empty()) {
    json r = {{"pass", pass},        {"seconds", elapsed},         {"kinds", jk},
              {"good", good},        {"good_correct", good_ok},    {"bad", bad},
              {"bad_as_expected", bad_ok}, {"worst_cosine", worst_cos}, {"alive", alive_end},
              {"healthz_ok", healthy_end}, {"health_checks", health_checks}, {"health_failures", health_failures},
              {"rss_warm_kb", rss_warm}, {"rss_end_kb", rss_end}, {"rss_max_kb", rss_max}, {"rss_growth", growth},
              {"exit_status", exit_status}, {"concurrency", concurrency}, {"bad_fraction", bad_fraction},
              {"bad_workers", bad_workers}, {"good_per_s", double(good) / elapsed}};
    std::ofstream(out) << r.dump(2) << "\n";
  }
  if (!pass) std::printf("server log: %s\n", log_file.c_str());
  else std::system(("rm -rf '" + dir + "'").c_str());
  return pass ? 0 : 1;
}
