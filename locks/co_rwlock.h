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

#include <atomic>
#include <cstdint>

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
// Readers and writers first try a lock-free fast path on one atomic word;
// the internal CoMutex is taken only when somebody has to queue, or to hand
// the lock to a queued ticket. While nobody is queued and no writer holds
// the lock, RdLock() and Unlock() of a read lock are one compare-and-swap
// each. A writer that cannot take the lock at once sets the "queued" bit,
// which sends every later reader to the queue behind it, and is granted the
// lock by the last reader to leave. A locker that finds the lock held
// against it while nobody is queued spins for a few microseconds first
// (a holder on another thread may leave soon), then queues; a reader facing
// a writer of its own context queues at once.
//
// State (`state_`, see co_rwlock.cc):
//
//   readers  writer  queued
//   0        0       0       free
//   n > 0    0       0       held by n readers; readers enter lock-free
//   0        1       0       held by one writer
//   as above         1       tickets queued: every newcomer queues too
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
  // the head of the queue. Never blocks for the lock itself (it takes the
  // internal CoMutex, briefly, only when tickets are queued).
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

  // Bits of state_ (see co_rwlock.cc for the protocol).
  static constexpr uint32_t kWriter = 1;  // a writer holds the lock
  static constexpr uint32_t kQueued = 2;  // head_ != nullptr
  static constexpr uint32_t kReader = 4;  // one reader; readers = state / kReader

  // Takes mutex_, then acquires like RdLock()/WrLock() but in ticket order,
  // queueing and yielding when the lock is not free for the caller.
  void LockSlowPath(Coroutine* self, bool read) ABSL_LOCKS_EXCLUDED(mutex_);
  // With our `ticket` queued: step 3 (GrantHead()), releases mutex_, wakes
  // a granted ticket ahead of ours, and yields until ours is granted. False:
  // ours was granted at once (no yield).
  bool GrantAndWait(Coroutine* self, Ticket* ticket) ABSL_UNLOCK_FUNCTION(mutex_);
  // Retries the lock-free acquire for a bounded time while nobody is queued
  // (see step 1b in co_rwlock.cc). True: acquired.
  bool Spin(bool read);
  // Records the caller's context in writer_ctx_.
  void NoteWriter();
  // Upgrade() without NoteWriter().
  void UpgradeToWriter() ABSL_LOCKS_EXCLUDED(mutex_);
  // Read and write halves of Unlock().
  void ReadUnlock(uint32_t state) ABSL_LOCKS_EXCLUDED(mutex_);
  void WriteUnlock(uint32_t state) ABSL_LOCKS_EXCLUDED(mutex_);

  // Appends `ticket`, setting kQueued if the queue was empty.
  void Enqueue(Ticket* ticket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // If the head ticket is compatible with state_, grants it the lock
  // (updating state_), unlinks it and returns it; otherwise nullptr.
  Ticket* GrantHead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // GrantHead(), releases mutex_, then wakes the granted ticket's coroutine.
  void MaybeWakeOne() ABSL_UNLOCK_FUNCTION(mutex_);
  static void WaitForGrant(Ticket* ticket);

  CoMutex mutex_;
  // Reader count, kWriter and kQueued. Changed only by read-modify-writes
  // (so every release heads a release sequence that later RMWs continue);
  // kWriter and kQueued are set and cleared lock-free only while kQueued is
  // clear, otherwise under mutex_.
  std::atomic<uint32_t> state_{0};
  // Context of the last coroutine that took the write lock (see Spin()).
  std::atomic<AioContext*> writer_ctx_{nullptr};
  Ticket* head_ ABSL_GUARDED_BY(mutex_) = nullptr;
  Ticket* tail_ ABSL_GUARDED_BY(mutex_) = nullptr;
};

}  // namespace aioco

#endif  // AIOCO_LOCKS_CO_RWLOCK_H_
