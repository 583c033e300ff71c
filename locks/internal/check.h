// -----------------------------------------------------------------------------
// File: locks/internal/check.h
// -----------------------------------------------------------------------------
//
// Misuse checks shared by the //locks implementation files: abort with a
// message that names the misused function.
//
// Thread safety: thread-safe (stateless).

#ifndef AIOCO_LOCKS_INTERNAL_CHECK_H_
#define AIOCO_LOCKS_INTERNAL_CHECK_H_

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "coroutine/coroutine.h"

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

}  // namespace locks_internal
}  // namespace aioco

#endif  // AIOCO_LOCKS_INTERNAL_CHECK_H_
