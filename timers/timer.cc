// Timer and TimerList.
//
// State: each TimerList owns a binary min-heap of armed Timer pointers keyed
// on (deadline_, seq_) and an intrusive list of every Timer it created. Both,
// and the Timer fields deadline_/seq_/heap_index_/live_*, are guarded by
// TimerList::mu_. Timer::expire_ns_ mirrors deadline_ for lock-free reads.
//
// Protocol:
//  1. Arming removes the timer from the heap if present, stamps it with the
//     next sequence number (FIFO tie-break) and sifts it up. If it ends at the
//     root, the earliest deadline moved earlier: `notify` runs before the
//     unlock, so a thread arming a timer from outside the loop has finished
//     with the list (and the context behind `notify`) before the timer can
//     run and before ~TimerList, which takes mu_ first, can proceed.
//  2. RunTimers() samples the clock once and the sequence counter once, then
//     pops the root while it is expired and was armed before entry; each
//     popped timer is disarmed under the lock and its callback runs unlocked.
//     Timers armed by callbacks wait for the next call, so it terminates.
//  3. Destroying the list detaches every live timer (list_ = nullptr) under
//     the lock.

#include "timers/timer.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "timers/timer_list.h"

namespace aioco {

// -----------------------------------------------------------------------------
// Timer
// -----------------------------------------------------------------------------

Timer::~Timer() {
  if (list_ == nullptr) return;
  std::lock_guard<std::mutex> lock(list_->mu_);
  if (heap_index_ != kNotInHeap) list_->RemoveLocked(this);
  list_->Unregister(this);
}

void Timer::ModNs(int64_t expire_ns) {
  if (list_ == nullptr) {
    std::fprintf(stderr, "Timer::ModNs: the timer's AioContext was destroyed\n");
    std::abort();
  }
  std::lock_guard<std::mutex> lock(list_->mu_);
  // Notify under mu_: the loop cannot run (and its owner cannot destroy the
  // list) in between; ~TimerList takes mu_ first.
  if (list_->ArmLocked(this, expire_ns)) list_->Notify();
}

void Timer::ModAnticipateNs(int64_t expire_ns) {
  if (list_ == nullptr) {
    std::fprintf(stderr, "Timer::ModAnticipateNs: the timer's AioContext was destroyed\n");
    std::abort();
  }
  std::lock_guard<std::mutex> lock(list_->mu_);
  if (expire_ns < 0) expire_ns = 0;
  if (heap_index_ == kNotInHeap || expire_ns < deadline_) {
    // Notify under mu_, as in ModNs().
    if (list_->ArmLocked(this, expire_ns)) list_->Notify();
  }
}

void Timer::Cancel() {
  if (list_ == nullptr) return;
  std::lock_guard<std::mutex> lock(list_->mu_);
  if (heap_index_ != kNotInHeap) list_->RemoveLocked(this);
}

// -----------------------------------------------------------------------------
// TimerList
// -----------------------------------------------------------------------------

TimerList::TimerList(ClockType clock, absl::AnyInvocable<void()> notify)
    : clock_(clock), notify_(std::move(notify)) {}

TimerList::~TimerList() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Timer* t = live_; t != nullptr;) {
    Timer* next = t->live_next_;
    t->list_ = nullptr;
    t->heap_index_ = Timer::kNotInHeap;
    t->deadline_ = -1;
    // Relaxed: expire_ns_ is a snapshot for pending(); mu_ orders the rest.
    t->expire_ns_.store(-1, std::memory_order_relaxed);
    t->live_prev_ = t->live_next_ = nullptr;
    t = next;
  }
  live_ = nullptr;
  heap_.clear();
  UpdateHeadLocked();
}

std::unique_ptr<Timer> TimerList::NewTimer(absl::AnyInvocable<void()> cb) {
  std::unique_ptr<Timer> t(new Timer(this, clock_, std::move(cb)));
  std::lock_guard<std::mutex> lock(mu_);
  t->live_next_ = live_;
  if (live_ != nullptr) live_->live_prev_ = t.get();
  live_ = t.get();
  return t;
}

void TimerList::Unregister(Timer* t) {
  if (t->live_prev_ != nullptr) {
    t->live_prev_->live_next_ = t->live_next_;
  } else {
    live_ = t->live_next_;
  }
  if (t->live_next_ != nullptr) t->live_next_->live_prev_ = t->live_prev_;
  t->live_prev_ = t->live_next_ = nullptr;
}

bool TimerList::ArmLocked(Timer* t, int64_t expire_ns) {
  if (expire_ns < 0) expire_ns = 0;
  if (t->heap_index_ != Timer::kNotInHeap) RemoveLocked(t);
  t->deadline_ = expire_ns;
  t->seq_ = next_seq_++;
  // Relaxed: a snapshot for pending()/expire_time_ns(); mu_ orders the rest.
  t->expire_ns_.store(expire_ns, std::memory_order_relaxed);
  heap_.push_back(t);
  t->heap_index_ = heap_.size() - 1;
  SiftUp(t->heap_index_);
  if (t->heap_index_ != 0) return false;
  UpdateHeadLocked();
  return true;
}

void TimerList::RemoveLocked(Timer* t) {
  size_t i = t->heap_index_;
  Timer* last = heap_.back();
  heap_.pop_back();
  t->heap_index_ = Timer::kNotInHeap;
  t->deadline_ = -1;
  // Relaxed: as in ArmLocked().
  t->expire_ns_.store(-1, std::memory_order_relaxed);
  if (last != t) {
    Place(last, i);
    if (i > 0 && Less(last, heap_[(i - 1) / 2])) {
      SiftUp(i);
    } else {
      SiftDown(i);
    }
  }
  if (i == 0) UpdateHeadLocked();
}

void TimerList::SiftUp(size_t i) {
  Timer* t = heap_[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!Less(t, heap_[parent])) break;
    Place(heap_[parent], i);
    i = parent;
  }
  Place(t, i);
}

void TimerList::SiftDown(size_t i) {
  Timer* t = heap_[i];
  const size_t n = heap_.size();
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && Less(heap_[child + 1], heap_[child])) ++child;
    if (!Less(heap_[child], t)) break;
    Place(heap_[child], i);
    i = child;
  }
  Place(t, i);
}

int64_t TimerList::ExpireTimeNs() const {
  // Acquire: pairs with the release store in UpdateHeadLocked().
  return head_ns_.load(std::memory_order_acquire);
}

int64_t TimerList::DeadlineNs() const {
  int64_t expire = ExpireTimeNs();
  if (expire < 0) return -1;
  int64_t delta = expire - ClockNs(clock_);
  return delta <= 0 ? 0 : delta;
}

bool TimerList::RunTimers() {
  // Acquire: pairs with the release store in UpdateHeadLocked().
  const int64_t head = head_ns_.load(std::memory_order_acquire);
  if (head < 0) return false;
  const int64_t now = ClockNs(clock_);
  if (head > now) return false;
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t seq_limit = next_seq_;
  bool progress = false;
  while (!heap_.empty()) {
    Timer* t = heap_[0];
    if (t->deadline_ > now || t->seq_ >= seq_limit) break;
    RemoveLocked(t);
    lock.unlock();
    // The callback may re-arm, cancel or destroy `t`: do not touch it after.
    t->cb_();
    progress = true;
    lock.lock();
  }
  return progress;
}

// -----------------------------------------------------------------------------
// TimerListGroup
// -----------------------------------------------------------------------------

TimerListGroup::TimerListGroup(absl::AnyInvocable<void()> notify) : notify_(std::move(notify)) {
  for (int i = 0; i < kNumClockTypes; ++i) {
    lists_[i] = std::make_unique<TimerList>(static_cast<ClockType>(i), [this] { notify_(); });
  }
}

int64_t TimerListGroup::DeadlineNs() const {
  int64_t deadline = -1;
  for (const auto& l : lists_) {
    int64_t d = l->DeadlineNs();
    if (d == 0) return 0;
    deadline = SoonestTimeout(deadline, d);
  }
  return deadline;
}

bool TimerListGroup::RunTimers() {
  bool progress = false;
  for (auto& l : lists_) progress |= l->RunTimers();
  return progress;
}

}  // namespace aioco
