// eventfd helpers. EFD_NONBLOCK: Set() never blocks (the counter saturating
// needs 2^64-1 sets without a read) and TestAndClear() returns at once.

#include "aio/internal/event_notifier.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace aioco {
namespace aio_internal {

absl::StatusOr<int> NewEventFd() {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    return absl::ResourceExhaustedError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  return fd;
}

void EventFdSet(int fd) {
  uint64_t one = 1;
  ssize_t r;
  do {
    r = write(fd, &one, sizeof(one));
  } while (r < 0 && errno == EINTR);
}

bool EventFdTestAndClear(int fd) {
  uint64_t value = 0;
  ssize_t r;
  do {
    r = read(fd, &value, sizeof(value));
  } while (r < 0 && errno == EINTR);
  return r == sizeof(value) && value != 0;
}

}  // namespace aio_internal
}  // namespace aioco
