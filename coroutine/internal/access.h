// -----------------------------------------------------------------------------
// File: coroutine/internal/access.h
// -----------------------------------------------------------------------------
//
// The seam between the coroutine core and the layers above it (//aio,
// //locks). Not for users: Bazel visibility limits it to aioco's packages.
//
// Thread safety: as stated per function. Fields reached through Access are
// owned by whoever holds the coroutine at that moment (the thread running or
// entering it, or the list it is linked into); the atomics name their pairs.

#ifndef AIOCO_COROUTINE_INTERNAL_ACCESS_H_
#define AIOCO_COROUTINE_INTERNAL_ACCESS_H_

#include <atomic>
#include <cstddef>

#include "coroutine/coroutine.h"

namespace aioco {
namespace coroutine_internal {

// EnterIn()
//
// qemu_aio_coroutine_enter(): enters `co` on the calling thread with its
// context set to `ctx` (may be nullptr), then runs, depth first, every
// coroutine queued with QueueWakeup() by the coroutines it ran. Aborts if a
// coroutine on the pending list is entered or scheduled.
void EnterIn(AioContext* ctx, Coroutine* co);

// SetThreadAioContext() / ThreadAioContext()
//
// The calling thread's current AioContext, as seen by the coroutine layer
// (Coroutine::Enter() enters in it). //aio sets it when a context's loop
// runs on a thread. Not inlinable: safe to call from coroutines that migrate.
void SetThreadAioContext(AioContext* ctx);
AioContext* ThreadAioContext();

// QueueWakeup()
//
// Appends `co` to `self`'s wake-up list: it will be entered (in self's
// current context) by the enclosing EnterIn() loop once `self` yields or
// terminates. Must be called on the thread running `self`. `co` must not be
// on any other list (its queue_next link is used).
void QueueWakeup(Coroutine* self, Coroutine* co);

struct Access {
  // Scheduling marker: see Coroutine::scheduled_. Claim with
  // compare_exchange_strong(nullptr, __func__) (acq_rel); the scheduler
  // clears it with a release store before entering.
  static std::atomic<const char*>& scheduled(Coroutine* co) { return co->scheduled_; }
  static std::atomic<AioContext*>& ctx(Coroutine* co) { return co->ctx_; }
  // Intrusive link for CoQueue and other single-owner wait lists.
  static Coroutine*& queue_next(Coroutine* co) { return co->queue_next_; }
  // Intrusive link for AioContext's lock-free scheduled-coroutine stack.
  static Coroutine*& scheduled_next(Coroutine* co) { return co->scheduled_next_; }
  // Coroutine locks held by `co` (only its own thread touches it).
  static size_t& locks_held(Coroutine* co) { return co->locks_held_; }
  static Coroutine* caller(Coroutine* co) { return co->caller_; }
};

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_COROUTINE_INTERNAL_ACCESS_H_
