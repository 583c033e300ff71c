// Coroutine socket I/O (QEMU's qemu-coroutine-io.c).
//
// Waiting for an fd: an FdWait record on the waiting coroutine's stack is
// registered as the fd's handler in the current AioContext; the coroutine
// marks itself scheduled (kFdWaitMarker) and yields. The handler runs in
// that context's home thread: it removes the fd's handlers, clears the
// marker and wakes the coroutine (CoWake() from outside a coroutine in the
// same context enters it directly). The record stays valid until then
// because the coroutine cannot resume any other way.
//
// Transfer loop (CoSendvRecvv): one sendmsg/recvmsg per step on the part of
// the iovec not yet done; EINTR retries; EAGAIN waits for the fd; an error
// ends the loop, reported as -errno only if nothing was transferred; a
// zero-byte receive is end-of-file.

#include "locks/co_io.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <memory>

#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "locks/internal/check.h"

namespace aioco {
namespace {

constexpr const char kFdWaitMarker[] = "CoYieldUntilFd";

struct FdWait {
  AioContext* ctx;
  Coroutine* co;
  int fd;
};

void FdReady(void* opaque) {
  auto* wait = static_cast<FdWait*>(opaque);
  Coroutine* co = wait->co;
  wait->ctx->SetFdHandler(wait->fd, nullptr, nullptr, nullptr);
  locks_internal::ReleaseWaitMarker(co, kFdWaitMarker, "fd wait: waiting");
  CoWake(co);
}

void YieldUntilFd(int fd, bool write, const char* function) {
  Coroutine* self = locks_internal::SelfOrDie(function);
  AioContext* ctx = locks_internal::ContextOrDie(function);
  FdWait wait{ctx, self, fd};
  locks_internal::ClaimWaitMarker(self, kFdWaitMarker, function);
  ctx->SetFdHandler(fd, write ? nullptr : &FdReady, write ? &FdReady : nullptr,
                    &wait);
  Coroutine::Yield();
}

// One sendmsg()/recvmsg() on bytes [offset, offset + bytes) of the iovec.
// Returns the byte count or -errno.
ssize_t SendRecvOnce(int fd, const struct iovec* iov, unsigned iov_cnt,
                     size_t offset, size_t bytes, bool do_send) {
  // Skip whole entries before `offset`.
  unsigned first = 0;
  while (first < iov_cnt && offset >= iov[first].iov_len) {
    offset -= iov[first].iov_len;
    ++first;
  }
  // Count the entries that cover `bytes`, at most IOV_MAX.
  unsigned count = 0;
  size_t covered = 0;
  while (first + count < iov_cnt && covered < bytes + offset &&
         count < IOV_MAX) {
    covered += iov[first + count].iov_len;
    ++count;
  }
  if (count == 0) {
    locks_internal::Die("CoSendvRecvv(): offset + bytes beyond the iovec");
  }

  constexpr unsigned kInline = 16;
  struct iovec inline_vec[kInline];
  std::unique_ptr<struct iovec[]> heap_vec;
  struct iovec* vec = inline_vec;
  if (count > kInline) {
    heap_vec.reset(new struct iovec[count]);
    vec = heap_vec.get();
  }
  std::copy(iov + first, iov + first + count, vec);
  vec[0].iov_base = static_cast<char*>(vec[0].iov_base) + offset;
  vec[0].iov_len -= offset;
  // Trim the tail to exactly `bytes` (when the entries cover that much).
  size_t total = covered - offset;
  if (total > bytes) vec[count - 1].iov_len -= total - bytes;

  struct msghdr msg = {};
  msg.msg_iov = vec;
  msg.msg_iovlen = count;
  ssize_t ret;
  if (do_send) {
    ret = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (ret < 0 && errno == ENOTSOCK) ret = writev(fd, vec, static_cast<int>(count));
  } else {
    ret = recvmsg(fd, &msg, 0);
    if (ret < 0 && errno == ENOTSOCK) ret = readv(fd, vec, static_cast<int>(count));
  }
  return ret < 0 ? -errno : ret;
}

}  // namespace

void CoYieldUntilFdReadable(int fd) {
  YieldUntilFd(fd, /*write=*/false, "CoYieldUntilFdReadable()");
}

void CoYieldUntilFdWritable(int fd) {
  YieldUntilFd(fd, /*write=*/true, "CoYieldUntilFdWritable()");
}

ssize_t CoSendvRecvv(int fd, struct iovec* iov, unsigned iov_cnt,
                     size_t offset, size_t bytes, bool do_send) {
  locks_internal::SelfOrDie("CoSendvRecvv()");
  size_t done = 0;
  while (done < bytes) {
    ssize_t ret = SendRecvOnce(fd, iov, iov_cnt, offset + done, bytes - done,
                               do_send);
    if (ret > 0) {
      done += static_cast<size_t>(ret);
    } else if (ret == 0) {
      if (!do_send) break;  // end of file
    } else if (ret == -EINTR) {
      continue;
    } else if (ret == -EAGAIN || ret == -EWOULDBLOCK) {
      YieldUntilFd(fd, do_send, do_send ? "CoSendvRecvv(send)" : "CoSendvRecvv(recv)");
    } else {
      if (done == 0) return ret;
      break;
    }
  }
  return static_cast<ssize_t>(done);
}

ssize_t CoSend(int fd, const void* buf, size_t bytes) {
  struct iovec iov = {const_cast<void*>(buf), bytes};
  return CoSendvRecvv(fd, &iov, 1, 0, bytes, /*do_send=*/true);
}

ssize_t CoRecv(int fd, void* buf, size_t bytes) {
  struct iovec iov = {buf, bytes};
  return CoSendvRecvv(fd, &iov, 1, 0, bytes, /*do_send=*/false);
}

}  // namespace aioco
