// -----------------------------------------------------------------------------
// File: aio/fd_monitor_kind.h
// -----------------------------------------------------------------------------
//
// FdMonitorKind: which readiness backend an AioContext uses.
//
// Thread safety: a plain enum.

#ifndef AIOCO_AIO_FD_MONITOR_KIND_H_
#define AIOCO_AIO_FD_MONITOR_KIND_H_

#include "absl/strings/string_view.h"

namespace aioco {

enum class FdMonitorKind {
  kAuto,     // io_uring if it initialises here, else epoll
  kEpoll,
  kIoUring,
  kPoll,
};

// "auto", "epoll", "io_uring", "poll".
absl::string_view FdMonitorKindName(FdMonitorKind kind);

}  // namespace aioco

#endif  // AIOCO_AIO_FD_MONITOR_KIND_H_
