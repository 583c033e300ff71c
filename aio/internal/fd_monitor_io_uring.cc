// FdMonitor backend on io_uring (liburing), in the way of QEMU's
// fdmon-io_uring.c: one one-shot IORING_OP_POLL_ADD per watched fd, re-armed
// after every completion, which gives level-triggered semantics (a re-armed
// poll on an fd that is still ready completes at once). Multi-shot polls are
// edge-triggered and are deliberately not used.
//
// State (home thread only, like every FdMonitor):
//  * ring_: SQ/CQ rings. user_data of a POLL_ADD is the AioHandler pointer;
//    cancel requests carry kCancelTag, the init probe kProbeTag; liburing's
//    own timeout SQEs (kernels without IORING_FEAT_EXT_ARG) carry
//    LIBURING_UDATA_TIMEOUT. Only POLL_ADD completions are acted upon.
//  * Per handler, in AioHandler::monitor_flags:
//      kArmed      a POLL_ADD is queued in the SQ ring or in the kernel, and
//                  its completion has not been processed yet;
//      kCancelSent a POLL_REMOVE for that poll has been queued;
//      kModified   events changed while armed: re-arm on completion;
//      kRemoved    Remove() returned false: release on completion;
//      kFailed     the last POLL_ADD failed (e.g. EBADF); not re-armed until
//                  Modify();
//      kPending    waiting in rearm_ for its POLL_ADD; its index in rearm_
//                  is kept in the upper 32 bits;
//      kMultishot  the context's own eventfd (AddNotifier()): armed as a
//                  multi-shot poll, whose completions carry IORING_CQE_F_MORE
//                  while it stays armed; it is re-armed only when one
//                  arrives without it. Each eventfd write wakes the poll
//                  again, so the context need not drain the counter
//                  (NotifierEdgeTriggered()).
//  * rearm_: handlers whose POLL_ADD is queued at the start of the next
//    Wait() (new ones, and ones whose poll just completed: they are re-armed
//    only after their handlers ran, so a consumed event is not reported
//    again).
//  * removing_: handlers whose Remove() returned false.
//  * stash_: completions reaped outside Wait() because submission needed CQ
//    room (old kernels answer EBUSY while the CQ overflow list is full).
//
// Wait(timeout):
//  1. Queue a POLL_ADD for every handler in rearm_ (an SQ-full ring is
//     submitted first, then the SQE is taken again).
//  2. Process stashed completions, then whatever the CQ ring holds (moving
//     the kernel's overflow list over when it has one).
//  3. Nothing ready and timeout != 0: queue the POLL_ADDs of handlers that
//     2 re-queued (modified ones), submit and wait for a completion in a
//     single io_uring_enter() (io_uring_submit_and_wait_timeout), and go
//     back to 2. Signals and wake-ups that bring nothing reportable wait
//     again for the remaining time.
//  4. Submit whatever is still queued, and process what arrived meanwhile.
// Wait() returns with the SQ ring empty, so every POLL_REMOVE reaches the
// kernel before the handler it names can be freed and its address reused.
//
// Processing a POLL_ADD completion for handler h:
//  1. Clear kArmed/kCancelSent. kRemoved: forget h, call release(h).
//  2. kModified: clear it; report what the old poll saw (masked with the new
//     interest) and re-arm with the new events.
//  3. -ECANCELED (not ours): re-arm. Another error: report kEventError and
//     mark kFailed (a bad fd would fail again at once).
//  4. Otherwise report the events and queue h in rearm_.
// A handler has at most one poll outstanding and is re-armed only at the
// start of the next Wait(), so it is reported at most once per Wait() (a
// multi-shot one may complete twice: the second only adds to its revents).

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "aio/internal/fd_monitor.h"

namespace aioco {
namespace aio_internal {
namespace {

constexpr unsigned kRingEntries = 128;  // SQ size, as QEMU
constexpr unsigned kReapBatch = 64;

// user_data values that are not AioHandler pointers (which are at least
// 8-aligned and never this small).
constexpr uint64_t kCancelTag = 1;
constexpr uint64_t kProbeTag = 2;

// AioHandler::monitor_flags bits.
constexpr uint64_t kArmed = 1u << 0;
constexpr uint64_t kCancelSent = 1u << 1;
constexpr uint64_t kModified = 1u << 2;
constexpr uint64_t kRemoved = 1u << 3;
constexpr uint64_t kFailed = 1u << 4;
constexpr uint64_t kPending = 1u << 5;
constexpr uint64_t kMultishot = 1u << 6;
constexpr uint64_t kStateMask = (uint64_t{1} << 32) - 1;
constexpr int kIndexShift = 32;

[[noreturn]] void Die(const char* what, int err) {
  std::fprintf(stderr, "io_uring fd monitor: %s: %s\n", what, strerror(err));
  std::fflush(stderr);
  std::abort();
}

unsigned ToPoll(uint32_t events) {
  unsigned mask = 0;
  if (events & kEventRead) mask |= POLLIN | POLLRDHUP;
  if (events & kEventWrite) mask |= POLLOUT;
  return mask;  // POLLERR and POLLHUP are always reported
}

uint32_t FromPoll(unsigned mask) {
  uint32_t r = 0;
  if (mask & (POLLIN | POLLPRI)) r |= kEventRead;
  if (mask & POLLOUT) r |= kEventWrite;
  if (mask & POLLERR) r |= kEventError;
  if (mask & (POLLHUP | POLLRDHUP)) r |= kEventHangup;
  return r;
}

int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

class IoUringMonitor final : public FdMonitor {
 public:
  explicit IoUringMonitor(ReleaseFn release) : release_(std::move(release)) {}

  ~IoUringMonitor() override {
    if (initialized_) io_uring_queue_exit(&ring_);  // cancels every request
    for (AioHandler* h : removing_) {
      h->monitor_flags = 0;
      if (release_) release_(h);
    }
  }

  absl::Status Init();

  FdMonitorKind kind() const override { return FdMonitorKind::kIoUring; }

  int Add(AioHandler* h) override {
    // POLL_ADD reports a bad fd only in its completion; refuse it here, as
    // the other backends do.
    if (fcntl(h->fd, F_GETFD) < 0) return -errno;
    h->monitor_flags = 0;
    if (h->events != 0) QueueRearm(h);
    return 0;
  }

  // The context's eventfd: an edge-triggered multi-shot poll, armed once,
  // not per wake-up; each write completes it again, so nobody drains it.
  int AddNotifier(AioHandler* h) override {
    int r = Add(h);
    if (r == 0) {
      h->monitor_flags |= kMultishot;
      notifier_ = h;
    }
    return r;
  }

  // True while the notifier's multi-shot poll is in use (not after the
  // one-shot fallback).
  bool NotifierEdgeTriggered() const override {
    return notifier_ != nullptr && (notifier_->monitor_flags & kMultishot) != 0;
  }

  int Modify(AioHandler* h) override {
    if (h->monitor_flags & kArmed) {
      h->monitor_flags |= kModified;
      QueueCancel(h);
      return 0;
    }
    h->monitor_flags &= ~kFailed;
    if (!(h->monitor_flags & kPending) && h->events != 0) QueueRearm(h);
    return 0;
  }

  bool Remove(AioHandler* h) override {
    if (h == notifier_) notifier_ = nullptr;
    if (h->monitor_flags & kPending) UnqueueRearm(h);
    if (!(h->monitor_flags & kArmed)) {
      h->monitor_flags = 0;
      return true;
    }
    h->monitor_flags |= kRemoved;
    QueueCancel(h);
    removing_.insert(h);
    return false;
  }

  int Wait(int64_t timeout_ns, ReadyList* ready) override;
  bool EventsPending() override;

 private:
  io_uring_sqe* GetSqe();
  int SubmitAll();
  void StashCqes();
  int ReapRing(ReadyList* ready);
  int Process(uint64_t user_data, int32_t res, uint32_t cqe_flags, ReadyList* ready);
  void FlushRearms();
  int WaitOnce(int64_t timeout_ns);
  int Drain(ReadyList* ready);

  void QueueRearm(AioHandler* h) {
    h->monitor_flags = (h->monitor_flags & kStateMask) | kPending |
                       (static_cast<uint64_t>(rearm_.size()) << kIndexShift);
    rearm_.push_back(h);
  }

  void UnqueueRearm(AioHandler* h) {
    const size_t i = h->monitor_flags >> kIndexShift;
    AioHandler* last = rearm_.back();
    rearm_[i] = last;
    last->monitor_flags = (last->monitor_flags & kStateMask) | (static_cast<uint64_t>(i) << kIndexShift);
    rearm_.pop_back();
    h->monitor_flags &= kStateMask & ~kPending;
  }

  void QueueCancel(AioHandler* h) {
    if (h->monitor_flags & kCancelSent) return;
    h->monitor_flags |= kCancelSent;
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_poll_remove(sqe, reinterpret_cast<uintptr_t>(h));
    io_uring_sqe_set_data64(sqe, kCancelTag);
  }

  const ReleaseFn release_;
  uint64_t wait_seq_ = 0;  // Wait() calls so far (see Process())
  AioHandler* notifier_ = nullptr;  // from AddNotifier()
  struct io_uring ring_;
  bool initialized_ = false;
  std::vector<AioHandler*> rearm_;
  std::unordered_set<AioHandler*> removing_;
  struct Completion {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
  };
  std::vector<Completion> stash_;
};

absl::Status IoUringMonitor::Init() {
  // Cooperative task running (Linux 5.19+): a poll completing while this
  // thread runs in user space does not interrupt it with an IPI (costly on a
  // VM: each is a VM exit); the completion is posted at its next kernel
  // entry, and IORING_SQ_TASKRUN tells a non-blocking peek to enter for it
  // (liburing's peek does). Older kernels refuse the flags: plain ring.
  struct io_uring_params params = {};
  params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
  int r = io_uring_queue_init_params(kRingEntries, &ring_, &params);
  if (r == -EINVAL) r = io_uring_queue_init(kRingEntries, &ring_, 0);
  if (r < 0) {
    // ENOSYS: no kernel support or a seccomp filter; EPERM: the
    // kernel.io_uring_disabled sysctl or a policy; ENOMEM: RLIMIT_MEMLOCK on
    // old kernels.
    return absl::UnavailableError(absl::StrCat("io_uring_queue_init: ", strerror(-r)));
  }
  initialized_ = true;
  if (!(ring_.features & IORING_FEAT_NODROP)) {
    // Without it a CQ overflow drops poll completions and their handlers
    // would never fire again.
    return absl::UnavailableError("io_uring: kernel lacks IORING_FEAT_NODROP");
  }
  if (struct io_uring_probe* probe = io_uring_get_probe_ring(&ring_)) {
    const bool ok = io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) &&
                    io_uring_opcode_supported(probe, IORING_OP_POLL_REMOVE);
    io_uring_free_probe(probe);
    if (!ok) return absl::UnavailableError("io_uring: POLL_ADD/POLL_REMOVE unsupported");
  }
  // A NOP round trip: a filter may allow io_uring_setup() but refuse
  // io_uring_enter().
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data64(sqe, kProbeTag);
  do {
    r = io_uring_submit_and_wait(&ring_, 1);
  } while (r == -EINTR);
  if (r < 0) return absl::UnavailableError(absl::StrCat("io_uring_enter: ", strerror(-r)));
  struct io_uring_cqe* cqe = nullptr;
  r = io_uring_peek_cqe(&ring_, &cqe);
  if (r < 0 || cqe == nullptr || cqe->user_data != kProbeTag || cqe->res != 0) {
    return absl::UnavailableError("io_uring: NOP probe failed");
  }
  io_uring_cqe_seen(&ring_, cqe);
  return absl::OkStatus();
}

// Returns a free SQE, submitting the full SQ ring first if needed.
io_uring_sqe* IoUringMonitor::GetSqe() {
  for (;;) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    int r = SubmitAll();
    if (r < 0) Die("io_uring_submit", -r);
  }
}

// Submits everything queued in the SQ ring. Returns 0 or -errno.
int IoUringMonitor::SubmitAll() {
  while (io_uring_sq_ready(&ring_) > 0) {
    int r = io_uring_submit(&ring_);
    if (r >= 0 || r == -EINTR) continue;
    if (r == -EBUSY || r == -EAGAIN) {
      // The CQ (and its overflow list) is full: make room and retry.
      StashCqes();
      continue;
    }
    return r;
  }
  return 0;
}

void IoUringMonitor::StashCqes() {
  struct io_uring_cqe* cqes[kReapBatch];
  for (;;) {
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kReapBatch);
    if (n == 0) break;
    for (unsigned i = 0; i < n; ++i) {
      stash_.push_back({cqes[i]->user_data, cqes[i]->res, cqes[i]->flags});
    }
    io_uring_cq_advance(&ring_, n);
  }
}

int IoUringMonitor::ReapRing(ReadyList* ready) {
  struct io_uring_cqe* cqes[kReapBatch];
  int pushed = 0;
  for (;;) {
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kReapBatch);
    if (n == 0) {
      if (!io_uring_cq_has_overflow(&ring_)) break;
      // Completions wait in the kernel's overflow list: move them over.
      int r = io_uring_get_events(&ring_);
      if (r < 0 && r != -EINTR && r != -EBUSY && r != -EAGAIN) Die("io_uring_get_events", -r);
      continue;
    }
    for (unsigned i = 0; i < n; ++i) {
      pushed += Process(cqes[i]->user_data, cqes[i]->res, cqes[i]->flags, ready);
    }
    io_uring_cq_advance(&ring_, n);
  }
  return pushed;
}

int IoUringMonitor::Process(uint64_t user_data, int32_t res, uint32_t cqe_flags,
                            ReadyList* ready) {
  if (user_data == kCancelTag || user_data == kProbeTag || user_data == LIBURING_UDATA_TIMEOUT) {
    return 0;
  }
  AioHandler* h = reinterpret_cast<AioHandler*>(static_cast<uintptr_t>(user_data));
  const uint64_t flags = h->monitor_flags;
  // A multi-shot poll's completion with F_MORE leaves the request armed.
  const bool more = (cqe_flags & IORING_CQE_F_MORE) != 0;
  if (!more) h->monitor_flags &= ~(kArmed | kCancelSent | kModified);
  if (flags & kRemoved) {
    if (more) return 0;  // the final completion is still to come
    removing_.erase(h);
    h->monitor_flags = 0;
    if (release_) release_(h);
    return 0;
  }
  uint32_t revents = 0;
  if (res >= 0) {
    revents = FromPoll(static_cast<unsigned>(res));
    // A modified handler hears only about what it now asks for.
    if (flags & kModified) revents &= h->events | kEventError | kEventHangup;
    if (!more && h->events != 0) QueueRearm(h);
  } else if (res == -ECANCELED) {
    if (h->events != 0) QueueRearm(h);
  } else if ((flags & kMultishot) && res == -EINVAL) {
    // A kernel without multi-shot polls (before 5.13): one-shot from now on.
    h->monitor_flags &= ~kMultishot;
    QueueRearm(h);
    return 0;
  } else {
    // The fd is unusable (typically closed while watched). Report it once so
    // the handlers see the error on I/O; re-arming would fail at once.
    revents = kEventError;
    h->monitor_flags |= kFailed;
  }
  if (revents == 0) return 0;
  if (flags & kMultishot) {
    // A multi-shot poll may complete twice in one Wait(): report it once.
    // monitor_data holds the number of the Wait() that last reported it.
    void* const seq = reinterpret_cast<void*>(static_cast<uintptr_t>(wait_seq_));
    if (h->monitor_data == seq) {
      h->revents |= revents;
      return 0;
    }
    h->monitor_data = seq;
  }
  h->revents = revents;
  ready->Push(h);
  return 1;
}

void IoUringMonitor::FlushRearms() {
  // GetSqe() may submit and stash completions, but never processes them, so
  // rearm_ does not change during the loop.
  for (AioHandler* h : rearm_) {
    if (h->events == 0) {  // modified to nothing while waiting
      h->monitor_flags &= kStateMask & ~kPending;
      continue;
    }
    io_uring_sqe* sqe = GetSqe();
    if (h->monitor_flags & kMultishot) {
      io_uring_prep_poll_multishot(sqe, h->fd, ToPoll(h->events));
    } else {
      io_uring_prep_poll_add(sqe, h->fd, ToPoll(h->events));
    }
    io_uring_sqe_set_data64(sqe, reinterpret_cast<uintptr_t>(h));
    h->monitor_flags = (h->monitor_flags & kStateMask & ~kPending) | kArmed;
  }
  rearm_.clear();
}

// One io_uring_enter(): submits what is queued and waits for a completion,
// up to `timeout_ns` (< 0: forever). Returns 0 or -errno; a timeout, a
// signal and a wake-up without completions are all 0 (the caller loops).
int IoUringMonitor::WaitOnce(int64_t timeout_ns) {
  int r;
  if (timeout_ns < 0) {
    r = io_uring_submit_and_wait(&ring_, 1);
  } else {
    struct io_uring_cqe* cqe = nullptr;
    struct __kernel_timespec ts;
    ts.tv_sec = timeout_ns / 1000000000;
    ts.tv_nsec = timeout_ns % 1000000000;
    r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  if (r >= 0 || r == -ETIME || r == -EINTR) return 0;
  if (r == -EBUSY || r == -EAGAIN) {
    StashCqes();  // make CQ room; the caller processes the stash
    return 0;
  }
  return r;
}

int IoUringMonitor::Drain(ReadyList* ready) {
  int pushed = 0;
  if (!stash_.empty()) {
    std::vector<Completion> stash;
    stash.swap(stash_);
    for (const Completion& c : stash) pushed += Process(c.user_data, c.res, c.flags, ready);
  }
  return pushed + ReapRing(ready);
}

bool IoUringMonitor::EventsPending() {
  // Handlers that ran since the last Wait() are re-armed only there: arm
  // them now (one io_uring_enter(), only the first time) so that their fds
  // are watched too. A poll on an fd that is already ready completes at
  // submission.
  if (!rearm_.empty()) {
    FlushRearms();
    if (SubmitAll() < 0) return true;  // let Wait() report the failure
  }
  if (!stash_.empty() || io_uring_cq_ready(&ring_) > 0) return true;
  // Completions the kernel holds back: task work not run yet (COOP_TASKRUN
  // posts them at our next kernel entry) or a CQ overflow list.
  const unsigned flags = IO_URING_READ_ONCE(*ring_.sq.kflags);
  return (flags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
}

int IoUringMonitor::Wait(int64_t timeout_ns, ReadyList* ready) {
  ++wait_seq_;
  // 1. Arm new and just-fired handlers.
  FlushRearms();

  // 2./3. Take what is there; block while nothing is and we may. A wake-up
  // that brings only cancel completions, or a signal, waits again for the
  // rest of the timeout, so Wait() does not return early with nothing.
  const int64_t deadline = timeout_ns > 0 ? MonotonicNs() + timeout_ns : 0;
  int pushed = 0;
  for (;;) {
    pushed += Drain(ready);
    if (pushed > 0 || timeout_ns == 0) break;
    int64_t left = -1;
    if (timeout_ns > 0) {
      left = deadline - MonotonicNs();
      if (left <= 0) break;
    }
    // Handlers re-queued by what was processed (modified ones whose
    // cancelled poll came back) are armed before blocking. Nothing has been
    // reported yet, so none of them can be reported twice.
    FlushRearms();
    int r = WaitOnce(left);
    if (r < 0) return r;
  }

  // 4. Leave nothing queued (see the invariant above), then take what
  // arrived meanwhile.
  int r = SubmitAll();
  if (r < 0) return pushed > 0 ? pushed : r;
  return pushed + Drain(ready);
}

}  // namespace

absl::StatusOr<std::unique_ptr<FdMonitor>> NewIoUringMonitor(FdMonitor::ReleaseFn release) {
  auto monitor = std::make_unique<IoUringMonitor>(std::move(release));
  absl::Status status = monitor->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<FdMonitor>(std::move(monitor));
}

}  // namespace aio_internal
}  // namespace aioco
