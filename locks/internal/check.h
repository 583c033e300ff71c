// -----------------------------------------------------------------------------
// File: locks/internal/check.h
// -----------------------------------------------------------------------------
//
// Misuse checks shared by the //locks implementation files: abort with a
// message that names the misused function. Includes both sides of the
// scheduling-marker protocol that every waiting primitive follows
// (ClaimWaitMarker(), ReleaseWaitMarker()).
//
// Thread safety: thread-safe (stateless).

#ifndef AIOCO_LOCKS_INTERNAL_CHECK_H_
#define AIOCO_LOCKS_INTERNAL_CHECK_H_

#include <atomic>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"

namespace aioco {

class AioContext;

namespace locks_internal {

// Die()
//
// Prints "aioco: <message>" to stderr and aborts.
[[noreturn]] void Die(const char* format, ...) ABSL_PRINTF_ATTRIBUTE(1, 2);

// DieOutsideCoroutine()
//
// Aborts with "aioco: <function> called outside a coroutine".
[[noreturn]] void DieOutsideCoroutine(const char* function);

// SelfOrDie()
//
// The running coroutine; aborts with "aioco: <function> called outside a
// coroutine" when there is none. Inline: it is on every lock's fast path.
inline Coroutine* SelfOrDie(const char* function) {
  Coroutine* self = Coroutine::Self();
  if (ABSL_PREDICT_FALSE(self == nullptr)) DieOutsideCoroutine(function);
  return self;
}

// ContextOrDie()
//
// The calling thread's AioContext; aborts with "aioco: <function> needs an
// AioContext" when the thread runs none.
AioContext* ContextOrDie(const char* function);

// ClaimWaitMarker()
//
// The waiting side of the scheduling-marker protocol (see
// coroutine_internal::Access::scheduled()): before a coroutine publishes
// itself to a waker and yields, it claims its scheduled slot with `marker`,
// so that a stray CoWake() or a second scheduler is caught. Aborts with
// "<who>: coroutine was already scheduled in '<holder>'" if the slot is
// taken.
inline void ClaimWaitMarker(Coroutine* self, const char* marker,
                            const char* who) {
  const char* expected = nullptr;
  // Acq_rel per the Access::scheduled() contract; pairs with
  // ReleaseWaitMarker().
  if (ABSL_PREDICT_FALSE(
          !coroutine_internal::Access::scheduled(self).compare_exchange_strong(
              expected, marker, std::memory_order_acq_rel))) {
    Die("%s: coroutine was already scheduled in '%s'", who, expected);
  }
}

// ReleaseWaitMarker()
//
// The waker's side: clears `marker` from the waiting coroutine `co` before
// it is woken (whose CoWake() may claim the slot again). Aborts with
// "<who> coroutine was scheduled in '<holder>'" if `co` does not carry
// `marker`; `who` names the waiting party (e.g. "CoQueue: queued").
inline void ReleaseWaitMarker(Coroutine* co, const char* marker,
                              const char* who) {
  const char* expected = marker;
  // Acq_rel: pairs with ClaimWaitMarker().
  if (ABSL_PREDICT_FALSE(
          !coroutine_internal::Access::scheduled(co).compare_exchange_strong(
              expected, nullptr, std::memory_order_acq_rel))) {
    Die("%s coroutine was scheduled in '%s'", who,
        expected != nullptr ? expected : "(nothing)");
  }
}

}  // namespace locks_internal
}  // namespace aioco

#endif  // AIOCO_LOCKS_INTERNAL_CHECK_H_
