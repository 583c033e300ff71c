// The coroutine pools (QEMU's design since 2024, "cap per-thread local pool
// size").
//
// State:
//  * ThreadState::pool (one thread only): at most kLocalPoolBatches batches
//    of at most kPoolBatchSize finished coroutines, plus one spare empty
//    batch struct so a create/finish cycle never allocates.
//  * Global (under g_mu): one list of batches per pool domain (g_domains,
//    indexed by LocalPool::domain), the number of coroutines in all of them
//    (g_size) and the tunable limit (g_limit, starts at 128 and moves with
//    Inc/DecPoolSize). The effective limit is min(g_limit, hard cap), the
//    hard cap being (vm.max_map_count - 5000) / 2 as each pooled coroutine
//    keeps two mappings. The limit bounds all domains together.
//
// Get (inline in pool.h): pop from the local head batch; a head batch that
//   empties is retired to `spare` unless it is the only batch (then it stays,
//   empty, so that alternating get/put touches no batch list). If the local
//   pool is empty, move one whole batch from the thread's domain list (one
//   lock per kPoolBatchSize gets); other domains' batches are never taken:
//   a fresh, locally first-touched stack beats a remote node's.
// Put (inline in pool.h): push on the local head batch; when there is none
//   or it is full, start a new batch and, if that would make three, first
//   hand the full head batch to the thread's domain list, which keeps it if
//   the global pool is under the limit (overshooting by a batch is allowed)
//   or frees its coroutines.
// Shrinking the limit frees batches from the fullest domain first.
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

struct DomainList {
  PoolBatch* batches = nullptr;
  size_t size = 0;
};

std::mutex g_mu;
DomainList g_domains[Coroutine::kMaxPoolDomains];  // guarded by g_mu
size_t g_size = 0;               // guarded by g_mu: sum over g_domains
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

void PutGlobal(unsigned domain, PoolBatch* b) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_size < EffectiveLimitLocked()) {
      DomainList& d = g_domains[domain];
      b->next = d.batches;
      d.batches = b;
      d.size += b->size;
      g_size += b->size;
      return;
    }
  }
  FreeBatch(b);
}

// Unlinks the head batch of `d`; nullptr if it has none.
PoolBatch* PopBatchLocked(DomainList& d) {
  PoolBatch* b = d.batches;
  if (b == nullptr) return nullptr;
  d.batches = b->next;
  d.size -= b->size;
  g_size -= b->size;
  return b;
}

// Unlinks the head batch of the fullest domain; nullptr if all are empty.
PoolBatch* TakeFromFullestLocked() {
  DomainList* fullest = nullptr;
  for (DomainList& d : g_domains) {
    if (d.batches != nullptr && (fullest == nullptr || d.size > fullest->size)) fullest = &d;
  }
  return fullest != nullptr ? PopBatchLocked(*fullest) : nullptr;
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
    b = PopBatchLocked(g_domains[lp.domain]);
    if (b == nullptr) return nullptr;
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
    PutGlobal(lp.domain, b);
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

size_t DomainPoolSize(unsigned domain) {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_domains[domain % Coroutine::kMaxPoolDomains].size;
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
    while (g_size > limit) {
      PoolBatch* b = TakeFromFullestLocked();
      if (b == nullptr) break;
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
