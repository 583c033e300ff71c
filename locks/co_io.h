// -----------------------------------------------------------------------------
// File: co_io.h
// -----------------------------------------------------------------------------
//
// Coroutine socket helpers: wait for a file descriptor, and send/receive on
// a non-blocking socket without blocking the thread.
//
// Thread safety: thread-safe (no shared state); different coroutines must not
//   wait on the same fd at the same time (one fd handler per fd).
// Context: coroutine-only, in a thread that runs an AioContext; aborts with a
//   message naming the function otherwise.
//
// The fd should be non-blocking (O_NONBLOCK). Sockets are written with
// send(MSG_NOSIGNAL): writing to a closed peer returns -EPIPE instead of
// raising SIGPIPE. Other fds (pipes) fall back to readv()/writev(), where
// SIGPIPE is the process's business.

#ifndef AIOCO_LOCKS_CO_IO_H_
#define AIOCO_LOCKS_CO_IO_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>

namespace aioco {

// CoYieldUntilFdReadable()
//
// Yields until `fd` is readable (or has an error or hang-up condition). Sets
// the fd's handlers in the current AioContext for the duration, replacing
// any that were set, and removes them before returning.
void CoYieldUntilFdReadable(int fd);

// CoYieldUntilFdWritable()
//
// As CoYieldUntilFdReadable(), for writability.
void CoYieldUntilFdWritable(int fd);

// CoSendvRecvv()
//
// Sends (do_send) or receives `bytes` bytes starting `offset` bytes into the
// buffer described by `iov[0..iov_cnt)`. Yields while the fd would block.
// Returns the number of bytes transferred: `bytes`, or fewer if receiving
// hit end-of-file or an error came after some data moved. Returns -errno
// only when the error came before any byte was transferred (for example
// -EPIPE or -ECONNRESET). `offset + bytes` must not exceed the buffer.
ssize_t CoSendvRecvv(int fd, struct iovec* iov, unsigned iov_cnt,
                     size_t offset, size_t bytes, bool do_send);

// CoSendv() / CoRecvv()
//
// CoSendvRecvv() with do_send fixed.
inline ssize_t CoSendv(int fd, struct iovec* iov, unsigned iov_cnt,
                       size_t offset, size_t bytes) {
  return CoSendvRecvv(fd, iov, iov_cnt, offset, bytes, /*do_send=*/true);
}
inline ssize_t CoRecvv(int fd, struct iovec* iov, unsigned iov_cnt,
                       size_t offset, size_t bytes) {
  return CoSendvRecvv(fd, iov, iov_cnt, offset, bytes, /*do_send=*/false);
}

// CoSend() / CoRecv()
//
// Sends or receives `bytes` bytes of one buffer, as CoSendvRecvv().
ssize_t CoSend(int fd, const void* buf, size_t bytes);
ssize_t CoRecv(int fd, void* buf, size_t bytes);

}  // namespace aioco

#endif  // AIOCO_LOCKS_CO_IO_H_
