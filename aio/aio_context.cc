// AioContext: creation, destruction, fd handlers, Notify() and Poll().
// Bottom halves live in bottom_half.cc, coroutine scheduling in
// co_schedule.cc.
//
// State and who touches it:
//  * notified_, bh_head_, sched_head_: written by any thread (Notify(), BH
//    and coroutine scheduling), consumed by the home thread.
//  * notify_me_: written only by the home thread, read by Notify() in any
//    thread. Bit 0 = embedded mode; bits 1..31 count Poll() calls that are
//    in (or about to enter) a blocking wait, in steps of 2.
//  * callers_: scheduling calls from any thread that have published, or are
//    about to publish, work and still touch the context (EnterCall() before
//    the publish, LeaveCall() after the last access: Notify(), counters).
//    ~AioContext waits for it to reach 0 before freeing anything, so the
//    owner may destroy the context as soon as it learns the work ran.
//  * reply_pending_: set and cleared by the home thread (an atomic only so
//    that a thread misusing SetCurrent() cannot make it a data race).
//  * everything else: home thread only (fd handlers, the monitor, the
//    nested-poll bookkeeping, poll-time adaptation, embedding).
//
// Notify/Poll protocol (QEMU's aio_notify/aio_poll, a Dekker pattern on
// (notified_, notify_me_) that needs a full fence on both sides; QEMU hung on
// aarch64 without it):
//   notifier:  publish work (list insert) ; notified_ = true ; FENCE ;
//              if notify_me_ != 0: write the eventfd
//   home:      notify_me_ += 2 ; FENCE ; if notified_: do not block ;
//              wait ; notify_me_ -= 2 ; notified_ = false ; FENCE ;
//              consume the work
// Either the notifier sees notify_me_ != 0 and writes the eventfd (the wait
// returns), or the home thread sees notified_ and does not block. A notifier
// that finds the loop running (notify_me_ == 0) costs no system call.
//
// Poll(blocking), step by step (libuv-style; the code below is numbered to
// match):
//   1. Bind the context to the thread for the call; enter the walker count.
//   2. Timeout: 0 if not blocking, else the soonest of "a bottom half is
//      scheduled" (0), "an idle bottom half" (10 ms) and the timers.
//   3. Busy polling: if the timeout is non-zero, spin for notified_ up to
//      the longer of two windows; a hit makes the timeout 0. Polling is thus
//      disabled only right before the loop would block.
//      a. Adaptive polling (poll_max_ns, QEMU's): when no user fd handler
//         needs the kernel; adapted in step 8.
//      b. Reply polling (reply_poll_ns): when this thread handed work to
//         another context since it last got here (NoteWorkSent(), from a BH
//         or coroutine scheduled on another context), so that the answer of
//         a cross-thread exchange finds this loop awake: the peer's wake-up
//         is then a flag store, not an eventfd write plus the wake-up of a
//         sleeping CPU. Halved on a miss (floor 1 us), doubled on a hit; an
//         answer that is already here when the loop would not block is a
//         hit. After 2 us a spin yields the CPU between checks (BusyPoll()).
//         A reply spin also ends, without touching the window, when a
//         watched fd needs attention (FdMonitor::EventsPending(), asked
//         every microsecond; io_uring reads its rings, epoll polls its fd):
//         the fds are served at once and the next iteration spins again.
//         At most half the CPUs spin at once, process-wide; a loop that
//         finds every slot taken (more loops than spare CPUs) yields the
//         CPU once and re-checks instead: the threads waiting for a CPU,
//         the peer among them, run first, and the answer is often there
//         when it gets the CPU back, which saves a sleep and a wake-up.
//   4. Announce the blocking phase (notify_me_ += 2, fence) and re-check
//      notified_; a hit makes the timeout 0.
//   5. Ask the fd monitor for ready handlers, waiting up to the timeout. Skip
//      the call when it would not block and no user handler exists.
//   6. Retract the announcement (notify_me_ -= 2) and accept notifications
//      (notified_ = false, fence), before consuming any work. Embedded
//      mode: drain the eventfd.
//   7. Run bottom halves (which include scheduled coroutines).
//   8. Dispatch ready fd handlers; the context's own eventfd is drained and
//      is never progress. Adapt the busy-poll window to how long the loop
//      waited for that notification.
//   9. Leave the walker count; the outermost Poll() frees removed handlers.
//  10. Run expired timers.
//  11. Embedded mode: re-arm the EventFd() timer to the next deadline.
//  12. Restore the thread's previous current context. Return progress.

#include "aio/aio_context.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "aio/aio_wait.h"
#include "aio/internal/context_state.h"
#include "aio/internal/event_notifier.h"
#include "aio/internal/fd_monitor.h"
#include "coroutine/internal/access.h"
#include "coroutine/internal/cpu_relax.h"
#include "coroutine/internal/full_fence.h"
#include "timers/timer_list.h"

namespace aioco {

using aio_internal::AioHandler;
using aio_internal::ContextState;
using aio_internal::Embedding;
using aio_internal::kEventError;
using aio_internal::kEventHangup;
using aio_internal::kEventRead;
using aio_internal::kEventWrite;
using aio_internal::ReadyList;

namespace {

constexpr int64_t kInitialPollNs = 4000;  // first busy-poll window (QEMU)
constexpr int64_t kMinReplyPollNs = 1000;  // floor of the reply-poll window
constexpr int64_t kPureSpinNs = 2000;      // busy polls yield the CPU after this
constexpr int64_t kYieldedNs = 20000;      // a yield this long ends the busy poll
constexpr int64_t kFdCheckNs = 1000;       // a reply spin looks at the fds this often

[[noreturn]] void Die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
  std::fflush(stderr);
  std::abort();
}

using coroutine_internal::CpuRelax;

inline int64_t NowNs() { return ClockNs(ClockType::kMonotonic); }

// Reply polling spins on at most half of the CPUs this process may run on
// (at least one) at any time, process-wide: a machine with more loops than
// CPUs gives its CPUs to the loops with work instead of to spinners.
std::atomic<int> g_reply_spinners{0};

int MaxReplySpinners() {
  static const int max = [] {
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
    return cpus / 2 > 0 ? cpus / 2 : 1;
  }();
  return max;
}

bool ClaimReplySpinner() {
  // Relaxed: a count, publishing nothing; the compare-exchange alone keeps
  // it within the cap.
  int n = g_reply_spinners.load(std::memory_order_relaxed);
  while (n < MaxReplySpinners()) {
    if (g_reply_spinners.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

// Relaxed: see ClaimReplySpinner().
void ReleaseReplySpinner() { g_reply_spinners.fetch_sub(1, std::memory_order_relaxed); }

uint32_t EpollEventsFor(uint32_t events) {
  uint32_t e = 0;
  if (events & kEventRead) e |= EPOLLIN | EPOLLRDHUP;
  if (events & kEventWrite) e |= EPOLLOUT;
  return e;
}

}  // namespace

// -----------------------------------------------------------------------------
// Creation and destruction
// -----------------------------------------------------------------------------

AioContext* AioContext::Current() { return coroutine_internal::ThreadAioContext(); }

void AioContext::SetCurrent(AioContext* ctx) {
  AioContext* const prev = Current();
  if (prev == ctx) return;
  // Relaxed: attached_ is advisory for AioWaiter's adoption of unattached
  // contexts; its compare-exchange is the only decision taken on it.
  if (prev != nullptr) prev->attached_.fetch_sub(1, std::memory_order_relaxed);
  if (ctx != nullptr) ctx->attached_.fetch_add(1, std::memory_order_relaxed);
  coroutine_internal::SetThreadAioContext(ctx);
}

AioContext::AioContext(const AioContextOptions& opts)
    : poll_max_ns_(opts.poll_max_ns),
      poll_grow_(opts.poll_grow),
      poll_shrink_(opts.poll_shrink),
      reply_max_ns_(opts.reply_poll_ns),
      reply_ns_(opts.reply_poll_ns),
      opts_(opts) {}

absl::StatusOr<std::unique_ptr<AioContext>> AioContext::Create(const AioContextOptions& opts) {
  if (opts.poll_max_ns < 0 || opts.poll_grow < 0 || opts.poll_shrink < 0 ||
      opts.reply_poll_ns < 0) {
    return absl::InvalidArgumentError("AioContextOptions: poll parameters must be >= 0");
  }
  std::unique_ptr<AioContext> ctx(new AioContext(opts));
  absl::Status s = ctx->Init();
  if (!s.ok()) return s;
  return ctx;
}

absl::Status AioContext::Init() {
  state_ = std::make_unique<ContextState>();
  timers_ = std::make_unique<TimerListGroup>([this] { Notify(); });
  absl::StatusOr<int> fd = aio_internal::NewEventFd();
  if (!fd.ok()) return fd.status();
  notify_fd_ = *fd;
  absl::StatusOr<std::unique_ptr<aio_internal::FdMonitor>> monitor = aio_internal::NewFdMonitor(
      opts_.fd_monitor, [this](AioHandler* h) { ReleaseHandler(h); });
  if (!monitor.ok()) return monitor.status();
  monitor_ = std::move(*monitor);
  notifier_handler_ = new AioHandler;
  notifier_handler_->fd = notify_fd_;
  notifier_handler_->events = kEventRead;
  int rc = monitor_->AddNotifier(notifier_handler_);
  if (rc < 0) {
    delete notifier_handler_;
    notifier_handler_ = nullptr;
    return absl::InternalError(absl::StrCat("fd monitor refused the eventfd: ", strerror(-rc)));
  }
  co_schedule_bh_ = NewBhInternal([this] { RunScheduledCoroutines(); }, "co_schedule", false);
  hop_bh_ = NewBhInternal([this] { FlushHops(); }, "co_reschedule_self", false);
  return absl::OkStatus();
}

AioContext::~AioContext() {
  // First: a scheduling thread may still be inside a call whose work
  // already ran (see "Lifetime" in aio_context.h).
  WaitForCallers();
  // Then the timers: a thread arming one notifies under the list's lock, so
  // detaching them waits for it (timers/timer.cc, protocol step 1).
  timers_.reset();
  if (Current() == this) SetCurrent(nullptr);
  // Acquire: pairs with the release CAS in ScheduleCoroutine().
  if (sched_head_.load(std::memory_order_acquire) != nullptr || hop_head_ != nullptr) {
    Die("~AioContext: destroyed while a coroutine is scheduled on it");
  }
  if (co_schedule_bh_ != nullptr) co_schedule_bh_->Delete();
  if (hop_bh_ != nullptr) hop_bh_->Delete();
  if (state_ != nullptr) {
    DestroyBhs();
    for (auto& entry : state_->handlers) RemoveHandler(entry.second);
    state_->handlers.clear();
    user_handlers_ = 0;
  }
  if (notifier_handler_ != nullptr) RemoveHandler(notifier_handler_);
  if (state_ != nullptr) FreeDeletedHandlers();
  monitor_.reset();  // releases records with removals still in flight
  if (state_ != nullptr && state_->embed != nullptr) {
    close(state_->embed->epfd);
    close(state_->embed->timerfd);
    delete state_->embed;
    state_->embed = nullptr;
  }
  if (notify_fd_ >= 0) close(notify_fd_);
}

void AioContext::WaitForCallers() {
  // Acquire: pairs with the release fetch_sub in LeaveCall(); every access
  // the callers made happens before the destruction. The wait is a few
  // instructions, or one eventfd write, unless a caller was preempted.
  for (unsigned spins = 0; callers_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 128) {
      CpuRelax();
    } else {
      sched_yield();
    }
  }
}

FdMonitorKind AioContext::fd_monitor() const { return monitor_->kind(); }

std::unique_ptr<Timer> AioContext::NewTimer(ClockType clock, absl::AnyInvocable<void()> cb) {
  return timers_->NewTimer(clock, std::move(cb));
}

void AioContext::SetPollParams(int64_t max_ns, int64_t grow, int64_t shrink) {
  poll_max_ns_ = max_ns < 0 ? 0 : max_ns;
  poll_grow_ = grow < 0 ? 0 : grow;
  poll_shrink_ = shrink < 0 ? 0 : shrink;
  poll_ns_ = 0;
  Notify();
}

// -----------------------------------------------------------------------------
// Notify
// -----------------------------------------------------------------------------

void AioContext::Notify() {
  // Release: orders the caller's published work (a list insert) before the
  // flag; pairs with the acquire load in Poll() step 4.
  notified_.store(true, std::memory_order_release);
  // Full fence: the flag store before the notify_me_ load (Dekker; pairs
  // with the fence in Poll() step 4).
  coroutine_internal::FullFence();
  // Relaxed: ordered by the fence above.
  if (notify_me_.load(std::memory_order_relaxed) != 0) aio_internal::EventFdSet(notify_fd_);
}

void AioContext::NotifyAccept() {
  // Relaxed load: only the home thread clears the flag. Skipping the store
  // when it is already clear avoids dirtying the line every iteration; a
  // notification that lands after the load leaves the flag set, and the
  // next iteration sees it.
  if (notified_.load(std::memory_order_relaxed)) {
    // Relaxed: ordered by the fence below (pairs with Notify()'s fence).
    notified_.store(false, std::memory_order_relaxed);
    // Full fence: the clear before reading the lists the notifier published
    // to (pairs with the fence in Notify()).
    coroutine_internal::FullFence();
  }
}

// -----------------------------------------------------------------------------
// Fd handlers
// -----------------------------------------------------------------------------

void AioContext::SetFdHandler(int fd, IOHandler io_read, IOHandler io_write, void* opaque) {
  auto it = state_->handlers.find(fd);
  Embedding* embed = state_->embed;
  if (io_read == nullptr && io_write == nullptr) {
    if (it == state_->handlers.end()) return;
    AioHandler* h = it->second;
    state_->handlers.erase(it);
    --user_handlers_;
    if (embed != nullptr) {
      if (embed->always_ready.erase(h) == 0) {
        epoll_ctl(embed->epfd, EPOLL_CTL_DEL, fd, nullptr);
      }
    }
    RemoveHandler(h);
    Notify();
    return;
  }
  const uint32_t events = (io_read ? kEventRead : 0) | (io_write ? kEventWrite : 0);
  if (it != state_->handlers.end()) {
    AioHandler* h = it->second;
    h->io_read = io_read;
    h->io_write = io_write;
    h->opaque = opaque;
    if (h->events != events) {
      h->events = events;
      int rc = monitor_->Modify(h);
      if (rc < 0) Die("AioContext::SetFdHandler(fd=%d): %s", fd, strerror(-rc));
      if (embed != nullptr && !embed->always_ready.contains(h)) {
        struct epoll_event ev = {};
        ev.events = EpollEventsFor(events);
        ev.data.fd = fd;
        epoll_ctl(embed->epfd, EPOLL_CTL_MOD, fd, &ev);
      }
    }
    Notify();
    return;
  }
  AioHandler* h = new AioHandler;
  h->fd = fd;
  h->events = events;
  h->io_read = io_read;
  h->io_write = io_write;
  h->opaque = opaque;
  int rc = monitor_->Add(h);
  if (rc < 0) {
    delete h;
    Die("AioContext::SetFdHandler(fd=%d): %s", fd, strerror(-rc));
  }
  state_->handlers.emplace(fd, h);
  ++user_handlers_;
  if (embed != nullptr) {
    struct epoll_event ev = {};
    ev.events = EpollEventsFor(events);
    ev.data.fd = fd;
    if (epoll_ctl(embed->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno == EPERM) {
      embed->always_ready.insert(h);
    }
  }
  Notify();
}

// Stops watching `h` and frees it once neither a dispatch (walking_) nor the
// monitor (a removal in flight) can still reach it.
void AioContext::RemoveHandler(AioHandler* h) {
  h->deleted = true;
  if (!monitor_->Remove(h)) return;  // ReleaseHandler() runs later
  ReleaseHandler(h);
}

void AioContext::ReleaseHandler(AioHandler* h) {
  if (walking_ > 0) {
    state_->deleted_handlers.push_back(h);
  } else {
    delete h;
  }
}

void AioContext::FreeDeletedHandlers() {
  std::vector<AioHandler*> victims;
  victims.swap(state_->deleted_handlers);
  for (AioHandler* h : victims) delete h;
}

// Dispatches the handlers of one Wait(). The ready list's links are reused by
// a nested Poll()'s Wait(), so it is copied first; a handler that a nested
// Poll() already dispatched has its revents cleared and is skipped here.
bool AioContext::DispatchHandlers(AioHandler* ready_head, bool* notifier_fired) {
  absl::InlinedVector<AioHandler*, 16> ready;
  for (AioHandler* h = ready_head; h != nullptr; h = h->ready_next) ready.push_back(h);
  bool progress = false;
  for (AioHandler* h : ready) {
    const uint32_t revents = h->revents;
    h->revents = 0;
    if (revents == 0 || h->deleted) continue;
    if (h == notifier_handler_) {
      // Edge-triggered monitors report each write without a drain.
      if (!monitor_->NotifierEdgeTriggered()) aio_internal::EventFdTestAndClear(notify_fd_);
      *notifier_fired = true;
      continue;
    }
    if ((revents & (kEventRead | kEventHangup | kEventError)) && (h->events & kEventRead) &&
        h->io_read != nullptr) {
      h->io_read(h->opaque);
      progress = true;
    }
    // Re-check: the read handler may have removed or changed the handler.
    if (!h->deleted && (revents & (kEventWrite | kEventError)) && (h->events & kEventWrite) &&
        h->io_write != nullptr) {
      h->io_write(h->opaque);
      progress = true;
    }
  }
  return progress;
}

// -----------------------------------------------------------------------------
// Poll
// -----------------------------------------------------------------------------

int64_t AioContext::ComputeTimeout() {
  int64_t timeout = BhTimeout();
  if (timeout == 0) return 0;
  return SoonestTimeout(timeout, timers_->DeadlineNs());
}

// Spins until notified_ is set (true) or `max_ns` passed since `start`
// (false). *now: the clock when it stopped (or `start`, if it never read it).
// After kPureSpinNs the spin yields the CPU between checks: on a machine
// with more runnable threads than CPUs the peer we wait for may need this
// CPU, and sched_yield() returns at once when nothing else is runnable. A
// yield that lasted kYieldedNs (another thread ran here) ends the poll. The
// loop stays "awake" while it polls (notify_me_ is not raised), so a wake-up
// costs the notifier no system call. If `fds_ready` is not null, the fd
// monitor is asked every kFdCheckNs whether fds need attention; if they do,
// the spin ends with *fds_ready set (false returned).
bool AioContext::BusyPoll(int64_t start, int64_t max_ns, int64_t* now, bool* fds_ready) {
  *now = start;
  int64_t next_fd_check = start;
  for (unsigned i = 1;; ++i) {
    // Relaxed: a hint; NotifyAccept()'s fence and the lists' acquire
    // exchanges order the work itself.
    if (notified_.load(std::memory_order_relaxed)) return true;
    if ((i & 7) != 0) {
      CpuRelax();
      continue;
    }
    *now = NowNs();
    if (fds_ready != nullptr && *now >= next_fd_check) {
      if (monitor_->EventsPending()) {
        *fds_ready = true;
        return false;
      }
      next_fd_check = *now + kFdCheckNs;
    }
    if (*now - start >= max_ns) return false;
    if (*now - start >= kPureSpinNs) {
      const int64_t before_yield = *now;
      sched_yield();
      *now = NowNs();
      // Another thread got this CPU for a while: the machine has more
      // runnable threads than CPUs, and spinning on only delays them.
      if (*now - before_yield >= kYieldedNs) return notified_.load(std::memory_order_relaxed);
    }
  }
}

void AioContext::AdjustPollTime(int64_t block_ns) {
  if (block_ns <= poll_ns_) return;  // the window covered it: keep it
  if (block_ns > poll_max_ns_) {
    poll_ns_ = poll_shrink_ > 0 ? poll_ns_ / poll_shrink_ : 0;
  } else if (poll_ns_ < poll_max_ns_ && block_ns < poll_max_ns_) {
    const int64_t grow = poll_grow_ > 0 ? poll_grow_ : 2;
    poll_ns_ = poll_ns_ > 0 ? poll_ns_ * grow : kInitialPollNs;
    if (poll_ns_ > poll_max_ns_) poll_ns_ = poll_max_ns_;
  }
}

void AioContext::AdjustReplyPollTime(bool answered) {
  if (answered) {
    reply_ns_ = reply_ns_ * 2 > reply_max_ns_ ? reply_max_ns_ : reply_ns_ * 2;
  } else {
    reply_ns_ = reply_ns_ / 2 < kMinReplyPollNs ? kMinReplyPollNs : reply_ns_ / 2;
  }
}

bool AioContext::Poll(bool blocking) {
  // 1. Bind the context to this thread for the call.
  AioContext* const prev = Current();
  if (prev != this) SetCurrent(this);
  ++walking_;
  bool progress = false;
  bool notifier_fired = false;

  // 2. How long may we block?
  int64_t timeout = blocking ? ComputeTimeout() : 0;
  // Start of the wait, for the polling windows' adaptation; a loop with work
  // to do reads no clock.
  const int64_t start = timeout != 0 && (poll_max_ns_ > 0 || reply_max_ns_ > 0) ? NowNs() : 0;
  int64_t spin_end = 0;  // when a busy poll that saw a wake-up ended

  // 3. Busy polling, before announcing that we will block: the adaptive
  // window, or the reply window if this thread handed work to another
  // context since it last got this far (whichever is longer). An answer
  // that is already here counts as one that came within the window.
  // Relaxed: see NoteWorkSent().
  const bool awaiting = reply_max_ns_ > 0 && reply_pending_.load(std::memory_order_relaxed);
  if (awaiting && timeout == 0 && notified_.load(std::memory_order_relaxed)) {
    reply_pending_.store(false, std::memory_order_relaxed);
    AdjustReplyPollTime(true);
  } else if (timeout != 0) {
    int64_t window = poll_max_ns_ > 0 && user_handlers_ == 0 ? poll_ns_ : 0;
    bool spinner = false;  // holds one of the process-wide reply spins
    if (awaiting) {
      reply_pending_.store(false, std::memory_order_relaxed);
      if (reply_ns_ > window && ClaimReplySpinner()) {
        window = reply_ns_;
        spinner = true;
      } else if (window == 0) {
        // Every spin slot is taken: more loops than spare CPUs. Let the
        // threads that wait for a CPU (the peer among them) run once
        // before we sleep; the answer may be here when we get it back.
        sched_yield();
        // Relaxed: as in BusyPoll().
        if (notified_.load(std::memory_order_relaxed)) {
          timeout = 0;
          notifier_fired = true;
        }
      }
    }
    if (window > 0) {
      // A closed adaptive window (0) grows again below if wake-ups come soon.
      const int64_t limit = SoonestTimeout(timeout, window);
      int64_t now = 0;
      bool fds_ready = false;
      const bool hit = BusyPoll(start, limit, &now,
                                spinner && user_handlers_ > 0 ? &fds_ready : nullptr);
      if (spinner) ReleaseReplySpinner();
      if (fds_ready) {
        // Serve the fds now and spin for the answer again next time. A spin
        // cut short (by fds, or by a due timer) says nothing about the
        // answer: the window stays.
        // Relaxed: home thread only (see the state notes at the top).
        reply_pending_.store(true, std::memory_order_relaxed);
        timeout = 0;
      } else if (spinner && (hit || limit == window)) {
        AdjustReplyPollTime(hit);
      }
      if (hit) {
        timeout = 0;
        notifier_fired = true;
        spin_end = now;
      } else if (timeout > 0) {
        const int64_t elapsed = now - start;
        timeout = elapsed >= timeout ? 0 : timeout - elapsed;
      }
    }
  }

  // 4. Announce the blocking phase and re-check for a notification.
  const bool use_notify_me = timeout != 0;
  if (use_notify_me) {
    // Relaxed: single writer; the fence orders it before the notified_ load.
    notify_me_.store(notify_me_.load(std::memory_order_relaxed) + 2, std::memory_order_relaxed);
    coroutine_internal::FullFence();
    // Acquire: pairs with the release store in Notify().
    if (notified_.load(std::memory_order_acquire)) timeout = 0;
  }

  // 5. Wait for fds (and for Notify(), through the eventfd).
  ReadyList ready;
  if (timeout != 0 || user_handlers_ > 0) {
    int r = monitor_->Wait(timeout, &ready);
    if (r < 0 && r != -EINTR) {
      Die("AioContext::Poll: %s fd monitor failed: %s",
          std::string(FdMonitorKindName(monitor_->kind())).c_str(), strerror(-r));
    }
  }

  // 6. Leave the blocking phase; accept notifications before consuming work.
  if (use_notify_me) {
    // Release: pairs with the relaxed load in Notify() (only decides whether
    // a system call is needed; the fences carry the ordering).
    notify_me_.store(notify_me_.load(std::memory_order_relaxed) - 2, std::memory_order_release);
  }
  NotifyAccept();
  // Relaxed: notify_me_ is only written by this thread.
  if (notify_me_.load(std::memory_order_relaxed) & 1) {
    // Embedded mode: every Notify() writes the eventfd, which a foreign loop
    // watches through EventFd(); consume it here even when step 5 did not
    // run, or it would stay readable. A write racing with this read leaves
    // the fd readable for one more (harmless) iteration.
    aio_internal::EventFdTestAndClear(notify_fd_);
  }
  int64_t block_ns = 0;
  if (poll_max_ns_ > 0 && start != 0) block_ns = (spin_end != 0 ? spin_end : NowNs()) - start;

  // 7. Bottom halves (scheduled coroutines run from one).
  progress |= BhPoll();

  // 8. Fd handlers; adapt the busy-poll window.
  progress |= DispatchHandlers(ready.head, &notifier_fired);
  if (poll_max_ns_ > 0 && notifier_fired) AdjustPollTime(block_ns);

  // 9. The outermost Poll() frees handlers removed meanwhile.
  if (--walking_ == 0 && !state_->deleted_handlers.empty()) FreeDeletedHandlers();

  // 10. Timers.
  progress |= timers_->RunTimers();

  // 11. Embedded mode: the EventFd() timer follows the next deadline.
  if (state_->embed != nullptr && walking_ == 0) EmbedRearm();

  // 12. Restore the thread's context.
  if (prev != this) SetCurrent(prev);

  // 13. Progress may have changed a condition that a thread waits on in
  // AioWaitWhile() (a coroutine finished, a flag was set): kick the waiters
  // that are not this loop's own (those re-evaluate after this call anyway).
  if (progress) aio_internal::KickWaitersAfterProgress(this);
  return progress;
}

// -----------------------------------------------------------------------------
// Embedding (EventFd)
// -----------------------------------------------------------------------------

int AioContext::EventFd() const {
  AioContext* self = const_cast<AioContext*>(this);
  ContextState* st = self->state_.get();
  if (st->embed != nullptr) return st->embed->epfd;
  auto* embed = new Embedding;
  embed->epfd = epoll_create1(EPOLL_CLOEXEC);
  embed->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (embed->epfd < 0 || embed->timerfd < 0) {
    Die("AioContext::EventFd: %s", strerror(errno));
  }
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.fd = notify_fd_;
  epoll_ctl(embed->epfd, EPOLL_CTL_ADD, notify_fd_, &ev);
  ev.data.fd = embed->timerfd;
  epoll_ctl(embed->epfd, EPOLL_CTL_ADD, embed->timerfd, &ev);
  for (auto& entry : st->handlers) {
    AioHandler* h = entry.second;
    ev.events = EpollEventsFor(h->events);
    ev.data.fd = h->fd;
    if (epoll_ctl(embed->epfd, EPOLL_CTL_ADD, h->fd, &ev) < 0 && errno == EPERM) {
      embed->always_ready.insert(h);
    }
  }
  st->embed = embed;
  // From now on every Notify() writes the eventfd. Relaxed: single writer;
  // the Notify() below is ordered by its own fence.
  self->notify_me_.store(notify_me_.load(std::memory_order_relaxed) | 1, std::memory_order_relaxed);
  self->EmbedRearm();
  self->Notify();  // anything already pending shows as readable
  return embed->epfd;
}

void AioContext::EmbedRearm() {
  Embedding* embed = state_->embed;
  int64_t timeout = !embed->always_ready.empty() ? 0 : ComputeTimeout();
  const int64_t now = NowNs();
  int64_t abs_ns = timeout < 0 ? -1 : now + (timeout == 0 ? 1 : timeout);
  // An unchanged deadline that has not fired yet needs no system call. A
  // fired one must be re-armed (timerfd_settime also clears its readiness).
  if (abs_ns == embed->armed_abs_ns && (abs_ns < 0 || abs_ns > now)) return;
  if (abs_ns < 0 && embed->armed_abs_ns < 0) return;
  struct itimerspec its = {};
  if (abs_ns >= 0) {
    its.it_value.tv_sec = abs_ns / 1000000000;
    its.it_value.tv_nsec = abs_ns % 1000000000;
  }
  timerfd_settime(embed->timerfd, TFD_TIMER_ABSTIME, &its, nullptr);
  embed->armed_abs_ns = abs_ns;
}

}  // namespace aioco
