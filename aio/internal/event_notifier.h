// -----------------------------------------------------------------------------
// File: aio/internal/event_notifier.h
// -----------------------------------------------------------------------------
//
// Thin eventfd helpers (QEMU's EventNotifier): Set() makes the fd readable,
// TestAndClear() consumes the readiness.
//
// Thread safety: thread-safe (each is one system call on the fd).

#ifndef AIOCO_AIO_INTERNAL_EVENT_NOTIFIER_H_
#define AIOCO_AIO_INTERNAL_EVENT_NOTIFIER_H_

#include "absl/status/statusor.h"

namespace aioco {
namespace aio_internal {

// A non-blocking, close-on-exec eventfd.
absl::StatusOr<int> NewEventFd();
// Adds 1 to the counter (readable); never blocks.
void EventFdSet(int fd);
// Reads and clears the counter; true if it was set.
bool EventFdTestAndClear(int fd);

}  // namespace aio_internal
}  // namespace aioco

#endif  // AIOCO_AIO_INTERNAL_EVENT_NOTIFIER_H_
