// CoRwlock: ticket-based fair reader/writer lock (QEMU's 2021 design) with
// a lock-free fast path for readers and uncontended writers.
//
// State and who touches it:
//   state_   one atomic word: readers * kReader | kWriter | kQueued.
//            readers: every holder of a read lock, however it got it.
//            kWriter: a writer holds the lock (then readers == 0).
//            kQueued: head_ != nullptr. Set and cleared only under mutex_.
//            Every change is a read-modify-write (never a plain store), so
//            a release RMW heads a release sequence that all later RMWs
//            continue: an acquire that reads any later value synchronises
//            with every releasing unlock before it.
//   head_, tail_  FIFO of tickets that live on the waiters' stacks; mutex_
//            (a CoMutex) guards them.
// A queued coroutine carries the scheduled marker kTicketMarker (claimed by
// itself before it releases mutex_), so entering it by another path aborts.
//
// Protocol:
//   1. Fast acquire, no mutex_: while kQueued is clear, a reader CASes
//      readers + 1 if kWriter is clear, a writer CASes 0 -> kWriter.
//      Success is an acquire.
//   1b. If that fails while nobody is queued, spin briefly retrying step 1:
//      a holder on another thread often leaves within microseconds, and
//      queueing costs a yield and a cross-thread wake for us and for every
//      reader that then queues behind us. A holder in our own context
//      cannot leave while we spin: a reader facing a writer of its own
//      context (writer_ctx_, stored by every writer after it acquires and
//      cleared before it releases; unknown counts as another context)
//      queues at once. A writer facing readers cannot tell where they run
//      and spins (bounded, a few microseconds). A spinning locker holds no ticket; once anybody
//      queues it stops and queues too, keeping strict FIFO order.
//   2. Slow acquire: take mutex_ and retry step 1 (kQueued clear means
//      nobody is queued, so taking the lock keeps ticket order). Otherwise
//      append a ticket (the first ticket sets kQueued with an acq_rel RMW:
//      from then on every newcomer, fast or slow, queues behind it), run
//      step 3 in case the lock became compatible before kQueued was set,
//      release mutex_ and yield, unless step 3 granted our own ticket.
//   3. Grant (GrantHead), under mutex_: if the head ticket is compatible
//      with state_ (a reader: kWriter clear; a writer: readers == 0 and
//      kWriter clear), add its share to state_, clear kQueued if the queue
//      is now empty (one acq_rel RMW), unlink it; the caller releases mutex_
//      and wakes it (MaybeWakeOne). Ownership changes before the wake, so
//      nobody can slip in between and a woken coroutine never re-checks.
//      While kQueued is set nobody takes the lock lock-free, so under mutex_
//      kWriter is stable and readers can only fall: a "compatible" answer
//      cannot go stale, and an "incompatible" one is fixed by steps 5/6.
//   4. A woken reader runs step 3 again so that consecutive readers at the
//      head are granted together (a chain, one wake each).
//   5. Read release: CAS readers - 1 (release) unless we are the last
//      reader and kQueued is set; then take mutex_ while still counted,
//      fetch_sub our share and run step 3 for the waiting writer. Holding
//      our share until mutex_ is ours means no party can be granted the
//      lock, finish and destroy it while we still touch it.
//   6. Write release: CAS kWriter -> 0 (release) if kQueued is clear;
//      otherwise take mutex_ (still holding), clear kWriter and run step 3.
//
// No lost wake-up: a ticket waits only on a holder it saw in state_ after
// (or in the same RMW as) setting kQueued. Both RMWs act on state_, so its
// modification order decides: a holder whose release came first in that
// order was seen as gone by step 2's grant; one whose release came later
// saw kQueued (the CAS in steps 5/6 fails on the changed word) and runs
// step 3 itself under mutex_. No starvation: while kQueued is set every
// newcomer queues, so a queued writer waits only for the readers already
// counted.
//
// Upgrade: lock-free CAS kReader -> kWriter when we are the sole reader and
// nobody is queued; otherwise, under mutex_, queue a write ticket at the
// tail, then drop our read share (no newcomer can barge in between) and run
// step 3. Downgrade: CAS kWriter -> kReader (release) when nobody is queued;
// otherwise, under mutex_, swap kWriter for one reader and run step 3,
// which grants queued readers at the head: this is the case QEMU's earlier
// CoQueue-based rwlock lost a wake-up on.
//
// Unlock() tells a read from a write lock by kWriter: while the caller
// holds a read share kWriter cannot be set, and while it holds the write
// lock only the caller can clear it, so a relaxed load (coherence with the
// caller's own acquisition) is exact.

#include "locks/co_rwlock.h"

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/base/optimization.h"
#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"
#include "coroutine/internal/cpu_relax.h"
#include "locks/internal/check.h"

namespace aioco {
namespace {

using coroutine_internal::Access;

constexpr const char kTicketMarker[] = "CoRwlock";

void ClaimMarker(Coroutine* self) {
  locks_internal::ClaimWaitMarker(self, kTicketMarker, "CoRwlock");
}

void ReleaseMarker(Coroutine* co) {
  locks_internal::ReleaseWaitMarker(co, kTicketMarker, "CoRwlock: queued");
}


}  // namespace

CoRwlock::~CoRwlock() {
  // The lock is no longer shared: reading head_ without mutex_ is fine.
  [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (ABSL_PREDICT_FALSE(state_.load(std::memory_order_relaxed) != 0 ||
                           head_ != nullptr)) {
      locks_internal::Die("CoRwlock destroyed while locked");
    }
  }();
}

void CoRwlock::Enqueue(Ticket* ticket) {
  ClaimMarker(ticket->co);
  ticket->next = nullptr;
  if (tail_ == nullptr) {
    head_ = ticket;
    // Acq_rel, though mutex_ alone would do (whoever acts on kQueued takes
    // mutex_ before reading head_): the release pairs with the loads in
    // ReadUnlock()/WriteUnlock() that see kQueued, the acquire with the
    // release CAS of a holder that left just before (steps 5/6).
    state_.fetch_or(kQueued, std::memory_order_acq_rel);
  } else {
    tail_->next = ticket;
  }
  tail_ = ticket;
}

CoRwlock::Ticket* CoRwlock::GrantHead() {
  Ticket* ticket = head_;
  if (ticket == nullptr) return nullptr;
  // Acquire: pairs with the release RMWs of readers and writers that left
  // (steps 5 and 6); the granted ticket inherits that ordering via mutex_
  // and CoWake().
  const uint32_t state = state_.load(std::memory_order_acquire);
  const bool compatible = ticket->read ? (state & kWriter) == 0
                                       : (state & ~kQueued) == 0;
  if (!compatible) return nullptr;
  head_ = ticket->next;
  uint32_t add = ticket->read ? kReader : kWriter;
  uint32_t sub = 0;
  if (head_ == nullptr) {
    tail_ = nullptr;
    sub = kQueued;
  }
  // One RMW (modular unsigned arithmetic) so the word never shows the grant
  // without the cleared kQueued. Acq_rel: the release pairs with the acquire
  // CAS of a fast acquirer once kQueued is clear; the acquire continues the
  // chain from the releases read above.
  state_.fetch_add(add - sub, std::memory_order_acq_rel);
  return ticket;
}

void CoRwlock::MaybeWakeOne() {
  Ticket* ticket = GrantHead();
  Coroutine* to_wake = ticket != nullptr ? ticket->co : nullptr;
  mutex_.unlock();
  if (to_wake != nullptr) {
    if (ABSL_PREDICT_FALSE(to_wake == Coroutine::Self())) {
      locks_internal::Die("CoRwlock: granted the caller's own ticket");
    }
    ReleaseMarker(to_wake);
    CoWake(to_wake);
  }
}

void CoRwlock::WaitForGrant(Ticket*) { Coroutine::Yield(); }

// Step 1b: at most kSpinPauses pause instructions in all, re-reading state_
// after 1, 2, 4, ... kMaxPausesBetweenChecks pauses (as CoMutex does).
constexpr int kSpinPauses = 1024;
constexpr int kMaxPausesBetweenChecks = 16;

using coroutine_internal::CpuRelax;

inline void CoRwlock::NoteWriter() {
  // Relaxed: a hint for Spin(); the line is ours after the acquire RMW.
  writer_ctx_.store(AioContext::Current(), std::memory_order_relaxed);
}

bool CoRwlock::Spin(bool read) {
  // Relaxed: hints, see step 1b.
  if (read && (state_.load(std::memory_order_relaxed) & kWriter) != 0 &&
      writer_ctx_.load(std::memory_order_relaxed) == AioContext::Current()) {
    return false;
  }
  int backoff = 1;
  for (int paused = 0; paused < kSpinPauses; paused += backoff) {
    for (int i = 0; i < backoff; ++i) CpuRelax();
    if (backoff < kMaxPausesBetweenChecks) backoff *= 2;
    // Relaxed: only decides whether to try the CAS, which synchronises.
    uint32_t state = state_.load(std::memory_order_relaxed);
    while ((state & kQueued) == 0 && (read ? (state & kWriter) == 0 : state == 0)) {
      // Acquire on success: pairs with the release of the last unlock, as
      // in RdLock()/WrLock().
      if (state_.compare_exchange_weak(state, state + (read ? kReader : kWriter),
                                       std::memory_order_acquire, std::memory_order_relaxed)) {
        return true;
      }
    }
    if ((state & kQueued) != 0) return false;  // somebody queued: join them
  }
  return false;
}

bool CoRwlock::GrantAndWait(Coroutine* self, Ticket* ticket) {
  Ticket* granted = GrantHead();
  Coroutine* to_wake = granted != nullptr ? granted->co : nullptr;
  mutex_.unlock();
  if (granted == ticket) {
    // The holder left between our look at state_ and kQueued; we were the
    // only ticket, so nobody waits behind us.
    ReleaseMarker(self);
    return false;
  }
  if (to_wake != nullptr) {  // a ticket ahead of us that was due anyway
    ReleaseMarker(to_wake);
    CoWake(to_wake);
  }
  WaitForGrant(ticket);
  return true;
}

void CoRwlock::LockSlowPath(Coroutine* self, bool read) {
  if (Spin(read)) return;
  mutex_.lock();
  // Step 1 again: kQueued clear means nobody is queued (we hold mutex_).
  uint32_t state = state_.load(std::memory_order_relaxed);
  while ((state & kQueued) == 0 &&
         (read ? (state & kWriter) == 0 : state == 0)) {
    // Acquire on success: pairs with the release of the last unlock.
    if (state_.compare_exchange_weak(state, state + (read ? kReader : kWriter),
                                     std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      mutex_.unlock();
      return;
    }
  }
  Ticket ticket{read, self, nullptr};
  Enqueue(&ticket);
  if (!GrantAndWait(self, &ticket)) return;
  if (read) {
    // Granted: state_ already counts us. Pass the grant on to a reader
    // queued right behind us.
    mutex_.lock();
    const uint32_t now = state_.load(std::memory_order_relaxed);
    if (ABSL_PREDICT_FALSE((now & kWriter) != 0 || now < kReader)) {
      locks_internal::Die("CoRwlock::RdLock(): woken without a read grant");
    }
    MaybeWakeOne();
  }
}

void CoRwlock::RdLock() {
  Coroutine* self = locks_internal::SelfOrDie("CoRwlock::RdLock()");
  uint32_t state = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (ABSL_PREDICT_FALSE((state & (kWriter | kQueued)) != 0)) {
      LockSlowPath(self, /*read=*/true);
      break;
    }
    // Acquire on success: pairs with the release of the last write unlock
    // (or Downgrade) through the release sequence on state_.
    if (ABSL_PREDICT_TRUE(state_.compare_exchange_weak(
            state, state + kReader, std::memory_order_acquire,
            std::memory_order_relaxed))) {
      break;
    }
  }
  ++Access::locks_held(self);
}

void CoRwlock::WrLock() {
  Coroutine* self = locks_internal::SelfOrDie("CoRwlock::WrLock()");
  uint32_t state = 0;
  // Acquire on success: pairs with the release of the last read or write
  // unlock through the release sequence on state_.
  if (ABSL_PREDICT_FALSE(!state_.compare_exchange_strong(
          state, kWriter, std::memory_order_acquire,
          std::memory_order_relaxed))) {
    LockSlowPath(self, /*read=*/false);
  }
  NoteWriter();
  ++Access::locks_held(self);
}

void CoRwlock::Upgrade() {
  UpgradeToWriter();
  NoteWriter();
}

void CoRwlock::UpgradeToWriter() {
  Coroutine* self = locks_internal::SelfOrDie("CoRwlock::Upgrade()");
  uint32_t state = state_.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_FALSE((state & kWriter) != 0 || state < kReader)) {
    locks_internal::Die("CoRwlock::Upgrade() called without a read lock");
  }
  // Sole reader, nobody queued. Acquire: pairs with the other readers'
  // release CASes (step 5).
  if (state == kReader &&
      state_.compare_exchange_strong(state, kWriter, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
    return;
  }
  mutex_.lock();
  state = state_.load(std::memory_order_relaxed);
  while (state == kReader) {
    // As above; another reader may slip in until kQueued is set.
    if (state_.compare_exchange_weak(state, kWriter, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      mutex_.unlock();
      return;
    }
  }
  // Queue for writing behind everybody else, then give up our read share.
  Ticket ticket{/*read=*/false, self, nullptr};
  Enqueue(&ticket);
  // Acq_rel: the release orders our reads before the next writer's
  // GrantHead() acquire; the acquire keeps the release sequence going.
  state_.fetch_sub(kReader, std::memory_order_acq_rel);
  GrantAndWait(self, &ticket);
}

void CoRwlock::Downgrade() {
  locks_internal::SelfOrDie("CoRwlock::Downgrade()");
  uint32_t state = state_.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_FALSE((state & kWriter) == 0)) {
    locks_internal::Die("CoRwlock::Downgrade() called without the write lock");
  }
  writer_ctx_.store(nullptr, std::memory_order_relaxed);  // as in WriteUnlock()
  // Nobody queued. Release: pairs with the acquire CAS of fast readers that
  // join us. Only kQueued can change under us, which fails the CAS.
  if (state == kWriter &&
      state_.compare_exchange_strong(state, kReader, std::memory_order_release,
                                     std::memory_order_relaxed)) {
    return;
  }
  mutex_.lock();
  // kWriter -> one reader in one RMW (kReader > kWriter). Acq_rel: the
  // release pairs with the acquire CAS of readers that enter lock-free once
  // the queue drains; the acquire keeps the release sequence going.
  state_.fetch_add(kReader - kWriter, std::memory_order_acq_rel);
  MaybeWakeOne();
}

void CoRwlock::ReadUnlock(uint32_t state) {
  for (;;) {
    if (ABSL_PREDICT_FALSE((state & kQueued) != 0 &&
                           state / kReader == 1)) {
      break;  // last reader with a ticket waiting: step 5's slow half
    }
    // Release: pairs with the acquire of the next writer (WrLock()'s CAS or
    // GrantHead()'s load), through the release sequence on state_.
    if (ABSL_PREDICT_TRUE(state_.compare_exchange_weak(
            state, state - kReader, std::memory_order_release,
            std::memory_order_relaxed))) {
      return;
    }
  }
  mutex_.lock();
  // Acq_rel: release as above (GrantHead() below and later acquirers); the
  // acquire keeps the release sequence going.
  state_.fetch_sub(kReader, std::memory_order_acq_rel);
  MaybeWakeOne();
}

void CoRwlock::WriteUnlock(uint32_t state) {
  // Relaxed: a hint for Spin(); cleared so that a reader of this context
  // does not mistake the next writer (between its acquire and NoteWriter())
  // for us.
  writer_ctx_.store(nullptr, std::memory_order_relaxed);
  // Release: pairs with the acquire CAS of the next lock-free acquirer.
  // Only kQueued can change under us, which fails the CAS.
  if (state == kWriter &&
      state_.compare_exchange_strong(state, 0, std::memory_order_release,
                                     std::memory_order_relaxed)) {
    return;
  }
  mutex_.lock();
  // Acq_rel: the release pairs with GrantHead()'s acquire and with later
  // lock-free acquirers; the acquire keeps the release sequence going.
  state_.fetch_sub(kWriter, std::memory_order_acq_rel);
  MaybeWakeOne();
}

void CoRwlock::Unlock() {
  Coroutine* self = locks_internal::SelfOrDie("CoRwlock::Unlock()");
  if (ABSL_PREDICT_FALSE(Access::locks_held(self) == 0)) {
    locks_internal::Die("CoRwlock::Unlock() called by a coroutine that holds "
                        "no lock");
  }
  // Relaxed: the caller's own acquisition happens-before this load, and
  // nobody else can change the kWriter bit while the caller holds the lock
  // (see the design note), so coherence makes the answer exact.
  const uint32_t state = state_.load(std::memory_order_relaxed);
  if ((state & kWriter) != 0) {
    WriteUnlock(state);
  } else if (state >= kReader) {
    ReadUnlock(state);
  } else {
    locks_internal::Die("CoRwlock::Unlock() called on a free lock");
  }
  --Access::locks_held(self);
}

}  // namespace aioco
