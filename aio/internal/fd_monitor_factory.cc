// Backend selection (libuv's uv__use_io_uring / QEMU's aio_context_setup):
//
//  1. kEpoll / kPoll: that backend or its error.
//  2. kIoUring: an error if AIOCO_DISABLE_IO_URING=1 is set, else the
//     io_uring backend or its error (no kernel support, seccomp, ...).
//  3. kAuto: io_uring unless disabled by the environment and if it
//     initialises; otherwise epoll.

#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "aio/fd_monitor_kind.h"
#include "aio/internal/fd_monitor.h"

namespace aioco {

absl::string_view FdMonitorKindName(FdMonitorKind kind) {
  switch (kind) {
    case FdMonitorKind::kAuto:
      return "auto";
    case FdMonitorKind::kEpoll:
      return "epoll";
    case FdMonitorKind::kIoUring:
      return "io_uring";
    case FdMonitorKind::kPoll:
      return "poll";
  }
  return "unknown";
}

namespace aio_internal {
namespace {

bool IoUringDisabledByEnv() {
  const char* v = std::getenv("AIOCO_DISABLE_IO_URING");
  return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FdMonitor>> NewFdMonitor(FdMonitorKind kind,
                                                        FdMonitor::ReleaseFn release) {
  switch (kind) {
    case FdMonitorKind::kEpoll:
      return NewEpollMonitor(std::move(release));
    case FdMonitorKind::kPoll:
      return NewPollMonitor(std::move(release));
    case FdMonitorKind::kIoUring:
      if (IoUringDisabledByEnv()) {
        return absl::UnavailableError("io_uring fd monitor disabled by AIOCO_DISABLE_IO_URING");
      }
      return NewIoUringMonitor(std::move(release));
    case FdMonitorKind::kAuto:
      break;
  }
  if (!IoUringDisabledByEnv()) {
    absl::StatusOr<std::unique_ptr<FdMonitor>> uring = NewIoUringMonitor(release);
    if (uring.ok()) return uring;
  }
  return NewEpollMonitor(std::move(release));
}

}  // namespace aio_internal
}  // namespace aioco
