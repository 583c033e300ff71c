// The coroutine pools (QEMU's design since 2024, "cap per-thread local pool
// size").
//
// State:
//  * ThreadState::pool (one thread only): at most kLocalPoolBatches batches
//    of at most kPoolBatchSize finished coroutines, plus one spare empty
//    batch struct so a create/finish cycle never allocates.
//  * Global (under g_mu): a list of batches, the number of coroutines in it
//    (g_size) and the tunable limit (g_limit, starts at 128 and moves with
//    Inc/DecPoolSize). The effective limit is min(g_limit, hard cap), the
//    hard cap being (vm.max_map_count - 5000) / 2 as each pooled coroutine
//    keeps two mappings.
//
// Get (inline in pool.h): pop from the local head batch; a head batch that
//   empties is retired to `spare` unless it is the only batch (then it stays,
//   empty, so that alternating get/put touches no batch list). If the local
//   pool is empty, move one whole batch from the global pool (one lock per
//   kPoolBatchSize gets).
// Put (inline in pool.h): push on the local head batch; when there is none
//   or it is full, start a new batch and, if that would make three, first
//   hand the full head batch to the global pool, which keeps it if under the
//   limit (overshooting by a batch is allowed) or frees its coroutines.
// Thread exit: the local pool is freed.

#include "coroutine/internal/pool.h"

#include <algorithm>
#include <cstdint>
#include <mutex>

#include "coroutine/internal/core_access.h"
#include "coroutine/internal/stack.h"

namespace aioco {
namespace coroutine_internal {
namespace {

std::mutex g_mu;
PoolBatch* g_batches = nullptr;  // guarded by g_mu
size_t g_size = 0;               // guarded by g_mu
long long g_limit = static_cast<long long>(kInitialGlobalPoolMax);  // g_mu

size_t ComputeHardLimit() {
  size_t max = MaxMapCount();
  if (max == 0) return UINT32_MAX;  // unknown
  if (max > 5000) return (max - 5000) / 2;
  return 0;  // too few mappings to keep any: local pools only
}

size_t EffectiveLimitLocked() {
  size_t limit = g_limit > 0 ? static_cast<size_t>(g_limit) : 0;
  return std::min(limit, GlobalPoolHardLimit());
}

void FreeBatch(PoolBatch* b) {
  Coroutine* co = b->head;
  while (co != nullptr) {
    Coroutine* next = CoreAccess::pool_next(co);
    FreeCoroutine(co);
    co = next;
  }
  delete b;
}

void PutGlobal(PoolBatch* b) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_size < EffectiveLimitLocked()) {
      b->next = g_batches;
      g_batches = b;
      g_size += b->size;
      return;
    }
  }
  FreeBatch(b);
}

}  // namespace

size_t GlobalPoolHardLimit() {
  static const size_t v = ComputeHardLimit();
  return v;
}

Coroutine* PoolGetSlow(ThreadState* ts) {
  LocalPool& lp = ts->pool;
  if (ts->exiting) return nullptr;
  PoolBatch* b;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    b = g_batches;
    if (b == nullptr) return nullptr;
    g_batches = b->next;
    g_size -= b->size;
  }
  EnsureThreadInitialized(ts);  // the local pool must be freed at exit
  if (PoolBatch* empty = lp.batches) {  // an empty sole batch
    lp.batches = nullptr;
    if (lp.spare == nullptr) {
      lp.spare = empty;
    } else {
      delete empty;
    }
  }
  b->next = nullptr;
  lp.batches = b;
  return PoolGet(ts);
}

void PoolRetireEmptyHead(ThreadState* ts) {
  LocalPool& lp = ts->pool;
  PoolBatch* b = lp.batches;
  lp.batches = b->next;
  b->next = nullptr;
  if (lp.spare == nullptr) {
    lp.spare = b;
  } else {
    delete b;
  }
}

void PoolPutSlow(ThreadState* ts, Coroutine* co) {
  if (ts->exiting) {
    FreeCoroutine(co);
    return;
  }
  LocalPool& lp = ts->pool;
  PoolBatch* b = lp.batches;
  EnsureThreadInitialized(ts);
  if (b != nullptr && b->next != nullptr) {
    // Local pool full (two batches): the full head batch goes global.
    lp.batches = b->next;
    b->next = nullptr;
    PutGlobal(b);
  }
  PoolBatch* nb = lp.spare != nullptr ? lp.spare : new PoolBatch;
  lp.spare = nullptr;
  nb->next = lp.batches;
  lp.batches = nb;
  PoolPut(ts, co);
}

void PoolReleaseLocal(ThreadState* ts) {
  ts->exiting = true;
  LocalPool& lp = ts->pool;
  while (PoolBatch* b = lp.batches) {
    lp.batches = b->next;
    FreeBatch(b);
  }
  delete lp.spare;
  lp.spare = nullptr;
}

size_t GlobalPoolSize() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_size;
}

size_t GlobalPoolLimit() {
  std::lock_guard<std::mutex> lock(g_mu);
  return EffectiveLimitLocked();
}

void GlobalPoolAdjust(long long delta) {
  PoolBatch* trimmed = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_limit += delta;
    // Shrinking releases whole batches until the pool is within its limit.
    const size_t limit = EffectiveLimitLocked();
    while (g_size > limit && g_batches != nullptr) {
      PoolBatch* b = g_batches;
      g_batches = b->next;
      g_size -= b->size;
      b->next = trimmed;
      trimmed = b;
    }
  }
  while (trimmed != nullptr) {
    PoolBatch* next = trimmed->next;
    FreeBatch(trimmed);
    trimmed = next;
  }
}

}  // namespace coroutine_internal
}  // namespace aioco
