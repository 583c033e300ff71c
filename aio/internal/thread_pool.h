// -----------------------------------------------------------------------------
// File: aio/internal/thread_pool.h
// -----------------------------------------------------------------------------
//
// The type-erased work items behind aio/thread_pool.h: PoolWork (the
// intrusive record a ThreadPool queues), the result slot, and the three
// typed items the public templates build: CoWork (CoRunInThreadPool, on the
// waiting coroutine's stack), AioWork (ThreadPool::SubmitAio, on the heap)
// and DetachedWork (ThreadPool::Submit, on the heap).
//
// Thread safety: a PoolWork is owned by its submitter until submitted, by the
//   pool (under its mutex) while queued, by one worker while it runs, and by
//   whoever complete() hands it to afterwards.
// Memory ordering: run() happens before complete(); complete() publishes the
//   result to the code it wakes (CoWake() / AioContext::ScheduleOneshot()).
//
// Not for users: include aio/thread_pool.h.

#ifndef AIOCO_AIO_INTERNAL_THREAD_POOL_H_
#define AIOCO_AIO_INTERNAL_THREAD_POOL_H_

#include <atomic>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace aioco {

class Coroutine;
class ThreadPool;
// Defined in //aio (aio/aio_context.h declares it too).
void CoWake(Coroutine* co);

namespace aio_internal {

// One request. The typed items below fill in run/complete.
struct PoolWork {
  enum class State { kNew, kQueued, kActive, kCancelled };

  // Runs the work, in a worker thread.
  void (*run)(PoolWork* w) = nullptr;
  // Called once, after run() in the same worker, or by ThreadPool::Cancel()
  // (with `cancelled` set) in the canceller's thread. The pool does not touch
  // the item afterwards.
  void (*complete)(PoolWork* w) = nullptr;

  // Pool bookkeeping, under the pool's mutex.
  State state = State::kNew;
  PoolWork* prev = nullptr;
  PoolWork* next = nullptr;
  // Written before complete() by the canceller; read by complete() and by
  // the code it wakes (ordered by that wake-up).
  bool cancelled = false;
};

// Holds the value returned by the work function (nothing for void, a
// pointer for references).
template <typename R>
struct ResultSlot {
  std::optional<R> value;
  template <typename F>
  void Run(F&& fn) {
    value.emplace(std::invoke(std::forward<F>(fn)));
  }
  R Take() { return std::move(*value); }
};

template <typename R>
struct ResultSlot<R&> {
  R* value = nullptr;
  template <typename F>
  void Run(F&& fn) {
    value = &std::invoke(std::forward<F>(fn));
  }
  R& Take() { return *value; }
};

template <>
struct ResultSlot<void> {
  template <typename F>
  void Run(F&& fn) {
    std::invoke(std::forward<F>(fn));
  }
  void Take() {}
};

// Coroutine-only (aborts naming CoRunInThreadPool otherwise): sets
// `*waiter` to the calling coroutine, submits `w`, yields, and returns once
// `w->complete` (CoWork::Complete) has set `*finished` and woken it.
void CoRunWork(ThreadPool* pool, PoolWork* w, Coroutine** waiter, std::atomic<bool>* finished);

// CoRunInThreadPool's item: lives on the waiting coroutine's stack, which
// stays put while the coroutine is suspended; `fn` is the caller's callable,
// by reference.
template <typename F>
struct CoWork final : PoolWork {
  using R = std::invoke_result_t<F>;

  explicit CoWork(F&& f) : fn(std::forward<F>(f)) {
    run = &Run;
    complete = &Complete;
  }

  static void Run(PoolWork* w) {
    auto* self = static_cast<CoWork*>(w);
    self->result.Run(std::forward<F>(self->fn));
  }

  static void Complete(PoolWork* w) {
    auto* self = static_cast<CoWork*>(w);
    Coroutine* co = self->waiter;
    // Release: publishes the result; pairs with the acquire load in
    // CoRunWork() after the coroutine resumes. `self` may vanish as soon as
    // the coroutine runs, so nothing here touches it after the store.
    self->finished.store(true, std::memory_order_release);
    CoWake(co);
  }

  F&& fn;
  ResultSlot<R> result;
  Coroutine* waiter = nullptr;
  std::atomic<bool> finished{false};
};

// ThreadPool::SubmitAio's item: on the heap; completion is delivered in
// `ctx`'s home thread, where `done` runs and the item is freed. `Ctx` is
// AioContext (a template parameter so that this header needs only its
// declaration).
template <typename Ctx, typename Fn, typename Done>
struct AioWork final : PoolWork {
  using R = std::invoke_result_t<Fn&>;
  static_assert(!std::is_reference_v<R>, "SubmitAio: the work must return a value or void");

  AioWork(Ctx* c, Fn f, Done d) : ctx(c), fn(std::move(f)), done(std::move(d)) {
    run = &Run;
    complete = &Complete;
  }

  static void Run(PoolWork* w) {
    auto* self = static_cast<AioWork*>(w);
    self->result.Run(self->fn);
  }

  static void Complete(PoolWork* w) {
    auto* self = static_cast<AioWork*>(w);
    self->ctx->ScheduleOneshot([self] { self->Finish(); });
  }

  void Finish() {
    if constexpr (std::is_void_v<R>) {
      done(cancelled ? absl::CancelledError("ThreadPool: request cancelled") : absl::OkStatus());
    } else {
      if (cancelled) {
        done(absl::StatusOr<R>(absl::CancelledError("ThreadPool: request cancelled")));
      } else {
        done(absl::StatusOr<R>(result.Take()));
      }
    }
    delete this;
  }

  Ctx* const ctx;
  Fn fn;
  Done done;
  ResultSlot<R> result;
};

// ThreadPool::Submit's item: fire and forget.
template <typename Fn>
struct DetachedWork final : PoolWork {
  explicit DetachedWork(Fn f) : fn(std::move(f)) {
    run = &Run;
    complete = &Complete;
  }
  static void Run(PoolWork* w) { static_cast<DetachedWork*>(w)->fn(); }
  static void Complete(PoolWork* w) { delete static_cast<DetachedWork*>(w); }
  Fn fn;
};

}  // namespace aio_internal
}  // namespace aioco

#endif  // AIOCO_AIO_INTERNAL_THREAD_POOL_H_
