// Coroutine scheduling across contexts: CoSchedule(), CoEnter(), CoWake(),
// CoRescheduleSelf() (QEMU's aio_co_schedule/enter/wake/reschedule_self).
//
// State:
//  * Coroutine scheduled marker (Access::scheduled): nullptr, or the name of
//    the function that scheduled it. Claimed with a compare-exchange by the
//    scheduler (a second claim aborts naming the first); cleared by the home
//    thread right before it enters the coroutine.
//  * AioContext::sched_head_: lock-free LIFO of scheduled coroutines (linked
//    through Access::scheduled_next), drained by the context's internal
//    "co_schedule" bottom half, which reverses it (FIFO) and enters each.
//  * AioContext::hop_head_/hop_tail_ and enter_depth_: home thread only.
//
// CoSchedule(co), any thread:
//  0. EnterCall(): from the push in step 2 the coroutine may run (drained by
//     a co_schedule BH that was already queued), finish, and its owner
//     destroy the context; the destructor waits until step 4.
//  1. Claim the marker (abort if taken).
//  2. Push co onto sched_head_ (release: publishes everything the scheduler
//     wrote, including the coroutine's own state if it just yielded here).
//  3. Schedule the co_schedule BH: a fetch-or, a push only if it was not
//     queued yet, and Notify(), which makes a system call only if the target
//     loop is blocked or about to block.
//  4. LeaveCall(): the last access to the context.
//
// CoRescheduleSelf(target), in a coroutine on context `cur`:
//  1. Put a node {self, target} (on the coroutine's own stack) on cur's hop
//     queue. If no EnterNow() of cur is active on this thread, also schedule
//     cur's hop BH (the coroutine was entered by other means).
//  2. Yield. Only now may another thread enter the coroutine.
//  3. When the EnterNow() that (indirectly) ran it returns, or the hop BH
//     runs, FlushHops() reads each node's fields and CoSchedule()s the
//     coroutine on its target. The node may vanish as soon as that happens.
// A node is only ever queued by a coroutine that then yields with no other
// code running on the thread in between, so every queued coroutine has
// yielded whenever FlushHops() runs.

#include <cstdio>
#include <cstdlib>

#include "aio/aio_context.h"
#include "aio/internal/context_state.h"
#include "coroutine/internal/access.h"

namespace aioco {

using coroutine_internal::Access;

namespace {

[[noreturn]] void DieDoubleSchedule(const char* who, const char* first) {
  std::fprintf(stderr, "%s: coroutine was already scheduled in '%s'\n", who, first);
  std::fflush(stderr);
  std::abort();
}

[[noreturn]] void DieMisuse(const char* msg) {
  std::fprintf(stderr, "%s\n", msg);
  std::fflush(stderr);
  std::abort();
}

}  // namespace

void AioContext::CoSchedule(Coroutine* co) { ScheduleCoroutine(co, "CoSchedule"); }

void AioContext::ScheduleCoroutine(Coroutine* co, const char* who) {
  EnterCall();
  const char* first = nullptr;
  // Acq_rel: pairs with the release store that clears the marker in
  // RunScheduledCoroutines() (or a sleeper's wake).
  if (!Access::scheduled(co).compare_exchange_strong(first, who, std::memory_order_acq_rel,
                                                     std::memory_order_acquire)) {
    DieDoubleSchedule(who, first);
  }
  Coroutine* old = sched_head_.load(std::memory_order_relaxed);
  do {
    Access::scheduled_next(co) = old;
    // Release: publishes co; pairs with the acquire exchange in
    // RunScheduledCoroutines().
  } while (!sched_head_.compare_exchange_weak(old, co, std::memory_order_release,
                                              std::memory_order_relaxed));
  co_schedule_bh_->EnqueueInCall(BottomHalf::kScheduled);
  LeaveCall();
}

void AioContext::RunScheduledCoroutines() {
  // Acquire: pairs with the release CAS in ScheduleCoroutine().
  Coroutine* lifo = sched_head_.exchange(nullptr, std::memory_order_acquire);
  Coroutine* fifo = nullptr;
  while (lifo != nullptr) {
    Coroutine* next = Access::scheduled_next(lifo);
    Access::scheduled_next(lifo) = fifo;
    fifo = lifo;
    lifo = next;
  }
  while (fifo != nullptr) {
    Coroutine* co = fifo;
    fifo = Access::scheduled_next(co);  // co may be rescheduled once it runs
    // Release: pairs with the scheduler's acquire compare-exchange; from
    // here the coroutine may be scheduled again.
    Access::scheduled(co).store(nullptr, std::memory_order_release);
    EnterNow(co);
  }
}

void AioContext::EnterNow(Coroutine* co) {
  ++enter_depth_;
  coroutine_internal::EnterIn(this, co);
  --enter_depth_;
  if (hop_head_ != nullptr) FlushHops();
}

void AioContext::CoEnter(Coroutine* co) { CoEnterImpl(co, "CoEnter"); }

void AioContext::CoEnterImpl(Coroutine* co, const char* who) {
  if (this != Current()) {
    ScheduleCoroutine(co, who);
    return;
  }
  if (Coroutine* self = Coroutine::Self()) {
    if (self == co) DieMisuse("CoEnter: a coroutine cannot enter itself");
    // Runs after `self` yields, from the enclosing EnterIn() loop: no
    // recursion however long a chain of wake-ups gets.
    coroutine_internal::QueueWakeup(self, co);
    return;
  }
  EnterNow(co);
}

void AioContext::PushHop(aio_internal::HopNode* node) {
  node->next = nullptr;
  if (hop_tail_ != nullptr) {
    hop_tail_->next = node;
  } else {
    hop_head_ = node;
  }
  hop_tail_ = node;
  if (enter_depth_ == 0) hop_bh_->Schedule();
}

void AioContext::FlushHops() {
  while (aio_internal::HopNode* node = hop_head_) {
    hop_head_ = node->next;
    if (hop_head_ == nullptr) hop_tail_ = nullptr;
    // Copy out: the node lives on the coroutine's stack, which the target
    // thread may resume as soon as the coroutine is scheduled.
    Coroutine* co = node->co;
    AioContext* target = node->target;
    target->ScheduleCoroutine(co, "CoRescheduleSelf");
  }
}

void CoWake(Coroutine* co) {
  // Acquire: pairs with the release store of the context in Enter().
  AioContext* ctx = Access::ctx(co).load(std::memory_order_acquire);
  if (ctx != nullptr) {
    ctx->CoEnterImpl(co, "CoWake");
    return;
  }
  // Never ran in a context (a thread without an event loop): same rule as
  // QEMU's NULL == NULL case, enter it here.
  if (Coroutine* self = Coroutine::Self()) {
    if (self == co) DieMisuse("CoWake: a coroutine cannot wake itself");
    coroutine_internal::QueueWakeup(self, co);
  } else {
    coroutine_internal::EnterIn(nullptr, co);
  }
}

void CoRescheduleSelf(AioContext* target) {
  Coroutine* self = Coroutine::Self();
  if (self == nullptr) DieMisuse("CoRescheduleSelf: called outside a coroutine");
  AioContext* cur = AioContext::Current();
  if (cur == target) return;
  if (cur == nullptr) {
    DieMisuse("CoRescheduleSelf: the calling thread runs no AioContext");
  }
  aio_internal::HopNode node{self, target};
  cur->PushHop(&node);
  Coroutine::Yield();
}

}  // namespace aioco
