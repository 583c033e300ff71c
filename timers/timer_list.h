// -----------------------------------------------------------------------------
// File: timers/timer_list.h
// -----------------------------------------------------------------------------
//
// TimerList: the armed timers of one clock, for one event loop.
// TimerListGroup: one TimerList per ClockType, as an event loop owns them.
//
// Thread safety: NewTimer(), DeadlineNs() and timer arming are thread-safe
//   (an internal std::mutex guards the heap). RunTimers() is home-thread-only:
//   it runs the expired callbacks on the calling thread, with the mutex
//   released, so callbacks may arm and cancel timers freely.
// Notification: the `notify` callback given at construction runs whenever
//   arming a timer made it the earliest one (the deadline the loop sleeps
//   towards got earlier), on the thread that armed it, with no lock held.
//   Cancelling or postponing never notifies: a loop woken too early simply
//   recomputes its deadline.
// Complexity: arm, cancel and pop are O(log n) (intrusive binary min-heap
//   keyed on (deadline, arm sequence)). DeadlineNs(), ExpireTimeNs() and a
//   RunTimers() with nothing expired take no lock: they read an atomic copy
//   of the earliest deadline, so an idle event loop iteration costs no mutex.
// Lifetime: destroying a list detaches the timers it created (see timer.h).
//
// This package knows nothing about event loops; //aio wires `notify` to
// AioContext::Notify().

#ifndef AIOCO_TIMERS_TIMER_LIST_H_
#define AIOCO_TIMERS_TIMER_LIST_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "timers/clock.h"
#include "timers/timer.h"

namespace aioco {

// -----------------------------------------------------------------------------
// TimerList
// -----------------------------------------------------------------------------
class TimerList {
 public:
  TimerList(ClockType clock, absl::AnyInvocable<void()> notify);
  ~TimerList();

  TimerList(const TimerList&) = delete;
  TimerList& operator=(const TimerList&) = delete;

  // TimerList::NewTimer()
  //
  // A new, disarmed timer whose callback runs in RunTimers().
  std::unique_ptr<Timer> NewTimer(absl::AnyInvocable<void()> cb);

  // TimerList::DeadlineNs()
  //
  // Nanoseconds until the earliest timer fires: -1 if none is armed, 0 if
  // one has already expired.
  int64_t DeadlineNs() const;

  // TimerList::ExpireTimeNs()
  //
  // The earliest armed deadline (absolute, on clock()), or -1.
  int64_t ExpireTimeNs() const;

  // TimerList::RunTimers()
  //
  // Home-thread-only. Runs, in deadline order, the timers expired at entry.
  // A timer (re-)armed by a callback during the call is not run by it, even
  // if already expired, and the call stops when such a timer becomes the
  // earliest (DeadlineNs() is then 0: the next call continues), so a
  // callback that re-arms itself for the past cannot livelock the loop.
  // Returns true if any callback ran.
  bool RunTimers();

  ClockType clock() const { return clock_; }

 private:
  friend class Timer;

  // Returns true if `t` became the heap's head. Requires mu_.
  bool ArmLocked(Timer* t, int64_t expire_ns);
  void RemoveLocked(Timer* t);
  bool Less(const Timer* a, const Timer* b) const {
    return a->deadline_ < b->deadline_ ||
           (a->deadline_ == b->deadline_ && a->seq_ < b->seq_);
  }
  void SiftUp(size_t i);
  void SiftDown(size_t i);
  void Place(Timer* t, size_t i) {
    heap_[i] = t;
    t->heap_index_ = i;
  }
  void Unregister(Timer* t);
  // Publishes the heap root's deadline to head_ns_. Requires mu_.
  void UpdateHeadLocked() {
    // Release: pairs with the acquire loads in ExpireTimeNs()/RunTimers().
    head_ns_.store(heap_.empty() ? -1 : heap_[0]->deadline_, std::memory_order_release);
  }
  void Notify() {
    if (notify_) notify_();
  }

  const ClockType clock_;
  absl::AnyInvocable<void()> notify_;

  mutable std::mutex mu_;
  std::vector<Timer*> heap_;   // guarded by mu_
  uint64_t next_seq_ = 0;      // guarded by mu_
  Timer* live_ = nullptr;      // guarded by mu_: every Timer not destroyed
  // The earliest armed deadline or -1; written under mu_, read without it.
  // A stale read is harmless: arming an earlier timer also notifies.
  std::atomic<int64_t> head_ns_{-1};
};

// -----------------------------------------------------------------------------
// TimerListGroup
// -----------------------------------------------------------------------------
class TimerListGroup {
 public:
  // `notify` is shared by the lists (see TimerList); it must be callable
  // from any thread.
  explicit TimerListGroup(absl::AnyInvocable<void()> notify);

  TimerList& list(ClockType clock) {
    return *lists_[static_cast<int>(clock)];
  }

  std::unique_ptr<Timer> NewTimer(ClockType clock, absl::AnyInvocable<void()> cb) {
    return list(clock).NewTimer(std::move(cb));
  }

  // The soonest DeadlineNs() over the clocks: -1 none, 0 expired.
  int64_t DeadlineNs() const;

  // RunTimers() on every clock; true if any callback ran.
  bool RunTimers();

 private:
  absl::AnyInvocable<void()> notify_;
  std::unique_ptr<TimerList> lists_[kNumClockTypes];
};

// SoonestTimeout()
//
// The earlier of two timeouts where -1 means "infinite" (QEMU's
// qemu_soonest_timeout: an unsigned compare).
inline int64_t SoonestTimeout(int64_t a, int64_t b) {
  return static_cast<uint64_t>(a) < static_cast<uint64_t>(b) ? a : b;
}

}  // namespace aioco

#endif  // AIOCO_TIMERS_TIMER_LIST_H_
