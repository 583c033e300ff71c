// -----------------------------------------------------------------------------
// File: tests/locks/socket_test_util.h
// -----------------------------------------------------------------------------
//
// Socket fixtures shared by the coroutine I/O tests (co_io_test,
// co_socket_test): a non-blocking AF_UNIX socketpair, a byte pattern that
// exposes reordering, and a socket's send buffer size.
//
// Thread safety: SocketPair is not thread-safe; the functions are.

#ifndef AIOCO_TESTS_LOCKS_SOCKET_TEST_UTIL_H_
#define AIOCO_TESTS_LOCKS_SOCKET_TEST_UTIL_H_

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace aioco {
namespace locks_testing {

inline void SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  ASSERT_GE(flags, 0);
  ASSERT_EQ(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
}

// Both ends non-blocking; closed on destruction unless Close()d first.
struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() {
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
    SetNonBlocking(fd[0]);
    SetNonBlocking(fd[1]);
  }
  ~SocketPair() {
    for (int f : fd) {
      if (f >= 0) close(f);
    }
  }
  void Close(int i) {
    close(fd[i]);
    fd[i] = -1;
  }
};

inline std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + i / 251);
  return v;
}

inline size_t SendBufferSize(int fd) {
  int size = 0;
  socklen_t len = sizeof(size);
  getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &len);
  return static_cast<size_t>(size);
}

}  // namespace locks_testing
}  // namespace aioco

#endif  // AIOCO_TESTS_LOCKS_SOCKET_TEST_UTIL_H_
