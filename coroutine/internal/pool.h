// -----------------------------------------------------------------------------
// File: coroutine/internal/pool.h
// -----------------------------------------------------------------------------
//
// The coroutine pools (QEMU's 2024 design): each thread keeps at most two
// batches of up to 128 finished coroutines; full batches overflow to a global
// list of batches under a mutex, bounded by a tunable limit (Inc/DecPoolSize)
// and by a hard cap from vm.max_map_count. The global list is split into
// domains (Coroutine::SetThreadPoolDomain; NUMA nodes): a thread overflows
// into, and refills from, its own domain's list only. A thread refills one
// whole batch at a time; its local pool is freed when it exits.
//
// Thread safety: PoolGet/PoolPut work on the calling thread's local pool and
// take the global mutex only to move a whole batch. The rest is thread-safe.

#ifndef AIOCO_COROUTINE_INTERNAL_POOL_H_
#define AIOCO_COROUTINE_INTERNAL_POOL_H_

#include <cstddef>

#include "coroutine/coroutine.h"
#include "coroutine/internal/core_access.h"
#include "coroutine/internal/thread_state.h"

namespace aioco {
namespace coroutine_internal {

inline constexpr unsigned kPoolBatchSize = 128;
inline constexpr unsigned kLocalPoolBatches = 2;
inline constexpr size_t kInitialGlobalPoolMax = 128;

// Slow paths of PoolGet()/PoolPut() (pool.cc).
Coroutine* PoolGetSlow(ThreadState* ts);
void PoolRetireEmptyHead(ThreadState* ts);
void PoolPutSlow(ThreadState* ts, Coroutine* co);

// A pooled coroutine, or nullptr if both pools are empty. The local pool's
// head batch may be empty only when it is the only batch (so a create/finish
// cycle moves no batch around).
inline Coroutine* PoolGet(ThreadState* ts) {
  PoolBatch* b = ts->pool.batches;
  if (__builtin_expect(b == nullptr || b->size == 0, 0)) {
    return PoolGetSlow(ts);
  }
  Coroutine* co = b->head;
  b->head = CoreAccess::pool_next(co);
  CoreAccess::pool_next(co) = nullptr;
  if (--b->size == 0 && b->next != nullptr) PoolRetireEmptyHead(ts);
  return co;
}

// Returns a finished default-options coroutine to the pools (or frees it).
inline void PoolPut(ThreadState* ts, Coroutine* co) {
  PoolBatch* b = ts->pool.batches;  // nullptr once the thread is exiting
  if (__builtin_expect(b == nullptr || b->size >= kPoolBatchSize, 0)) {
    PoolPutSlow(ts, co);
    return;
  }
  CoreAccess::pool_next(co) = b->head;
  b->head = co;
  ++b->size;
}

// Frees the calling thread's local pool (thread exit).
void PoolReleaseLocal(ThreadState* ts);

// Global pool limits and contents.
size_t GlobalPoolSize();                 // all domains
size_t DomainPoolSize(unsigned domain);
size_t GlobalPoolLimit();      // min(tunable limit, hard cap)
size_t GlobalPoolHardLimit();  // from vm.max_map_count
void GlobalPoolAdjust(long long delta);

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_COROUTINE_INTERNAL_POOL_H_
