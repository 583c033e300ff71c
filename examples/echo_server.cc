// echo_server: a line-echo TCP server on aioco.
//
//   echo_server --port=7000 --threads=4
//
// Every complete line a client sends ('\n'-terminated) is sent back
// unchanged, in order. One IoThread per --threads (default: one per usable
// CPU, see IoThreadGroup), each with its own SO_REUSEPORT listening socket
// served by an acceptor coroutine (CoYieldUntilFdReadable() + accept4()); one
// coroutine per connection, reading and answering through a CoSocket
// (RecvSome() and Send(), which has CoSend()'s contract), whose read handler
// stays registered while the connection lives: no fd-monitor update and no
// recv() that fails with EAGAIN per request.
//
// Binds 127.0.0.1 unless --bind says otherwise. --port=0 picks a free port;
// --port_file receives the port chosen (for scripts and tests).
//
// Design note
//
// State: each worker (IoThread) owns its listening socket, its acceptor
// coroutine and the list of its connections; only its home thread touches
// them (the stop and force-close one-shots run there too). Counters shared
// with main() are relaxed atomics read after the workers are done with
// them, or used only for progress (open connection count).
//
// Shutdown on SIGINT/SIGTERM (main() waits for them with sigwait(); every
// other thread has them blocked):
//   1. A one-shot on each worker sets `stopping`, shuts the listening socket
//      down (its acceptor wakes with an error and exits) and sends FIN
//      (shutdown(SHUT_WR)) on every connection that is idle, waiting for a
//      request. A connection busy with a request finishes it: responses are
//      always written completely.
//   2. A connection that sees `stopping` stops reading new requests once
//      nothing more is readable, sends FIN, then reads and discards until the
//      client closes, so that close() never turns into a reset that could
//      destroy responses still on their way to the client.
//   3. main() waits until no connection is left, at most --shutdown_timeout
//      seconds; then a second one-shot shuts every remaining socket down in
//      both directions (each coroutine wakes and closes), and the IoThreads
//      are destroyed.
//
// Bad input: a line longer than --max_line gets "ERR line too long" and the
// connection is closed; resets and write errors close the connection; fd
// exhaustion (EMFILE/ENFILE) on accept closes a reserved fd to accept the
// pending connection and close it at once (the client sees a clean close
// instead of hanging in the backlog), then logs and keeps serving. With
// --idle_timeout, a connection silent that long while waiting for a request
// is closed (FIN, then drain), and one whose peer stops reading is closed
// once a send has waited that long (CoSocket::SetTimeouts()). All of these
// log one line each, rate-limited to one per second per kind.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "aio/aio_context.h"
#include "aio/fd_monitor_kind.h"
#include "aio/io_thread_group.h"
#include "coroutine/coroutine.h"
#include "examples/server_process.h"
#include "locks/co_io.h"
#include "locks/co_sleep.h"
#include "locks/co_socket.h"
#include "timers/clock.h"

ABSL_FLAG(std::string, bind, "127.0.0.1", "address to listen on");
ABSL_FLAG(int, port, 7000, "TCP port; 0 picks a free one");
ABSL_FLAG(std::string, port_file, "", "write the port listened on to this file");
ABSL_FLAG(int, threads, 0, "IoThreads; 0 = one per usable CPU");
ABSL_FLAG(bool, pin, false, "pin each IoThread to its CPU");
ABSL_FLAG(int, max_line, 64 * 1024, "longest accepted line, in bytes");
ABSL_FLAG(double, shutdown_timeout, 5.0,
          "seconds to let connections finish after SIGINT/SIGTERM");
ABSL_FLAG(int, fd_limit, 0,
          "set the open-file soft limit (0: raise it to the hard limit)");
ABSL_FLAG(std::string, fd_monitor, "auto", "auto, epoll, io_uring or poll");
ABSL_FLAG(double, idle_timeout, 0,
          "close a connection silent this many seconds while waiting for a "
          "request, or unable to send for as long (0: never)");
ABSL_FLAG(int, coroutine_pool, 0,
          "coroutine stacks to pre-allocate per IoThread (node-local)");

namespace aioco {
namespace echo {
namespace {

constexpr size_t kInitialBuffer = 4096;
constexpr char kTooLong[] = "ERR line too long\n";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One line to stderr, in a single write() so lines from different threads
// never interleave.
void Log(const char* fmt, ...) ABSL_PRINTF_ATTRIBUTE(1, 2);
void Log(const char* fmt, ...) {
  char line[512];
  int n = std::snprintf(line, sizeof(line), "echo_server: ");
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
  va_end(ap);
  size_t len = std::min(sizeof(line) - 2, static_cast<size_t>(n + std::max(m, 0)));
  line[len++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, len);
  (void)ignored;
}

// At most one line per second per kind; says how many were suppressed.
class RateLimitedLog {
 public:
  void operator()(const char* fmt, ...) ABSL_PRINTF_ATTRIBUTE(2, 3);

 private:
  std::atomic<int64_t> last_ns_{-2'000'000'000};
  std::atomic<int64_t> suppressed_{0};
};

void RateLimitedLog::operator()(const char* fmt, ...) {
  int64_t now = NowNs();
  // Relaxed: only throttles logging; no data is published through it.
  int64_t last = last_ns_.load(std::memory_order_relaxed);
  if (now - last < 1'000'000'000 ||
      !last_ns_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    suppressed_.fetch_add(1, std::memory_order_relaxed);  // Relaxed: a count.
    return;
  }
  // Relaxed: a count.
  int64_t dropped = suppressed_.exchange(0, std::memory_order_relaxed);
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (dropped > 0) {
    Log("%s (%lld similar suppressed)", msg, static_cast<long long>(dropped));
  } else {
    Log("%s", msg);
  }
}

RateLimitedLog g_log_emfile, g_log_reset, g_log_oversized, g_log_accept,
    g_log_nomem, g_log_idle;

// Counters. Relaxed atomics: statistics and the open-connection count that
// main() polls during shutdown (each connection's close happens-before its
// decrement; main only needs to eventually see zero).
struct Stats {
  std::atomic<int64_t> accepted{0};
  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> peer_closed{0};
  std::atomic<int64_t> resets{0};
  std::atomic<int64_t> oversized{0};
  std::atomic<int64_t> idle_closed{0};
  std::atomic<int64_t> rejected{0};
  std::atomic<int64_t> drained{0};
  std::atomic<int64_t> refused_after_fin{0};
  std::atomic<int64_t> open{0};
  std::atomic<int> acceptors{0};
};
Stats g_stats;

void Add(std::atomic<int64_t>& counter, int64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);  // Relaxed: statistics.
}

struct Worker;

struct Conn {
  int fd = -1;
  Worker* worker = nullptr;
  Coroutine* co = nullptr;
  Conn* prev = nullptr;
  Conn* next = nullptr;
  CoSocket* sock = nullptr;  // Serve()'s, while it runs
  bool fin_sent = false;     // the stop one-shot sent FIN
  char peer[64] = "?";
};

struct Worker {
  int index = 0;
  AioContext* ctx = nullptr;
  int listen_fd = -1;
  int reserve_fd = -1;     // closed to accept one connection under EMFILE
  bool stopping = false;   // home thread only
  Conn head;               // sentinel of the connection list
  Worker() { head.prev = head.next = &head; }
};

int g_max_line = 64 * 1024;
int64_t g_idle_timeout_ns = 0;

void Link(Worker* w, Conn* c) {
  c->next = w->head.next;
  c->prev = &w->head;
  w->head.next->prev = c;
  w->head.next = c;
}

void Unlink(Conn* c) {
  c->prev->next = c->next;
  c->next->prev = c->prev;
}

// Counts the complete lines in p[0, n) (which ends with '\n'). If one is
// longer than max_line, stops there: *ok_bytes is then the length of the
// lines before it and *too_long is set; otherwise *ok_bytes == n.
size_t CountLines(const char* p, size_t n, size_t max_line, size_t* ok_bytes,
                  bool* too_long) {
  const char* const begin = p;
  const char* const end = p + n;
  size_t lines = 0;
  *too_long = false;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (nl == nullptr) break;
    if (static_cast<size_t>(nl - p) > max_line) {
      *too_long = true;
      break;
    }
    ++lines;
    p = nl + 1;
  }
  *ok_bytes = static_cast<size_t>(p - begin);
  return lines;
}

// Reads and discards until the peer closes (or `limit` bytes have come),
// then returns. Used after our FIN so close() does not reset the connection.
void DrainUntilPeerCloses(CoSocket& sock, size_t limit) {
  char sink[4096];
  size_t total = 0;
  while (total <= limit) {
    ssize_t n = sock.RecvSome(sink, sizeof(sink));
    if (n <= 0) return;  // end of file or error
    total += static_cast<size_t>(n);
  }
}

// The per-connection coroutine. Its CoSocket keeps the fd's read handler
// registered between requests and, after a short read, waits for it instead
// of calling recv() just to see EAGAIN (see locks/co_socket.h).
void Serve(Conn* c) {
  Worker* w = c->worker;
  const size_t max_line = static_cast<size_t>(g_max_line);
  CoSocket sock(c->fd);
  sock.SetTimeouts(g_idle_timeout_ns, g_idle_timeout_ns);
  c->sock = &sock;
  std::unique_ptr<char[]> buf(new char[kInitialBuffer]);
  size_t cap = kInitialBuffer;
  size_t len = 0;
  enum { kGraceful, kOversized, kBroken } end = kGraceful;
  for (;;) {
    if (len == cap) {
      size_t new_cap = std::min(cap * 2, max_line + kInitialBuffer);
      std::unique_ptr<char[]> bigger(new char[new_cap]);
      std::memcpy(bigger.get(), buf.get(), len);
      buf = std::move(bigger);
      cap = new_cap;
    }
    const size_t room = cap - len;
    // While stopping, answer only what is already readable.
    ssize_t n = w->stopping ? sock.TryRecvSome(buf.get() + len, room)
                            : sock.RecvSome(buf.get() + len, room);
    if (n > 0) {
      const size_t old = len;
      len += n;
      const char* nl = static_cast<const char*>(
          memrchr(buf.get() + old, '\n', static_cast<size_t>(n)));
      if (nl == nullptr) {
        // Only part of a line so far.
        if (len > max_line) {
          end = kOversized;
          break;
        }
        continue;
      }
      size_t upto = static_cast<size_t>(nl - buf.get()) + 1;
      bool too_long = false;
      const size_t lines =
          CountLines(buf.get(), upto, max_line, &upto, &too_long);
      if (c->fin_sent) {
        // Arrived after the shutdown FIN: cannot be answered.
        Add(g_stats.refused_after_fin, static_cast<int64_t>(lines));
      } else {
        ssize_t sent = upto > 0 ? sock.Send(buf.get(), upto) : 0;
        if (sent != static_cast<ssize_t>(upto)) {
          g_log_reset("connection from %s: send failed: %s; closing", c->peer,
                      std::strerror(sent < 0 ? static_cast<int>(-sent) : EPIPE));
          Add(g_stats.resets);
          end = kBroken;
          break;
        }
        Add(g_stats.requests, static_cast<int64_t>(lines));
        Add(g_stats.bytes, static_cast<int64_t>(upto));
      }
      if (too_long) {  // the lines before it were answered above
        end = kOversized;
        break;
      }
      std::memmove(buf.get(), buf.get() + upto, len - upto);
      len -= upto;
      if (len > max_line) {  // the partial line after the last newline
        end = kOversized;
        break;
      }
      continue;
    }
    if (n == 0) {
      Add(g_stats.peer_closed);
      break;
    }
    if (n == -EAGAIN) break;  // stopping, and nothing more to answer
    if (n == -ETIMEDOUT) {
      g_log_idle("connection from %s: idle for %.1fs; closing", c->peer,
                 static_cast<double>(g_idle_timeout_ns) / 1e9);
      Add(g_stats.idle_closed);
      break;  // graceful: FIN, then drain (itself bounded by the timeout)
    }
    g_log_reset("connection from %s: receive failed: %s; closing", c->peer,
                std::strerror(static_cast<int>(-n)));
    Add(g_stats.resets);
    end = kBroken;
    break;
  }
  if (end == kOversized) {
    g_log_oversized(
        "connection from %s: line longer than %zu bytes; sent error, closing",
        c->peer, max_line);
    Add(g_stats.oversized);
    if (!c->fin_sent) sock.Send(kTooLong, sizeof(kTooLong) - 1);
  }
  if (end != kBroken) {
    if (!c->fin_sent) shutdown(c->fd, SHUT_WR);
    c->fin_sent = true;
    if (w->stopping) Add(g_stats.drained);
    DrainUntilPeerCloses(sock, 4 * max_line);
  }
  c->sock = nullptr;
  sock.Detach();  // before close(): the handler must not outlive the fd
  close(c->fd);
  Unlink(c);
  delete c;
  // Relaxed: see Stats; main() polls it during shutdown.
  g_stats.open.fetch_sub(1, std::memory_order_relaxed);
}

void StartConnection(Worker* w, int fd, const sockaddr_storage& ss) {
  Add(g_stats.accepted);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto* c = new Conn;
  c->fd = fd;
  c->worker = w;
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  std::snprintf(c->peer, sizeof(c->peer), "%s:%d", host, port);
  absl::StatusOr<Coroutine*> co = Coroutine::TryCreate([c] { Serve(c); });
  if (!co.ok()) {
    g_log_nomem("connection from %s: cannot start its coroutine (%s); closing",
                c->peer, std::string(co.status().message()).c_str());
    close(fd);
    delete c;
    return;
  }
  c->co = *co;
  Link(w, c);
  // Relaxed: see Stats.
  g_stats.open.fetch_add(1, std::memory_order_relaxed);
  w->ctx->CoSchedule(*co);
}

int OpenFileLimit() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  return static_cast<int>(rl.rlim_cur);
}

// accept() failed with EMFILE/ENFILE: take the pending connection with the
// reserved fd and close it, so the client is told instead of left waiting.
void RejectUnderFdExhaustion(Worker* w, int err) {
  bool rejected = false;
  if (w->reserve_fd >= 0) {
    close(w->reserve_fd);
    w->reserve_fd = -1;
    int fd = accept4(w->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      close(fd);
      rejected = true;
      Add(g_stats.rejected);
    }
    w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  g_log_emfile(
      "accept: %s (%s; open file limit %d, %lld connections open): %s; still "
      "serving the open connections",
      std::strerror(err), err == EMFILE ? "EMFILE" : "ENFILE", OpenFileLimit(),
      static_cast<long long>(g_stats.open.load(std::memory_order_relaxed)),
      rejected ? "rejected a new connection" : "new connections wait");
  if (!rejected) CoSleepNs(ClockType::kMonotonic, 50'000'000);
}

// The acceptor coroutine of one worker.
void AcceptLoop(Worker* w) {
  while (!w->stopping) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int fd = accept4(w->listen_fd, reinterpret_cast<sockaddr*>(&ss), &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      StartConnection(w, fd, ss);
      continue;
    }
    const int err = errno;
    if (w->stopping) break;
    switch (err) {
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
        break;
      case EAGAIN:
#if EWOULDBLOCK != EAGAIN
      case EWOULDBLOCK:
#endif
        CoYieldUntilFdReadable(w->listen_fd);
        break;
      case EMFILE:
      case ENFILE:
        RejectUnderFdExhaustion(w, err);
        break;
      default:
        g_log_accept("accept: %s; retrying", std::strerror(err));
        CoSleepNs(ClockType::kMonotonic, 10'000'000);
        break;
    }
  }
  close(w->listen_fd);
  w->listen_fd = -1;
  // Relaxed: main() polls it during shutdown.
  g_stats.acceptors.fetch_sub(1, std::memory_order_relaxed);
}

// Step 1 of the shutdown (see the design note); runs on the worker's thread.
void BeginStop(Worker* w) {
  w->stopping = true;
  if (w->listen_fd >= 0) shutdown(w->listen_fd, SHUT_RDWR);
  for (Conn* c = w->head.next; c != &w->head; c = c->next) {
    // Idle: its coroutine waits for a request (a busy one finishes first).
    if (c->sock != nullptr && c->sock->waiting_to_read() && !c->fin_sent) {
      shutdown(c->fd, SHUT_WR);
      c->fin_sent = true;
    }
  }
}

// Step 3: connections that did not finish in time.
void ForceClose(Worker* w) {
  for (Conn* c = w->head.next; c != &w->head; c = c->next) {
    shutdown(c->fd, SHUT_RDWR);
  }
}

absl::StatusOr<int> Listen(const std::string& bind_addr, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(bind_addr.c_str(), std::to_string(port).c_str(), &hints,
                       &res);
  if (rc != 0) {
    return absl::InvalidArgumentError("bad --bind address " + bind_addr + ": " +
                                      gai_strerror(rc));
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
    int err = errno;
    freeaddrinfo(res);
    if (fd >= 0) close(fd);
    return absl::UnavailableError("cannot listen on " + bind_addr + ":" +
                                  std::to_string(port) + ": " + std::strerror(err));
  }
  freeaddrinfo(res);
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

void SetFdLimit(int wanted) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t target = wanted > 0 ? static_cast<rlim_t>(wanted) : rl.rlim_max;
  if (target > rl.rlim_max) target = rl.rlim_max;
  rl.rlim_cur = target;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    Log("cannot set the open file limit to %llu: %s",
        static_cast<unsigned long long>(target), std::strerror(errno));
  }
}

// Runs `fn(worker)` on every worker's thread and waits for all of them.
template <typename Fn>
void OnEachWorker(std::vector<std::unique_ptr<Worker>>& workers, Fn fn) {
  std::atomic<size_t> done{0};
  for (auto& w : workers) {
    Worker* wp = w.get();
    wp->ctx->ScheduleOneshot([wp, &fn, &done] {
      fn(wp);
      // Release: pairs with the acquire load below; fn's effects are done.
      done.fetch_add(1, std::memory_order_release);
    });
  }
  // Acquire: pairs with the release increment above.
  while (done.load(std::memory_order_acquire) < workers.size()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool WaitForConnections(double seconds) {
  const int64_t deadline = NowNs() + static_cast<int64_t>(seconds * 1e9);
  // Relaxed: progress polling only (see Stats).
  while (g_stats.open.load(std::memory_order_relaxed) > 0 ||
         g_stats.acceptors.load(std::memory_order_relaxed) > 0) {
    if (NowNs() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

int Main() {
  g_max_line = absl::GetFlag(FLAGS_max_line);
  g_idle_timeout_ns =
      static_cast<int64_t>(std::max(0.0, absl::GetFlag(FLAGS_idle_timeout)) * 1e9);
  if (g_max_line < 1) {
    Log("--max_line must be positive");
    return 2;
  }
  SetFdLimit(absl::GetFlag(FLAGS_fd_limit));

  // SIGINT/SIGTERM are taken by sigwait() in this thread only: block them
  // before any other thread starts so every thread inherits the mask.
  const sigset_t stop_signals = BlockStopSignals();

  IoThreadGroupOptions group_options;
  group_options.num_threads = absl::GetFlag(FLAGS_threads);
  group_options.pin = absl::GetFlag(FLAGS_pin);
  group_options.name_prefix = "echo-io-";
  group_options.coroutine_pool_per_thread =
      static_cast<unsigned>(std::max(0, absl::GetFlag(FLAGS_coroutine_pool)));
  const std::string monitor = absl::GetFlag(FLAGS_fd_monitor);
  if (monitor == "epoll") {
    group_options.aio.fd_monitor = FdMonitorKind::kEpoll;
  } else if (monitor == "io_uring") {
    group_options.aio.fd_monitor = FdMonitorKind::kIoUring;
  } else if (monitor == "poll") {
    group_options.aio.fd_monitor = FdMonitorKind::kPoll;
  } else if (monitor != "auto") {
    Log("--fd_monitor must be auto, epoll, io_uring or poll");
    return 2;
  }
  absl::StatusOr<std::unique_ptr<IoThreadGroup>> group =
      IoThreadGroup::Create(group_options);
  if (!group.ok()) {
    Log("cannot start IoThreads: %s", group.status().ToString().c_str());
    return 1;
  }

  // One SO_REUSEPORT listening socket per worker, all on the same port.
  std::vector<std::unique_ptr<Worker>> workers;
  int port = absl::GetFlag(FLAGS_port);
  const std::string bind_addr = absl::GetFlag(FLAGS_bind);
  for (size_t i = 0; i < (*group)->size(); ++i) {
    absl::StatusOr<int> fd = Listen(bind_addr, port);
    if (!fd.ok()) {
      Log("%s", std::string(fd.status().message()).c_str());
      for (auto& w : workers) close(w->listen_fd);
      return 1;
    }
    if (port == 0) port = BoundPort(*fd);
    auto w = std::make_unique<Worker>();
    w->index = static_cast<int>(i);
    w->ctx = (*group)->context(i);
    w->listen_fd = *fd;
    w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    workers.push_back(std::move(w));
  }
  for (auto& w : workers) {
    Worker* wp = w.get();
    // Relaxed: see Stats.
    g_stats.acceptors.fetch_add(1, std::memory_order_relaxed);
    wp->ctx->CoSchedule(Coroutine::Create([wp] { AcceptLoop(wp); }));
  }
  WritePortFile(absl::GetFlag(FLAGS_port_file), port);
  Log("listening on %s:%d with %zu IoThreads (%s), open file limit %d",
      bind_addr.c_str(), port, (*group)->size(),
      std::string(FdMonitorKindName((*group)->context(0)->fd_monitor())).c_str(),
      OpenFileLimit());

  const int sig = WaitForStopSignal(stop_signals);
  Log("%s: stopping; %lld connections open, waiting up to %.1fs for them",
      strsignal(sig),
      static_cast<long long>(g_stats.open.load(std::memory_order_relaxed)),
      absl::GetFlag(FLAGS_shutdown_timeout));
  OnEachWorker(workers, BeginStop);
  int64_t forced = 0;
  if (!WaitForConnections(absl::GetFlag(FLAGS_shutdown_timeout))) {
    forced = g_stats.open.load(std::memory_order_relaxed);
    Log("shutdown timeout: closing %lld connections that did not finish",
        static_cast<long long>(forced));
    OnEachWorker(workers, ForceClose);
    if (!WaitForConnections(5.0)) {
      Log("connections still open after force-close; exiting without cleanup");
      std::_Exit(1);
    }
  }
  for (auto& w : workers) {
    if (w->reserve_fd >= 0) close(w->reserve_fd);
  }
  group->reset();  // stops and joins the IoThreads
  auto get = [](std::atomic<int64_t>& v) {
    return static_cast<long long>(v.load(std::memory_order_relaxed));
  };
  Log("shutdown complete: accepted=%lld requests=%lld bytes=%lld "
      "peer_closed=%lld drained=%lld forced=%lld resets=%lld oversized=%lld "
      "rejected_fd_exhaustion=%lld refused_after_fin=%lld idle_closed=%lld",
      get(g_stats.accepted), get(g_stats.requests), get(g_stats.bytes),
      get(g_stats.peer_closed), get(g_stats.drained),
      static_cast<long long>(forced), get(g_stats.resets),
      get(g_stats.oversized), get(g_stats.rejected),
      get(g_stats.refused_after_fin), get(g_stats.idle_closed));
  return 0;
}

}  // namespace
}  // namespace echo
}  // namespace aioco

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return aioco::echo::Main();
}
