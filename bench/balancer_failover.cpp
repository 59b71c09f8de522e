// Two `mmkit serve` replicas behind HAProxy (Debian haproxy) on loopback, and a
// load run during which replicas are stopped and restarted: every request must
// succeed (issue #20, acceptance 4). docs/DEPLOYMENT.md explains the balancer's
// configuration, which this program writes (balancer_config below).
//
//   build/balancer_failover --model clip.safetensors [--requests 500] [--concurrency 8]
//                           [--cycles 2] [--drain 0.5] [--mode text|image] [--mmkit build/mmkit]
//                           [--haproxy haproxy]
//
// 1. Replicas A and B: `mmkit serve --model M --port 0` (their ports from --port-file), then
//    HAProxy in the foreground on a free loopback port, round robin over A and B, health checks
//    on /healthz every 100 ms, and retries: a request whose connection is refused, reset or
//    answered with nothing (a replica going away) is sent again to the other replica.
// 2. C client threads, each with one keep-alive connection to HAProxy, POST /v1/embeddings (one
//    text or one 64x64 PNG each) back to back until the end. Meanwhile: --requests answered, then
//    `cycles` times (A, B, A, ...): SIGTERM one replica (started with --drain-seconds: /healthz
//    says 503 while it still serves, then it stops accepting, finishes what it holds and exits),
//    wait for its exit, start it again on the same port, wait until it answers /healthz, and let
//    another --requests be answered. Then the clients stop.
// 3. Reports requests answered 200, failures (transport errors and any other status: with a
//    working balancer there are none), and how many requests each replica served in its last
//    life (its /metrics): both must have served some. Exit status 1 if anything failed.
// Bounded: every client has 60 s timeouts; every wait for a process has a deadline.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "load_client_util.h"
#include "mmkit/serve/request_limits.h"

using namespace mmkit;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Child {
  pid_t pid = 0;
  int port = 0;
};

std::vector<pid_t> g_children;
void stop_children() {
  for (pid_t p : g_children)
    if (p > 0) ::kill(p, SIGTERM);
  for (pid_t p : g_children)
    if (p > 0) ::waitpid(p, nullptr, 0);
  g_children.clear();
}

// Waits for a child that exits or was told to, and forgets it (a reaped pid may be reused).
void reap(pid_t pid, int options = 0) {
  if (::waitpid(pid, nullptr, options) == pid) g_children.erase(std::find(g_children.begin(), g_children.end(), pid));
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::fflush(stdout);  // else the child's freopen writes our buffered lines into its log
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!log.empty() && std::freopen(log.c_str(), "a", stdout)) ::dup2(::fileno(stdout), 2);
    std::vector<char*> argv;
    std::vector<std::string> a = args;
    for (auto& x : a) argv.push_back(x.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::perror(("exec " + args[0]).c_str());
    _exit(127);
  }
  g_children.push_back(pid);
  return pid;
}

bool healthy(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(5, 0);
  auto r = c.Get("/healthz");
  return r && r->status == 200;
}

bool wait_healthy(int port, pid_t pid, double seconds) {
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < until) {
    if (healthy(port)) return true;
    if (pid > 0 && std::find(g_children.begin(), g_children.end(), pid) != g_children.end() &&
        ::waitpid(pid, nullptr, WNOHANG) == pid) {
      g_children.erase(std::find(g_children.begin(), g_children.end(), pid));
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// A replica on `port` (0: any free port, read back from its port file).
Child start_replica(const std::string& mmkit, const std::string& model, const std::string& dir, const std::string& name,
                    int port, double drain) {
  const std::string port_file = dir + "/" + name + ".port";
  std::remove(port_file.c_str());
  Child c;
  c.pid = spawn({mmkit, "serve", "--model", model, "--host", "127.0.0.1", "--port", std::to_string(port), "--port-file",
                 port_file, "--max-batch", "8", "--max-wait-ms", "2", "--drain-seconds", std::to_string(drain)},
                dir + "/" + name + ".log");
  for (int i = 0; i < 1200 && !c.port; ++i) {
    std::ifstream f(port_file);
    if (!(f >> c.port)) c.port = 0;
    if (!c.port) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    if (::waitpid(c.pid, nullptr, WNOHANG) == c.pid) {
      g_children.erase(std::find(g_children.begin(), g_children.end(), c.pid));
      return {};
    }
  }
  return c;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// HAProxy's configuration (docs/DEPLOYMENT.md explains each line).
std::string balancer_config(int port, int a, int b) {
  return "global\n"
         "  maxconn 1024\n"
         "  log stdout format raw local0\n"
         "defaults\n"
         "  mode http\n"
         "  log global\n"
         "  option httplog\n"
         "  timeout connect 2s\n"
         "  timeout client 60s\n"
         "  timeout server 60s\n"
         "  retries 3\n"
         "  option redispatch 1\n"
         "  retry-on conn-failure empty-response response-timeout 503\n"
         "frontend api\n"
         "  bind 127.0.0.1:" + std::to_string(port) + "\n"
         "  default_backend replicas\n"
         "backend replicas\n"
         "  balance roundrobin\n"
         "  option httpchk GET /healthz\n"
         "  http-check expect status 200\n"
         "  default-server inter 100ms fall 1 rise 1\n"
         "  server a 127.0.0.1:" + std::to_string(a) + " check\n"
         "  server b 127.0.0.1:" + std::to_string(b) + " check\n";
}

// Requests the replica answered 200 on /v1/embeddings since it started (its /metrics).
long served(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(10, 0);
  auto r = c.Get("/metrics");
  if (!r) return -1;
  const std::string key = "mmkit_requests_total{route=\"/v1/embeddings\",status=\"200\"} ";
  const size_t p = r->body.find(key);
  return p == std::string::npos ? 0 : std::atol(r->body.c_str() + p + key.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, mmkit = bench::self_dir() + "/mmkit", haproxy = "haproxy", mode = "text";
  int64_t requests = 500;
  int concurrency = 8, cycles = 2;
  double drain = 0.5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") model = next();
    else if (a == "--mmkit") mmkit = next();
    else if (a == "--haproxy") haproxy = next();
    else if (a == "--requests") requests = std::stoll(next());
    else if (a == "--concurrency") concurrency = std::stoi(next());
    else if (a == "--cycles") cycles = std::stoi(next());
    else if (a == "--mode") mode = next();
    else if (a == "--drain") drain = std::stod(next());
    else {
      std::fprintf(stderr, "unknown option %s (see the comment at the top of bench/balancer_failover.cpp)\n", a.c_str());
      return 2;
    }
  }
  if (model.empty() || (mode != "text" && mode != "image") || requests < 1 || concurrency < 1 || cycles < 0) {
    std::fprintf(stderr, "usage: balancer_failover --model clip.safetensors [--requests N] [--concurrency C] "
                         "[--cycles K] [--mode text|image]\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::atexit(stop_children);
  char tmpl[] = "/tmp/mmkit_failover_XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  {
    std::ifstream f("/proc/loadavg");
    std::string s;
    std::getline(f, s);
    std::printf("balancer_failover: %lld requests before and after each of %d stop/restart cycles, concurrency %d, "
                "drain %.2f s, mode %s; load average %s\n",
                (long long)requests, cycles, concurrency, drain, mode.c_str(), s.c_str());
  }

  Child rep[2] = {start_replica(mmkit, model, dir, "a", 0, drain), start_replica(mmkit, model, dir, "b", 0, drain)};
  if (!rep[0].port || !rep[1].port) {
    std::fprintf(stderr, "balancer_failover: a replica did not start (logs in %s)\n", dir.c_str());
    return 1;
  }
  const int lb_port = free_port();
  std::ofstream(dir + "/haproxy.cfg") << balancer_config(lb_port, rep[0].port, rep[1].port);
  const pid_t lb = spawn({haproxy, "-f", dir + "/haproxy.cfg", "-db"}, dir + "/haproxy.log");
  if (!wait_healthy(lb_port, lb, 30)) {
    std::fprintf(stderr, "balancer_failover: HAProxy did not answer on port %d (is Debian's haproxy installed? log: %s/haproxy.log)\n",
                 lb_port, dir.c_str());
    return 1;
  }
  std::printf("replicas on 127.0.0.1:%d and :%d, HAProxy on :%d\n", rep[0].port, rep[1].port, lb_port);

  std::vector<std::string> bodies;
  for (int i = 0; i < 16; ++i) {
    if (mode == "text") {
      bodies.push_back(json{{"texts", {"a photo of shape " + std::to_string(i)}}}.dump());
    } else {
      std::vector<uint8_t> png = encode_png(bench::test_image(i, 64));
      bodies.push_back(json{{"images", {serve::encode_base64(png.data(), png.size())}}}.dump());
    }
  }
  std::atomic<int64_t> done{0}, ok{0}, failed{0};
  std::atomic<bool> finish{false};
  std::vector<std::string> first_failures;
  std::mutex fail_mu;
  const auto t0 = Clock::now();
  std::vector<std::thread> clients;
  for (int t = 0; t < concurrency; ++t)
    clients.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", lb_port);
      c.set_keep_alive(true);
      c.set_connection_timeout(10, 0);
      c.set_read_timeout(60, 0);
      for (int64_t k = t; !finish; k += concurrency) {
        auto r = c.Post("/v1/embeddings", bodies[size_t(k + t) % bodies.size()], "application/json");
        if (r && r->status == 200) {
          ++ok;
        } else {
          ++failed;
          std::lock_guard<std::mutex> l(fail_mu);
          if (first_failures.size() < 5)
            first_failures.push_back(r ? "HTTP " + std::to_string(r->status) + ": " + r->body.substr(0, 200)
                                       : "transport: " + httplib::to_string(r.error()));
        }
        ++done;
      }
    });

  // --requests answered before the first cycle and after each.
  auto answered = [&](int64_t n) {
    const int64_t at = done + n;
    while (done < at) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  };
  answered(requests);
  int restarted = 0;
  for (int cyc = 0; cyc < cycles; ++cyc) {
    Child& r = rep[cyc % 2];
    const auto s0 = Clock::now();
    const int64_t done_at_stop = done;
    ::kill(r.pid, SIGTERM);
    reap(r.pid);
    const double stop_s = std::chrono::duration<double>(Clock::now() - s0).count();
    Child again = start_replica(mmkit, model, dir, cyc % 2 ? "b" : "a", r.port, drain);
    if (!again.port || !wait_healthy(again.port, again.pid, 30)) {
      std::fprintf(stderr, "balancer_failover: replica %c did not restart on port %d (log in %s)\n", cyc % 2 ? 'b' : 'a',
                   r.port, dir.c_str());
      return 1;
    }
    r = again;
    ++restarted;
    std::printf("cycle %d: replica %c sent SIGTERM at %lld requests done (exited after %.2f s), back after %.2f s at %lld done\n",
                cyc + 1, cyc % 2 ? 'b' : 'a', (long long)done_at_stop, stop_s,
                std::chrono::duration<double>(Clock::now() - s0).count(), (long long)done.load());
    std::fflush(stdout);
    answered(requests);
  }
  finish = true;
  for (auto& t : clients) t.join();
  const int64_t total = done;
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const long sa = served(rep[0].port), sb = served(rep[1].port);
  std::printf("%lld requests in %.2f s (%.1f/s): %lld answered 200, %lld failed; %d replica restarts; "
              "since their last start replica a served %ld, b %ld\n",
              (long long)total, secs, double(total) / secs, (long long)ok.load(), (long long)failed.load(), restarted,
              sa, sb);
  for (auto& f : first_failures) std::printf("  failure: %s\n", f.c_str());
  stop_children();
  const bool pass = failed == 0 && ok == total && restarted == cycles && sa > 0 && sb > 0;
  if (pass) {
    for (const char* f : {"/a.port", "/b.port", "/a.log", "/b.log", "/haproxy.cfg", "/haproxy.log"}) std::remove((dir + f).c_str());
    ::rmdir(dir.c_str());
  }
  std::printf("%s\n", pass ? "PASS: no request failed" : ("FAIL (logs in " + dir + ")").c_str());
  return pass ? 0 : 1;
}
