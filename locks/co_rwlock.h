// -----------------------------------------------------------------------------
// File: co_rwlock.h
// -----------------------------------------------------------------------------
//
// CoRwlock: a fair reader/writer lock for coroutines.
//
// Thread safety: thread-safe. All methods are coroutine-only and abort with a
//   message naming the function when called outside a coroutine.
// Memory ordering: Unlock() of a write lock happens-before every later
//   acquisition; Unlock() of a read lock happens-before the next write
//   acquisition, as for std::shared_mutex.
// Lifetime: the lock must be free, with nobody queued, when destroyed.

#ifndef AIOCO_LOCKS_CO_RWLOCK_H_
#define AIOCO_LOCKS_CO_RWLOCK_H_

#include "absl/base/thread_annotations.h"
#include "locks/co_mutex.h"

namespace aioco {

class Coroutine;

// -----------------------------------------------------------------------------
// CoRwlock
// -----------------------------------------------------------------------------
//
// Waiters queue in one FIFO of tickets (read or write). The lock is granted
// strictly in ticket order: a reader arriving while anybody is queued queues
// too, so neither readers nor writers starve. Ownership is assigned to a
// ticket before its coroutine is woken, so nobody can slip in between; a
// woken reader wakes the next ticket if it is also a reader.
//
// State (`owners`):
//
//   owners == 0   free
//   owners  > 0   held by that many readers
//   owners == -1  held by one writer
//
// Upgrade() gives up the read lock and queues for the write lock at the tail:
// writers queued before it run first (it is not atomic). Downgrade() turns
// the caller's write lock into a read lock and never blocks.
//
// The std-style aliases make std::shared_lock<CoRwlock> and
// std::unique_lock<CoRwlock> work.
class ABSL_LOCKABLE CoRwlock {
 public:
  constexpr CoRwlock() = default;
  CoRwlock(const CoRwlock&) = delete;
  CoRwlock& operator=(const CoRwlock&) = delete;
  ~CoRwlock();

  // CoRwlock::RdLock()
  //
  // Takes a read lock, yielding until granted.
  void RdLock() ABSL_SHARED_LOCK_FUNCTION();

  // CoRwlock::WrLock()
  //
  // Takes the write lock, yielding until granted.
  void WrLock() ABSL_EXCLUSIVE_LOCK_FUNCTION();

  // CoRwlock::Upgrade()
  //
  // Turns the caller's read lock into the write lock. If the caller is the
  // only owner and nobody is queued this does not block; otherwise the caller
  // queues at the tail (other writers may run before it returns).
  void Upgrade() ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // CoRwlock::Downgrade()
  //
  // Turns the caller's write lock into a read lock, waking queued readers at
  // the head of the queue. Never blocks for the lock itself.
  void Downgrade() ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // CoRwlock::Unlock()
  //
  // Releases the caller's read or write lock and grants the lock to the head
  // of the queue if it can.
  void Unlock() ABSL_UNLOCK_FUNCTION();

  // std-style aliases.
  void lock_shared() ABSL_SHARED_LOCK_FUNCTION() { RdLock(); }
  void unlock_shared() ABSL_UNLOCK_FUNCTION() { Unlock(); }
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { WrLock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { Unlock(); }

 private:
  // A queued request; lives on the waiting coroutine's stack.
  struct Ticket {
    bool read;
    Coroutine* co;
    Ticket* next;
  };

  void Enqueue(Ticket* ticket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Grants the lock to the head ticket if it is compatible with owners_,
  // releases mutex_, then wakes that ticket's coroutine.
  void MaybeWakeOne() ABSL_UNLOCK_FUNCTION(mutex_);
  static void WaitForGrant(Ticket* ticket);

  CoMutex mutex_;
  int owners_ ABSL_GUARDED_BY(mutex_) = 0;
  Ticket* head_ ABSL_GUARDED_BY(mutex_) = nullptr;
  Ticket* tail_ ABSL_GUARDED_BY(mutex_) = nullptr;
};

}  // namespace aioco

#endif  // AIOCO_LOCKS_CO_RWLOCK_H_
