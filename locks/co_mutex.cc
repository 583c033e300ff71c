// CoMutex: lock-free "responsibility hand-off" mutex (OSv lfmutex, QEMU
// CoMutex).
//
// State and who touches it:
//   locked_     every party; seq_cst RMWs. Holders + lockers in progress.
//   from_push_  lockers push (release CAS); the responsible party empties it
//               (acquire exchange).
//   to_pop_     only the party holding the wake-up responsibility.
//   handoff_    unlocker publishes a token; a locker or the unlocker takes
//               it back with a CAS. seq_cst.
//   sequence_   unlockers only (serialised by ownership).
//   ctx_, holder_  hints/diagnostics written by the holder; relaxed.
//
// Protocol:
//   1. lock(): CAS locked_ 0 -> 1. On success the caller owns the mutex.
//      Otherwise, if the holder is the only party (locked_ == 1) and runs
//      in another AioContext, spin briefly re-trying the CAS; then
//      fetch_add(locked_) makes the caller a pending locker. If that saw 0
//      the caller owns the mutex; else it goes to step 2.
//   2. Slow path: push a wait record, full fence, read handoff_. If a token
//      is outstanding and the CAS token -> 0 wins, the caller now holds the
//      wake-up responsibility: it pops the oldest waiter and either finds
//      itself (owns the mutex, returns) or hands the mutex to that waiter.
//      Then it yields until an unlocker (or another locker) hands it the
//      mutex; it never re-checks: ownership was transferred to it.
//   3. unlock(): fetch_sub(locked_). If it was 1 nobody waits: done.
//      Otherwise some locker has incremented locked_: pop the oldest waiter
//      and hand it the mutex (locked_ keeps the count for it). If no record
//      is queued yet, publish a fresh non-zero token, full fence, and look
//      again: if still nothing is queued, the late locker will see the
//      token (step 2) and take responsibility; if something is queued, try
//      to take the token back and, if that wins, pop again; if it loses, a
//      locker took the responsibility.
//
// Invariant: PopWaiter() runs only while handoff_ == 0 and by exactly one
// party: the unlocker before publishing a token, a locker that won the
// token, or the unlocker that took its own token back. A token is
// outstanding only after a failed pop (to_pop_ empty) and until taken, so
// while one is outstanding nobody pops and to_pop_ stays empty.
//
// HasWaiters() therefore looks at from_push_ only. Both callers act on its
// answer only together with the token: while the token they know of is
// still outstanding nobody has popped since it was published, so to_pop_
// is empty and from_push_ alone is exact; once the token is gone, the
// locker's CAS fails whatever HasWaiters() said, and an unlocker that stops
// early leaves the responsibility with whoever took the token. QEMU's
// has_waiters() reads `to_pop empty || from_push empty` (inverted from
// OSv), which makes the unlocker's early exit dead code; OSv's
// `!to_pop.empty() || !from_push.empty()` would read to_pop_ while a party
// that took the token may be writing it (a data race). tests/model/
// co_mutex.pml checks the protocol written this way, including that
// to_pop_ is empty whenever a token is outstanding.
//
// Fences (QEMU e3a3b6ec8169): the locker's push and the unlocker's token
// store are each followed by a seq_cst fence before the other variable is
// read (Dekker), so either the unlocker sees the record or the locker sees
// the token. A seq_cst RMW alone does not order later relaxed loads.

#include "locks/co_mutex.h"

#include "absl/base/optimization.h"
#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"
#include "coroutine/internal/cpu_relax.h"
#include "coroutine/internal/full_fence.h"
#include "locks/internal/check.h"

namespace aioco {
namespace {

using coroutine_internal::Access;

// Spinning while the holder runs in another context: at most kSpinPauses
// pause instructions in all, re-reading the lock word after 1, 2, 4, ...,
// kMaxPausesBetweenChecks pauses. Reading it rarely keeps the holder's
// cache line exclusive, so the holder's own unlock/lock cycle runs at
// uncontended speed while we wait.
// The budget bounds a spin to well under a millisecond (pause latency
// varies by CPU) with about 260 reads of the lock word, where QEMU's 1000
// cpu_relax() iterations read it 1000 times.
constexpr int kSpinPauses = 4096;
constexpr int kMaxPausesBetweenChecks = 16;

using coroutine_internal::CpuRelax;

}  // namespace

CoMutex::~CoMutex() {
  // Relaxed: a mutex being destroyed must not be shared any more.
  if (ABSL_PREDICT_FALSE(locked_.load(std::memory_order_relaxed) != 0)) {
    locks_internal::Die("CoMutex destroyed while locked");
  }
}

void CoMutex::PushWaiter(WaitRecord* w) {
  // Relaxed: the CAS below re-validates the head.
  WaitRecord* head = from_push_.load(std::memory_order_relaxed);
  do {
    w->next = head;
    // Release: publishes w->next and w->co; pairs with the acquire exchange
    // in PopWaiter().
  } while (!from_push_.compare_exchange_weak(
      head, w, std::memory_order_release, std::memory_order_relaxed));
}

CoMutex::WaitRecord* CoMutex::PopWaiter() {
  if (to_pop_ == nullptr) {
    // Acquire: pairs with the release CAS in PushWaiter().
    WaitRecord* reversed = from_push_.exchange(nullptr, std::memory_order_acquire);
    // from_push_ is newest-first; prepending each record to to_pop_ leaves
    // the oldest at its head.
    while (reversed != nullptr) {
      WaitRecord* next = reversed->next;
      reversed->next = to_pop_;
      to_pop_ = reversed;
      reversed = next;
    }
    if (to_pop_ == nullptr) return nullptr;
  }
  WaitRecord* w = to_pop_;
  to_pop_ = w->next;
  return w;
}

bool CoMutex::HasWaiters() const {
  // Relaxed: every caller has just executed a seq_cst fence (after its push
  // or its token store); the fence pair orders this load. See the design
  // note for why to_pop_ is not consulted.
  return from_push_.load(std::memory_order_relaxed) != nullptr;
}

void CoMutex::Wake(Coroutine* co) {
  // Relaxed: a spinning hint only. Lockers in the wakee's context then
  // queue without spinning.
  ctx_.store(co->aio_context(), std::memory_order_relaxed);
  CoWake(co);
}

void CoMutex::Acquired(Coroutine* self) {
  // Relaxed: holder_ is diagnostic; only the holder writes it.
  holder_.store(self, std::memory_order_relaxed);
  if (self != nullptr) ++Access::locks_held(self);
}

void CoMutex::lock() {
  Coroutine* self = locks_internal::SelfOrDie("CoMutex::lock()");
  // The running coroutine's context is the thread's current one.
  AioContext* ctx = self->aio_context();

  unsigned waiters = 0;
  if (!locked_.compare_exchange_strong(waiters, 1)) {
    // Held. Spinning can only help while the holder is the sole party
    // (locked_ == 1: nobody queued ahead of us, or the handoff would go to
    // them) and it runs in another context (else it cannot run while we
    // spin).
    int backoff = 1;
    for (int paused = 0; waiters == 1 && paused < kSpinPauses;
         paused += backoff) {
      // Relaxed: a hint (see Wake()).
      if (ctx_.load(std::memory_order_relaxed) == ctx) break;
      for (int i = 0; i < backoff; ++i) CpuRelax();
      if (backoff < kMaxPausesBetweenChecks) backoff *= 2;
      // Relaxed: only decides whether to retry the CAS, which synchronises.
      waiters = locked_.load(std::memory_order_relaxed);
      if (waiters == 0 && locked_.compare_exchange_strong(waiters, 1)) break;
    }
    if (waiters != 0) waiters = locked_.fetch_add(1);
  }

  if (waiters == 0) {
    // Relaxed: a hint read by spinning lockers.
    ctx_.store(ctx, std::memory_order_relaxed);
  } else {
    LockSlowPath(ctx, self);
  }
  Acquired(self);
}

void CoMutex::LockSlowPath(AioContext* ctx, Coroutine* self) {
  WaitRecord w{self, nullptr};
  PushWaiter(&w);

  // Our record must be visible before we read handoff_; pairs with the
  // fence after the token store in unlock().
  coroutine_internal::FullFence();

  // Relaxed: ordered by the fence above; the CAS re-validates.
  unsigned old = handoff_.load(std::memory_order_relaxed);
  if (old != 0 && HasWaiters() && handoff_.compare_exchange_strong(old, 0)) {
    // We took the wake-up responsibility from an unlocker that found no
    // queued record: the mutex has no owner. Give it to the oldest waiter.
    WaitRecord* to_wake = PopWaiter();
    if (to_wake == &w) {
      // Relaxed: a hint read by spinning lockers.
      ctx_.store(ctx, std::memory_order_relaxed);
      return;
    }
    Wake(to_wake->co);
  }

  // Whoever pops our record hands us the mutex and wakes us.
  Coroutine::Yield();
}

bool CoMutex::try_lock() {
  unsigned expected = 0;
  if (!locked_.compare_exchange_strong(expected, 1)) return false;
  // Relaxed: a hint read by spinning lockers.
  ctx_.store(coroutine_internal::ThreadAioContext(), std::memory_order_relaxed);
  Acquired(Coroutine::Self());
  return true;
}

void CoMutex::unlock() {
  Coroutine* self = Coroutine::Self();
  // Relaxed: reads of our own writes when the caller is the holder.
  if (ABSL_PREDICT_FALSE(locked_.load(std::memory_order_relaxed) == 0 ||
                         holder_.load(std::memory_order_relaxed) != self)) {
    locks_internal::Die("CoMutex::unlock() called by %s that does not hold "
                        "the mutex",
                        self != nullptr ? "a coroutine" : "non-coroutine code");
  }
  // Relaxed: hints/diagnostics, see the member comments.
  ctx_.store(nullptr, std::memory_order_relaxed);
  holder_.store(nullptr, std::memory_order_relaxed);
  if (self != nullptr) --Access::locks_held(self);

  if (locked_.fetch_sub(1) == 1) return;  // nobody waiting

  for (;;) {
    WaitRecord* to_wake = PopWaiter();
    if (to_wake != nullptr) {
      // Direct handoff: locked_ keeps counting the wakee.
      Wake(to_wake->co);
      break;
    }

    // A locker has incremented locked_ but not pushed its record yet.
    // Offer it the wake-up responsibility.
    if (++sequence_ == 0) sequence_ = 1;
    unsigned our = sequence_;
    handoff_.store(our);
    // Pairs with the fence after the push in LockSlowPath().
    coroutine_internal::FullFence();

    // Still nothing queued: the locker will find the token.
    if (!HasWaiters()) break;
    // A record appeared. If a locker took the token it is responsible now;
    // otherwise we take the token back and pop again.
    if (!handoff_.compare_exchange_strong(our, 0)) break;
  }
}

void CoMutex::AssertHeld() const {
  // Relaxed: diagnostic reads; a holder reads its own writes.
  if (ABSL_PREDICT_FALSE(locked_.load(std::memory_order_relaxed) == 0 ||
                         holder_.load(std::memory_order_relaxed) !=
                             Coroutine::Self())) {
    locks_internal::Die("CoMutex::AssertHeld(): mutex not held by the caller");
  }
}

}  // namespace aioco
