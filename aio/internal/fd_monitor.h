// -----------------------------------------------------------------------------
// File: aio/internal/fd_monitor.h
// -----------------------------------------------------------------------------
//
// FdMonitor: the small interface behind which each fd-readiness backend
// (epoll, io_uring, poll) lives, one file each (fd_monitor_<kind>.cc).
// AioContext owns one monitor and the AioHandler records it watches.
//
// Thread safety: home-thread-only. Every method is called by the thread that
//   runs the owning context's Poll(); nothing here is touched concurrently.
// Lifetime: AioContext allocates AioHandler records. When it removes one it
//   calls Remove(); if that returns false the monitor still references the
//   record (io_uring: a poll request is in flight) and calls the release
//   callback given to the factory once the kernel is done with it. The
//   context must not free the record before that. On destruction a monitor
//   releases every record it still holds.

#ifndef AIOCO_AIO_INTERNAL_FD_MONITOR_H_
#define AIOCO_AIO_INTERNAL_FD_MONITOR_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "aio/fd_monitor_kind.h"

namespace aioco {
namespace aio_internal {

// Readiness bits, for AioHandler::events (interest) and ::revents (result).
inline constexpr uint32_t kEventRead = 1u << 0;
inline constexpr uint32_t kEventWrite = 1u << 1;
// Reported as both readable and writable so handlers see the error on I/O.
inline constexpr uint32_t kEventError = 1u << 2;
inline constexpr uint32_t kEventHangup = 1u << 3;

// One watched fd. Fields above the line belong to AioContext; the monitor
// reads `fd`, `events` and writes `revents`/`ready_next` in Wait().
struct AioHandler {
  int fd = -1;
  uint32_t events = 0;          // interest: kEventRead | kEventWrite
  void (*io_read)(void*) = nullptr;
  void (*io_write)(void*) = nullptr;
  void* opaque = nullptr;
  bool deleted = false;         // removed while a dispatch may still see it
  AioHandler* ctx_next = nullptr;   // AioContext's handler list
  // ---
  uint32_t revents = 0;         // filled by Wait()
  AioHandler* ready_next = nullptr; // ready list built by Wait()
  void* monitor_data = nullptr; // backend-private (e.g. io_uring request state)
  uint64_t monitor_flags = 0;   // backend-private
};

// Singly linked FIFO of handlers that Wait() found ready.
struct ReadyList {
  AioHandler* head = nullptr;
  AioHandler* tail = nullptr;
  void Push(AioHandler* h) {
    h->ready_next = nullptr;
    if (tail) tail->ready_next = h; else head = h;
    tail = h;
  }
};

class FdMonitor {
 public:
  using ReleaseFn = std::function<void(AioHandler*)>;
  virtual ~FdMonitor() = default;

  virtual FdMonitorKind kind() const = 0;

  // Starts watching `h` (h->fd, h->events). Returns -errno on failure (e.g.
  // EPERM for a regular file under epoll) and leaves `h` unwatched.
  virtual int Add(AioHandler* h) = 0;
  // Add() for the owning context's own eventfd. A backend may watch it
  // edge-triggered (epoll: EPOLLET; io_uring: one multi-shot poll instead of
  // one poll per wake-up): every write is then reported by a Wait() (the
  // same one or the next), and the context need not read the eventfd.
  virtual int AddNotifier(AioHandler* h) { return Add(h); }
  // Whether the notifier is watched edge-triggered now. If not, the context
  // drains it whenever it is reported, or it would stay ready.
  virtual bool NotifierEdgeTriggered() const { return false; }
  // `h->events` changed; rearm. Returns -errno on failure.
  virtual int Modify(AioHandler* h) = 0;
  // Stops watching `h`. True: the monitor no longer references `h` and the
  // caller may free it now. False: the release callback frees it later.
  virtual bool Remove(AioHandler* h) = 0;

  // Whether a Wait(0) now would report something, found out without
  // consuming it and without blocking: io_uring reads its rings (no system
  // call); epoll asks poll(2) about the epoll fd (one system call, so
  // callers rate-limit it). False where a backend cannot tell cheaply
  // (poll). Used to cut a busy poll short when fds need attention.
  virtual bool EventsPending() { return false; }

  // Waits up to `timeout_ns` (< 0: forever, 0: don't block) for readiness and
  // pushes every ready handler onto `ready` with `revents` set; a handler
  // appears at most once. Returns the number pushed, or -errno (-EINTR is a
  // normal early return).
  virtual int Wait(int64_t timeout_ns, ReadyList* ready) = 0;
};

// Factories, one per backend file. `release` is called for records whose
// Remove() returned false, once the monitor is done with them.
absl::StatusOr<std::unique_ptr<FdMonitor>> NewEpollMonitor(FdMonitor::ReleaseFn release);
absl::StatusOr<std::unique_ptr<FdMonitor>> NewIoUringMonitor(FdMonitor::ReleaseFn release);
absl::StatusOr<std::unique_ptr<FdMonitor>> NewPollMonitor(FdMonitor::ReleaseFn release);

// kAuto: io_uring if it initialises (kernel support, no seccomp refusal, not
// disabled with AIOCO_DISABLE_IO_URING=1 in the environment), else epoll. An
// explicit kind that cannot initialise returns its error Status.
absl::StatusOr<std::unique_ptr<FdMonitor>> NewFdMonitor(FdMonitorKind kind,
                                                        FdMonitor::ReleaseFn release);

}  // namespace aio_internal
}  // namespace aioco

#endif  // AIOCO_AIO_INTERNAL_FD_MONITOR_H_
