// httplib::Server with its own accept loop, so that every request has a
// deadline. httplib's timeouts apply to each read: a client that sends its
// headers one byte per second, or a body slower than the server reads it, is
// never cut and holds one of the HTTP threads for as long as it likes (a
// "slow loris"; a few of them deny service). Here each connection is a
// DeadlineStream: a request's bytes (request line, headers, body) must all
// arrive within `request_timeout_s` of its first byte, else the connection is
// answered 408 {"error": {"code": "request_timeout", ...}} and closed.
// Routing, parsing and responses stay httplib's (Server::process_request).
// A request's bytes are also capped (body limit + 1 MB), since httplib 0.11
// enforces its payload limit only for bodies with a Content-Length.
//
//   DeadlineHttpServer s(10.0);                 // routes, limits, pools: as on httplib::Server
//   s.bind_to_any_port("127.0.0.1");  std::thread t([&] { s.serve(); });  ...  s.shutdown(); t.join();
//
// Between requests of a keep-alive connection the idle limit is httplib's
// keep-alive timeout; threads come from new_task_queue.
#pragma once
#include <httplib.h>

#include <atomic>
#include <string>

namespace mmkit::serve {

class DeadlineHttpServer : public httplib::Server {
 public:
  explicit DeadlineHttpServer(double request_timeout_s) : request_timeout_s_(request_timeout_s) {}
  ~DeadlineHttpServer();
  // Accepts on the bound socket until shutdown() (which may come first: then it
  // returns at once); each connection runs on the task queue.
  void serve();
  void shutdown();
  double request_timeout_s() const { return request_timeout_s_; }
  // True while an error handler runs for a request whose deadline passed (the
  // 400 httplib reports for an unfinished request is then a 408).
  static bool request_timed_out();
  // Likewise for a request whose bytes exceeded the body limit (payload_max_length)
  // plus 1 MB for its head: httplib checks Content-Length but not chunked bodies.
  static bool request_too_large();

 private:
  void connection(int fd);
  double request_timeout_s_;
  std::atomic<bool> stopped_{false};
};

// The JSON body of a 408 for a request that missed its deadline.
std::string request_timeout_json(double request_timeout_s);

}  // namespace mmkit::serve
