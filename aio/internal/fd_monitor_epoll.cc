// FdMonitor backend on epoll(7), level-triggered.
//
// State (home thread only): the epoll fd, whose entries carry the AioHandler
// pointer in data.ptr, plus `always_ready_` for fds epoll refuses with EPERM
// (regular files, some device files). poll(2) reports such fds as always
// readable and writable, so they are reported ready on every Wait() with the
// events they asked for; a Wait() with such fds never blocks.
//
// Wait():
//  1. If any always-ready handler exists, the timeout becomes 0 and they are
//     pushed first.
//  2. epoll_pwait2() with a nanosecond timespec (epoll_wait() with the
//     timeout rounded up to ms on kernels without it), up to kMaxEvents.
//     Level-triggered: anything not returned now is returned next time.
//  3. EPOLLIN/PRI -> kEventRead, EPOLLOUT -> kEventWrite, EPOLLERR ->
//     kEventError, EPOLLHUP/RDHUP -> kEventHangup.
// The context's own eventfd (AddNotifier) is the one edge-triggered entry:
// eventfd_write() wakes its waiters on every write, which queues the entry
// again, so each Notify() that writes is reported without anybody draining
// the counter (which cannot reach its 2^64 - 2 ceiling in practice).

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "aio/internal/fd_monitor.h"

namespace aioco {
namespace aio_internal {
namespace {

constexpr int kMaxEvents = 128;
constexpr uint64_t kAlwaysReady = 1;  // AioHandler::monitor_flags

uint32_t ToEpoll(uint32_t events) {
  uint32_t e = 0;
  if (events & kEventRead) e |= EPOLLIN | EPOLLRDHUP;
  if (events & kEventWrite) e |= EPOLLOUT;
  return e;  // EPOLLERR and EPOLLHUP are always reported
}

uint32_t FromEpoll(uint32_t e) {
  uint32_t r = 0;
  if (e & (EPOLLIN | EPOLLPRI)) r |= kEventRead;
  if (e & EPOLLOUT) r |= kEventWrite;
  if (e & EPOLLERR) r |= kEventError;
  if (e & (EPOLLHUP | EPOLLRDHUP)) r |= kEventHangup;
  return r;
}

class EpollMonitor final : public FdMonitor {
 public:
  explicit EpollMonitor(int epfd) : epfd_(epfd) {}
  ~EpollMonitor() override { close(epfd_); }

  FdMonitorKind kind() const override { return FdMonitorKind::kEpoll; }

  int Add(AioHandler* h) override {
    struct epoll_event ev = {};
    ev.events = ToEpoll(h->events);
    ev.data.ptr = h;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, h->fd, &ev) == 0) {
      h->monitor_flags = 0;
      return 0;
    }
    if (errno == EPERM) {
      h->monitor_flags = kAlwaysReady;
      always_ready_.push_back(h);
      return 0;
    }
    return -errno;
  }

  // The notifier: edge-triggered, so the context never reads it (one system
  // call less per wake-up). Each eventfd write is a new edge.
  int AddNotifier(AioHandler* h) override {
    struct epoll_event ev = {};
    ev.events = ToEpoll(h->events) | EPOLLET;
    ev.data.ptr = h;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, h->fd, &ev) < 0) return -errno;
    h->monitor_flags = 0;
    notifier_et_ = true;
    return 0;
  }

  bool NotifierEdgeTriggered() const override { return notifier_et_; }

  // The epoll fd is readable while its ready list is not empty; poll(2)
  // looks without consuming anything.
  bool EventsPending() override {
    if (!always_ready_.empty()) return true;
    struct pollfd pfd = {epfd_, POLLIN, 0};
    return poll(&pfd, 1, 0) > 0;
  }

  int Modify(AioHandler* h) override {
    if (h->monitor_flags & kAlwaysReady) return 0;
    struct epoll_event ev = {};
    ev.events = ToEpoll(h->events);
    ev.data.ptr = h;
    return epoll_ctl(epfd_, EPOLL_CTL_MOD, h->fd, &ev) == 0 ? 0 : -errno;
  }

  bool Remove(AioHandler* h) override {
    if (h->monitor_flags & kAlwaysReady) {
      always_ready_.erase(std::find(always_ready_.begin(), always_ready_.end(), h));
      return true;
    }
    // EBADF/ENOENT: the fd was closed before its handler was removed, which
    // already dropped it from the epoll set.
    epoll_ctl(epfd_, EPOLL_CTL_DEL, h->fd, nullptr);
    return true;
  }

  int Wait(int64_t timeout_ns, ReadyList* ready) override {
    int n = 0;
    for (AioHandler* h : always_ready_) {
      h->revents = h->events & (kEventRead | kEventWrite);
      ready->Push(h);
      ++n;
    }
    if (n > 0) timeout_ns = 0;

    struct epoll_event events[kMaxEvents];
    int r = EpollWait(events, timeout_ns);
    if (r < 0) return n > 0 ? n : -errno;
    for (int i = 0; i < r; ++i) {
      AioHandler* h = static_cast<AioHandler*>(events[i].data.ptr);
      h->revents = FromEpoll(events[i].events);
      ready->Push(h);
    }
    return n + r;
  }

 private:
  int EpollWait(struct epoll_event* events, int64_t timeout_ns) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    if (have_pwait2_) {
      struct timespec ts;
      struct timespec* tsp = nullptr;
      if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
      }
      int r = epoll_pwait2(epfd_, events, kMaxEvents, tsp, nullptr);
      if (r >= 0 || errno != ENOSYS) return r;
      have_pwait2_ = false;
    }
#endif
    int timeout_ms;
    if (timeout_ns < 0) {
      timeout_ms = -1;
    } else {
      // Round up so a timer is never woken for early.
      int64_t ms = (timeout_ns + 999999) / 1000000;
      timeout_ms = static_cast<int>(std::min<int64_t>(ms, INT32_MAX));
    }
    return epoll_wait(epfd_, events, kMaxEvents, timeout_ms);
  }

  const int epfd_;
  bool have_pwait2_ = true;
  bool notifier_et_ = false;
  std::vector<AioHandler*> always_ready_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FdMonitor>> NewEpollMonitor(FdMonitor::ReleaseFn release) {
  (void)release;  // every Remove() completes synchronously
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    return absl::UnavailableError(absl::StrCat("epoll_create1: ", strerror(errno)));
  }
  return std::unique_ptr<FdMonitor>(new EpollMonitor(epfd));
}

}  // namespace aio_internal
}  // namespace aioco
