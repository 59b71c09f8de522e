// httplib::Server behind an epoll connection loop, so that sockets cost threads
// only while a handler runs. httplib 0.11 gives each accepted connection a
// pool thread that blocks in recv/send: 64 silent sockets held all 64 threads
// (a new /healthz waited 22 s; with 500 it got no answer), a slow reader kept
// its thread past every deadline, and at the file-descriptor limit its accept
// loop spun at 99% of a core. Here one thread owns every socket (non-blocking,
// epoll): it reads a request until it is complete (head checked strictly by
// http_head.h before any body byte is read; body by Content-Length or chunked
// framing), then hands the complete bytes to a worker, which runs httplib's
// own parsing, routing and handlers (Server::process_request) on an in-memory
// stream and returns the response bytes; the loop writes them as the client
// takes them. Idle, slow-sending and slow-reading clients cost a socket and a
// buffer, no thread.
//
//   EventHttpServer s(limits);            // routes, error handler: as on httplib::Server
//   s.bind_to_any_port("127.0.0.1");  std::thread t([&] { s.serve(); });  ...  s.shutdown(); t.join();
//
// Deadlines (each closes the connection; the middle one answers 408 first):
//   idle_timeout_s      a new or kept-alive connection must start a request within it
//   request_timeout_s   a request's bytes must all arrive within it of its first byte
//   response_timeout_s  the client must take the whole response within it
// Caps: max_connections open, max_per_client from one address (at either cap the
// connection idle longest is closed to make room, else the new one gets 503),
// max_buffered_bytes of request bytes held at once (beyond it the loop stops
// reading bodies until handlers finish: TCP back-pressure, not memory). accept()
// failing for lack of descriptors pauses accepting for 100 ms and frees the
// longest-idle connection instead of spinning.
//
// HTTPS (set_tls): each connection's TLS runs in the same loop on its non-blocking
// socket (OpenSSL in the accept state; the handshake happens as the first reads
// do, under the idle deadline). A connection whose first byte is not a TLS
// handshake record (plain HTTP sent to the HTTPS port) gets a plain-text 400
// naming the problem and is closed; a failed handshake is closed. Either costs
// the loop one read, never a thread.
#pragma once
#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "http_head.h"

namespace mmkit::serve {

struct ConnectionLimits {
  int workers = 64;                 // threads running handlers (--http-threads)
  size_t max_connections = 4096;    // open at once (also kept below the descriptor limit)
  size_t max_per_client = 256;      // open at once from one remote address
  double idle_timeout_s = 30;
  double request_timeout_s = 30;
  double response_timeout_s = 30;
  size_t max_buffered_bytes = 256u << 20;  // request bytes held in the loop and in handlers
  size_t max_requests_per_connection = 100000;
  HeadPolicy head;                  // header limits, body limit, allowed hosts
};

struct ConnectionStats {
  int64_t open = 0, accepted = 0, evicted_idle = 0, refused_full = 0, accept_backoffs = 0;
  int64_t timed_out_idle = 0, timed_out_request = 0, timed_out_response = 0, refused_head = 0;
  int64_t buffered_bytes = 0, busy = 0;
  int64_t tls_failed = 0;  // connections closed in the TLS handshake (plain HTTP to the HTTPS port included)
};

class TlsContext;

class EventHttpServer : public httplib::Server {
 public:
  explicit EventHttpServer(ConnectionLimits limits);
  ~EventHttpServer() override;
  // Serves on the bound socket until shutdown() (which may come first: then it returns at
  // once). Requests in handlers finish and their responses are flushed (within
  // response_timeout_s) before it returns.
  void serve();
  void shutdown();
  // Serve HTTPS only (before serve()).
  void set_tls(std::shared_ptr<TlsContext> tls) { tls_ = std::move(tls); }
  const ConnectionLimits& limits() const { return lim_; }
  ConnectionStats stats() const;
  // Called (on the loop thread) for each request the loop itself refuses: status, code.
  std::function<void(int, const std::string&)> on_refusal;

 private:
  struct Loop;
  // httplib's parsing, routing and handlers on one complete request (a worker thread).
  bool handle(httplib::Stream& s, bool close, bool& closed);
  static ConnectionStats stats_of(const Loop& l);
  ConnectionLimits lim_;
  std::shared_ptr<TlsContext> tls_;
  std::atomic<bool> stopped_{false};
  int wake_fd_ = -1;  // eventfd: workers' results and shutdown wake the loop
  mutable std::mutex stats_mu_;
  Loop* loop_ = nullptr;  // while serve() runs
  ConnectionStats last_;  // after it returned
};

}  // namespace mmkit::serve
