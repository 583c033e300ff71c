// -----------------------------------------------------------------------------
// File: co_sleep.h
// -----------------------------------------------------------------------------
//
// CoSleeper: a coroutine sleep that another party can cut short.
// CoSleepNs(): sleep for a duration. CoTimeout() (co_timeout.h, included
// here): run work in a coroutine with a deadline.
//
// Thread safety: CoSleeper::Wake() is thread-safe; SleepNs() and Sleep() are
//   coroutine-only and abort with a message naming the function elsewhere.
// Context: SleepNs()/CoSleepNs() arm a timer on the calling thread's
//   AioContext and abort outside one; Sleep() needs no context.
// Memory ordering: Wake() happens-before the woken Sleep()/SleepNs() returns.
// Lifetime: a CoSleeper must outlive every Wake() call that may race with its
//   sleeper's return.

#ifndef AIOCO_LOCKS_CO_SLEEP_H_
#define AIOCO_LOCKS_CO_SLEEP_H_

#include <atomic>
#include <cstdint>

#include "locks/co_timeout.h"
#include "timers/clock.h"

namespace aioco {

class Coroutine;

// -----------------------------------------------------------------------------
// CoSleeper
// -----------------------------------------------------------------------------
//
// At most one coroutine sleeps on a CoSleeper at a time. Wake() with nobody
// sleeping does nothing (it is not remembered). While it sleeps the coroutine
// is marked as scheduled, so entering or scheduling it by any other path
// aborts.
//
// Example:
//
//   aioco::CoSleeper sleeper;
//   // coroutine: wait up to 1 s for a reply
//   sleeper.SleepNs(aioco::ClockType::kMonotonic, 1'000'000'000);
//   // elsewhere, any thread:
//   sleeper.Wake();
class CoSleeper {
 public:
  constexpr CoSleeper() = default;
  CoSleeper(const CoSleeper&) = delete;
  CoSleeper& operator=(const CoSleeper&) = delete;

  // CoSleeper::SleepNs()
  //
  // Coroutine-only. Yields until `ns` nanoseconds of `clock` have passed or
  // Wake() is called, whichever comes first. ns <= 0 still yields once, until
  // the context's next timer pass.
  void SleepNs(ClockType clock, int64_t ns);

  // CoSleeper::Sleep()
  //
  // Coroutine-only. Yields until Wake().
  void Sleep();

  // CoSleeper::Wake()
  //
  // Wakes the sleeping coroutine in its own AioContext; no-op if none.
  void Wake();

 private:
  // The sleeping coroutine, or nullptr. Exchanged by wakers so exactly one
  // wins.
  std::atomic<Coroutine*> to_wake_{nullptr};
};

// CoSleepNs()
//
// Coroutine-only. Yields for `ns` nanoseconds of `clock`.
void CoSleepNs(ClockType clock, int64_t ns);

}  // namespace aioco

#endif  // AIOCO_LOCKS_CO_SLEEP_H_
