// AioWaitWhile() support.
//
// State: a process-wide registry (mutex) of the threads inside
// AioWaitWhile(), each with the context it polls or nullptr (it sleeps on the
// registry's condition variable), a waiter count read without the lock, and
// an epoch bumped by every kick.
//
// Protocol (QEMU's aio_wait_kick and AIO_WAIT_WHILE, 7455ff1aa015):
//   waiter:  num_waiters++ ; FENCE ; loop { e = epoch ; if !cond: break ;
//            poll its context once, or sleep until epoch != e }
//   kicker:  (condition written) ; FENCE ; if num_waiters: lock ; epoch++ ;
//            Notify() every polling waiter's context ; notify_all ; unlock
// Either the kicker sees the waiter count, or the waiter's first evaluation
// of the condition sees the change. A polling waiter re-evaluates after
// every Poll() iteration, and Notify() ends the current one.

#include "aio/aio_wait.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "coroutine/internal/full_fence.h"
#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"

namespace aioco {
namespace aio_internal {
namespace {

struct Registry {
  std::mutex mu;
  std::condition_variable cv;
  AioWaiter* head = nullptr;  // guarded by mu
  std::atomic<uint64_t> epoch{0};
  std::atomic<unsigned> num_waiters{0};
};

Registry& GetRegistry() {
  static Registry* registry = new Registry;  // never destroyed: usable at exit
  return *registry;
}

}  // namespace

AioWaiter::AioWaiter(AioContext* ctx, const char* function) {
  if (Coroutine::InCoroutine()) {
    std::fprintf(stderr, "%s: called from a coroutine (yield instead)\n", function);
    std::fflush(stderr);
    std::abort();
  }
  // The loop to run is always the calling thread's own (`ctx` itself when
  // it is current); `ctx` names the context the condition depends on.
  poll_ctx_ = AioContext::Current();
  wait_ctx_ = ctx;
  TryAdopt();
  Registry& r = GetRegistry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    next_ = r.head;
    if (r.head != nullptr) r.head->prev_ = this;
    r.head = this;
  }
  r.num_waiters.fetch_add(1, std::memory_order_seq_cst);
  // Full fence: the count before the first evaluation of the condition
  // (pairs with the fence in AioWaitKick()).
  coroutine_internal::FullFence();
}

AioWaiter::~AioWaiter() {
  if (adopted_) {
    coroutine_internal::SetThreadAioContext(nullptr);
    // Release: pairs with the acq_rel compare-exchange of the next adopter.
    poll_ctx_->attached_.fetch_sub(1, std::memory_order_release);
  }
  Registry& r = GetRegistry();
  // Relaxed: a stale non-zero count only costs a kicker a needless lock.
  r.num_waiters.fetch_sub(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(r.mu);
  if (prev_ != nullptr) {
    prev_->next_ = next_;
  } else {
    r.head = next_;
  }
  if (next_ != nullptr) next_->prev_ = prev_;
}

void AioWaiter::TryAdopt() {
  if (poll_ctx_ != nullptr || wait_ctx_ == nullptr) return;
  int expected = 0;
  // Acq_rel: pairs with the release decrement in another adopter's
  // destructor, so its Poll() calls happen before ours.
  if (wait_ctx_->attached_.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    coroutine_internal::SetThreadAioContext(wait_ctx_);
    poll_ctx_ = wait_ctx_;
    adopted_ = true;
  }
}

uint64_t AioWaiter::Epoch() const {
  // Acquire: pairs with the release increment in KickWaiters().
  return GetRegistry().epoch.load(std::memory_order_acquire);
}

void AioWaiter::Wait(uint64_t epoch) {
  // The context may have become unattached since (another adopter's wait
  // ended): drive it ourselves from now on.
  TryAdopt();
  if (poll_ctx_ != nullptr) {
    poll_ctx_->Poll(true);
    return;
  }
  Registry& r = GetRegistry();
  std::unique_lock<std::mutex> lock(r.mu);
  // Relaxed: read under mu, which the kicker holds while incrementing.
  // Bounded wait: a condition changed by code that neither kicks nor runs in
  // a progressing Poll() is still noticed, one millisecond late at worst.
  r.cv.wait_for(lock, std::chrono::milliseconds(1),
                [&] { return r.epoch.load(std::memory_order_relaxed) != epoch; });
}

unsigned NumWaiters() {
  // Relaxed: callers order it with a fence (AioWaitKick()).
  return GetRegistry().num_waiters.load(std::memory_order_relaxed);
}

void KickWaitersExcept(AioContext* except) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  // Release: publishes the kicker's writes to waiters reading the epoch.
  r.epoch.fetch_add(1, std::memory_order_release);
  for (AioWaiter* w = r.head; w != nullptr; w = w->next_) {
    if (w->poll_ctx_ != nullptr && w->poll_ctx_ != except) w->poll_ctx_->Notify();
  }
  r.cv.notify_all();
}

void KickWaiters() { KickWaitersExcept(nullptr); }

void KickWaitersAfterProgress(AioContext* ctx) {
  // Full fence: the progress's writes before the count load (pairs with the
  // fence in AioWaiter's constructor), as in AioWaitKick().
  coroutine_internal::FullFence();
  if (NumWaiters() == 0) return;
  // Only this loop's own waiters are registered: they re-evaluate anyway.
  Registry& r = GetRegistry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    bool others = false;
    for (AioWaiter* w = r.head; w != nullptr; w = w->next_) {
      if (w->poll_ctx_ != ctx) { others = true; break; }
    }
    if (!others) return;
  }
  KickWaitersExcept(ctx);
}

}  // namespace aio_internal

void AioWaitKick() {
  // Full fence: the caller's condition write before the count load (pairs
  // with the fence in AioWaiter's constructor).
  coroutine_internal::FullFence();
  if (aio_internal::NumWaiters() == 0) return;
  aio_internal::KickWaiters();
}

void AioWaitBhOneshot(AioContext* ctx, absl::AnyInvocable<void()> fn) {
  if (ctx == AioContext::Current()) {
    fn();
    return;
  }
  std::atomic<bool> done{false};
  ctx->ScheduleOneshot([&fn, &done] {
    fn();
    // Release: pairs with the acquire load in the wait below.
    done.store(true, std::memory_order_release);
    AioWaitKick();
  });
  AioWaitWhile(ctx, [&done] { return !done.load(std::memory_order_acquire); });
}

}  // namespace aioco
