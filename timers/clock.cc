// Clock reads go straight to clock_gettime(), which the vDSO serves without a
// system call on Linux.

#include "timers/clock.h"

#include <time.h>

#include <cstdlib>

namespace aioco {

int64_t ClockNs(ClockType type) {
  struct timespec ts;
  clock_gettime(type == ClockType::kRealtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

absl::string_view ClockTypeName(ClockType type) {
  switch (type) {
    case ClockType::kRealtime:
      return "realtime";
    case ClockType::kMonotonic:
      return "monotonic";
  }
  return "unknown";
}

}  // namespace aioco
