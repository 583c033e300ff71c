// CoSleeper: wakeable coroutine sleep (QEMU's QemuCoSleep).
//
// State: to_wake_ holds the sleeping coroutine. The sleeper claims the
// coroutine's scheduled marker (kSleepMarker) before publishing itself in
// to_wake_; a waker takes to_wake_ with an exchange (so of the timer and any
// number of Wake() callers exactly one wins), clears the marker and wakes the
// coroutine.
//
// Protocol for SleepNs():
//   1. Create a timer on the current AioContext whose callback wakes us, arm
//      it at now + ns.
//   2. Sleep(): claim the marker, publish to_wake_, yield.
//   3. Resumed (by the timer or by Wake()): destroy the timer. We run in the
//      timer's home thread, so its callback is not running concurrently, and
//      it cannot fire any more once destroyed. The timer callback schedules
//      the coroutine (CoSchedule) instead of entering it, so the timer is
//      never destroyed from inside its own callback.

#include "locks/co_sleep.h"

#include <cstdint>
#include <limits>
#include <memory>

#include "absl/base/optimization.h"
#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "locks/internal/check.h"
#include "timers/clock.h"
#include "timers/timer.h"

namespace aioco {
namespace {

constexpr const char kSleepMarker[] = "CoSleeper::Sleep";

// Takes the sleeper out of `to_wake` and clears its marker; nullptr if no
// coroutine was sleeping (or another waker won).
Coroutine* TakeSleeper(std::atomic<Coroutine*>& to_wake) {
  // Acq_rel: the acquire pairs with the release store in Sleep(); the release
  // orders the waker's prior writes before the sleeper resumes (CoWake()
  // synchronises as well).
  Coroutine* co = to_wake.exchange(nullptr, std::memory_order_acq_rel);
  if (co == nullptr) return nullptr;
  locks_internal::ReleaseWaitMarker(co, kSleepMarker,
                                    "CoSleeper::Wake(): sleeping");
  return co;
}

int64_t Deadline(ClockType clock, int64_t ns) {
  int64_t now = ClockNs(clock);
  if (ns > 0 && now > std::numeric_limits<int64_t>::max() - ns) {
    return std::numeric_limits<int64_t>::max();
  }
  return now + ns;
}

}  // namespace

void CoSleeper::Sleep() {
  Coroutine* self = locks_internal::SelfOrDie("CoSleeper::Sleep()");
  locks_internal::ClaimWaitMarker(self, kSleepMarker, "CoSleeper::Sleep()");
  Coroutine* expected = nullptr;
  // Release: pairs with the acquire exchange in TakeSleeper().
  if (ABSL_PREDICT_FALSE(!to_wake_.compare_exchange_strong(
          expected, self, std::memory_order_release,
          std::memory_order_relaxed))) {
    locks_internal::Die("CoSleeper::Sleep(): another coroutine is already "
                        "sleeping on this CoSleeper");
  }
  Coroutine::Yield();
}

void CoSleeper::Wake() {
  if (Coroutine* co = TakeSleeper(to_wake_)) CoWake(co);
}

void CoSleeper::SleepNs(ClockType clock, int64_t ns) {
  locks_internal::SelfOrDie("CoSleeper::SleepNs()");
  AioContext* ctx = locks_internal::ContextOrDie("CoSleeper::SleepNs()");
  std::unique_ptr<Timer> timer = ctx->NewTimer(clock, [this, ctx] {
    // Schedule rather than enter: the sleeper destroys this timer when it
    // resumes, which must not happen inside this callback.
    if (Coroutine* co = TakeSleeper(to_wake_)) ctx->CoSchedule(co);
  });
  timer->ModNs(Deadline(clock, ns));
  Sleep();
  timer.reset();
}

void CoSleepNs(ClockType clock, int64_t ns) {
  CoSleeper sleeper;
  sleeper.SleepNs(clock, ns);
}

}  // namespace aioco
