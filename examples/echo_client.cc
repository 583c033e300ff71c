// Design note
//
// State: each client thread owns a disjoint set of connections and its own
// epoll instance; nothing is shared between threads while the load runs. The
// results are merged after the threads are joined.
//
// Per connection (all on its thread):
//   1. Connect (blocking, loopback-fast), then switch to non-blocking.
//   2. Queue requests: one at a time (ping-pong) or up to `pipeline`
//      (stream). A request is the line for (connection, sequence number),
//      recorded with its send time in the in-flight queue.
//   3. Send what is queued; watch EPOLLOUT only while bytes are left over.
//   4. Receive: every `line_bytes` bytes must equal the line at the head of
//      the in-flight queue; a match completes that request (latency = now -
//      send time).
//   5. Stop queueing at the deadline or after requests_per_connection; wait
//      (at most 2 s) for what is in flight, then close.
// A connection the server closes mid-response counts as half_written; whole
// requests still in flight count as unanswered.

#include "examples/echo_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace aioco {
namespace echo {
namespace {

constexpr size_t kMaxLatencySamples = size_t{1} << 22;  // per thread
constexpr int64_t kDrainNs = 2'000'000'000;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The request line for (conn, seq): "c<conn>s<seq>:" padded with a pattern
// that depends on seq, ending in '\n', exactly `len` bytes.
void MakeLine(int conn, int64_t seq, int len, std::string* out) {
  size_t start = out->size();
  absl::StrAppend(out, "c", conn, "s", seq, ":");
  size_t used = out->size() - start;
  for (size_t i = used; i + 1 < static_cast<size_t>(len); ++i) {
    out->push_back(static_cast<char>('a' + (seq + i) % 26));
  }
  out->push_back('\n');
}

struct Conn {
  int fd = -1;
  int id = 0;
  int64_t next_seq = 0;
  int64_t completed = 0;
  std::string out;             // bytes queued, not yet sent
  size_t out_off = 0;
  std::deque<std::pair<int64_t, int64_t>> inflight;  // (seq, send time)
  std::string in;              // received bytes of the head response
  std::string expect;          // scratch: expected line
  bool want_out = false;       // EPOLLOUT registered
  bool open = false;
  bool finished = false;       // no more requests to send
};

struct ThreadResult {
  LoadResult r;
  std::vector<int64_t> latencies;
};

absl::StatusOr<sockaddr_storage> Resolve(const std::string& host, int port,
                                         socklen_t* len) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  sockaddr_storage ss{};
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return ss;
}

int Connect(const sockaddr_storage& addr, socklen_t len) {
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int rc;
  do {
    rc = connect(fd, reinterpret_cast<const sockaddr*>(&addr), len);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

class ClientThread {
 public:
  ClientThread(const LoadOptions& o, const sockaddr_storage& addr,
               socklen_t addr_len, std::vector<int> ids, int64_t start_ns,
               int64_t deadline_ns)
      : o_(o), addr_(addr), addr_len_(addr_len), ids_(std::move(ids)),
        start_ns_(start_ns), deadline_ns_(deadline_ns) {}

  ThreadResult Run() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    conns_.resize(ids_.size());
    for (size_t i = 0; i < ids_.size(); ++i) {
      Conn& c = conns_[i];
      c.id = ids_[i];
      c.fd = Connect(addr_, addr_len_);
      if (c.fd < 0) {
        ++res_.r.connect_failures;
        c.finished = true;
        continue;
      }
      c.open = true;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
      Fill(c);
      Flush(i);
    }
    std::vector<epoll_event> events(256);
    int64_t stop_at = 0;  // when draining started
    while (true) {
      int64_t now = NowNs();
      bool stopping = o_.requests_per_connection == 0 && now >= deadline_ns_;
      if (stopping && stop_at == 0) {
        stop_at = now;
        for (Conn& c : conns_) c.finished = true;
      }
      bool busy = false;
      for (const Conn& c : conns_) {
        if (c.open && (!c.finished || !c.inflight.empty())) busy = true;
      }
      if (!busy) break;
      if (stop_at == 0 && o_.requests_per_connection > 0 &&
          now >= deadline_ns_ + kDrainNs * 30) {
        break;  // a hung server: give up (counted as unanswered below)
      }
      if (stop_at != 0 && now - stop_at > kDrainNs) break;
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 10);
      for (int k = 0; k < n; ++k) {
        size_t i = events[k].data.u64;
        if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) Read(i);
        if (conns_[i].open && (events[k].events & EPOLLOUT)) Flush(i);
      }
    }
    res_.r.wall_s = static_cast<double>(NowNs() - start_ns_) / 1e9;
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      if (!c.open) continue;
      res_.r.unanswered += static_cast<int64_t>(c.inflight.size());
      shutdown(c.fd, SHUT_WR);
      close(c.fd);
    }
    close(ep_);
    return std::move(res_);
  }

 private:
  // Queues requests up to the mode's window.
  void Fill(Conn& c) {
    if (c.finished) return;
    size_t window = o_.mode == LoadMode::kPingPong ? 1 : o_.pipeline;
    while (c.inflight.size() < window) {
      if (o_.requests_per_connection > 0 &&
          c.next_seq >= o_.requests_per_connection) {
        c.finished = true;
        return;
      }
      if (o_.requests_per_connection == 0 && NowNs() >= deadline_ns_) {
        c.finished = true;
        return;
      }
      MakeLine(c.id, c.next_seq, o_.line_bytes, &c.out);
      c.inflight.emplace_back(c.next_seq, NowNs());
      ++c.next_seq;
    }
  }

  void Flush(size_t i) {
    Conn& c = conns_[i];
    while (c.out_off < c.out.size()) {
      ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                       MSG_NOSIGNAL);
      if (n > 0) {
        c.out_off += n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      Lost(i);
      return;
    }
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
    }
    bool want = !c.out.empty();
    if (want != c.want_out) {
      epoll_event ev{};
      ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
      ev.data.u64 = i;
      epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
      c.want_out = want;
    }
  }

  void Read(size_t i) {
    Conn& c = conns_[i];
    char buf[65536];
    while (c.open) {
      ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
      if (n == 0) {
        Lost(i);
        return;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        Lost(i);
        return;
      }
      size_t off = 0;
      while (off < static_cast<size_t>(n)) {
        if (c.inflight.empty()) {
          // Bytes nobody asked for.
          res_.r.mismatches += n - off;
          break;
        }
        size_t need = o_.line_bytes - c.in.size();
        size_t take = std::min(need, static_cast<size_t>(n) - off);
        c.in.append(buf + off, take);
        off += take;
        if (c.in.size() < static_cast<size_t>(o_.line_bytes)) break;
        auto [seq, sent_ns] = c.inflight.front();
        c.inflight.pop_front();
        c.expect.clear();
        MakeLine(c.id, seq, o_.line_bytes, &c.expect);
        if (c.in != c.expect) {
          ++res_.r.mismatches;
        } else {
          ++res_.r.requests;
          res_.r.bytes += o_.line_bytes;
          if (res_.latencies.size() < kMaxLatencySamples) {
            res_.latencies.push_back(NowNs() - sent_ns);
          }
        }
        c.in.clear();
        ++c.completed;
      }
    }
    if (c.open) {
      Fill(c);
      Flush(i);
    }
  }

  // The server closed or reset the connection.
  void Lost(size_t i) {
    Conn& c = conns_[i];
    if (!c.in.empty()) {
      ++res_.r.half_written;
      if (!c.inflight.empty()) c.inflight.pop_front();
    }
    res_.r.unanswered += static_cast<int64_t>(c.inflight.size());
    c.inflight.clear();
    ++res_.r.disconnects;
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
    c.open = false;
    c.finished = true;
  }

  const LoadOptions& o_;
  const sockaddr_storage addr_;
  const socklen_t addr_len_;
  const std::vector<int> ids_;
  const int64_t start_ns_;
  const int64_t deadline_ns_;
  int ep_ = -1;
  std::vector<Conn> conns_;
  ThreadResult res_;
};

double Percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return static_cast<double>(v[k]) / 1e3;
}

}  // namespace

std::string LoadResult::Summary() const {
  return absl::StrFormat(
      "requests=%d qps=%.0f p50=%.1fus p99=%.1fus max=%.1fus wall=%.2fs "
      "mismatches=%d half_written=%d unanswered=%d disconnects=%d "
      "connect_failures=%d idle_open=%d",
      requests, qps, p50_us, p99_us, max_us, wall_s, mismatches, half_written,
      unanswered, disconnects, connect_failures, idle_open);
}

std::string LoadResult::Json() const {
  return absl::StrFormat(
      "{\"requests\": %d, \"bytes\": %d, \"qps\": %.1f, \"p50_us\": %.2f, "
      "\"p99_us\": %.2f, \"max_us\": %.2f, \"wall_s\": %.4f, "
      "\"mismatches\": %d, \"half_written\": %d, \"unanswered\": %d, "
      "\"disconnects\": %d, \"connect_failures\": %d, \"idle_open\": %d}",
      requests, bytes, qps, p50_us, p99_us, max_us, wall_s, mismatches,
      half_written, unanswered, disconnects, connect_failures, idle_open);
}

bool LoadResult::Clean(bool tolerate_disconnects) const {
  return mismatches == 0 && half_written == 0 && connect_failures == 0 &&
         (tolerate_disconnects || (disconnects == 0 && unanswered == 0));
}

absl::StatusOr<LoadResult> RunEchoLoad(const LoadOptions& o) {
  if (o.connections < 0 || o.threads < 1 || o.line_bytes < 24 ||
      o.pipeline < 1 || o.idle_connections < 0 || o.port <= 0 ||
      o.port > 65535) {
    return absl::InvalidArgumentError(
        "need connections >= 0, threads >= 1, line_bytes >= 24, pipeline >= 1, "
        "idle_connections >= 0 and a port in 1..65535");
  }
  socklen_t addr_len = 0;
  absl::StatusOr<sockaddr_storage> addr = Resolve(o.host, o.port, &addr_len);
  if (!addr.ok()) return addr.status();

  LoadResult total;
  std::vector<int> idle;
  for (int i = 0; i < o.idle_connections; ++i) {
    int fd = Connect(*addr, addr_len);
    if (fd < 0) {
      ++total.connect_failures;
    } else {
      idle.push_back(fd);
    }
  }

  const int threads = std::max(1, std::min(o.threads, std::max(1, o.connections)));
  std::vector<std::vector<int>> ids(threads);
  for (int c = 0; c < o.connections; ++c) ids[c % threads].push_back(c);
  const int64_t start = NowNs();
  const int64_t deadline = start + static_cast<int64_t>(o.duration_s * 1e9);
  std::vector<ThreadResult> results(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ClientThread ct(o, *addr, addr_len, ids[t], start, deadline);
      results[t] = ct.Run();
    });
  }
  for (std::thread& w : workers) w.join();

  std::vector<int64_t> lat;
  for (ThreadResult& tr : results) {
    total.requests += tr.r.requests;
    total.bytes += tr.r.bytes;
    total.mismatches += tr.r.mismatches;
    total.half_written += tr.r.half_written;
    total.unanswered += tr.r.unanswered;
    total.disconnects += tr.r.disconnects;
    total.connect_failures += tr.r.connect_failures;
    total.wall_s = std::max(total.wall_s, tr.r.wall_s);
    lat.insert(lat.end(), tr.latencies.begin(), tr.latencies.end());
  }
  total.qps = total.wall_s > 0 ? total.requests / total.wall_s : 0;
  total.p50_us = Percentile(lat, 0.50);
  total.p99_us = Percentile(lat, 0.99);
  total.max_us = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end()) / 1e3;

  // Idle connections: still open unless the server closed them.
  for (int fd : idle) {
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    char byte;
    bool closed = poll(&p, 1, 0) > 0 &&
                  ((p.revents & (POLLHUP | POLLERR)) ||
                   recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0);
    if (!closed) ++total.idle_open;
    close(fd);
  }
  return total;
}

}  // namespace echo
}  // namespace aioco
