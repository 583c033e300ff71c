// ThreadPool: a bounded set of detached worker threads fed from one FIFO
// (QEMU's util/thread-pool.c, with a process-wide default pool instead of
// one per AioContext).
//
// State: PoolState, shared (std::shared_ptr) by the ThreadPool object and
// every worker, so the last worker to exit may outlive the ThreadPool. All of
// it is guarded by `mu`:
//  * the request FIFO (head/tail, intrusive through PoolWork::prev/next) and
//    `queued`;
//  * cur_threads (alive or starting), starting, idle_threads, active;
//  * min/max bounds, `stopping`.
// A request's `state` (kQueued -> kActive, or kQueued -> kCancelled) changes
// only under `mu`; its run() and complete() are called without it.
//
// Protocol:
//  1. SubmitWork: append under mu. If an idle worker exists, signal one.
//     Otherwise, if more requests are queued than idle and starting workers
//     can take, cur_threads < max_threads and no worker is starting, start
//     one (thread creation happens outside mu).
//  2. A new worker, under mu: leaves `starting`, and starts the next worker
//     if the same condition (or cur_threads < min_threads) still holds: the
//     chain replaces a loop of thread creations in the submitter.
//  3. Worker loop, under mu: exit if cur_threads > max_threads; pop the
//     oldest request (kActive), run it and complete it without mu; else, if
//     `stopping`, exit; else wait up to idle_timeout for a signal, and exit on
//     timeout if cur_threads > min_threads.
//  4. Cancel: under mu, a kQueued request is unlinked and becomes
//     kCancelled; its complete() runs in the canceller (outside mu).
//  5. ~ThreadPool: set `stopping`, wake everyone; workers drain the FIFO and
//     exit; wait until cur_threads == 0.

#include "aio/thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "coroutine/coroutine.h"

namespace aioco {
namespace aio_internal {

struct PoolState {
  std::mutex mu;
  std::condition_variable work_cv;  // workers wait for requests here
  std::condition_variable exit_cv;  // ~ThreadPool waits for workers here

  PoolWork* head = nullptr;
  PoolWork* tail = nullptr;
  size_t queued = 0;

  int min_threads = 0;
  int max_threads = 0;
  std::chrono::nanoseconds idle_timeout{0};
  std::string name;

  int cur_threads = 0;   // alive or starting
  int starting = 0;      // created, not yet in the loop
  int idle_threads = 0;  // waiting on work_cv
  int active = 0;        // running a request
  bool stopping = false;

  bool NeedWorkerLocked(int extra_takers) const {
    if (cur_threads >= max_threads) return false;
    return cur_threads < min_threads ||
           queued > static_cast<size_t>(idle_threads + starting + extra_takers);
  }

  void PushLocked(PoolWork* w) {
    w->state = PoolWork::State::kQueued;
    w->next = nullptr;
    w->prev = tail;
    if (tail != nullptr) {
      tail->next = w;
    } else {
      head = w;
    }
    tail = w;
    ++queued;
  }

  void UnlinkLocked(PoolWork* w) {
    if (w->prev != nullptr) {
      w->prev->next = w->next;
    } else {
      head = w->next;
    }
    if (w->next != nullptr) {
      w->next->prev = w->prev;
    } else {
      tail = w->prev;
    }
    w->prev = w->next = nullptr;
    --queued;
  }
};

namespace {

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

void WorkerLoop(const std::shared_ptr<PoolState>& st);

struct WorkerArg {
  std::shared_ptr<PoolState> state;
};

void* WorkerMain(void* arg) {
  std::unique_ptr<WorkerArg> a(static_cast<WorkerArg*>(arg));
  std::shared_ptr<PoolState> st = std::move(a->state);
  a.reset();
  pthread_setname_np(pthread_self(), st->name.substr(0, 15).c_str());
  // Run where the main thread may run, not where the (possibly pinned)
  // spawner does: getpid() names the main thread.
  cpu_set_t cpus;
  if (sched_getaffinity(getpid(), sizeof(cpus), &cpus) == 0) {
    sched_setaffinity(0, sizeof(cpus), &cpus);
  }
  WorkerLoop(st);
  return nullptr;
}

// Starts one worker whose slot (cur_threads, starting) the caller already
// reserved under st->mu. Called without the mutex.
void StartWorker(const std::shared_ptr<PoolState>& st) {
  // Workers block every signal (they inherit the creator's mask): signals
  // belong to the application's own threads.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  auto* arg = new WorkerArg{st};
  pthread_t tid;
  int err = pthread_create(&tid, &attr, &WorkerMain, arg);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err == 0) return;
  delete arg;
  std::unique_lock<std::mutex> lk(st->mu);
  --st->cur_threads;
  --st->starting;
  if (st->cur_threads == 0 && st->queued > 0) {
    Die(absl::StrCat("ThreadPool: cannot create a worker thread: ", strerror(err)));
  }
  st->exit_cv.notify_all();
}

void WorkerLoop(const std::shared_ptr<PoolState>& st) {
  std::unique_lock<std::mutex> lk(st->mu);
  --st->starting;
  for (;;) {
    // 2. Chain-start the next worker if work is still waiting for one (this
    // worker is about to take one request itself).
    if (st->NeedWorkerLocked(1) && st->starting == 0) {
      ++st->cur_threads;
      ++st->starting;
      lk.unlock();
      StartWorker(st);
      lk.lock();
    }
    // 3. Shrink, work, or wait.
    if (st->cur_threads > st->max_threads) break;
    if (PoolWork* w = st->head) {
      st->UnlinkLocked(w);
      w->state = PoolWork::State::kActive;
      ++st->active;
      lk.unlock();
      w->run(w);
      w->complete(w);  // `w` may be gone after this
      lk.lock();
      --st->active;
      continue;
    }
    if (st->stopping) break;
    ++st->idle_threads;
    const bool woken = st->work_cv.wait_for(lk, st->idle_timeout, [&] {
      return st->head != nullptr || st->stopping || st->cur_threads > st->max_threads;
    });
    --st->idle_threads;
    if (!woken && st->cur_threads > st->min_threads) break;
  }
  --st->cur_threads;
  st->exit_cv.notify_all();
  // A remaining idle worker may have to take over this one's wake-up.
  if (st->head != nullptr) st->work_cv.notify_one();
}

absl::Status CheckLimits(int min_threads, int max_threads) {
  if (min_threads < 0 || max_threads <= 0 || min_threads > max_threads) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ThreadPool: need 0 <= min_threads <= max_threads and max_threads > 0 (got min ",
        min_threads, ", max ", max_threads, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

void CoRunWork(ThreadPool* pool, PoolWork* w, Coroutine** waiter, std::atomic<bool>* finished) {
  Coroutine* self = Coroutine::Self();
  if (self == nullptr) Die("CoRunInThreadPool: called outside a coroutine");
  if (self->aio_context() == nullptr) {
    Die("CoRunInThreadPool: the coroutine does not run in an AioContext");
  }
  *waiter = self;
  pool->SubmitWork(w);
  // The worker's CoWake() schedules us in our context, which enters us only
  // after this yield.
  Coroutine::Yield();
  // Acquire: pairs with the release store in CoWork::Complete().
  if (!finished->load(std::memory_order_acquire)) {
    Die("CoRunInThreadPool: the coroutine was resumed before its work finished");
  }
}

}  // namespace aio_internal

using aio_internal::PoolState;
using aio_internal::PoolWork;

ThreadPool* ThreadPool::Default() {
  static ThreadPool* const pool = [] {
    absl::StatusOr<std::unique_ptr<ThreadPool>> p = Create();
    if (!p.ok()) aio_internal::Die(std::string(p.status().message()));
    return p->release();
  }();
  return pool;
}

absl::StatusOr<std::unique_ptr<ThreadPool>> ThreadPool::Create(const ThreadPoolOptions& opts) {
  absl::Status s = aio_internal::CheckLimits(opts.min_threads, opts.max_threads);
  if (!s.ok()) return s;
  if (opts.idle_timeout_ns <= 0) {
    return absl::InvalidArgumentError("ThreadPool: idle_timeout_ns must be > 0");
  }
  auto st = std::make_shared<PoolState>();
  st->min_threads = opts.min_threads;
  st->max_threads = opts.max_threads;
  st->idle_timeout = std::chrono::nanoseconds(opts.idle_timeout_ns);
  st->name = opts.name.empty() ? "aioco-pool" : opts.name;
  std::unique_ptr<ThreadPool> pool(new ThreadPool(st));
  if (opts.min_threads > 0) {
    // One now; the chain (protocol step 2) starts the rest.
    {
      std::lock_guard<std::mutex> lk(st->mu);
      ++st->cur_threads;
      ++st->starting;
    }
    aio_internal::StartWorker(st);
  }
  return pool;
}

ThreadPool::ThreadPool(std::shared_ptr<PoolState> state) : state_(std::move(state)) {}

ThreadPool::~ThreadPool() {
  PoolState* st = state_.get();
  std::unique_lock<std::mutex> lk(st->mu);
  st->stopping = true;
  st->work_cv.notify_all();
  st->exit_cv.wait(lk, [&] { return st->cur_threads == 0; });
}

absl::Status ThreadPool::SetLimits(int min_threads, int max_threads) {
  absl::Status s = aio_internal::CheckLimits(min_threads, max_threads);
  if (!s.ok()) return s;
  PoolState* st = state_.get();
  bool start = false;
  {
    std::lock_guard<std::mutex> lk(st->mu);
    st->min_threads = min_threads;
    st->max_threads = max_threads;
    if (st->cur_threads > max_threads) st->work_cv.notify_all();  // extra ones exit
    if (st->NeedWorkerLocked(0) && st->starting == 0) {
      ++st->cur_threads;
      ++st->starting;
      start = true;
    }
  }
  if (start) aio_internal::StartWorker(state_);
  return absl::OkStatus();
}

ThreadPoolStats ThreadPool::stats() const {
  PoolState* st = state_.get();
  std::lock_guard<std::mutex> lk(st->mu);
  return ThreadPoolStats{st->cur_threads, st->idle_threads, st->active, st->queued};
}

void ThreadPool::SubmitWork(PoolWork* w) {
  PoolState* st = state_.get();
  bool signal = false;
  bool start = false;
  {
    std::lock_guard<std::mutex> lk(st->mu);
    if (st->stopping) aio_internal::Die("ThreadPool: work submitted to a pool being destroyed");
    w->cancelled = false;
    st->PushLocked(w);
    if (st->idle_threads > 0) {
      signal = true;
    }
    if (st->NeedWorkerLocked(0) && st->starting == 0) {
      ++st->cur_threads;
      ++st->starting;
      start = true;
    }
  }
  if (signal) st->work_cv.notify_one();
  if (start) aio_internal::StartWorker(state_);
}

bool ThreadPool::Cancel(ThreadPoolRequest* req) {
  PoolState* st = state_.get();
  {
    std::lock_guard<std::mutex> lk(st->mu);
    if (req->state != PoolWork::State::kQueued) return false;
    st->UnlinkLocked(req);
    req->state = PoolWork::State::kCancelled;
    req->cancelled = true;
  }
  req->complete(req);
  return true;
}

}  // namespace aioco
