// -----------------------------------------------------------------------------
// File: coroutine/internal/pool.h
// -----------------------------------------------------------------------------
//
// The coroutine pools (QEMU's 2024 design): each thread keeps at most two
// batches of up to 128 finished coroutines; full batches overflow to a global
// list of batches under a mutex, bounded by a tunable limit (Inc/DecPoolSize)
// and by a hard cap from vm.max_map_count. A thread refills from the global
// pool one whole batch at a time; its local pool is freed when it exits.
//
// Thread safety: PoolGet/PoolPut work on the calling thread's local pool and
// take the global mutex only to move a whole batch. The rest is thread-safe.

#ifndef AIOCO_COROUTINE_INTERNAL_POOL_H_
#define AIOCO_COROUTINE_INTERNAL_POOL_H_

#include <cstddef>

#include "coroutine/coroutine.h"
#include "coroutine/internal/thread_state.h"

namespace aioco {
namespace coroutine_internal {

inline constexpr unsigned kPoolBatchSize = 128;
inline constexpr unsigned kLocalPoolBatches = 2;
inline constexpr size_t kInitialGlobalPoolMax = 128;

// A pooled coroutine, or nullptr if both pools are empty.
Coroutine* PoolGet(ThreadState* ts);

// Returns a finished default-options coroutine to the pools (or frees it).
void PoolPut(ThreadState* ts, Coroutine* co);

// Frees the calling thread's local pool (thread exit).
void PoolReleaseLocal(ThreadState* ts);

// Global pool limits and contents.
size_t GlobalPoolSize();
size_t GlobalPoolLimit();      // min(tunable limit, hard cap)
size_t GlobalPoolHardLimit();  // from vm.max_map_count
void GlobalPoolAdjust(long long delta);

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_COROUTINE_INTERNAL_POOL_H_
