// CoRwlock: ticket-based fair reader/writer lock (QEMU's 2021 design).
//
// State, all guarded by mutex_ (a CoMutex): owners_ (>0 readers, -1 a
// writer, 0 free) and a FIFO of tickets that live on the waiters' stacks.
// A queued coroutine carries the scheduled marker kTicketMarker (claimed by
// itself before it releases mutex_), so entering it by another path aborts.
//
// Protocol:
//   1. Acquire: under mutex_, take the lock at once if it is compatible and
//      (for readers) nobody is queued; otherwise append a ticket, release
//      mutex_ and yield.
//   2. Grant (MaybeWakeOne): under mutex_, if the head ticket is compatible
//      with owners_, update owners_ for it and unlink it, then release
//      mutex_ and wake its coroutine. Ownership changes before the wake, so
//      no new locker can take the lock in between, and a woken coroutine
//      never re-checks.
//   3. A woken reader runs step 2 again so that consecutive readers at the
//      head are granted together (a chain, one wake each).
//   4. Release: under mutex_, drop our share of owners_, then step 2.
//
// Upgrade gives up the read share and queues a write ticket at the tail
// (step 2 then runs for whoever is at the head). Downgrade turns -1 into 1
// and runs step 2, which grants queued readers at the head: this is the case
// QEMU's earlier CoQueue-based rwlock lost a wake-up on.

#include "locks/co_rwlock.h"

#include <atomic>
#include <cstddef>

#include "absl/base/optimization.h"
#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"
#include "locks/internal/check.h"

namespace aioco {
namespace {

using coroutine_internal::Access;

constexpr const char kTicketMarker[] = "CoRwlock";

void ClaimMarker(Coroutine* self) {
  const char* expected = nullptr;
  // Acq_rel per the Access::scheduled() contract; pairs with ReleaseMarker().
  if (ABSL_PREDICT_FALSE(!Access::scheduled(self).compare_exchange_strong(
          expected, kTicketMarker, std::memory_order_acq_rel))) {
    locks_internal::Die("CoRwlock: coroutine was already scheduled in '%s'",
                        expected);
  }
}

void ReleaseMarker(Coroutine* co) {
  const char* expected = kTicketMarker;
  // Acq_rel: pairs with ClaimMarker(); the waker's CoWake() may claim again.
  if (ABSL_PREDICT_FALSE(!Access::scheduled(co).compare_exchange_strong(
          expected, nullptr, std::memory_order_acq_rel))) {
    locks_internal::Die("CoRwlock: queued coroutine was scheduled in '%s'",
                        expected != nullptr ? expected : "(nothing)");
  }
}

}  // namespace

CoRwlock::~CoRwlock() {
  // The lock is no longer shared: reading without mutex_ is fine.
  [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (ABSL_PREDICT_FALSE(owners_ != 0 || head_ != nullptr)) {
      locks_internal::Die("CoRwlock destroyed while locked");
    }
  }();
}

void CoRwlock::Enqueue(Ticket* ticket) {
  ClaimMarker(ticket->co);
  ticket->next = nullptr;
  if (tail_ == nullptr) {
    head_ = ticket;
  } else {
    tail_->next = ticket;
  }
  tail_ = ticket;
}

void CoRwlock::MaybeWakeOne() {
  Ticket* ticket = head_;
  Coroutine* to_wake = nullptr;
  if (ticket != nullptr) {
    if (ticket->read && owners_ >= 0) {
      ++owners_;
      to_wake = ticket->co;
    } else if (!ticket->read && owners_ == 0) {
      owners_ = -1;
      to_wake = ticket->co;
    }
    if (to_wake != nullptr) {
      head_ = ticket->next;
      if (head_ == nullptr) tail_ = nullptr;
    }
  }
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

void CoRwlock::RdLock() {
  Coroutine* self = locks_internal::SelfOrDie("CoRwlock::RdLock()");
  mutex_.lock();
  if (owners_ == 0 || (owners_ > 0 && head_ == nullptr)) {
    ++owners_;
    mutex_.unlock();
  } else {
    Ticket ticket{/*read=*/true, self, nullptr};
    Enqueue(&ticket);
    mutex_.unlock();
    WaitForGrant(&ticket);
    // Granted: owners_ already counts us. Pass the grant on to a reader
    // queued right behind us.
    mutex_.lock();
    if (ABSL_PREDICT_FALSE(owners_ < 1)) {
      locks_internal::Die("CoRwlock::RdLock(): woken without a read grant");
    }
    MaybeWakeOne();
  }
  ++Access::locks_held(self);
}

void CoRwlock::WrLock() {
  Coroutine* self = locks_internal::SelfOrDie("CoRwlock::WrLock()");
  mutex_.lock();
  if (owners_ == 0) {
    owners_ = -1;
    mutex_.unlock();
  } else {
    Ticket ticket{/*read=*/false, self, nullptr};
    Enqueue(&ticket);
    mutex_.unlock();
    WaitForGrant(&ticket);
  }
  ++Access::locks_held(self);
}

void CoRwlock::Upgrade() {
  Coroutine* self = locks_internal::SelfOrDie("CoRwlock::Upgrade()");
  mutex_.lock();
  if (ABSL_PREDICT_FALSE(owners_ <= 0)) {
    locks_internal::Die("CoRwlock::Upgrade() called without a read lock");
  }
  if (owners_ == 1 && head_ == nullptr) {
    owners_ = -1;
    mutex_.unlock();
    return;
  }
  // Give up our read share and queue for writing behind everybody else.
  --owners_;
  Ticket ticket{/*read=*/false, self, nullptr};
  Enqueue(&ticket);
  MaybeWakeOne();
  WaitForGrant(&ticket);
}

void CoRwlock::Downgrade() {
  locks_internal::SelfOrDie("CoRwlock::Downgrade()");
  mutex_.lock();
  if (ABSL_PREDICT_FALSE(owners_ != -1)) {
    locks_internal::Die("CoRwlock::Downgrade() called without the write lock");
  }
  owners_ = 1;
  MaybeWakeOne();
}

void CoRwlock::Unlock() {
  Coroutine* self = locks_internal::SelfOrDie("CoRwlock::Unlock()");
  if (ABSL_PREDICT_FALSE(Access::locks_held(self) == 0)) {
    locks_internal::Die("CoRwlock::Unlock() called by a coroutine that holds "
                        "no lock");
  }
  mutex_.lock();
  if (owners_ > 0) {
    --owners_;
  } else if (owners_ == -1) {
    owners_ = 0;
  } else {
    locks_internal::Die("CoRwlock::Unlock() called on a free lock");
  }
  MaybeWakeOne();
  --Access::locks_held(self);
}

}  // namespace aioco
