// Coroutine socket I/O tests: more than the socket buffer in both directions
// at once over a socketpair, iovec offsets, end-of-file, -EPIPE without
// SIGPIPE, -ECONNRESET, and CoYieldUntilFdReadable().

#include "locks/co_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "coroutine/coroutine.h"
#include "gtest/gtest.h"
#include "tests/locks/locks_test_util.h"
#include "tests/locks/socket_test_util.h"

namespace aioco {
namespace {

using locks_testing::IoThreads;
using locks_testing::RunCoroutines;
using locks_testing::RunInCoroutine;
using locks_testing::Pattern;
using locks_testing::SendBufferSize;
using locks_testing::SetNonBlocking;
using locks_testing::SocketPair;

// Each side sends 8x its socket buffer while the other side does the same,
// from coroutines in two different IoThreads: both sends must yield on
// EAGAIN and resume when the peer drains.
TEST(CoIoTest, BidirectionalTransferLargerThanSocketBuffers) {
  IoThreads io(2);
  SocketPair sp;
  const size_t bytes = 8 * std::max(SendBufferSize(sp.fd[0]), SendBufferSize(sp.fd[1]));
  ASSERT_GT(bytes, 0u);
  std::vector<uint8_t> out[2] = {Pattern(bytes, 1), Pattern(bytes, 99)};
  std::vector<uint8_t> in[2] = {std::vector<uint8_t>(bytes), std::vector<uint8_t>(bytes)};
  ssize_t sent[2] = {0, 0}, received[2] = {0, 0};

  // A sender and a receiver per end; end 0 on thread 0, end 1 on thread 1.
  // The receiver of each end uses a dup() of its fd so that the sender and
  // the receiver wait on fds of their own (one handler per fd).
  int dup_fd[2] = {dup(sp.fd[0]), dup(sp.fd[1])};
  ASSERT_GE(dup_fd[0], 0);
  ASSERT_GE(dup_fd[1], 0);
  RunCoroutines({io.ctx(0), io.ctx(1), io.ctx(0), io.ctx(1)}, [&](int id) {
    int end = id % 2;
    if (id < 2) {
      sent[end] = CoSend(sp.fd[end], out[end].data(), bytes);
    } else {
      received[end] = CoRecv(dup_fd[end], in[end].data(), bytes);
    }
  });
  close(dup_fd[0]);
  close(dup_fd[1]);
  for (int end = 0; end < 2; ++end) {
    EXPECT_EQ(sent[end], static_cast<ssize_t>(bytes));
    EXPECT_EQ(received[end], static_cast<ssize_t>(bytes));
  }
  EXPECT_TRUE(in[0] == out[1]);
  EXPECT_TRUE(in[1] == out[0]);
}

TEST(CoIoTest, IovecWithOffset) {
  IoThreads io(2);
  SocketPair sp;
  std::string a = "0123456789", b = "abcdefghij", c = "KLMNOPQRST";
  struct iovec iov[3] = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
  std::string got(20, '\0');
  std::string head(5, '\0');
  struct iovec in_iov[2] = {{head.data(), head.size()}, {got.data(), got.size()}};
  ssize_t sent = 0, received = 0;
  RunCoroutines({io.ctx(0), io.ctx(1)}, [&](int id) {
    if (id == 0) {
      sent = CoSendv(sp.fd[0], iov, 3, /*offset=*/7, /*bytes=*/18);
    } else {
      // Receive into the second buffer only (offset 5 skips `head`).
      received = CoRecvv(sp.fd[1], in_iov, 2, /*offset=*/5, /*bytes=*/18);
    }
  });
  EXPECT_EQ(sent, 18);
  EXPECT_EQ(received, 18);
  EXPECT_EQ(got.substr(0, 18), "789abcdefghijKLMNO");
  EXPECT_EQ(head, std::string(5, '\0'));
}

TEST(CoIoTest, RecvStopsAtEndOfFile) {
  IoThreads io(1);
  SocketPair sp;
  std::string msg = "partial";
  ASSERT_EQ(write(sp.fd[0], msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
  sp.Close(0);
  std::string buf(100, '\0');
  ssize_t first = -1, second = -1;
  RunInCoroutine(io.ctx(0), [&] {
    first = CoRecv(sp.fd[1], buf.data(), buf.size());
    second = CoRecv(sp.fd[1], buf.data(), buf.size());
  });
  EXPECT_EQ(first, static_cast<ssize_t>(msg.size()));
  EXPECT_EQ(buf.substr(0, msg.size()), msg);
  EXPECT_EQ(second, 0);
}

// EOF arrives while the receiver is parked waiting for more.
TEST(CoIoTest, RecvWaitingIsWokenByEndOfFile) {
  IoThreads io(1);
  SocketPair sp;
  std::atomic<bool> parked{false};
  std::string buf(100, '\0');
  ssize_t got = -1;
  std::thread closer([&] {
    while (!parked.load()) std::this_thread::yield();
    ASSERT_EQ(write(sp.fd[0], "xy", 2), 2);
    shutdown(sp.fd[0], SHUT_WR);
  });
  RunInCoroutine(io.ctx(0), [&] {
    parked = true;
    got = CoRecv(sp.fd[1], buf.data(), buf.size());
  });
  closer.join();
  EXPECT_EQ(got, 2);
}

// Writing to a socket whose peer is gone reports -EPIPE; the process gets
// no SIGPIPE (which would kill this test).
TEST(CoIoTest, SendToClosedPeerIsEpipeNotSigpipe) {
  IoThreads io(1);
  SocketPair sp;
  sp.Close(1);
  std::string msg(1000, 'x');
  ssize_t ret = 0;
  RunInCoroutine(io.ctx(0), [&] { ret = CoSend(sp.fd[0], msg.data(), msg.size()); });
  EXPECT_EQ(ret, -EPIPE);
}

// Data sent before the error is reported as a short count, not an error.
TEST(CoIoTest, ErrorAfterPartialTransferReturnsTheCount) {
  IoThreads io(1);
  SocketPair sp;
  const size_t bytes = 4 * SendBufferSize(sp.fd[0]);
  std::vector<uint8_t> out = Pattern(bytes, 3);
  ssize_t ret = 0;
  std::thread closer([&] {
    // Once some data has arrived, drop the peer.
    int queued = 0;
    while (queued == 0) {
      std::this_thread::yield();
      ASSERT_EQ(ioctl(sp.fd[1], FIONREAD, &queued), 0);
    }
    sp.Close(1);
  });
  RunInCoroutine(io.ctx(0), [&] {
    ret = CoSend(sp.fd[0], out.data(), bytes);
  });
  closer.join();
  EXPECT_GT(ret, 0);
  EXPECT_LT(ret, static_cast<ssize_t>(bytes));
}

// A TCP peer that closes with SO_LINGER {1, 0} sends RST: the receiver
// gets -ECONNRESET.
TEST(CoIoTest, ConnectionResetIsEconnreset) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  close(listener);
  SetNonBlocking(client);

  IoThreads io(1);
  std::atomic<bool> parked{false};
  ssize_t ret = 0;
  std::thread resetter([&] {
    while (!parked.load()) std::this_thread::yield();
    struct linger lin = {1, 0};
    ASSERT_EQ(setsockopt(server, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
    close(server);
  });
  char buf[64];
  RunInCoroutine(io.ctx(0), [&] {
    parked = true;
    ret = CoRecv(client, buf, sizeof(buf));
  });
  resetter.join();
  close(client);
  EXPECT_EQ(ret, -ECONNRESET);
}

TEST(CoIoTest, YieldUntilFdReadable) {
  IoThreads io(1);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  std::atomic<bool> parked{false};
  char c = 0;
  std::thread writer([&] {
    while (!parked.load()) std::this_thread::yield();
    ASSERT_EQ(write(p[1], "!", 1), 1);
  });
  RunInCoroutine(io.ctx(0), [&] {
    parked = true;
    CoYieldUntilFdReadable(p[0]);
    ASSERT_EQ(read(p[0], &c, 1), 1);
  });
  writer.join();
  close(p[0]);
  close(p[1]);
  EXPECT_EQ(c, '!');
}

using CoIoDeathTest = ::testing::Test;

TEST_F(CoIoDeathTest, OutsideCoroutine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        char c;
        CoRecv(0, &c, 1);
      },
      "CoSendvRecvv\\(\\) called outside a coroutine");
}

}  // namespace
}  // namespace aioco
