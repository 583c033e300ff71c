// CoSocket: a resident read handler instead of one registration per wait.
//
// State (home thread only, so plain fields):
//   watch_read_    the read handler should stay registered. Set by a read
//                  wait; cleared when the handler fires with nobody waiting
//                  (a level-triggered monitor would otherwise report the fd
//                  on every iteration until someone reads) and by Detach().
//   read_set_/write_set_  what is registered now; Update() brings the
//                  registration in line with watch_read_ and write_waiter_
//                  with at most one SetFdHandler() call, and none when
//                  nothing changed (the common case).
//   readable_seen_ the handler fired with nobody waiting: the next receive
//                  or WaitReadable() goes ahead without waiting.
//   drained_       the last receive returned less than asked, so the
//                  socket was empty then: RecvSome() waits for the handler
//                  before the next recv() (no recv() that fails with EAGAIN
//                  per request) as long as the handler is registered and
//                  has not fired.
//
// Timeouts (SetTimeouts()): a timed wait arms the direction's Timer (one per
// direction, created on first use, its callback on the home thread like the
// handlers). Whichever of the handler and the timer comes first takes the
// waiter (clears the slot): the handler cancels the timer, the timer sets
// the direction's timed-out flag, which Wait() turns into -ETIMEDOUT.
//
// A waiting coroutine is claimed with the scheduling marker kMarker (as
// co_io.cc does), so a stray CoWake() or a second scheduler is caught. The
// handlers and the timer callback update every field before CoWake(): the
// woken coroutine may destroy the CoSocket before CoWake() returns.

#include "locks/co_socket.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>


#include "absl/base/optimization.h"
#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "locks/internal/check.h"
#include "timers/clock.h"
#include "timers/timer.h"

namespace aioco {
namespace {

constexpr const char kMarker[] = "CoSocket";

}  // namespace

CoSocket::CoSocket(int fd)
    : ctx_(locks_internal::ContextOrDie("CoSocket::CoSocket()")), fd_(fd) {}

CoSocket::~CoSocket() {
  if (ABSL_PREDICT_FALSE(read_waiter_ != nullptr || write_waiter_ != nullptr)) {
    locks_internal::Die("CoSocket::~CoSocket(): fd %d: a coroutine still waits",
                        fd_);
  }
  Detach();
}

void CoSocket::Detach() {
  if (ABSL_PREDICT_FALSE(read_waiter_ != nullptr || write_waiter_ != nullptr)) {
    locks_internal::Die("CoSocket::Detach(): fd %d: a coroutine still waits",
                        fd_);
  }
  watch_read_ = false;
  readable_seen_ = false;
  drained_ = false;
  Update();
}

void CoSocket::Update() {
  const bool want_read = watch_read_;
  const bool want_write = write_waiter_ != nullptr;
  if (want_read == read_set_ && want_write == write_set_) return;
  if (ABSL_PREDICT_FALSE(AioContext::Current() != ctx_)) {
    locks_internal::Die("CoSocket: fd %d used outside its AioContext's thread",
                        fd_);
  }
  ctx_->SetFdHandler(fd_, want_read ? &OnReadable : nullptr,
                     want_write ? &OnWritable : nullptr, this);
  read_set_ = want_read;
  write_set_ = want_write;
}

void CoSocket::Wake(Coroutine* co, const char* waker) {
  locks_internal::ReleaseWaitMarker(co, kMarker, waker);
  CoWake(co);
}

void CoSocket::OnReadable(void* opaque) {
  auto* self = static_cast<CoSocket*>(opaque);
  Coroutine* co = self->read_waiter_;
  if (co == nullptr) {
    // Nobody reads now: remember it, and stop watching until the next wait.
    self->readable_seen_ = true;
    self->watch_read_ = false;
    self->Update();
    return;
  }
  self->read_waiter_ = nullptr;
  self->drained_ = false;
  if (self->read_timer_ != nullptr) self->read_timer_->Cancel();
  Wake(co, "CoSocket (read handler): waiting");  // `self` may be gone after this
}

void CoSocket::OnWritable(void* opaque) {
  auto* self = static_cast<CoSocket*>(opaque);
  Coroutine* co = self->write_waiter_;
  self->write_waiter_ = nullptr;
  self->Update();  // the write handler goes; the read handler stays
  if (self->write_timer_ != nullptr) self->write_timer_->Cancel();
  if (co != nullptr) Wake(co, "CoSocket (write handler): waiting");
}

void CoSocket::OnTimeout(bool write) {
  Coroutine*& slot = write ? write_waiter_ : read_waiter_;
  Coroutine* co = slot;
  if (co == nullptr) return;  // nobody waits any more
  slot = nullptr;
  (write ? write_timed_out_ : read_timed_out_) = true;
  Update();  // a write wait's handler goes; the read handler stays
  Wake(co, "CoSocket (timeout): waiting");
}

void CoSocket::SetTimeouts(int64_t read_ns, int64_t write_ns) {
  read_timeout_ns_ = read_ns > 0 ? read_ns : 0;
  write_timeout_ns_ = write_ns > 0 ? write_ns : 0;
}

int CoSocket::Wait(bool write, const char* function) {
  Coroutine* self = locks_internal::SelfOrDie(function);
  if (ABSL_PREDICT_FALSE(AioContext::Current() != ctx_)) {
    locks_internal::Die("%s: fd %d used outside its AioContext", function, fd_);
  }
  Coroutine*& slot = write ? write_waiter_ : read_waiter_;
  if (ABSL_PREDICT_FALSE(slot != nullptr)) {
    locks_internal::Die("%s: fd %d: another coroutine already waits to %s",
                        function, fd_, write ? "write" : "read");
  }
  locks_internal::ClaimWaitMarker(self, kMarker, function);
  slot = self;
  if (!write) {
    watch_read_ = true;
    readable_seen_ = false;
  }
  Update();
  const int64_t timeout = write ? write_timeout_ns_ : read_timeout_ns_;
  if (timeout > 0) {
    std::unique_ptr<Timer>& timer = write ? write_timer_ : read_timer_;
    if (timer == nullptr) {
      timer = ctx_->NewTimer(ClockType::kMonotonic,
                             [this, write] { OnTimeout(write); });
    }
    timer->ModNs(ClockNs(ClockType::kMonotonic) + timeout);
  }
  Coroutine::Yield();
  bool& timed_out = write ? write_timed_out_ : read_timed_out_;
  if (timed_out) {
    timed_out = false;
    return -ETIMEDOUT;
  }
  return 0;
}

int CoSocket::WaitReadable() {
  if (readable_seen_) {
    readable_seen_ = false;  // once: a caller that does not read waits next
    return 0;
  }
  return Wait(/*write=*/false, "CoSocket::WaitReadable()");
}

int CoSocket::WaitWritable() {
  return Wait(/*write=*/true, "CoSocket::WaitWritable()");
}

ssize_t CoSocket::TryRecvSome(void* buf, size_t len) {
  if (len == 0) return -EINVAL;
  for (;;) {
    ssize_t n = is_socket_ ? recv(fd_, buf, len, 0) : read(fd_, buf, len);
    if (n < 0 && errno == ENOTSOCK && is_socket_) {
      is_socket_ = false;  // a pipe or similar: read() from now on
      continue;
    }
    if (n >= 0) {
      drained_ = static_cast<size_t>(n) < len;
      readable_seen_ = false;
      return n;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      drained_ = true;
      readable_seen_ = false;
      return -EAGAIN;
    }
    return -errno;
  }
}

ssize_t CoSocket::RecvSome(void* buf, size_t len) {
  for (;;) {
    // After a short read, with the handler registered and silent, the
    // socket is still empty: wait before trying.
    if (!(drained_ && read_set_ && !readable_seen_)) {
      ssize_t n = TryRecvSome(buf, len);
      if (n != -EAGAIN) return n;
    }
    if (int r = Wait(/*write=*/false, "CoSocket::RecvSome()"); r < 0) return r;
  }
}

ssize_t CoSocket::Recv(void* buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = RecvSome(static_cast<char*>(buf) + done, len - done);
    if (n == 0) break;  // end of file
    if (n < 0) return done > 0 ? static_cast<ssize_t>(done) : n;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

ssize_t CoSocket::Send(const void* buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    const char* p = static_cast<const char*>(buf) + done;
    ssize_t n = is_socket_ ? send(fd_, p, len - done, MSG_NOSIGNAL)
                           : write(fd_, p, len - done);
    if (n < 0 && errno == ENOTSOCK && is_socket_) {
      is_socket_ = false;
      continue;
    }
    if (n >= 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (int r = WaitWritable(); r < 0) {
        return done > 0 ? static_cast<ssize_t>(done) : r;
      }
      continue;
    }
    return done > 0 ? static_cast<ssize_t>(done) : -errno;
  }
  return static_cast<ssize_t>(done);
}

int CoSocket::Connect(const struct sockaddr* addr, socklen_t addr_len) {
  int r;
  do {
    r = connect(fd_, addr, addr_len);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  if (errno != EINPROGRESS) return -errno;
  if (int w = WaitWritable(); w < 0) return w;
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
  return -err;
}

int CoSocket::Accept(struct sockaddr* addr, socklen_t* addr_len, int flags) {
  for (;;) {
    int fd = accept4(fd_, addr, addr_len, flags);
    if (fd >= 0) {
      readable_seen_ = false;
      return fd;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    if (int r = Wait(/*write=*/false, "CoSocket::Accept()"); r < 0) return r;
  }
}

}  // namespace aioco
