// -----------------------------------------------------------------------------
// File: timers/clock.h
// -----------------------------------------------------------------------------
//
// ClockType and ClockNs(): the clocks a Timer can be armed against.
//
// Thread safety: thread-safe (plain functions of the system clocks).

#ifndef AIOCO_TIMERS_CLOCK_H_
#define AIOCO_TIMERS_CLOCK_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace aioco {

// ClockType
//
// kRealtime follows the wall clock (CLOCK_REALTIME: it jumps when the system
// time is set); kMonotonic never goes backwards (CLOCK_MONOTONIC). Deadlines
// are absolute nanoseconds on the timer's own clock.
enum class ClockType {
  kRealtime,
  kMonotonic,
};

inline constexpr int kNumClockTypes = 2;

// ClockNs()
//
// The current time of `type`, in nanoseconds since that clock's epoch.
int64_t ClockNs(ClockType type);

// ClockTypeName()
//
// "realtime" or "monotonic".
absl::string_view ClockTypeName(ClockType type);

}  // namespace aioco

#endif  // AIOCO_TIMERS_CLOCK_H_
