// -----------------------------------------------------------------------------
// File: aio/aio_wait.h
// -----------------------------------------------------------------------------
//
// AioWaitWhile(): run the calling thread's event loop until a condition
// becomes false (QEMU's AIO_WAIT_WHILE). AioWaitKick(): wake such waiters.
// AioWaitBhOneshot(): run a function in another context and wait for it.
//
// Thread safety: thread-safe; not for coroutines (a coroutine yields instead
//   of waiting; calling these from one aborts naming the function).
// Memory ordering: a thread that changes a condition someone may be waiting
//   on, from outside the waiter's own loop, must call AioWaitKick() after the
//   change; everything written before the kick is visible to the waiter's
//   next evaluation of the condition.
//
// Which loop runs while waiting:
//  * `ctx` is the calling thread's current context: ctx->Poll(true).
//  * the calling thread has another current context: that one's Poll(true)
//    (so work for it, e.g. completions that set the condition, keeps
//    flowing). Two IoThreads waiting on each other's conditions deadlock, as
//    in QEMU: route such waits through a third thread.
//  * the calling thread has no context (a plain thread) and `ctx` is
//    unattached (no thread has it as its current context, e.g. one made with
//    AioContext::Create() and driven by nobody else): the thread adopts `ctx`
//    for the wait and runs ctx->Poll(true), exactly as its home thread would.
//  * otherwise (a plain thread waiting on an IoThread's context): it sleeps on
//    a condition variable until AioWaitKick() or until any context's Poll()
//    makes progress (each progressing Poll() kicks the waiters while there
//    are any), and re-evaluates the condition at least every millisecond, so
//    a condition changed without a kick costs latency, never a hang.

#ifndef AIOCO_AIO_AIO_WAIT_H_
#define AIOCO_AIO_AIO_WAIT_H_

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "aio/aio_context.h"

namespace aioco {

namespace aio_internal {

// Registration of one waiting thread (RAII).
class AioWaiter {
 public:
  AioWaiter(AioContext* ctx, const char* function);
  ~AioWaiter();
  AioWaiter(const AioWaiter&) = delete;
  AioWaiter& operator=(const AioWaiter&) = delete;

  // A token to pass to Wait(); take it before evaluating the condition.
  uint64_t Epoch() const;
  // Runs one iteration of the waiting loop, or sleeps until a kick after
  // `epoch` (threads without a context).
  void Wait(uint64_t epoch);

 private:
  friend void KickWaitersExcept(AioContext* except);
  friend void KickWaitersAfterProgress(AioContext* ctx);
  AioContext* poll_ctx_;  // loop to run, or nullptr: condition variable
  AioContext* wait_ctx_;  // the context named by the caller (may be nullptr)
  bool adopted_ = false;  // poll_ctx_ was an unattached context we adopted
  void TryAdopt();
  AioWaiter* prev_ = nullptr;  // registry links (global registry mutex)
  AioWaiter* next_ = nullptr;
};

// Wakes every registered waiter (AioWaitKick() without the fast path).
void KickWaiters();
// The same, but does not Notify() `except` (a loop that is running anyway).
void KickWaitersExcept(AioContext* except);
// Called by `ctx`'s Poll() when it made progress: a full fence, then, only if
// some thread waits, KickWaiters() except for waiters polling `ctx` itself.
void KickWaitersAfterProgress(AioContext* ctx);
// Number of threads inside AioWaitWhile().
unsigned NumWaiters();

}  // namespace aio_internal

// AioWaitWhile()
//
// Thread-safe, not coroutine-only (aborts in a coroutine). Returns once
// `cond()` is false; evaluates it in the calling thread.
template <typename Cond>
void AioWaitWhile(AioContext* ctx, Cond&& cond) {
  aio_internal::AioWaiter waiter(ctx, "AioWaitWhile");
  for (;;) {
    const uint64_t epoch = waiter.Epoch();
    if (!cond()) break;
    waiter.Wait(epoch);
  }
}

// AioWaitKick()
//
// Thread-safe. Wakes every thread blocked in AioWaitWhile() so it
// re-evaluates its condition. Cheap (a fence and a load) when nobody waits.
void AioWaitKick();

// AioWaitBhOneshot()
//
// Thread-safe, not in a coroutine. Runs `fn` in `ctx`'s home thread (as a
// one-shot bottom half) and returns after it has returned. Runs `fn`
// directly if `ctx` is the calling thread's current context.
void AioWaitBhOneshot(AioContext* ctx, absl::AnyInvocable<void()> fn);

}  // namespace aioco

#endif  // AIOCO_AIO_AIO_WAIT_H_
