// Bottom halves: BottomHalf methods and AioContext's BH list.
//
// State:
//  * BottomHalf::flags_ (atomic; see bottom_half.h). kDeleted and kOneshot
//    are sticky; BhPoll() clears kPending/kScheduled/kIdle when it takes a BH
//    off the list, and the flags it read decide what happens.
//  * AioContext::bh_head_: lock-free LIFO (Treiber push; the home thread
//    takes the whole list with one exchange). The push's release and the
//    exchange's acquire publish the BH's fields; this insertion, not the
//    flag update, is the synchronisation point.
//  * AioContext::slice_head_/slice_tail_: home thread. Each BhPoll() takes
//    the list into a slice (reversed: FIFO) and appends it to a chain; it
//    runs BHs from the chain's first slice until the chain is empty, so a
//    nested BhPoll() (a callback running Poll()) also drains the outer
//    calls' remaining BHs, and each BH runs at most once per take.
//  * ContextState::registry (mutex): every BH from NewBh() until freed.
//
// Enqueue(flags), any thread:
//  0. ctx->EnterCall(): the context may not be destroyed until step 4.
//  1. old = flags_.fetch_or(flags | kPending). From here the BH may run and
//     be freed (a concurrent Delete(), a one-shot): only `ctx` is touched.
//  2. If kPending was clear in `old`, push onto bh_head_.
//  3. Notify() the context (always: the push may have been done by a
//     concurrent Enqueue() that has not notified yet).
//  4. ctx->LeaveCall(): the last access to the context.
//
// BhPoll(), home thread: for each BH taken: f = fetch_and(~transient);
// run the callback if f has kScheduled and not kDeleted (progress unless
// kIdle); free it if f has kDeleted or kOneshot. A BH rescheduled while its
// callback runs was re-pushed (kPending was cleared first): it runs in the
// next BhPoll(). A BH deleted while its callback runs, and reached by a
// BhPoll() nested in that callback, is freed when the callback returns.
//
// Destruction: the list is drained; deleted and one-shot BHs are freed (a
// one-shot's callback is destroyed without running); any other BH still
// queued or still registered leaked: print each name and abort.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "aio/aio_context.h"
#include "aio/bottom_half.h"
#include "aio/internal/context_state.h"

namespace aioco {

using aio_internal::BhSlice;

namespace {
constexpr int64_t kIdleBhTimeoutNs = 10 * 1000 * 1000;  // 10 ms, as QEMU
}  // namespace

// -----------------------------------------------------------------------------
// BottomHalf
// -----------------------------------------------------------------------------

void BottomHalf::Enqueue(unsigned flags) {
  AioContext* const ctx = ctx_;
  ctx->EnterCall();
  EnqueueInCall(flags);
  ctx->LeaveCall();
}

void BottomHalf::EnqueueInCall(unsigned flags) {
  // Once the flags are set, the BH may run and be freed (one-shot, deleted)
  // by the home thread at any moment: do not touch `this` after the
  // fetch_or, except to push it (it cannot be freed before it is on the
  // list). The caller's EnterCall() keeps the context alive.
  AioContext* const ctx = ctx_;
  // Acq_rel: pairs with the fetch_and in BhPoll(); decides who pushes.
  unsigned old = flags_.fetch_or(flags | kPending, std::memory_order_acq_rel);
  if (!(old & kPending)) ctx->PushBh(this);
  ctx->Notify();
  // Work handed from one loop to another: the sender's loop waits for the
  // answer awake for a while (AioContextOptions::reply_poll_ns).
  AioContext* const sender = AioContext::Current();
  if (sender != ctx && sender != nullptr) sender->NoteWorkSent();
}

void BottomHalf::Schedule() { Enqueue(kScheduled); }

void BottomHalf::ScheduleIdle() { Enqueue(kScheduled | kIdle); }

void BottomHalf::Cancel() {
  // Relaxed: a cancel racing with the run is inherently unordered; the BH
  // stays queued and is skipped if the home thread has not reached it.
  flags_.fetch_and(~static_cast<unsigned>(kScheduled), std::memory_order_relaxed);
}

void BottomHalf::Delete() { Enqueue(kDeleted); }

// -----------------------------------------------------------------------------
// AioContext: BH list
// -----------------------------------------------------------------------------

BottomHalf* AioContext::NewBh(absl::AnyInvocable<void()> cb, absl::string_view name) {
  return NewBhInternal(std::move(cb), std::string(name), true);
}

BottomHalf* AioContext::NewBhInternal(absl::AnyInvocable<void()> cb, std::string name,
                                      bool registered) {
  BottomHalf* bh = new BottomHalf(this, std::move(cb), std::move(name), registered);
  if (registered) {
    std::lock_guard<std::mutex> lock(state_->registry_mu);
    bh->reg_next_ = state_->registry;
    if (state_->registry != nullptr) state_->registry->reg_prev_ = bh;
    state_->registry = bh;
  }
  return bh;
}

void AioContext::ScheduleOneshot(absl::AnyInvocable<void()> cb) {
  BottomHalf* bh = new BottomHalf(this, std::move(cb), std::string(), false);
  bh->Enqueue(BottomHalf::kScheduled | BottomHalf::kOneshot);  // EnterCall()s
}

void AioContext::PushBh(BottomHalf* bh) {
  BottomHalf* old = bh_head_.load(std::memory_order_relaxed);
  do {
    bh->next_ = old;
    // Release: publishes the BH (and its next_); pairs with the acquire
    // exchange in BhPoll() and the acquire loads in BhTimeout().
  } while (!bh_head_.compare_exchange_weak(old, bh, std::memory_order_release,
                                           std::memory_order_relaxed));
}

void AioContext::FreeBh(BottomHalf* bh) {
  if (bh->registered_) {
    std::lock_guard<std::mutex> lock(state_->registry_mu);
    if (bh->reg_prev_ != nullptr) {
      bh->reg_prev_->reg_next_ = bh->reg_next_;
    } else {
      state_->registry = bh->reg_next_;
    }
    if (bh->reg_next_ != nullptr) bh->reg_next_->reg_prev_ = bh->reg_prev_;
  }
  delete bh;
}

bool AioContext::BhPoll() {
  // Acquire: pairs with the release CAS in PushBh().
  if (bh_head_.load(std::memory_order_acquire) == nullptr && slice_head_ == nullptr) return false;

  // Take the list and reverse it into FIFO order.
  BottomHalf* lifo = bh_head_.exchange(nullptr, std::memory_order_acquire);
  BhSlice slice;
  while (lifo != nullptr) {
    BottomHalf* next = lifo->next_;
    lifo->next_ = slice.head;
    slice.head = lifo;
    lifo = next;
  }
  if (slice_tail_ != nullptr) {
    slice_tail_->next = &slice;
  } else {
    slice_head_ = &slice;
  }
  slice_tail_ = &slice;

  bool progress = false;
  while (BhSlice* s = slice_head_) {
    BottomHalf* bh = s->head;
    if (bh == nullptr) {
      slice_head_ = s->next;
      if (slice_head_ == nullptr) slice_tail_ = nullptr;
      continue;
    }
    s->head = bh->next_;
    // Acq_rel: pairs with the fetch_or in Enqueue(); from here a new
    // Schedule() re-pushes the BH.
    const unsigned flags = bh->flags_.fetch_and(
        ~static_cast<unsigned>(BottomHalf::kPending | BottomHalf::kScheduled | BottomHalf::kIdle),
        std::memory_order_acq_rel);
    if ((flags & (BottomHalf::kScheduled | BottomHalf::kDeleted)) == BottomHalf::kScheduled) {
      if (!(flags & BottomHalf::kIdle)) progress = true;
      ++bh->running_;
      bh->cb_();
      if (--bh->running_ == 0 && bh->free_after_run_) {
        FreeBh(bh);
        continue;
      }
    }
    if (flags & (BottomHalf::kDeleted | BottomHalf::kOneshot)) {
      if (bh->running_ > 0) {
        bh->free_after_run_ = true;  // a nested BhPoll() inside its callback
      } else {
        FreeBh(bh);
      }
    }
  }
  return progress;
}

int64_t AioContext::BhTimeout() {
  int64_t timeout = -1;
  auto scan = [&timeout](BottomHalf* bh) {
    for (; bh != nullptr; bh = bh->next_) {
      // Acquire: pairs with Enqueue()'s fetch_or (QEMU found the plain read
      // racy under TSan).
      unsigned flags = bh->flags_.load(std::memory_order_acquire);
      if ((flags & (BottomHalf::kScheduled | BottomHalf::kDeleted)) == BottomHalf::kScheduled) {
        if (!(flags & BottomHalf::kIdle)) return true;
        timeout = kIdleBhTimeoutNs;
      }
    }
    return false;
  };
  // Acquire: pairs with the release CAS in PushBh().
  if (scan(bh_head_.load(std::memory_order_acquire))) return 0;
  for (BhSlice* s = slice_head_; s != nullptr; s = s->next) {
    if (scan(s->head)) return 0;
  }
  return timeout;
}

void AioContext::DestroyBhs() {
  std::vector<std::string> leaked;
  for (;;) {
    // Acquire: pairs with the release CAS in PushBh().
    BottomHalf* bh = bh_head_.exchange(nullptr, std::memory_order_acquire);
    if (bh == nullptr) break;
    while (bh != nullptr) {
      BottomHalf* next = bh->next_;
      // Acq_rel: pairs with the fetch_or in Enqueue().
      const unsigned flags = bh->flags_.fetch_and(~static_cast<unsigned>(BottomHalf::kPending),
                                                  std::memory_order_acq_rel);
      if (flags & (BottomHalf::kDeleted | BottomHalf::kOneshot)) {
        // A one-shot that never ran is discarded: destroying its callback
        // may schedule more (handled by the outer loop).
        FreeBh(bh);
      } else if (!bh->registered_) {
        leaked.push_back(bh->name_);  // registered ones are reported below
      }
      bh = next;
    }
  }
  {
    std::lock_guard<std::mutex> lock(state_->registry_mu);
    for (BottomHalf* bh = state_->registry; bh != nullptr; bh = bh->reg_next_) {
      leaked.push_back(bh->name_);
    }
  }
  if (!leaked.empty()) {
    for (const std::string& name : leaked) {
      std::fprintf(stderr, "~AioContext: BH '%s' leaked, aborting...\n", name.c_str());
    }
    std::fflush(stderr);
    std::abort();
  }
}

}  // namespace aioco
