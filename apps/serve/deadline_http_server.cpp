#include "deadline_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

namespace mmkit::serve {

namespace {

using Clock = std::chrono::steady_clock;

thread_local bool t_timed_out = false, t_too_large = false;

// Rounded up, so that a poll for this long does not wake before t.
int ms_until(Clock::time_point t) {
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(t - Clock::now()).count();
  return ms < 0 ? 0 : int(std::min<long long>(ms, 1 << 30));
}

bool wait_for(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int r;
  do r = ::poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  return r > 0;
}

void address(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage a{};
  socklen_t n = sizeof a;
  if ((peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &n) : ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n)) != 0)
    return;
  char buf[64] = {};
  if (a.ss_family == AF_INET) {
    auto* s = reinterpret_cast<sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf);
    port = ntohs(s->sin_port);
  } else if (a.ss_family == AF_INET6) {
    auto* s = reinterpret_cast<sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf);
    port = ntohs(s->sin6_port);
  }
  ip = buf;
}

// A socket whose reads fail once the request's deadline has passed (and after
// `read_timeout` without data, like httplib's own stream). Buffered: httplib
// reads request lines one byte at a time.
class DeadlineStream : public httplib::Stream {
 public:
  DeadlineStream(int fd, Clock::time_point deadline, int read_timeout_ms, int write_timeout_ms, size_t max_bytes)
      : fd_(fd), deadline_(deadline), read_ms_(read_timeout_ms), write_ms_(write_timeout_ms), max_bytes_(max_bytes) {}
  bool is_readable() const override { return pos_ < len_ || wait_for(fd_, POLLIN, std::min(read_ms_, ms_until(deadline_))); }
  bool is_writable() const override { return wait_for(fd_, POLLOUT, write_ms_); }
  ssize_t read(char* p, size_t n) override {
    if (pos_ == len_) {
      const int left = ms_until(deadline_);
      if (!wait_for(fd_, POLLIN, std::min(read_ms_, left))) {
        if (left <= read_ms_) timed_out = t_timed_out = true;  // the deadline, not the idle read timeout
        return -1;
      }
      ssize_t r;
      do r = ::recv(fd_, buf_, sizeof buf_, 0);
      while (r < 0 && errno == EINTR);
      if (r <= 0) return r;
      pos_ = 0;
      len_ = size_t(r);
    }
    n = std::min(n, len_ - pos_);
    // httplib checks the limit for Content-Length bodies only: chunked bodies, and bodies
    // without a length read to the end of the connection, are capped here.
    if (consumed_ + n > max_bytes_) {
      too_large = t_too_large = true;
      return -1;
    }
    std::memcpy(p, buf_ + pos_, n);
    pos_ += n;
    consumed_ += n;
    return ssize_t(n);
  }
  ssize_t write(const char* p, size_t n) override {
    if (!wait_for(fd_, POLLOUT, write_ms_)) return -1;
    ssize_t r;
    do r = ::send(fd_, p, n, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r > 0) {
      if (head_.size() < 8192) head_.append(p, std::min(size_t(r), 8192 - head_.size()));
      written += size_t(r);
    }
    return r;
  }
  // The response said "Connection: close" (e.g. the error handler's answer to an
  // unparsable request: what follows on the connection cannot be trusted).
  bool response_closes() const {
    const size_t end = head_.find("\r\n\r\n");
    return head_.substr(0, end).find("\r\nConnection: close\r\n") != std::string::npos;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(fd_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(fd_, false, ip, port); }
  socket_t socket() const override { return fd_; }
  // Bytes already received for the next request on this connection.
  bool buffered() const { return pos_ < len_; }
  void restart(Clock::time_point deadline) {
    deadline_ = deadline;
    consumed_ = 0;
    head_.clear();
    timed_out = too_large = t_timed_out = t_too_large = false;
  }

  bool timed_out = false, too_large = false;
  size_t written = 0;

 private:
  int fd_;
  Clock::time_point deadline_;
  int read_ms_, write_ms_;
  size_t max_bytes_, consumed_ = 0;  // bytes of the current request
  std::string head_;                 // start of the current response
  char buf_[4096];
  size_t pos_ = 0, len_ = 0;
};

}  // namespace

bool DeadlineHttpServer::request_timed_out() { return t_timed_out; }
bool DeadlineHttpServer::request_too_large() { return t_too_large; }

std::string request_timeout_json(double s) {
  char sec[32];
  std::snprintf(sec, sizeof sec, "%g", s);
  return nlohmann::json{{"error",
                         {{"code", "request_timeout"},
                          {"message", std::string("the request was not received within the ") + sec +
                                          " s limit (slow or stalled client); connection closed"}}}}
      .dump();
}

void DeadlineHttpServer::serve() {
  const int lfd = int(svr_sock_.load());
  if (lfd < 0) return;
  std::unique_ptr<httplib::TaskQueue> queue(new_task_queue());
  while (!stopped_) {
    if (!wait_for(lfd, POLLIN, 100)) continue;
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // EAGAIN, ECONNABORTED, EMFILE: try again
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    queue->enqueue([this, fd] { connection(fd); });
  }
  queue->shutdown();  // waits for the connections in progress (each ends within its deadlines)
  socket_t s = svr_sock_.exchange(INVALID_SOCKET);
  if (s != INVALID_SOCKET) ::close(int(s));
}

void DeadlineHttpServer::shutdown() { stopped_ = true; }

DeadlineHttpServer::~DeadlineHttpServer() {
  socket_t s = svr_sock_.exchange(INVALID_SOCKET);
  if (s != INVALID_SOCKET) ::close(int(s));
}

void DeadlineHttpServer::connection(int fd) {
  const auto timeout = std::chrono::milliseconds(int64_t(request_timeout_s_ * 1000));
  const int read_ms = int(read_timeout_sec_ * 1000 + read_timeout_usec_ / 1000);
  const int write_ms = int(write_timeout_sec_ * 1000 + write_timeout_usec_ / 1000);
  // A request: its body (payload_max_length_) plus request line, headers and chunk framing.
  DeadlineStream s(fd, Clock::now() + timeout, read_ms, write_ms, payload_max_length_ + (1u << 20));
  for (size_t count = keep_alive_max_count_; count > 0 && !stopped_; --count) {
    // Idle between requests: wait for the next one's first byte (checking for shutdown).
    if (!s.buffered()) {
      const auto idle_end = Clock::now() + std::chrono::seconds(keep_alive_timeout_sec_);
      bool ready = false;
      while (!stopped_ && !ready && Clock::now() < idle_end) ready = wait_for(fd, POLLIN, std::min(100, ms_until(idle_end)));
      if (!ready) break;
    }
    s.restart(Clock::now() + timeout);
    const size_t before = s.written;
    bool closed = false;
    const bool ok = process_request(s, /*close_connection=*/count == 1 || stopped_, closed, nullptr);
    if (s.timed_out && s.written == before) {  // cut while reading the request line: answer it here
      const std::string body = request_timeout_json(request_timeout_s_);
      const std::string head = "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
                               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
      s.write(head.data(), head.size());
      s.write(body.data(), body.size());
    }
    t_timed_out = t_too_large = false;
    if (!ok || closed || s.timed_out || s.too_large || s.response_closes()) break;
  }
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

}  // namespace mmkit::serve
