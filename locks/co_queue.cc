// CoQueue: an intrusive FIFO of coroutines linked through their queue_next
// field (coroutine/internal/access.h).
//
// State: head_/tail_ are guarded by the caller's lock. A queued coroutine is
// yielded and carries the scheduled marker kWaitMarker, claimed by itself in
// Enqueue() before it releases the lock.
//
// Protocol:
//   1. Wait: Enqueue (link + claim the marker), release the caller's lock,
//      yield, re-take the lock.
//   2. Wake: unlink the head under the lock, clear its marker, CoWake() it.
//      CoWake() from a coroutine in the waiter's context defers the entry
//      until the waker yields; from another context it schedules the waiter
//      there, and that context cannot enter it before it has yielded (the
//      waiter is running in that context's thread until then). So a wake
//      that races with step 1 between the unlock and the yield is safe.

#include "locks/co_queue.h"

#include <atomic>

#include "absl/base/optimization.h"
#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"
#include "locks/internal/check.h"

namespace aioco {
namespace {

using coroutine_internal::Access;

constexpr const char kWaitMarker[] = "CoQueue::Wait";

}  // namespace

CoQueue::~CoQueue() {
  if (ABSL_PREDICT_FALSE(head_ != nullptr)) {
    locks_internal::Die("CoQueue destroyed with coroutines waiting on it");
  }
}

void CoQueue::Enqueue(bool front) {
  Coroutine* self = locks_internal::SelfOrDie("CoQueue::Wait()");
  locks_internal::ClaimWaitMarker(self, kWaitMarker, "CoQueue::Wait()");
  Access::queue_next(self) = nullptr;
  if (head_ == nullptr) {
    head_ = tail_ = self;
  } else if (front) {
    Access::queue_next(self) = head_;
    head_ = self;
  } else {
    Access::queue_next(tail_) = self;
    tail_ = self;
  }
}

void CoQueue::YieldWaiting() { Coroutine::Yield(); }

Coroutine* CoQueue::PopFront() {
  Coroutine* co = head_;
  if (co == nullptr) return nullptr;
  head_ = Access::queue_next(co);
  if (head_ == nullptr) tail_ = nullptr;
  Access::queue_next(co) = nullptr;
  return co;
}

void CoQueue::WakeWaiter(Coroutine* co) {
  locks_internal::ReleaseWaitMarker(co, kWaitMarker, "CoQueue: queued");
  CoWake(co);
}

bool CoQueue::Next() {
  locks_internal::SelfOrDie("CoQueue::Next()");
  Coroutine* co = PopFront();
  if (co == nullptr) return false;
  WakeWaiter(co);
  return true;
}

void CoQueue::RestartAll() {
  locks_internal::SelfOrDie("CoQueue::RestartAll()");
  while (Coroutine* co = PopFront()) WakeWaiter(co);
}

}  // namespace aioco
