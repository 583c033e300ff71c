// CoTimeout: run work in a new coroutine with a deadline (QEMU's
// qemu_co_timeout).
//
// State (heap, shared by the caller and the work coroutine): the function,
// the cleanup, a CoSleeper the caller sleeps on, `outcome` and a reference
// count of 2.
//
// Protocol:
//   1. The caller queues the work coroutine to run after it yields (same
//      context), then sleeps on the sleeper with the timeout. The work
//      cannot start, and so cannot try to wake the caller, before the caller
//      has published itself as the sleeper.
//   2. Work side, after fn(): CAS outcome kRunning -> kFinished. If it wins,
//      wake the caller. If it loses, the caller already gave up: run the
//      cleanup. Then drop a reference.
//   3. Caller side, once resumed (by the work or by the timer): CAS outcome
//      kRunning -> kTimedOut. Winning means the work is still running:
//      DeadlineExceeded. Losing means it finished: OK. Then drop a
//      reference.
//   The last reference frees the state, so each side may outlive the other.
//   The work may move to another thread (CoRescheduleSelf()); the atomics
//   carry the hand-over.

#include "locks/co_timeout.h"

#include <atomic>
#include <cstdint>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"
#include "locks/co_sleep.h"
#include "locks/internal/check.h"
#include "timers/clock.h"

namespace aioco {
namespace {

enum Outcome : int { kRunning, kFinished, kTimedOut };

struct TimeoutState {
  absl::AnyInvocable<void()> fn;
  absl::AnyInvocable<void()> cleanup;
  CoSleeper sleeper;
  std::atomic<int> outcome{kRunning};
  std::atomic<int> refs{2};
};

void Unref(TimeoutState* state) {
  // Acq_rel: the release publishes this side's accesses; the acquire (by the
  // last side) orders them before the delete. Pairs with itself.
  if (state->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete state;
}

void RunWork(TimeoutState* state) {
  state->fn();
  int expected = kRunning;
  // Acq_rel: pairs with the caller's CAS in CoTimeout().
  if (state->outcome.compare_exchange_strong(expected, kFinished,
                                             std::memory_order_acq_rel)) {
    state->sleeper.Wake();
  } else if (state->cleanup) {
    state->cleanup();
  }
  Unref(state);
}

}  // namespace

absl::Status CoTimeout(absl::AnyInvocable<void()> fn, int64_t timeout_ns,
                       absl::AnyInvocable<void()> cleanup) {
  Coroutine* self = locks_internal::SelfOrDie("CoTimeout()");
  if (timeout_ns < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CoTimeout: negative timeout ", timeout_ns, " ns"));
  }
  if (timeout_ns == 0) {
    fn();
    return absl::OkStatus();
  }
  locks_internal::ContextOrDie("CoTimeout()");

  auto* state = new TimeoutState;
  state->fn = std::move(fn);
  state->cleanup = std::move(cleanup);
  Coroutine* work = Coroutine::Create([state] { RunWork(state); });
  // Runs in our context once we yield in SleepNs() below.
  coroutine_internal::QueueWakeup(self, work);
  state->sleeper.SleepNs(ClockType::kMonotonic, timeout_ns);

  int expected = kRunning;
  // Acq_rel: pairs with the work's CAS in RunWork().
  bool timed_out = state->outcome.compare_exchange_strong(
      expected, kTimedOut, std::memory_order_acq_rel);
  Unref(state);
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat("CoTimeout: not finished after ", timeout_ns, " ns"));
  }
  return absl::OkStatus();
}

}  // namespace aioco
