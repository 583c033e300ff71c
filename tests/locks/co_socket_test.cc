// CoSocket tests: ping-pong and full-duplex transfers larger than the socket
// buffers (one reader and one writer coroutine on one CoSocket), end of file,
// -EPIPE without SIGPIPE, pipes, readiness that arrives while nobody waits,
// Detach() handing the fd back to co_io.h, misuse death tests, and, on every
// fd monitor, that a request/response loop neither updates the fd's
// registration nor calls recv() in vain once per request (counted by
// wrapping epoll_ctl() and recv() in this binary).

#include "locks/co_socket.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aio/aio_context.h"
#include "aio/fd_monitor_kind.h"
#include "aio/io_thread.h"
#include "coroutine/coroutine.h"
#include "gtest/gtest.h"
#include "locks/co_io.h"
#include "locks/co_sleep.h"
#include "tests/locks/locks_test_util.h"
#include "tests/locks/socket_test_util.h"
#include "timers/clock.h"

// Call counters for one fd, kept by the wrappers below. Relaxed: each test
// reads them after joining the threads that made the calls.
std::atomic<int> g_watched_fd{-1};
std::atomic<int> g_epoll_ctl_calls{0};
std::atomic<int> g_recv_eagain{0};

using EpollCtlFn = int (*)(int, int, int, struct epoll_event*);
using RecvFn = ssize_t (*)(int, void*, size_t, int);

// Wrappers that forward to the next definition (the C library's, or a
// sanitizer's interceptor) and count the calls on g_watched_fd.
extern "C" int epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev) {
  static EpollCtlFn next =
      reinterpret_cast<EpollCtlFn>(dlsym(RTLD_NEXT, "epoll_ctl"));
  if (fd == g_watched_fd.load(std::memory_order_relaxed)) {
    g_epoll_ctl_calls.fetch_add(1, std::memory_order_relaxed);
  }
  return next(epfd, op, fd, ev);
}

extern "C" ssize_t recv(int fd, void* buf, size_t len, int flags) {
  static RecvFn next = reinterpret_cast<RecvFn>(dlsym(RTLD_NEXT, "recv"));
  ssize_t n = next(fd, buf, len, flags);
  if (n < 0 && errno == EAGAIN &&
      fd == g_watched_fd.load(std::memory_order_relaxed)) {
    const int saved = errno;
    g_recv_eagain.fetch_add(1, std::memory_order_relaxed);
    errno = saved;
  }
  return n;
}

namespace aioco {
namespace {

using locks_testing::IoThreads;
using locks_testing::Latch;
using locks_testing::RunCoroutines;
using locks_testing::RunInCoroutine;
using locks_testing::Pattern;
using locks_testing::SendBufferSize;
using locks_testing::SocketPair;

// A client in one IoThread and an echo server in another, 500 round trips
// of growing messages, each checked byte for byte.
TEST(CoSocketTest, PingPongAcrossThreads) {
  IoThreads io(2);
  SocketPair sp;
  constexpr int kRounds = 500;
  int mismatches = 0;
  RunCoroutines({io.ctx(0), io.ctx(1)}, [&](int side) {
    CoSocket sock(sp.fd[side]);
    char buf[4096];
    for (int i = 0; i < kRounds; ++i) {
      const size_t len = 1 + static_cast<size_t>(i) * 7 % 3000;
      if (side == 0) {
        std::vector<uint8_t> msg = Pattern(len, static_cast<uint8_t>(i));
        ASSERT_EQ(sock.Send(msg.data(), len), static_cast<ssize_t>(len));
        ASSERT_EQ(sock.Recv(buf, len), static_cast<ssize_t>(len));
        if (std::memcmp(buf, msg.data(), len) != 0) ++mismatches;
      } else {
        size_t got = 0;
        while (got < len) {  // echo whatever arrives until the message is in
          ssize_t n = sock.RecvSome(buf, std::min(sizeof(buf), len - got));
          ASSERT_GT(n, 0);
          ASSERT_EQ(sock.Send(buf, static_cast<size_t>(n)), n);
          got += static_cast<size_t>(n);
        }
      }
    }
  });
  EXPECT_EQ(mismatches, 0);
}

// Each end sends 8x its socket buffer while receiving the same from the
// other: per end, a writer coroutine blocks in Send() (write handler) while
// a reader coroutine of the same context waits in Recv() (read handler), on
// one CoSocket.
TEST(CoSocketTest, FullDuplexReaderAndWriterShareOneSocket) {
  IoThreads io(2);
  SocketPair sp;
  const size_t bytes = 8 * std::max(SendBufferSize(sp.fd[0]), SendBufferSize(sp.fd[1]));
  std::vector<uint8_t> out[2] = {Pattern(bytes, 1), Pattern(bytes, 99)};
  std::vector<uint8_t> in[2] = {std::vector<uint8_t>(bytes), std::vector<uint8_t>(bytes)};
  ssize_t sent[2] = {0, 0}, received[2] = {0, 0};
  std::unique_ptr<CoSocket> socks[2];
  RunInCoroutine(io.ctx(0), [&] { socks[0] = std::make_unique<CoSocket>(sp.fd[0]); });
  RunInCoroutine(io.ctx(1), [&] { socks[1] = std::make_unique<CoSocket>(sp.fd[1]); });
  RunCoroutines({io.ctx(0), io.ctx(0), io.ctx(1), io.ctx(1)}, [&](int i) {
    const int side = i / 2;
    if (i % 2 == 0) {
      sent[side] = socks[side]->Send(out[side].data(), bytes);
    } else {
      received[side] = socks[side]->Recv(in[side].data(), bytes);
    }
  });
  RunInCoroutine(io.ctx(0), [&] { socks[0].reset(); });
  RunInCoroutine(io.ctx(1), [&] { socks[1].reset(); });
  for (int side = 0; side < 2; ++side) {
    EXPECT_EQ(sent[side], static_cast<ssize_t>(bytes));
    EXPECT_EQ(received[side], static_cast<ssize_t>(bytes));
    EXPECT_TRUE(in[side] == out[1 - side]) << "side " << side;
  }
}

TEST(CoSocketTest, EndOfFile) {
  IoThreads io(1);
  SocketPair sp;
  ASSERT_EQ(write(sp.fd[1], "abc", 3), 3);
  ssize_t first = -1, at_eof = -1, exact = -1;
  RunInCoroutine(io.ctx(0), [&] {
    CoSocket sock(sp.fd[0]);
    char buf[8];
    first = sock.RecvSome(buf, 2);  // "ab"
    close(sp.fd[1]);
    sp.fd[1] = -1;
    exact = sock.Recv(buf, sizeof(buf));  // "c", then end of file
    at_eof = sock.RecvSome(buf, sizeof(buf));
  });
  EXPECT_EQ(first, 2);
  EXPECT_EQ(exact, 1);
  EXPECT_EQ(at_eof, 0);
}

// The peer closes while the reader is suspended (it waited first after a
// short read): the wake-up reports end of file.
TEST(CoSocketTest, WaitingReaderWokenByPeerClose) {
  IoThreads io(1);
  SocketPair sp;
  ASSERT_EQ(write(sp.fd[1], "x", 1), 1);
  std::atomic<bool> waiting{false};
  ssize_t first = -1, second = -1;
  Latch done(1);
  Coroutine* co = Coroutine::Create([&] {
    CoSocket sock(sp.fd[0]);
    char buf[8];
    first = sock.RecvSome(buf, sizeof(buf));  // short read: drained
    waiting.store(true);
    second = sock.RecvSome(buf, sizeof(buf));
    done.count_down();
  });
  io.ctx(0)->CoSchedule(co);
  while (!waiting.load()) sched_yield();
  close(sp.fd[1]);
  sp.fd[1] = -1;
  done.wait();
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 0);
}

TEST(CoSocketTest, SendToClosedPeerIsEpipeNotSigpipe) {
  IoThreads io(1);
  SocketPair sp;
  close(sp.fd[1]);
  sp.fd[1] = -1;
  ssize_t r = 0;
  RunInCoroutine(io.ctx(0), [&] {
    CoSocket sock(sp.fd[0]);
    r = sock.Send("x", 1);
  });
  EXPECT_EQ(r, -EPIPE);
}

// Pipes are not sockets: CoSocket falls back to read()/write().
TEST(CoSocketTest, PipesFallBackToReadWrite) {
  IoThreads io(2);
  int p[2];
  ASSERT_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  const size_t bytes = 1 << 20;  // well beyond a pipe's 64 KiB
  std::vector<uint8_t> out = Pattern(bytes, 5), in(bytes);
  ssize_t sent = 0, received = 0;
  RunCoroutines({io.ctx(0), io.ctx(1)}, [&](int side) {
    CoSocket sock(p[side == 0 ? 1 : 0]);
    if (side == 0) {
      sent = sock.Send(out.data(), bytes);
    } else {
      received = sock.Recv(in.data(), bytes);
    }
  });
  close(p[0]);
  close(p[1]);
  EXPECT_EQ(sent, static_cast<ssize_t>(bytes));
  EXPECT_EQ(received, static_cast<ssize_t>(bytes));
  EXPECT_TRUE(in == out);
}

TEST(CoSocketTest, TryRecvSomeDoesNotWait) {
  IoThreads io(1);
  SocketPair sp;
  ssize_t empty = 0, full = 0;
  RunInCoroutine(io.ctx(0), [&] {
    CoSocket sock(sp.fd[0]);
    char buf[8];
    empty = sock.TryRecvSome(buf, sizeof(buf));
    ASSERT_EQ(write(sp.fd[1], "hi", 2), 2);
    full = sock.TryRecvSome(buf, sizeof(buf));
  });
  EXPECT_EQ(empty, -EAGAIN);
  EXPECT_EQ(full, 2);
}

// Data arrives while the reading coroutine sleeps: the read handler fires
// with nobody waiting and steps back (the loop keeps running: the sleep
// ends), and the next RecvSome() reads at once; WaitReadable() reports the
// readiness it saw once, then waits again.
TEST(CoSocketTest, ReadinessWhileNobodyWaits) {
  IoThreads io(1);
  SocketPair sp;
  ssize_t first = -1, second = -1;
  RunInCoroutine(io.ctx(0), [&] {
    CoSocket sock(sp.fd[0]);
    char buf[8];
    ASSERT_EQ(write(sp.fd[1], "a", 1), 1);
    first = sock.RecvSome(buf, sizeof(buf));  // short read, handler registered
    ASSERT_EQ(write(sp.fd[1], "bc", 2), 2);
    CoSleepNs(ClockType::kMonotonic, 20'000'000);  // handler fires meanwhile
    sock.WaitReadable();                           // returns at once
    second = sock.RecvSome(buf, sizeof(buf));
    ASSERT_EQ(write(sp.fd[1], "d", 1), 1);
    sock.WaitReadable();  // waits for real: level-triggered, fires at once
    EXPECT_EQ(sock.TryRecvSome(buf, sizeof(buf)), 1);
  });
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 2);
}

// Detach() gives the fd back: co_io.h helpers can wait on it, and the
// CoSocket registers again at its next wait.
TEST(CoSocketTest, DetachHandsTheFdBack) {
  IoThreads io(1);
  SocketPair sp;
  char got[3] = {};
  Latch waiting(1);
  Latch done(1);
  std::atomic<int> stage{0};
  Coroutine* co = Coroutine::Create([&] {
    CoSocket sock(sp.fd[0]);
    stage.store(1);
    ASSERT_EQ(sock.RecvSome(got, 1), 1);  // registers the read handler
    sock.Detach();
    stage.store(2);
    CoYieldUntilFdReadable(sp.fd[0]);
    ASSERT_EQ(sock.TryRecvSome(got + 1, 1), 1);
    stage.store(3);
    ASSERT_EQ(sock.RecvSome(got + 2, 1), 1);
    done.count_down();
  });
  io.ctx(0)->CoSchedule(co);
  for (int s = 1; s <= 3; ++s) {
    while (stage.load() < s) sched_yield();
    ASSERT_EQ(write(sp.fd[1], &"xyz"[s - 1], 1), 1);
  }
  done.wait();
  EXPECT_EQ(std::string(got, 3), "xyz");
}

// A receive wait bounded by SetTimeouts() returns -ETIMEDOUT when nothing
// comes; data that comes first is returned as usual and cancels the timer
// (no late timeout hits a later wait); Recv() returns what it got.
TEST(CoSocketTest, ReadTimeouts) {
  IoThreads io(1);
  SocketPair sp;
  std::atomic<int> stage{0};
  ssize_t empty = 0, got = 0, last = 0, partial = 0, waited = 0;
  Latch done(1);
  Coroutine* co = Coroutine::Create([&] {
    CoSocket sock(sp.fd[0]);
    char buf[16];
    sock.SetTimeouts(20'000'000, 0);
    empty = sock.RecvSome(buf, sizeof(buf));  // nothing comes
    sock.SetTimeouts(60'000'000'000, 0);
    stage.store(1);
    got = sock.RecvSome(buf, sizeof(buf));  // the peer writes meanwhile
    CoSleepNs(ClockType::kMonotonic, 30'000'000);
    sock.SetTimeouts(20'000'000, 0);
    ASSERT_EQ(write(sp.fd[1], "abc", 3), 3);
    partial = sock.Recv(buf, 8);  // "abc", then silence
    waited = sock.WaitReadable();
    sock.SetTimeouts(0, 0);
    ASSERT_EQ(write(sp.fd[1], "d", 1), 1);
    last = sock.RecvSome(buf, sizeof(buf));
    done.count_down();
  });
  io.ctx(0)->CoSchedule(co);
  while (stage.load() < 1) sched_yield();
  ASSERT_EQ(write(sp.fd[1], "hello", 5), 5);
  done.wait();
  EXPECT_EQ(empty, -ETIMEDOUT);
  EXPECT_EQ(got, 5);
  EXPECT_EQ(partial, 3);
  EXPECT_EQ(waited, -ETIMEDOUT);
  EXPECT_EQ(last, 1);
}

// A send wait bounded by SetTimeouts(): a peer that never reads makes Send()
// return what it managed to send, then -ETIMEDOUT once the socket is full.
TEST(CoSocketTest, WriteTimeouts) {
  IoThreads io(1);
  SocketPair sp;
  const size_t bytes = 8 * SendBufferSize(sp.fd[0]);
  std::vector<uint8_t> out = Pattern(bytes, 3);
  ssize_t first = 0, second = 0;
  RunInCoroutine(io.ctx(0), [&] {
    CoSocket sock(sp.fd[0]);
    sock.SetTimeouts(0, 20'000'000);
    first = sock.Send(out.data(), bytes);
    second = sock.Send(out.data(), bytes);
  });
  EXPECT_GT(first, 0);
  EXPECT_LT(first, static_cast<ssize_t>(bytes));
  EXPECT_EQ(second, -ETIMEDOUT);
}

// A non-blocking listening socket on 127.0.0.1 and its address.
struct Listener {
  int fd = -1;
  sockaddr_in addr{};
  Listener() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd, 16), 0);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  }
  ~Listener() { close(fd); }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&addr); }
};

int NewTcpSocket() {
  return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

// A client coroutine connects while a server coroutine of another IoThread
// waits in Accept(); three connections, each echoing one byte.
TEST(CoSocketTest, ConnectAndAccept) {
  IoThreads io(2);
  Listener listener;
  constexpr int kConnections = 3;
  int accepted = 0, echoed = 0;
  RunCoroutines({io.ctx(0), io.ctx(1)}, [&](int side) {
    if (side == 1) {
      CoSocket lsock(listener.fd);
      for (int i = 0; i < kConnections; ++i) {
        int fd = lsock.Accept(nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        ASSERT_GE(fd, 0) << std::strerror(-fd);
        ++accepted;
        {
          CoSocket conn(fd);
          char c;
          ASSERT_EQ(conn.Recv(&c, 1), 1);
          ASSERT_EQ(conn.Send(&c, 1), 1);
        }
        close(fd);
      }
      return;
    }
    for (int i = 0; i < kConnections; ++i) {
      int fd = NewTcpSocket();
      ASSERT_GE(fd, 0);
      {
        CoSocket conn(fd);
        ASSERT_EQ(conn.Connect(listener.sa(), sizeof(listener.addr)), 0);
        char c = static_cast<char>('a' + i), back = 0;
        ASSERT_EQ(conn.Send(&c, 1), 1);
        ASSERT_EQ(conn.Recv(&back, 1), 1);
        if (back == c) ++echoed;
      }
      close(fd);
    }
  });
  EXPECT_EQ(accepted, kConnections);
  EXPECT_EQ(echoed, kConnections);
}

TEST(CoSocketTest, ConnectRefused) {
  IoThreads io(1);
  sockaddr_in closed{};
  {
    Listener gone;  // a port that was free a moment ago, closed again
    closed = gone.addr;
  }
  int r = 1;
  RunInCoroutine(io.ctx(0), [&] {
    int fd = NewTcpSocket();
    {
      CoSocket conn(fd);
      r = conn.Connect(reinterpret_cast<const sockaddr*>(&closed), sizeof(closed));
    }
    close(fd);
  });
  EXPECT_EQ(r, -ECONNREFUSED);
}

TEST(CoSocketTest, AcceptTimesOut) {
  IoThreads io(1);
  Listener listener;
  int r = 0;
  RunInCoroutine(io.ctx(0), [&] {
    CoSocket lsock(listener.fd);
    lsock.SetTimeouts(20'000'000, 0);
    r = lsock.Accept(nullptr, nullptr, SOCK_CLOEXEC);
  });
  EXPECT_EQ(r, -ETIMEDOUT);
}

// Calls on the server's fd while `serve` (a coroutine of a fresh IoThread
// with fd monitor `kind`) answers `requests` one-byte requests that this
// thread sends over a socketpair, one in flight at a time, checking each
// echo. Unavailable where the monitor is.
struct LoopCounts {
  int epoll_ctl_calls = 0;
  int recv_eagain = 0;
};

absl::StatusOr<LoopCounts> CountRequestLoop(
    FdMonitorKind kind, int requests, const std::function<void(int fd)>& serve) {
  IoThreadOptions opts;
  opts.aio.fd_monitor = kind;
  auto server = IoThread::Create(opts);
  if (!server.ok()) return server.status();
  SocketPair sp;
  g_watched_fd.store(sp.fd[0]);
  g_epoll_ctl_calls.store(0);
  g_recv_eagain.store(0);
  Latch done(1);
  Coroutine* co = Coroutine::Create([&] {
    serve(sp.fd[0]);
    done.count_down();
  });
  (*server)->context()->CoSchedule(co);
  const int client = sp.fd[1];
  EXPECT_EQ(fcntl(client, F_SETFL, fcntl(client, F_GETFL) & ~O_NONBLOCK), 0);
  for (int i = 0; i < requests; ++i) {
    char c = static_cast<char>('a' + i % 26), echo = 0;
    if (write(client, &c, 1) != 1 || read(client, &echo, 1) != 1 || echo != c) {
      ADD_FAILURE() << "request " << i << " not echoed";
      break;
    }
  }
  done.wait();
  server->reset();
  g_watched_fd.store(-1);
  return LoopCounts{g_epoll_ctl_calls.load(), g_recv_eagain.load()};
}

// The point of CoSocket: a request/response loop registers the fd once and
// never calls recv() just to see EAGAIN, whatever the request count.
class CoSocketMonitorTest : public ::testing::TestWithParam<FdMonitorKind> {};

TEST_P(CoSocketMonitorTest, RequestLoopCostsNoRegistrationUpdates) {
  constexpr int kRequests = 300;
  absl::StatusOr<LoopCounts> counts =
      CountRequestLoop(GetParam(), kRequests, [](int fd) {
        CoSocket sock(fd);
        char buf[64];
        for (int i = 0; i < kRequests; ++i) {
          ASSERT_EQ(sock.RecvSome(buf, sizeof(buf)), 1);
          ASSERT_EQ(sock.Send(buf, 1), 1);
        }
      });
  if (!counts.ok()) GTEST_SKIP() << "fd monitor unavailable: " << counts.status();
  // epoll: one ADD at the first wait (and, at most, a DEL at the end; the
  // CoSocket is gone before the IoThread). Other monitors make no
  // epoll_ctl() calls for the fd at all.
  EXPECT_LE(counts->epoll_ctl_calls, 2);
  // The first RecvSome() may try before any data is there; none after.
  EXPECT_LE(counts->recv_eagain, 1);
}

INSTANTIATE_TEST_SUITE_P(AllMonitors, CoSocketMonitorTest,
                         ::testing::Values(FdMonitorKind::kEpoll,
                                           FdMonitorKind::kIoUring,
                                           FdMonitorKind::kPoll));

// The same loop with CoRecv()/CoSend() updates the registration on every
// wait: shows that the wrapper counts what it should (the test above cannot
// pass vacuously).
TEST(CoSocketTest, CoRecvLoopUpdatesRegistrationPerWait) {
  constexpr int kRequests = 50;
  absl::StatusOr<LoopCounts> counts =
      CountRequestLoop(FdMonitorKind::kEpoll, kRequests, [](int fd) {
        char c;
        for (int i = 0; i < kRequests; ++i) {
          ASSERT_EQ(CoRecv(fd, &c, 1), 1);
          ASSERT_EQ(CoSend(fd, &c, 1), 1);
        }
      });
  ASSERT_TRUE(counts.ok()) << counts.status();
  // recvmsg(), not recv(): only the registrations are comparable. Nearly
  // every request finds the socket empty and waits, and every wait updates
  // the epoll set at least once (48 calls for 50 requests here).
  EXPECT_GE(counts->epoll_ctl_calls, kRequests / 2);
}

using CoSocketDeathTest = ::testing::Test;

TEST_F(CoSocketDeathTest, ConstructedWithoutAioContext) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH({ CoSocket sock(0); }, "CoSocket::CoSocket\\(\\) needs an AioContext");
}

TEST_F(CoSocketDeathTest, WaitOutsideCoroutine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto ctx = AioContext::Create();
        AioContext::SetCurrent(ctx->get());
        int sv[2];
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
        CoSocket sock(sv[0]);
        char c;
        sock.RecvSome(&c, 1);
      },
      "CoSocket::RecvSome\\(\\) called outside a coroutine");
}

TEST_F(CoSocketDeathTest, TwoReadersAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        IoThreads io(1);
        SocketPair sp;
        CoSocket* shared = nullptr;
        RunInCoroutine(io.ctx(0), [&] { shared = new CoSocket(sp.fd[0]); });
        RunCoroutines({io.ctx(0), io.ctx(0)}, [&](int) {
          char c;
          shared->RecvSome(&c, 1);
        });
      },
      "another coroutine already waits to read");
}

TEST_F(CoSocketDeathTest, UsedFromAnotherContext) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        IoThreads io(2);
        SocketPair sp;
        CoSocket* sock = nullptr;
        RunInCoroutine(io.ctx(0), [&] { sock = new CoSocket(sp.fd[0]); });
        RunInCoroutine(io.ctx(1), [&] {
          char c;
          sock->RecvSome(&c, 1);
        });
      },
      "used outside its AioContext");
}

TEST_F(CoSocketDeathTest, DestroyedWhileACoroutineWaits) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        IoThreads io(1);
        SocketPair sp;
        CoSocket* sock = nullptr;
        RunInCoroutine(io.ctx(0), [&] { sock = new CoSocket(sp.fd[0]); });
        io.ctx(0)->CoSchedule(Coroutine::Create([&] {
          char c;
          sock->RecvSome(&c, 1);  // waits: nothing is ever written
        }));
        RunInCoroutine(io.ctx(0), [&] {
          while (!sock->waiting_to_read()) {
            CoSleepNs(ClockType::kMonotonic, 1'000'000);
          }
          delete sock;
        });
      },
      "a coroutine still waits");
}

}  // namespace
}  // namespace aioco
