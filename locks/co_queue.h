// -----------------------------------------------------------------------------
// File: co_queue.h
// -----------------------------------------------------------------------------
//
// CoQueue: a FIFO of waiting coroutines, used like a condition variable.
//
// Thread safety: thread-compatible. A CoQueue has no lock of its own: every
//   call must be made under the same external lock (a CoMutex, a std::mutex,
//   or nothing when all users run in one thread). Wait() drops that lock
//   while the coroutine is queued and takes it back before returning.
// Context: Wait(), WaitFront(), Next() and RestartAll() are coroutine-only;
//   EnterNext() and EnterAll() are for code outside coroutines (a bottom
//   half, a thread); empty() may be called anywhere.
// Memory ordering: a wake-up happens-before the woken coroutine resumes.
// Lifetime: the queue must be empty when destroyed.
//
// Example:
//
//   aioco::CoMutex mu;
//   aioco::CoQueue not_empty;
//   std::deque<Item> items ABSL_GUARDED_BY(mu);
//
//   Item Pop() {                       // coroutine
//     std::lock_guard<aioco::CoMutex> lock(mu);
//     while (items.empty()) not_empty.Wait(&mu);
//     Item item = std::move(items.front());
//     items.pop_front();
//     return item;
//   }
//
//   void Push(Item item) {             // coroutine
//     std::lock_guard<aioco::CoMutex> lock(mu);
//     items.push_back(std::move(item));
//     not_empty.Next();
//   }

#ifndef AIOCO_LOCKS_CO_QUEUE_H_
#define AIOCO_LOCKS_CO_QUEUE_H_

#include <cstddef>

#include "absl/base/thread_annotations.h"

namespace aioco {

class Coroutine;

// -----------------------------------------------------------------------------
// CoQueue
// -----------------------------------------------------------------------------
//
// A woken coroutine resumes in its own AioContext (CoWake()). From inside a
// coroutine, a waiter in the caller's context runs after the caller yields or
// finishes, so Next() needs no lock juggling. From outside a coroutine it may
// run inside the call, so EnterNext()/EnterAll() release the caller's lock
// around each wake-up (the waiter will want to take it).
//
// `Lockable` is any type with lock() and unlock() (CoMutex, std::mutex, ...);
// a null pointer, typed or nullptr, means "no lock".
class CoQueue {
 public:
  constexpr CoQueue() = default;
  CoQueue(const CoQueue&) = delete;
  CoQueue& operator=(const CoQueue&) = delete;
  ~CoQueue();

  // CoQueue::Wait()
  //
  // Coroutine-only. Appends the caller to the queue, releases `*lock`, yields
  // until woken by Next()/RestartAll()/EnterNext()/EnterAll(), then takes
  // `*lock` again. Wake-ups are not tied to any condition: re-check it.
  template <typename Lockable>
  void Wait(Lockable* lock) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    WaitImpl(lock, /*front=*/false);
  }
  void Wait(std::nullptr_t = nullptr) { WaitImpl<NoLock>(nullptr, false); }

  // CoQueue::WaitFront()
  //
  // As Wait() but joins at the head of the queue: for a coroutine that was
  // woken, found its condition still false and wants to keep its turn.
  template <typename Lockable>
  void WaitFront(Lockable* lock) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    WaitImpl(lock, /*front=*/true);
  }
  void WaitFront(std::nullptr_t = nullptr) { WaitImpl<NoLock>(nullptr, true); }

  // CoQueue::Next()
  //
  // Coroutine-only. Wakes the oldest waiter; returns false if there is none.
  bool Next();

  // CoQueue::RestartAll()
  //
  // Coroutine-only. Wakes every waiter, oldest first.
  void RestartAll();

  // CoQueue::EnterNext()
  //
  // For callers outside a coroutine (also correct inside one). Wakes the
  // oldest waiter with `*lock` released around the wake-up; returns false
  // (leaving the lock alone) if there is none. `*lock` must be held.
  template <typename Lockable>
  bool EnterNext(Lockable* lock) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    Coroutine* co = PopFront();
    if (co == nullptr) return false;
    if (lock != nullptr) lock->unlock();
    WakeWaiter(co);
    if (lock != nullptr) lock->lock();
    return true;
  }
  bool EnterNext(std::nullptr_t = nullptr) { return EnterNext<NoLock>(nullptr); }

  // CoQueue::EnterAll()
  //
  // EnterNext() until the queue is empty, including coroutines that queue
  // while it runs.
  template <typename Lockable>
  void EnterAll(Lockable* lock) {
    while (EnterNext(lock)) {
    }
  }
  void EnterAll(std::nullptr_t = nullptr) { EnterAll<NoLock>(nullptr); }

  // CoQueue::empty()
  //
  // True if no coroutine is queued. Under the queue's lock.
  bool empty() const { return head_ == nullptr; }

 private:
  struct NoLock {
    void lock() {}
    void unlock() {}
  };

  template <typename Lockable>
  void WaitImpl(Lockable* lock, bool front) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    Enqueue(front);
    if (lock != nullptr) lock->unlock();
    YieldWaiting();
    if (lock != nullptr) lock->lock();
  }

  // Queues the running coroutine (aborts outside one) and marks it as
  // scheduled by this queue, so that entering it by any other path aborts.
  void Enqueue(bool front);
  static void YieldWaiting();
  Coroutine* PopFront();
  // Clears the mark set by Enqueue() and wakes `co` in its own context.
  static void WakeWaiter(Coroutine* co);

  Coroutine* head_ = nullptr;
  Coroutine* tail_ = nullptr;
};

}  // namespace aioco

#endif  // AIOCO_LOCKS_CO_QUEUE_H_
