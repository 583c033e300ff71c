// -----------------------------------------------------------------------------
// File: timers/timer.h
// -----------------------------------------------------------------------------
//
// Timer: a one-shot deadline whose callback runs in the home thread of the
// timer list (in practice: the AioContext) that created it.
//
// Thread safety: thread-safe. ModNs(), Cancel(), pending() and
//   expire_time_ns() may be called from any thread; the callback always runs
//   in the home thread, from inside the owner's RunTimers() (AioContext::
//   Poll()). Destroy a Timer in the home thread, or when no other thread can
//   be touching it and its callback is not running.
// Lifetime: a Timer may outlive its TimerList (its AioContext): destroying
//   the list detaches the timer. A detached timer is never pending; Cancel()
//   and destruction are no-ops, and ModNs() aborts with a message because
//   the deadline could never fire.
//
// Ordering: timers fire in deadline order; timers with equal deadlines fire
// in the order they were armed (FIFO tie-break). A callback may re-arm,
// cancel or destroy its own timer, and arm or cancel any other.
//
//   std::unique_ptr<Timer> t = ctx->NewTimer(ClockType::kMonotonic, [&] {
//     ...;  // runs in ctx's home thread
//   });
//   t->ModNs(ClockNs(ClockType::kMonotonic) + 5'000'000);  // in 5 ms

#ifndef AIOCO_TIMERS_TIMER_H_
#define AIOCO_TIMERS_TIMER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "timers/clock.h"

namespace aioco {

class TimerList;

// -----------------------------------------------------------------------------
// Timer
// -----------------------------------------------------------------------------
class Timer {
 public:
  ~Timer();

  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Timer::ModNs()
  //
  // (Re)arms the timer to fire once the clock reaches `expire_ns` (absolute
  // nanoseconds on clock(); negative values are clamped to 0, i.e. "now").
  // Replaces any earlier deadline. Wakes the owning loop only if this timer
  // became the earliest one.
  void ModNs(int64_t expire_ns);

  // Timer::ModAnticipateNs()
  //
  // Like ModNs(), but only ever moves a pending deadline earlier.
  void ModAnticipateNs(int64_t expire_ns);

  // Timer::Cancel()
  //
  // Disarms the timer; a no-op if it is not pending. A callback that already
  // started is not interrupted.
  void Cancel();

  // Timer::pending()
  //
  // True while armed and not yet fired or cancelled.
  bool pending() const { return expire_time_ns() >= 0; }

  // Timer::expire_time_ns()
  //
  // The armed deadline, or -1 when not pending.
  int64_t expire_time_ns() const {
    // Relaxed: a snapshot; written under the list mutex (see TimerList).
    return expire_ns_.load(std::memory_order_relaxed);
  }

  // Timer::expired()
  //
  // True if pending and the deadline is at or before `now_ns`.
  bool expired(int64_t now_ns) const {
    int64_t e = expire_time_ns();
    return e >= 0 && e <= now_ns;
  }

  ClockType clock() const { return clock_; }

 private:
  friend class TimerList;
  static constexpr size_t kNotInHeap = static_cast<size_t>(-1);

  Timer(TimerList* list, ClockType clock, absl::AnyInvocable<void()> cb)
      : list_(list), clock_(clock), cb_(std::move(cb)) {}

  TimerList* list_;  // nullptr once detached
  const ClockType clock_;
  absl::AnyInvocable<void()> cb_;
  std::atomic<int64_t> expire_ns_{-1};

  // Guarded by list_->mu_.
  int64_t deadline_ = -1;
  uint64_t seq_ = 0;  // arm order, the FIFO tie-break
  size_t heap_index_ = kNotInHeap;
  Timer* live_prev_ = nullptr;  // every Timer of the list, for detaching
  Timer* live_next_ = nullptr;
};

}  // namespace aioco

#endif  // AIOCO_TIMERS_TIMER_H_
