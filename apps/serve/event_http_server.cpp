#include "event_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tls_context.h"

namespace mmkit::serve {

namespace {

using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

// A complete request in, the response out: what httplib's process_request reads and writes.
class MemoryStream : public httplib::Stream {
 public:
  MemoryStream(const std::string& in, std::string ip, int port, std::string lip, int lport)
      : in_(in), ip_(std::move(ip)), lip_(std::move(lip)), port_(port), lport_(lport) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* p, size_t n) override {
    n = std::min(n, in_.size() - pos_);
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return ssize_t(n);
  }
  ssize_t write(const char* p, size_t n) override {
    out.append(p, n);
    return ssize_t(n);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { ip = ip_, port = port_; }
  void get_local_ip_and_port(std::string& ip, int& port) const override { ip = lip_, port = lport_; }
  socket_t socket() const override { return INVALID_SOCKET; }
  std::string out;

 private:
  const std::string& in_;
  size_t pos_ = 0;
  std::string ip_, lip_;
  int port_, lport_;
};

void address(const sockaddr_storage& a, std::string& ip, int& port) {
  char buf[64] = {};
  if (a.ss_family == AF_INET) {
    auto* s = reinterpret_cast<const sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf);
    port = ntohs(s->sin_port);
  } else if (a.ss_family == AF_INET6) {
    auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf);
    port = ntohs(s->sin6_port);
  }
  ip = buf;
}

// The response's head says "Connection: close" (httplib's answer to Connection: close or
// HTTP/1.0, or the error handler's to a request it could not read).
bool response_closes(const std::string& out) {
  const size_t end = out.find("\r\n\r\n");
  const std::string_view head(out.data(), end == std::string::npos ? out.size() : end + 2);
  return head.find("\r\nConnection: close\r\n") != std::string_view::npos;
}

struct Conn {
  enum State { idle, reading, busy, writing, draining };
  int fd = -1;
  uint64_t id = 0;
  std::string ip, local_ip;
  int port = 0, local_port = 0;
  State state = idle;
  std::string in;  // received bytes not yet handed to a handler (the current request, pipelined ones)
  std::optional<RequestHead> head;
  size_t head_len = 0;
  std::optional<ChunkedScanner> chunks;
  Clock::time_point deadline, idle_since;
  std::string out;  // the response being written
  size_t out_pos = 0;
  bool close_after = false, paused = false;
  bool detached = false;  // removed from epoll while busy (the client hung up: HUP would fire on every wait)
  size_t served = 0;
  uint32_t events = 0;  // registered with epoll
  SSL* ssl = nullptr;     // HTTPS: this connection's TLS state (null: plain HTTP)
  bool tls_started = false;  // the first byte was a TLS handshake record
};

struct Job {
  int fd;
  uint64_t id;
  std::string bytes;  // forwarded head + raw body
  bool close;
  std::string ip, local_ip;
  int port, local_port;
};

struct Result {
  int fd;
  uint64_t id;
  std::string out;
  bool close;
  size_t held;  // the job's bytes, returned to the budget
};

}  // namespace

struct EventHttpServer::Loop {
  EventHttpServer& srv;
  const ConnectionLimits& lim;
  int ep = -1, lfd = -1;
  std::unordered_map<int, std::unique_ptr<Conn>> conns;
  std::unordered_map<std::string, size_t> per_ip;
  uint64_t next_id = 1;
  size_t buffered = 0, max_connections;
  Clock::time_point listen_paused_until{};
  bool listening = false;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  std::vector<Result> results;
  bool quit = false;
  std::vector<std::thread> workers;

  struct Counters {
    std::atomic<int64_t> open{0}, accepted{0}, evicted_idle{0}, refused_full{0}, accept_backoffs{0}, timed_out_idle{0},
        timed_out_request{0}, timed_out_response{0}, refused_head{0}, buffered{0}, busy{0}, tls_failed{0};
  } st;

  Loop(EventHttpServer& s, int listen_fd) : srv(s), lim(s.lim_), lfd(listen_fd) {
    // Stay below the descriptor limit: the workers, the index and model files need some too.
    rlimit r{};
    max_connections = lim.max_connections;
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY)
      max_connections = std::min<size_t>(max_connections, r.rlim_cur > 128 ? size_t(r.rlim_cur) - 64 : 64);
  }

  void set_events(Conn& c, uint32_t ev) {
    if (c.events == ev && !c.detached) return;
    epoll_event e{};
    e.events = ev;
    e.data.fd = c.fd;
    ::epoll_ctl(ep, c.detached ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &e);
    c.events = ev;
    c.detached = false;
  }

  void listen_on(bool on) {
    if (on == listening) return;
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = lfd;
    ::epoll_ctl(ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, lfd, &e);
    listening = on;
  }

  void close_conn(int fd) {
    auto it = conns.find(fd);
    if (it == conns.end()) return;
    Conn& c = *it->second;
    buffered -= c.in.size();
    if (--per_ip[c.ip] == 0) per_ip.erase(c.ip);
    if (!c.detached) ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    if (c.ssl) SSL_free(c.ssl);
    ::close(fd);
    conns.erase(it);
    --st.open;
  }

  // Closes the connection that has been idle longest (of `ip` if given); false if none is idle.
  bool evict_idle(const std::string* ip) {
    Conn* best = nullptr;
    for (auto& [fd, c] : conns)
      if (c->state == Conn::idle && c->in.empty() && (!ip || c->ip == *ip) && (!best || c->idle_since < best->idle_since))
        best = c.get();
    if (!best) return false;
    close_conn(best->fd);
    ++st.evicted_idle;
    return true;
  }

  void accept_all() {
    for (int i = 0; i < 64; ++i) {
      sockaddr_storage a{};
      socklen_t n = sizeof a;
      const int fd = ::accept4(lfd, reinterpret_cast<sockaddr*>(&a), &n, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: the pending connection stays in the backlog. Stop polling the
          // listener for a while (it stays readable, so polling it would spin) and free the
          // longest-idle connection so that the backlog can move.
          listen_on(false);
          listen_paused_until = Clock::now() + std::chrono::milliseconds(100);
          ++st.accept_backoffs;
          for (int k = 0; k < 16 && evict_idle(nullptr); ++k) {
          }
        }
        return;  // EAGAIN: all accepted
      }
      auto c = std::make_unique<Conn>();
      c->fd = fd;
      c->id = next_id++;
      address(a, c->ip, c->port);
      if (conns.size() >= max_connections && !evict_idle(nullptr)) {
        refuse_new(fd, "the server has " + std::to_string(conns.size()) + " open connections, its limit");
        continue;
      }
      if (per_ip.count(c->ip) && per_ip[c->ip] >= lim.max_per_client && !evict_idle(&c->ip)) {
        refuse_new(fd, "client " + c->ip + " has " + std::to_string(lim.max_per_client) + " open connections, the limit per client");
        continue;
      }
      sockaddr_storage l{};
      socklen_t ln = sizeof l;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&l), &ln) == 0) address(l, c->local_ip, c->local_port);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      c->idle_since = Clock::now();
      c->deadline = c->idle_since + seconds(lim.idle_timeout_s);
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.fd = fd;
      if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) {
        ::close(fd);
        continue;
      }
      c->events = EPOLLIN;
      if (srv.tls_) {
        c->ssl = SSL_new(srv.tls_->get());
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
          if (c->ssl) SSL_free(c->ssl);
          ERR_clear_error();
          ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          ::close(fd);
          continue;
        }
        SSL_set_accept_state(c->ssl);
      }
      ++per_ip[c->ip];
      ++st.open;
      ++st.accepted;
      conns.emplace(fd, std::move(c));
    }
  }

  void refuse_new(int fd, const std::string& why) {
    ++st.refused_full;
    const std::string r = error_response(503, "too_many_connections", why + "; retry later");
    if (!srv.tls_) {  // a TLS client could not read a plain answer: it only sees the close
      ssize_t w = ::send(fd, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)w;
    }
    ::close(fd);
    if (srv.on_refusal) srv.on_refusal(503, "too_many_connections");
  }

  // Answers a request the loop refuses itself and closes the connection after the answer.
  void refuse(Conn& c, int status, const std::string& code, const std::string& message) {
    if (status != 408) ++st.refused_head;
    if (srv.on_refusal) srv.on_refusal(status, code);
    buffered -= c.in.size();
    c.in.clear();
    c.in.shrink_to_fit();
    c.head.reset();
    c.chunks.reset();
    c.out = error_response(status, code, message);
    c.out_pos = 0;
    c.close_after = true;
    c.state = Conn::writing;
    c.deadline = Clock::now() + seconds(std::min(lim.response_timeout_s, 5.0));
    flush(c);
  }

  // recv/send through the connection's TLS when it has one. Read: > 0 bytes, 0 when the peer
  // closed or TLS failed, -1 with errno EAGAIN when nothing is there yet. Write: bytes taken, or
  // -1 (errno EAGAIN: try again when writable).
  ssize_t conn_read(Conn& c, char* buf, size_t n) {
    if (!c.ssl) return ::recv(c.fd, buf, n, 0);
    ERR_clear_error();
    const int r = SSL_read(c.ssl, buf, int(std::min<size_t>(n, INT_MAX)));
    if (r > 0) return r;
    const int e = SSL_get_error(c.ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      errno = EAGAIN;
      return -1;
    }
    if (!SSL_is_init_finished(c.ssl)) ++st.tls_failed;
    return 0;
  }
  ssize_t conn_write(Conn& c, const char* p, size_t n) {
    if (!c.ssl) return ::send(c.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    ERR_clear_error();
    const int w = SSL_write(c.ssl, p, int(std::min<size_t>(n, INT_MAX)));
    if (w > 0) return w;
    const int e = SSL_get_error(c.ssl, w);
    ERR_clear_error();
    errno = (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? EAGAIN : EPIPE;
    return -1;
  }

  // HTTPS: the first byte of a connection must start a TLS handshake record (0x16). Anything
  // else (plain HTTP to the HTTPS port) gets a plain-text 400 and the connection is closed.
  // False if the connection was answered, closed, or has sent nothing yet.
  bool tls_first_byte_ok(Conn& c) {
    unsigned char first = 0;
    const ssize_t p = ::recv(c.fd, &first, 1, MSG_PEEK);
    if (p < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
    if (p <= 0) {
      close_conn(c.fd);
      return false;
    }
    if (first == 0x16) return c.tls_started = true;
    ++st.tls_failed;
    SSL_free(c.ssl);  // the answer goes out in plain text
    c.ssl = nullptr;
    refuse(c, 400, "tls_required", "this port speaks HTTPS only: connect with https://");
    return false;
  }

  void on_readable(Conn& c) {
    if (c.ssl && !c.tls_started && !tls_first_byte_ok(c)) return;
    char buf[65536];
    // At most 256 KB per wake-up: other connections get their turn. A TLS read returns at most
    // one record (16 KB), so it gets more reads for the same bytes.
    const int reads = c.ssl ? 16 : 4;
    for (int i = 0; i < reads; ++i) {
      if (c.state == Conn::reading && c.head && buffered >= lim.max_buffered_bytes) {
        // Over the memory budget: stop reading this body until handlers finish (TCP
        // back-pressure); its request deadline keeps running.
        c.paused = true;
        set_events(c, 0);
        return;
      }
      const ssize_t r = conn_read(c, buf, sizeof buf);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
      if (r <= 0) {  // the client closed (or reset): a request it did not finish needs no answer
        close_conn(c.fd);
        return;
      }
      if (c.state == Conn::draining) continue;  // unread rest of a refused request: discarded
      if (c.state == Conn::idle) {
        c.state = Conn::reading;
        c.deadline = Clock::now() + seconds(lim.request_timeout_s);
      }
      c.in.append(buf, size_t(r));
      buffered += size_t(r);
      if (!advance(c)) return;
      if (c.state != Conn::reading && c.state != Conn::idle) return;
    }
  }

  // Moves a reading connection on as far as its bytes allow; false if it was closed or refused.
  bool advance(Conn& c) {
    if (!c.head) {
      const size_t e = find_head_end(c.in);
      if (e == std::string::npos) {
        const size_t nl = c.in.find('\n');
        if ((nl == std::string::npos ? c.in.size() : nl) > lim.head.max_target_bytes + 1)
          return refuse(c, 414, "uri_too_long", "the request line is longer than " + std::to_string(lim.head.max_target_bytes) + " bytes"), false;
        if (c.in.size() > lim.head.max_head_bytes)
          return refuse(c, 431, "headers_too_large",
                        "the request head is longer than " + std::to_string(lim.head.max_head_bytes) + " bytes, the limit is " + std::to_string(lim.head.max_head_bytes)),
                 false;
        return true;
      }
      RequestHead h = parse_request_head(std::string_view(c.in).substr(0, e), lim.head);
      if (!h.ok()) return refuse(c, h.status, h.code, h.message), false;
      c.head = std::move(h);
      c.head_len = e;
      if (c.head->body == RequestHead::Body::chunked) c.chunks.emplace(lim.head.max_body_bytes);
      if (c.head->expect_continue && c.head->body != RequestHead::Body::none && c.in.size() == e) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ssize_t w = conn_write(c, cont, sizeof cont - 1);  // best effort: 25 bytes
        (void)w;
      }
    }
    size_t end = c.head_len;
    if (c.head->body == RequestHead::Body::length) {
      if (c.in.size() - c.head_len < c.head->content_length) return true;
      end += size_t(c.head->content_length);
    } else if (c.head->body == RequestHead::Body::chunked) {
      switch (c.chunks->scan(std::string_view(c.in).substr(c.head_len))) {
        case ChunkedScanner::State::more: return true;
        case ChunkedScanner::State::error:
          if (c.chunks->too_large())
            return refuse(c, 413, "payload_too_large",
                          "request body is larger than the limit of " + std::to_string(lim.head.max_body_bytes) + " bytes"),
                   false;
          return refuse(c, 400, "bad_request_framing", "chunked body: " + c.chunks->why()), false;
        case ChunkedScanner::State::done: end += c.chunks->end(); break;
      }
    }
    dispatch(c, end);
    return true;
  }

  void dispatch(Conn& c, size_t end) {
    Job j;
    j.fd = c.fd;
    j.id = c.id;
    j.bytes = c.head->forwarded;
    j.bytes.append(c.in, c.head_len, end - c.head_len);
    j.close = !c.head->keep_alive || ++c.served >= lim.max_requests_per_connection || srv.stopped_;
    j.ip = c.ip;
    j.port = c.port;
    j.local_ip = c.local_ip;
    j.local_port = c.local_port;
    buffered -= end;
    c.in.erase(0, end);
    buffered += j.bytes.size();
    c.head.reset();
    c.chunks.reset();
    c.state = Conn::busy;
    c.deadline = Clock::time_point::max();  // handlers are bounded by the model queue, not by the client
    set_events(c, 0);                       // pipelined bytes wait in the kernel
    ++st.busy;
    {
      std::lock_guard<std::mutex> l(mu);
      jobs.push_back(std::move(j));
    }
    cv.notify_one();
  }

  void flush(Conn& c) {
    while (c.out_pos < c.out.size()) {
      const ssize_t w = conn_write(c, c.out.data() + c.out_pos, c.out.size() - c.out_pos);
      if (w > 0) {
        c.out_pos += size_t(w);
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        set_events(c, EPOLLOUT);
        return;
      }
      close_conn(c.fd);
      return;
    }
    std::string().swap(c.out);
    c.out_pos = 0;
    if (c.close_after || srv.stopped_) {
      // Lingering close: a close() with unread request bytes would send a reset that can
      // destroy the answer before the client reads it. Half-close, then discard what the
      // client still sends for up to a second. TLS: close_notify first (best effort).
      if (c.ssl) {
        ERR_clear_error();
        SSL_shutdown(c.ssl);
        ERR_clear_error();
      }
      ::shutdown(c.fd, SHUT_WR);
      buffered -= c.in.size();
      std::string().swap(c.in);
      c.state = Conn::draining;
      c.deadline = Clock::now() + std::chrono::seconds(1);
      set_events(c, EPOLLIN);
      return;
    }
    c.state = Conn::idle;
    c.idle_since = Clock::now();
    c.deadline = c.idle_since + seconds(lim.idle_timeout_s);
    set_events(c, EPOLLIN);
    if (!c.in.empty()) {  // a pipelined request
      c.state = Conn::reading;
      c.deadline = Clock::now() + seconds(lim.request_timeout_s);
      advance(c);
    }
  }

  void take_results() {
    std::vector<Result> rs;
    {
      std::lock_guard<std::mutex> l(mu);
      rs.swap(results);
    }
    for (Result& r : rs) {
      buffered -= r.held;
      --st.busy;
      auto it = conns.find(r.fd);
      if (it == conns.end() || it->second->id != r.id) continue;
      Conn& c = *it->second;
      c.out = std::move(r.out);
      c.out_pos = 0;
      c.close_after = r.close;
      c.state = Conn::writing;
      c.deadline = Clock::now() + seconds(lim.response_timeout_s);
      flush(c);
    }
    if (!rs.empty()) resume_paused();
  }

  // Connections whose bodies waited for the buffered-bytes budget read again once it has room
  // (after handlers finished, or connections closed).
  void resume_paused() {
    if (buffered >= lim.max_buffered_bytes) return;
    for (auto& [fd, c] : conns)
      if (c->paused) {
        c->paused = false;
        set_events(*c, EPOLLIN);
      }
  }

  void check_deadlines(Clock::time_point now) {
    std::vector<int> expired;
    for (auto& [fd, c] : conns)
      if (now >= c->deadline) expired.push_back(fd);
    for (int fd : expired) {
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      Conn& c = *it->second;
      if (c.state == Conn::reading) {
        ++st.timed_out_request;
        char sec[32];
        std::snprintf(sec, sizeof sec, "%g", lim.request_timeout_s);
        refuse(c, 408, "request_timeout",
               std::string("the request was not received within the ") + sec + " s limit (slow or stalled client); connection closed");
      } else {
        if (c.state == Conn::idle) ++st.timed_out_idle;
        if (c.state == Conn::writing) ++st.timed_out_response;
        close_conn(fd);
      }
    }
  }

  void worker() {
    for (;;) {
      Job j;
      {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return quit || !jobs.empty(); });
        if (jobs.empty()) return;
        j = std::move(jobs.front());
        jobs.pop_front();
      }
      Result r{j.fd, j.id, {}, true, j.bytes.size()};
      {
        MemoryStream s(j.bytes, j.ip, j.port, j.local_ip, j.local_port);
        bool closed = false;
        const bool ok = srv.handle(s, j.close, closed);
        r.close = !ok || closed || j.close || response_closes(s.out);
        r.out = std::move(s.out);
      }
      if (r.out.empty()) r.out = error_response(400, "bad_request_framing", "malformed request");
      // httplib advertises ranges on every answer; Range is dropped from requests (http_head.h).
      static const std::string kRanges = "\r\nAccept-Ranges: bytes\r\n";
      const size_t head_end = r.out.find("\r\n\r\n");
      if (const size_t a = r.out.find(kRanges); a != std::string::npos && a < head_end) r.out.erase(a, kRanges.size() - 2);
      // Large bodies leave freed memory in this thread's malloc arena: give it back.
      if (j.bytes.size() > (4u << 20)) {
        std::string().swap(j.bytes);
        ::malloc_trim(0);
      }
      {
        std::lock_guard<std::mutex> l(mu);
        results.push_back(std::move(r));
      }
      const uint64_t one = 1;
      ssize_t w = ::write(srv.wake_fd_, &one, sizeof one);
      (void)w;
    }
  }

  void run() {
    ep = ::epoll_create1(EPOLL_CLOEXEC);
    // httplib listens with a backlog of 5: bursts of connections would wait for SYN retries.
    ::listen(lfd, SOMAXCONN);
    const int fl = ::fcntl(lfd, F_GETFL);
    ::fcntl(lfd, F_SETFL, fl | O_NONBLOCK);
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = srv.wake_fd_;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, srv.wake_fd_, &e);
    listen_on(true);
    for (int i = 0; i < std::max(1, lim.workers); ++i) workers.emplace_back([this] { worker(); });

    std::vector<epoll_event> evs(256);
    Clock::time_point next_scan = Clock::now(), stop_by{};
    bool stopping = false;
    for (;;) {
      if (srv.stopped_ && !stopping) {
        // Stop accepting; idle and unfinished requests are closed, answers in progress finish.
        stopping = true;
        listen_on(false);
        stop_by = Clock::now() + seconds(std::min(lim.response_timeout_s, 10.0));
        std::vector<int> drop;
        for (auto& [fd, c] : conns)
          if (c->state == Conn::idle || c->state == Conn::reading || c->state == Conn::draining) drop.push_back(fd);
        for (int fd : drop) close_conn(fd);
      }
      if (stopping && (conns.empty() || Clock::now() > stop_by)) break;
      const int n = ::epoll_wait(ep, evs.data(), int(evs.size()), 100);
      const auto now = Clock::now();
      for (int i = 0; i < n; ++i) {
        const int fd = evs[size_t(i)].data.fd;
        const uint32_t ev = evs[size_t(i)].events;
        if (fd == lfd) {
          if (!stopping) accept_all();
          continue;
        }
        if (fd == srv.wake_fd_) {
          uint64_t v;
          ssize_t r = ::read(fd, &v, sizeof v);
          (void)r;
          continue;
        }
        auto it = conns.find(fd);
        if (it == conns.end()) continue;
        Conn& c = *it->second;
        if (c.state == Conn::writing) {  // registered for EPOLLOUT only: a hang-up ends the answer
          if (ev & EPOLLOUT) flush(c);
          else if (ev & (EPOLLHUP | EPOLLERR)) close_conn(fd);
          continue;
        }
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
          if (c.state == Conn::busy) {  // only EPOLLHUP/ERR reach a busy connection: its result's write fails
            ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
            c.detached = true;
            continue;
          }
          on_readable(c);
        }
      }
      take_results();
      if (stopping) {
        std::vector<int> drop;
        for (auto& [fd, c] : conns)
          if (c->state == Conn::idle || c->state == Conn::draining) drop.push_back(fd);
        for (int fd : drop) close_conn(fd);
      }
      if (!listening && !stopping && now >= listen_paused_until) listen_on(true);
      if (now >= next_scan) {
        check_deadlines(now);
        resume_paused();
        next_scan = now + std::chrono::milliseconds(100);
      }
      st.buffered = int64_t(buffered);
    }
    {
      std::lock_guard<std::mutex> l(mu);
      quit = true;
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    std::vector<int> all;
    for (auto& [fd, c] : conns) all.push_back(fd);
    for (int fd : all) close_conn(fd);
    ::close(ep);
  }
};

EventHttpServer::EventHttpServer(ConnectionLimits limits) : lim_(std::move(limits)) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  set_payload_max_length(lim_.head.max_body_bytes);
}

EventHttpServer::~EventHttpServer() {
  socket_t s = svr_sock_.exchange(INVALID_SOCKET);
  if (s != INVALID_SOCKET) ::close(int(s));
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

bool EventHttpServer::handle(httplib::Stream& s, bool close, bool& closed) { return process_request(s, close, closed, nullptr); }

void EventHttpServer::serve() {
  const int lfd = int(svr_sock_.load());
  if (lfd < 0 || stopped_) return;
  // OpenSSL writes with write(), not send(MSG_NOSIGNAL): a client gone mid-answer must not kill us.
  if (tls_) std::signal(SIGPIPE, SIG_IGN);
  Loop loop(*this, lfd);
  {
    std::lock_guard<std::mutex> l(stats_mu_);
    loop_ = &loop;
  }
  loop.run();
  {
    std::lock_guard<std::mutex> l(stats_mu_);
    last_ = stats_of(loop);
    loop_ = nullptr;
  }
  socket_t s = svr_sock_.exchange(INVALID_SOCKET);
  if (s != INVALID_SOCKET) ::close(int(s));
}

void EventHttpServer::shutdown() {
  stopped_ = true;
  const uint64_t one = 1;
  ssize_t w = ::write(wake_fd_, &one, sizeof one);
  (void)w;
}

ConnectionStats EventHttpServer::stats_of(const Loop& l) {
  ConnectionStats s;
  s.open = l.st.open;
  s.accepted = l.st.accepted;
  s.evicted_idle = l.st.evicted_idle;
  s.refused_full = l.st.refused_full;
  s.accept_backoffs = l.st.accept_backoffs;
  s.timed_out_idle = l.st.timed_out_idle;
  s.timed_out_request = l.st.timed_out_request;
  s.timed_out_response = l.st.timed_out_response;
  s.refused_head = l.st.refused_head;
  s.buffered_bytes = l.st.buffered;
  s.busy = l.st.busy;
  s.tls_failed = l.st.tls_failed;
  return s;
}

ConnectionStats EventHttpServer::stats() const {
  std::lock_guard<std::mutex> l(stats_mu_);
  return loop_ ? stats_of(*loop_) : last_;
}

}  // namespace mmkit::serve
