// -----------------------------------------------------------------------------
// File: aio/bottom_half.h
// -----------------------------------------------------------------------------
//
// BottomHalf: a callback that any thread can schedule to run once, soon, in
// the home thread of the AioContext that created it (QEMU's QEMUBH).
//
// Thread safety: Schedule(), ScheduleIdle(), Cancel() and Delete() are
//   thread-safe and lock-free (one atomic fetch-or plus, when the BH is not
//   already queued, one compare-exchange onto the context's list, then
//   AioContext::Notify(), bracketed by the context's in-flight call counter
//   that its destructor waits on). The callback runs in the home thread, inside
//   AioContext::Poll().
// Memory ordering: everything a thread wrote before Schedule() is visible to
//   the callback it causes to run.
// Lifetime: created by AioContext::NewBh(); destroyed only by Delete(), which
//   is deferred: the BH is freed by the home thread's next Poll(), never
//   while its callback runs, so a callback may Delete() its own BH. The BH
//   must not be used after Delete(). Every BH must be deleted before its
//   context is destroyed: the context aborts naming any BH that leaked.
//   A Schedule() from another thread stops touching the BH once it has
//   set its flags (it may still be waking the context, which the context's
//   destructor waits for): once the callback that Schedule() caused has run,
//   the BH may be deleted, and its context destroyed, with no further
//   synchronisation with the scheduling thread. Delete() must not race with
//   a Schedule() that may not have set its flags yet.
//
// States (flags; a BH is on the context's list iff kPending):
//
//   Schedule()      sets kScheduled, enqueues if not kPending
//   ScheduleIdle()  as Schedule() plus kIdle: polled at least every 10 ms,
//                   does not stop a blocking Poll() and is not "progress"
//   Cancel()        clears kScheduled (stays queued; skipped when reached)
//   Delete()        sets kDeleted, enqueues; freed without running
//
// A BH scheduled again while queued runs once. A BH scheduled by its own
// callback (or while its callback runs) runs in the next Poll().

#ifndef AIOCO_AIO_BOTTOM_HALF_H_
#define AIOCO_AIO_BOTTOM_HALF_H_

#include <atomic>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"

namespace aioco {

class AioContext;

// -----------------------------------------------------------------------------
// BottomHalf
// -----------------------------------------------------------------------------
class BottomHalf {
 public:
  BottomHalf(const BottomHalf&) = delete;
  BottomHalf& operator=(const BottomHalf&) = delete;

  // BottomHalf::Schedule()
  //
  // Runs the callback once in the home thread's next Poll(). Thread-safe.
  void Schedule();

  // BottomHalf::ScheduleIdle()
  //
  // Like Schedule(), but only guarantees a run within about 10 ms of loop
  // time, and the run does not count as progress for Poll()'s result.
  void ScheduleIdle();

  // BottomHalf::Cancel()
  //
  // Un-schedules the BH if it has not started running. Thread-safe.
  void Cancel();

  // BottomHalf::Delete()
  //
  // Frees the BH in the home thread's next Poll() without running it again.
  // Thread-safe; wakes the loop.
  void Delete();

  // The name given to NewBh() (reported if the BH leaks).
  absl::string_view name() const { return name_; }

 private:
  friend class AioContext;

  enum : unsigned {
    kPending = 1u << 0,    // on the context's list, awaiting a BH poll
    kScheduled = 1u << 1,  // run the callback when reached
    kDeleted = 1u << 2,    // free without running
    kOneshot = 1u << 3,    // free after running (ScheduleOneshot)
    kIdle = 1u << 4,       // idle BH: 10 ms timeout, not progress
  };

  BottomHalf(AioContext* ctx, absl::AnyInvocable<void()> cb, std::string name, bool registered)
      : ctx_(ctx), cb_(std::move(cb)), name_(std::move(name)), registered_(registered) {}
  ~BottomHalf() = default;

  // Sets `flags` | kPending; pushes onto the context's list if it was not
  // pending; notifies the context. Enqueue() wraps EnqueueInCall() in an
  // AioContext::EnterCall()/LeaveCall() pair; EnqueueInCall() is for callers
  // already inside one.
  void Enqueue(unsigned flags);
  void EnqueueInCall(unsigned flags);

  AioContext* const ctx_;
  absl::AnyInvocable<void()> cb_;
  const std::string name_;
  const bool registered_;  // in the leak-detection registry (NewBh())
  std::atomic<unsigned> flags_{0};
  // Link in the context's lock-free list; written before the publishing
  // compare-exchange, read by the home thread after its acquire exchange.
  BottomHalf* next_ = nullptr;
  // Home thread: nesting depth of running callbacks, and "freed while
  // running" (Delete() plus a nested Poll() inside the callback): the
  // outermost run frees it when the callback returns.
  int running_ = 0;
  bool free_after_run_ = false;
  // Registry of named BHs (leak detection); guarded by the context's
  // registry mutex.
  BottomHalf* reg_prev_ = nullptr;
  BottomHalf* reg_next_ = nullptr;
};

}  // namespace aioco

#endif  // AIOCO_AIO_BOTTOM_HALF_H_
