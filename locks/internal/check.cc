// Misuse checks for //locks: formatting and aborting live out of line so the
// callers' fast paths stay small.

#include "locks/internal/check.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "absl/base/optimization.h"
#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"

namespace aioco {
namespace locks_internal {

void Die(const char* format, ...) {
  std::fputs("aioco: ", stderr);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
  std::fflush(stderr);
  std::abort();
}

void DieOutsideCoroutine(const char* function) {
  Die("%s called outside a coroutine", function);
}

AioContext* ContextOrDie(const char* function) {
  AioContext* ctx = coroutine_internal::ThreadAioContext();
  if (ABSL_PREDICT_FALSE(ctx == nullptr)) {
    Die("%s needs an AioContext (run it in a coroutine entered by an "
        "AioContext or IoThread)",
        function);
  }
  return ctx;
}

}  // namespace locks_internal
}  // namespace aioco
