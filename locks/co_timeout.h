// -----------------------------------------------------------------------------
// File: co_timeout.h
// -----------------------------------------------------------------------------
//
// CoTimeout(): run a function in a new coroutine and wait for it, at most for
// a given time (QEMU's qemu_co_timeout).
//
// Thread safety: thread-safe (each call has its own state).
// Context: coroutine-only, in a thread that runs an AioContext; aborts with a
//   message naming the function otherwise.
// Lifetime: `fn` and `cleanup` are owned by the call's shared state, which is
//   freed by whichever of the caller and the work finishes last.

#ifndef AIOCO_LOCKS_CO_TIMEOUT_H_
#define AIOCO_LOCKS_CO_TIMEOUT_H_

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace aioco {

// CoTimeout()
//
// Runs `fn` in a new coroutine in the caller's AioContext and yields until it
// finishes or `timeout_ns` (monotonic) passes.
//
// Returns OkStatus() if `fn` finished in time. Otherwise returns
// DeadlineExceeded at the deadline; `fn` is not cancelled and keeps running,
// and when it finishes `cleanup` (if any) runs right after it, in its
// coroutine (use it to release what `fn` produced that nobody will collect).
// `cleanup` does not run when `fn` finished in time.
//
// timeout_ns == 0 means no timeout: `fn` runs inline, in the caller's
// coroutine, and the result is OkStatus(). timeout_ns < 0 returns
// InvalidArgument without running anything.
absl::Status CoTimeout(absl::AnyInvocable<void()> fn, int64_t timeout_ns,
                       absl::AnyInvocable<void()> cleanup = nullptr);

}  // namespace aioco

#endif  // AIOCO_LOCKS_CO_TIMEOUT_H_
