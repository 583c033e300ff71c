// -----------------------------------------------------------------------------
// File: aio/internal/context_state.h
// -----------------------------------------------------------------------------
//
// Private pieces of AioContext shared by its implementation files
// (aio_context.cc, bottom_half.cc, co_schedule.cc): the cold per-context
// state, the nested bottom-half poll slice and the CoRescheduleSelf() node.
//
// Thread safety: home-thread-only, except ContextState::registry_mu and the
//   fields it guards.

#ifndef AIOCO_AIO_INTERNAL_CONTEXT_STATE_H_
#define AIOCO_AIO_INTERNAL_CONTEXT_STATE_H_

#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "aio/bottom_half.h"
#include "aio/internal/fd_monitor.h"
#include "coroutine/coroutine.h"

namespace aioco {

class AioContext;

namespace aio_internal {

// One BhPoll() call's batch of bottom halves, FIFO. Nested BhPoll() calls
// (a callback that runs Poll()) chain their slices so the innermost call
// drains the outer calls' remaining BHs too.
struct BhSlice {
  BottomHalf* head = nullptr;
  BhSlice* next = nullptr;
};

// A pending CoRescheduleSelf(): lives on the moving coroutine's stack, which
// stays valid until the coroutine is re-entered, i.e. after the node was
// consumed.
struct HopNode {
  Coroutine* co;
  AioContext* target;
  HopNode* next = nullptr;
};

// State for EventFd() (embedded mode).
struct Embedding {
  int epfd = -1;     // the fd handed out: notifier + timerfd + handler fds
  int timerfd = -1;  // CLOCK_MONOTONIC, armed to the loop's next deadline
  int64_t armed_abs_ns = -1;  // current timerfd deadline (monotonic), -1 off
  // Handlers whose fd epoll refused (regular files): always ready.
  absl::flat_hash_set<AioHandler*> always_ready;
};

struct ContextState {
  // Live fd handlers by fd (deleted ones are not in the map).
  absl::flat_hash_map<int, AioHandler*> handlers;
  // Removed during a dispatch; freed when the outermost Poll() ends.
  std::vector<AioHandler*> deleted_handlers;
  Embedding* embed = nullptr;  // owned; created by EventFd()

  // Named BHs not yet freed (leak detection at destruction).
  std::mutex registry_mu;
  BottomHalf* registry = nullptr;  // guarded by registry_mu
};

}  // namespace aio_internal
}  // namespace aioco

#endif  // AIOCO_AIO_INTERNAL_CONTEXT_STATE_H_
