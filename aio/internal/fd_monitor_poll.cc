// FdMonitor backend on ppoll(2): the portable fallback and test oracle.
//
// State (home thread only): the registered handlers in a vector (each
// handler's index kept in monitor_flags for O(1) removal by swap) and a
// pollfd array rebuilt from them on every Wait(). O(n) per Wait(), which is
// why epoll is the default.

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "aio/internal/fd_monitor.h"

namespace aioco {
namespace aio_internal {
namespace {

class PollMonitor final : public FdMonitor {
 public:
  FdMonitorKind kind() const override { return FdMonitorKind::kPoll; }

  int Add(AioHandler* h) override {
    if (h->fd < 0) return -EBADF;
    h->monitor_flags = handlers_.size();
    handlers_.push_back(h);
    return 0;
  }

  int Modify(AioHandler* h) override { return 0; }  // events read in Wait()

  bool Remove(AioHandler* h) override {
    size_t i = h->monitor_flags;
    AioHandler* last = handlers_.back();
    handlers_[i] = last;
    last->monitor_flags = i;
    handlers_.pop_back();
    return true;
  }

  int Wait(int64_t timeout_ns, ReadyList* ready) override {
    pfds_.resize(handlers_.size());
    for (size_t i = 0; i < handlers_.size(); ++i) {
      short events = 0;
      if (handlers_[i]->events & kEventRead) events |= POLLIN | POLLPRI | POLLRDHUP;
      if (handlers_[i]->events & kEventWrite) events |= POLLOUT;
      pfds_[i] = {handlers_[i]->fd, events, 0};
    }
    struct timespec ts;
    struct timespec* tsp = nullptr;
    if (timeout_ns >= 0) {
      ts.tv_sec = timeout_ns / 1000000000;
      ts.tv_nsec = timeout_ns % 1000000000;
      tsp = &ts;
    }
    int r = ppoll(pfds_.data(), pfds_.size(), tsp, nullptr);
    if (r < 0) return -errno;
    int n = 0;
    for (size_t i = 0; i < pfds_.size() && n < r; ++i) {
      short re = pfds_[i].revents;
      if (re == 0) continue;
      uint32_t rev = 0;
      if (re & (POLLIN | POLLPRI)) rev |= kEventRead;
      if (re & POLLOUT) rev |= kEventWrite;
      if (re & (POLLERR | POLLNVAL)) rev |= kEventError;
      if (re & (POLLHUP | POLLRDHUP)) rev |= kEventHangup;
      handlers_[i]->revents = rev;
      ready->Push(handlers_[i]);
      ++n;
    }
    return n;
  }

 private:
  std::vector<AioHandler*> handlers_;
  std::vector<struct pollfd> pfds_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FdMonitor>> NewPollMonitor(FdMonitor::ReleaseFn release) {
  (void)release;  // every Remove() completes synchronously
  return std::unique_ptr<FdMonitor>(new PollMonitor());
}

}  // namespace aio_internal
}  // namespace aioco
