// -----------------------------------------------------------------------------
// File: coroutine/internal/thread_state.h
// -----------------------------------------------------------------------------
//
// ThreadState: everything the coroutine core keeps per thread (the running
// coroutine, the thread's AioContext, the thread's "leader" pseudo-coroutine
// that stands for the thread's own stack, and the local coroutine pool).
//
// Thread safety: a ThreadState is touched only by its own thread. Reach it
// only through CurrentThreadState(), which is never inlined, or the inline-asm
// backend's FastThreadState(), whose asm is re-executed on every call; never
// keep the pointer across a yield: the coroutine may resume on another thread.

// Outside the guard: coroutine.h includes this header (through
// inline_switch.h) after defining Coroutine, so whichever of the two a
// translation unit includes first, Coroutine is complete below.
#include "coroutine/coroutine.h"

#ifndef AIOCO_COROUTINE_INTERNAL_THREAD_STATE_H_
#define AIOCO_COROUTINE_INTERNAL_THREAD_STATE_H_

#include "coroutine/internal/context_config.h"  // first: selects the backend

#include <csetjmp>
#include <cstddef>

#include "coroutine/coroutine.h"

namespace aioco {
namespace coroutine_internal {

struct PoolBatch {
  PoolBatch* next = nullptr;
  Coroutine* head = nullptr;  // linked through pool_next
  unsigned size = 0;
};

struct LocalPool {
  PoolBatch* batches = nullptr;  // at most kLocalPoolBatches
  PoolBatch* spare = nullptr;    // one empty batch kept to avoid malloc churn
  size_t created = 0;
  size_t reused = 0;
  unsigned domain = 0;           // global pool domain (SetThreadPoolDomain)
};

struct ThreadState {
  constexpr ThreadState() = default;

  Coroutine* current = nullptr;  // nullptr on the thread's own stack
  AioContext* aio_ctx = nullptr;
  bool initialized = false;      // alternate stack and exit hook set up
  bool exiting = false;          // thread-exit cleanup ran: no local pool
  void* altstack = nullptr;      // ours, if we installed one
  size_t altstack_size = 0;
  LocalPool pool;
  Coroutine leader;              // the thread's own stack as a switch target
#if defined(AIOCO_CONTEXT_UCONTEXT)
  sigjmp_buf leader_env{};
#endif
};

// The calling thread's state. Never inlined (see co_tls.h).
ThreadState* CurrentThreadState();

// First-use set-up of the calling thread (alternate signal stack, thread-exit
// cleanup of the local pool). Cheap to call again.
void EnsureThreadInitialized(ThreadState* ts);

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_COROUTINE_INTERNAL_THREAD_STATE_H_
