// -----------------------------------------------------------------------------
// File: co_mutex.h
// -----------------------------------------------------------------------------
//
// CoMutex: a fair, lock-free mutex for coroutines that may run in different
// AioContexts (threads). A coroutine that has to wait yields instead of
// blocking its thread; the lock is handed directly to the oldest waiter,
// which resumes in its own AioContext.
//
// Thread safety: thread-safe. lock() and unlock() are coroutine-only;
//   try_lock() may also be used outside a coroutine (see below).
// Context: lock()/unlock() abort with a message naming the function when
//   called outside a coroutine.
// Memory ordering: unlock() happens-before the return of the lock() or
//   try_lock() that acquires the mutex next, as for std::mutex.
// Lifetime: the mutex must be unlocked, with no waiters, when destroyed.
//
// Cross-thread use needs every coroutine that may wait on the mutex to run in
// an AioContext (a waiter is resumed with CoWake() in its own context). In a
// thread without an AioContext a CoMutex still works between the coroutines
// of that one thread, as in QEMU's test-coroutine.

#ifndef AIOCO_LOCKS_CO_MUTEX_H_
#define AIOCO_LOCKS_CO_MUTEX_H_

#include <atomic>

#include "absl/base/thread_annotations.h"

namespace aioco {

class AioContext;
class Coroutine;

namespace locks_internal {
struct CoMutexTestPeer;
}  // namespace locks_internal

// -----------------------------------------------------------------------------
// CoMutex
// -----------------------------------------------------------------------------
//
// The algorithm is the "responsibility hand-off" lock-free mutex of OSv's
// lfmutex (Gidenstam & Papatriantafilou, LFTHREADS), as used by QEMU's
// CoMutex. A counter of pending lockers decides the fast paths; contended
// lockers push a wait record onto a lock-free stack; whoever holds the
// "wake-up responsibility" turns that stack into a FIFO and hands the mutex to
// its head. See co_mutex.cc for the protocol and tests/model/ for its model.
//
// Waiting is fair: once a coroutine has queued, waiters acquire in FIFO order
// and an unlocker cannot barge in front of them. A locker spins briefly
// (instead of queueing) only while the holder runs in a different AioContext
// and nobody is queued, because only then can the holder release the mutex
// while we spin.
//
// State (`locked` is the number of holders plus pending lockers):
//
//   locked == 0   free
//   locked == 1   held, nobody waiting
//   locked  > 1   held (or being handed over) with locked-1 lockers queued or
//                 about to queue
//
// Each coroutine counts the coroutine locks it holds; a coroutine that
// finishes while holding one aborts (see coroutine.h).
//
// Example:
//
//   aioco::CoMutex mu;
//   int balance ABSL_GUARDED_BY(mu) = 0;
//
//   void Deposit(int n) {   // runs in a coroutine
//     std::lock_guard<aioco::CoMutex> lock(mu);
//     balance += n;
//   }
class ABSL_LOCKABLE CoMutex {
 public:
  constexpr CoMutex() = default;
  CoMutex(const CoMutex&) = delete;
  CoMutex& operator=(const CoMutex&) = delete;
  ~CoMutex();

  // CoMutex::lock()
  //
  // Coroutine-only. Acquires the mutex, yielding the calling coroutine while
  // it is held elsewhere. Not recursive: locking a mutex the caller already
  // holds deadlocks.
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION();

  // CoMutex::unlock()
  //
  // Releases the mutex held by the calling coroutine (or, after a try_lock()
  // outside any coroutine, by the calling thread). If coroutines are waiting
  // the mutex passes directly to the oldest one, which is woken in its own
  // AioContext; when that is the caller's context it runs after the caller
  // next yields or finishes.
  void unlock() ABSL_UNLOCK_FUNCTION();

  // CoMutex::try_lock()
  //
  // Acquires the mutex only if it is free and nobody is queued for it;
  // never yields. Outside a coroutine the mutex is then held by the calling
  // thread's non-coroutine code, which must call unlock() outside any
  // coroutine too.
  bool try_lock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true);

  // CoMutex::AssertHeld()
  //
  // Aborts unless the mutex is held by the caller (the running coroutine, or
  // non-coroutine code after try_lock()).
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK();

 private:
  friend struct locks_internal::CoMutexTestPeer;

  // A waiting coroutine's record; lives on that coroutine's stack.
  struct WaitRecord {
    Coroutine* co;
    WaitRecord* next;
  };

  void LockSlowPath(AioContext* ctx, Coroutine* self);
  void PushWaiter(WaitRecord* w);
  WaitRecord* PopWaiter();
  bool HasWaiters() const;
  void Wake(Coroutine* co);
  void Acquired(Coroutine* self);

  // Holders plus pending lockers (see the class comment).
  std::atomic<unsigned> locked_{0};
  // Context of the holder, or of the coroutine the mutex is being handed to;
  // a hint that decides whether spinning can succeed. Relaxed everywhere.
  std::atomic<AioContext*> ctx_{nullptr};
  // Lock-free stack of new waiters (multi-producer, single consumer).
  std::atomic<WaitRecord*> from_push_{nullptr};
  // FIFO of waiters taken from from_push_; only the party that holds the
  // wake-up responsibility touches it.
  WaitRecord* to_pop_ = nullptr;
  // Non-zero: an unlocker's token offering the wake-up responsibility to a
  // locker that has not queued yet.
  std::atomic<unsigned> handoff_{0};
  // Last token issued; touched only by unlockers, which are serialised by
  // ownership of the mutex.
  unsigned sequence_ = 0;
  // The holding coroutine (nullptr: free, or held by non-coroutine code).
  // Relaxed: only the holder writes it; AssertHeld() compares it to itself.
  std::atomic<Coroutine*> holder_{nullptr};
};

}  // namespace aioco

#endif  // AIOCO_LOCKS_CO_MUTEX_H_
