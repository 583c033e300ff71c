// -----------------------------------------------------------------------------
// File: aio/thread_pool.h
// -----------------------------------------------------------------------------
//
// ThreadPool: a bounded pool of worker threads for blocking calls (QEMU's
// thread pool), and CoRunInThreadPool(), which runs a function in it from a
// coroutine and resumes the coroutine in its own AioContext with the result.
//
// Thread safety: ThreadPool is thread-safe except where a method says
//   otherwise. CoRunInThreadPool() is coroutine-only: called elsewhere it
//   aborts with a message naming it.
// Memory ordering: everything the submitter wrote before submitting is
//   visible to the work function; everything the work function wrote is
//   visible to the code that receives its completion (the resumed coroutine,
//   or the `done` callback).
// Lifetime: the process-wide ThreadPool::Default() is never destroyed.
//   Destroying another pool waits until its queued and running work has
//   finished and its workers have exited. A worker delivers a completion by
//   waking the receiving AioContext (CoWake() / ScheduleOneshot()); that
//   call may still be returning after the resumed coroutine or the `done`
//   callback has run. Destroy such a context only once the pool is idle
//   (stats().active == 0) or destroyed.
//
// Workers: a pool keeps between min_threads and max_threads workers. A
// worker is started when work arrives and no idle worker can take it (the
// submitter starts at most one at a time; each new worker starts the next
// one if still needed, so a burst of submissions costs the submitter a
// single thread creation). A worker idle for idle_timeout_ns exits while more
// than min_threads exist. Workers block every signal and run with the main
// thread's CPU affinity, not the (possibly pinned) spawner's.
//
// Work functions must not throw (a throw in a worker terminates).
//
//   // In a coroutine running in an AioContext:
//   ssize_t n = CoRunInThreadPool([&] { return pread(fd, buf, len, off); });

#ifndef AIOCO_AIO_THREAD_POOL_H_
#define AIOCO_AIO_THREAD_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "aio/internal/thread_pool.h"

namespace aioco {

class AioContext;

namespace aio_internal {
struct PoolState;
}  // namespace aio_internal

struct ThreadPoolOptions {
  int min_threads = 0;   // workers kept even when idle
  int max_threads = 64;  // upper bound on workers (QEMU's default)
  // A worker idle this long exits (while more than min_threads exist).
  int64_t idle_timeout_ns = int64_t{10} * 1000 * 1000 * 1000;
  std::string name = "aioco-pool";  // worker thread name (15 chars kept)
};

struct ThreadPoolStats {
  int threads;        // workers alive (including ones starting up)
  int idle_threads;   // workers waiting for work
  int active;         // work functions running now
  size_t queued;      // requests waiting for a worker
};

// A request submitted with ThreadPool::SubmitAio(); valid until its `done`
// callback has started.
using ThreadPoolRequest = aio_internal::PoolWork;

// -----------------------------------------------------------------------------
// ThreadPool
// -----------------------------------------------------------------------------
class ThreadPool {
 public:
  // ThreadPool::Default()
  //
  // The process-wide pool (ThreadPoolOptions defaults), created on first use.
  static ThreadPool* Default();

  // ThreadPool::Create()
  //
  // A new pool. InvalidArgument unless 0 <= min_threads <= max_threads,
  // max_threads > 0 and idle_timeout_ns > 0. Starts min_threads workers.
  static absl::StatusOr<std::unique_ptr<ThreadPool>> Create(const ThreadPoolOptions& opts = {});

  // Waits for queued and running work, then for every worker to exit. Must
  // not run in one of this pool's workers.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // ThreadPool::SetLimits()
  //
  // Changes the worker bounds (same rules as Create()). Extra workers exit
  // once they finish their current work; missing ones are started.
  absl::Status SetLimits(int min_threads, int max_threads);

  // ThreadPool::stats()
  //
  // A snapshot, for diagnostics and tests.
  ThreadPoolStats stats() const;

  // ThreadPool::Submit()
  //
  // Runs `fn()` in a worker; nobody is told when it finishes.
  template <typename F>
  void Submit(F&& fn) {
    SubmitWork(new aio_internal::DetachedWork<std::decay_t<F>>(std::forward<F>(fn)));
  }

  // ThreadPool::SubmitAio()
  //
  // QEMU's thread_pool_submit_aio(). Runs `fn()` in a worker, then `done` in
  // `ctx`'s home thread (during its Poll(), never from inside SubmitAio()):
  // done(absl::StatusOr<R>) with fn's value, or done(absl::Status) if fn
  // returns void; a CancelledError status if Cancel() stopped the request
  // before it started. `ctx` must outlive the request.
  template <typename Ctx, typename F, typename Done>
  ThreadPoolRequest* SubmitAio(Ctx* ctx, F&& fn, Done&& done) {
    using Work = aio_internal::AioWork<Ctx, std::decay_t<F>, std::decay_t<Done>>;
    auto* w = new Work(ctx, std::forward<F>(fn), std::forward<Done>(done));
    SubmitWork(w);
    return w;
  }

  // ThreadPool::Cancel()
  //
  // `req` must come from this pool's SubmitAio(). Call from the home thread
  // of the request's context, before its `done` has run. If the request has not started, it never will: returns true
  // and `done` later receives a CancelledError (asynchronously, as QEMU's
  // cancel_async). If it has started (or finished), returns false and
  // `done` receives its result.
  bool Cancel(ThreadPoolRequest* req);

  // Queues `w` (whose run and complete are set). For the templates here.
  void SubmitWork(aio_internal::PoolWork* w);

 private:
  explicit ThreadPool(std::shared_ptr<aio_internal::PoolState> state);

  std::shared_ptr<aio_internal::PoolState> state_;
};

// CoRunInThreadPool()
//
// Coroutine-only; the coroutine must run in an AioContext. Runs `fn()` in
// `pool` (default: ThreadPool::Default()), suspending the calling coroutine
// meanwhile; the coroutine resumes in its own context (its home thread's
// loop keeps running other work) and gets fn's return value. `fn` is called
// in place, by reference: no copy is made.
template <typename F>
auto CoRunInThreadPool(ThreadPool* pool, F&& fn) -> std::invoke_result_t<F> {
  aio_internal::CoWork<F> work(std::forward<F>(fn));
  aio_internal::CoRunWork(pool, &work, &work.waiter, &work.finished);
  return work.result.Take();
}

template <typename F>
auto CoRunInThreadPool(F&& fn) -> std::invoke_result_t<F> {
  return CoRunInThreadPool(ThreadPool::Default(), std::forward<F>(fn));
}

}  // namespace aioco

#endif  // AIOCO_AIO_THREAD_POOL_H_
