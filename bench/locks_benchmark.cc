// Coroutine lock benchmarks: aioco's CoMutex and CoRwlock against thread
// locks, in the shapes of QEMU's test-aio-multithread mutex comparison.
//
//   locks/contended/{aioco,std_mutex,mcs}/threads:N
//       N IoThreads, one coroutine on each, every coroutine
//       doing lock; ++counter; unlock in a loop: CoMutex, std::mutex taken
//       from the same coroutines, and an MCS queue lock with futex waits
//       (QEMU's mutex/mcs shape).
//   locks/contended_4co/{aioco,std_mutex}/threads:N
//       as contended with 4 coroutines per IoThread.
//   locks/contended/pthread/threads:N
//       N plain threads doing the same loop on a pthread mutex (QEMU's
//       mutex/pthread shape).
//   locks/uncontended/{aioco,std_mutex}
//       lock/unlock in one coroutine, nobody else around.
//   locks/rwlock_read_mostly/{aioco,std_shared_mutex}/threads:N
//       as contended, with 1 write in 16 operations: CoRwlock vs
//       std::shared_mutex taken from the same coroutines.
//
// items_per_second is lock acquisitions per second over all threads. Every
// run checks the protected counter against the number of acquisitions.
// threads:N covers 2 and, where the machine has the CPUs, 4, 8 and 16.
// IoThreads busy-poll for up to 32768 ns before sleeping (QEMU's IOThread
// default poll-max-ns); AIOCO_BENCH_POLL_MAX_NS=0 turns that off.

#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "aio/aio_context.h"
#include "aio/io_thread.h"
#include "benchmark/benchmark.h"
#include "coroutine/coroutine.h"
#include "locks/co_mutex.h"
#include "locks/co_rwlock.h"

namespace {

using aioco::AioContext;
using aioco::Coroutine;
using aioco::IoThread;

constexpr int kOpsPerWorker = 200000;  // per coroutine/thread per iteration

// IoThreads busy-poll up to QEMU's default IOThread poll-max-ns before
// sleeping in the kernel (AIOCO_BENCH_POLL_MAX_NS overrides it).
constexpr int64_t kDefaultPollMaxNs = 32768;

// --- helpers ---------------------------------------------------------------

// Count-down latch for the threads of a run.
using Latch = std::latch;

std::vector<std::unique_ptr<IoThread>> MakeIoThreads(int n) {
  std::vector<std::unique_ptr<IoThread>> threads;
  aioco::IoThreadOptions opts;
  opts.aio.poll_max_ns = kDefaultPollMaxNs;
  if (const char* env = std::getenv("AIOCO_BENCH_POLL_MAX_NS")) {
    opts.aio.poll_max_ns = std::atoll(env);
  }
  for (int i = 0; i < n; ++i) {
    auto t = IoThread::Create(opts);
    if (!t.ok()) {
      std::fprintf(stderr, "IoThread::Create: %s\n", t.status().ToString().c_str());
      std::abort();
    }
    threads.push_back(std::move(*t));
  }
  return threads;
}

// Operations per worker and iteration. With several coroutines per thread
// most acquisitions are FIFO hand-offs, about a quarter of them across
// threads, so a quarter of the operations keeps an iteration near a second.
constexpr int OpsPerWorker(int per_thread) {
  return per_thread > 1 ? kOpsPerWorker / 4 : kOpsPerWorker;
}

// Runs `body` in `per_thread` coroutines on each of state.range(0)
// IoThreads per benchmark iteration and waits for all of them; each does
// OpsPerWorker(per_thread) lock acquisitions.
void RunOnCoroutines(benchmark::State& state, int per_thread,
                     const std::function<void()>& body) {
  const int threads = static_cast<int>(state.range(0));
  auto io = MakeIoThreads(threads);
  const int workers = threads * per_thread;
  for (auto _ : state) {
    Latch done(workers);
    for (int c = 0; c < per_thread; ++c) {
      for (int t = 0; t < threads; ++t) {
        io[t]->context()->CoSchedule(Coroutine::Create([&body, &done] {
          body();
          done.count_down();
        }));
      }
    }
    done.wait();
  }
  state.SetItemsProcessed(state.iterations() * workers * OpsPerWorker(per_thread));
}

void CheckCount(benchmark::State& state, int64_t counter, int workers, int ops) {
  if (counter != static_cast<int64_t>(state.iterations()) * workers * ops) {
    state.SkipWithError("lost mutual exclusion: counter mismatch");
  }
}

// --- MCS queue lock with futex waits ------------------------------------------

// Queue node; lives on the locker's stack for the duration of the hold.
struct alignas(64) McsNode {
  std::atomic<McsNode*> next{nullptr};
  std::atomic<int> locked{0};  // 1 while waiting; futex word
};

class McsLock {
 public:
  void Lock(McsNode* node) {
    // Relaxed: published by the acq_rel exchange below.
    node->next.store(nullptr, std::memory_order_relaxed);
    node->locked.store(1, std::memory_order_relaxed);
    // Acq_rel: acquire pairs with the release CAS in Unlock(); release
    // publishes the node's fields to the predecessor.
    McsNode* prev = tail_.exchange(node, std::memory_order_acq_rel);
    if (prev == nullptr) return;
    // Release: pairs with the acquire load of next in Unlock().
    prev->next.store(node, std::memory_order_release);
    // Acquire: pairs with the release store of locked in Unlock().
    for (int spin = 0; node->locked.load(std::memory_order_acquire) != 0; ++spin) {
      if (spin < 100) continue;
      syscall(SYS_futex, &node->locked, FUTEX_WAIT_PRIVATE, 1, nullptr, nullptr, 0);
    }
  }

  void Unlock(McsNode* node) {
    // Acquire: pairs with the release store of next in Lock().
    McsNode* next = node->next.load(std::memory_order_acquire);
    if (next == nullptr) {
      McsNode* expected = node;
      // Release: pairs with the acquire exchange in Lock().
      if (tail_.compare_exchange_strong(expected, nullptr, std::memory_order_release,
                                        std::memory_order_relaxed)) {
        return;
      }
      // A locker swapped itself in but has not linked yet.
      while ((next = node->next.load(std::memory_order_acquire)) == nullptr) {
      }
    }
    // Release: pairs with the acquire load of locked in Lock().
    next->locked.store(0, std::memory_order_release);
    syscall(SYS_futex, &next->locked, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }

 private:
  std::atomic<McsNode*> tail_{nullptr};
};

// --- contended ------------------------------------------------------------

// kPerThread coroutines on each IoThread take `Mutex` (CoMutex, or a
// std::mutex from the same coroutines) through its lock()/unlock().
template <typename Mutex, int kPerThread>
void BM_ContendedInCoroutines(benchmark::State& state) {
  Mutex mu;
  int64_t counter = 0;
  const int ops = OpsPerWorker(kPerThread);
  RunOnCoroutines(state, kPerThread, [&] {
    for (int i = 0; i < ops; ++i) {
      mu.lock();
      ++counter;
      mu.unlock();
    }
  });
  CheckCount(state, counter, static_cast<int>(state.range(0)) * kPerThread, ops);
}

void BM_ContendedMcsInCoroutines(benchmark::State& state) {
  McsLock mu;
  int64_t counter = 0;
  RunOnCoroutines(state, 1, [&] {
    McsNode node;
    for (int i = 0; i < kOpsPerWorker; ++i) {
      mu.Lock(&node);
      ++counter;
      mu.Unlock(&node);
    }
  });
  CheckCount(state, counter, static_cast<int>(state.range(0)), kOpsPerWorker);
}

// Plain threads on a pthread mutex. The threads persist across iterations;
// each iteration releases them through a generation counter.
void BM_ContendedPthread(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  int64_t counter = 0;
  std::mutex start_mu;
  std::condition_variable start_cv;
  int generation = 0;
  bool stop = false;
  std::unique_ptr<Latch> done;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      int seen = 0;
      for (;;) {
        Latch* latch;
        {
          std::unique_lock<std::mutex> lock(start_mu);
          start_cv.wait(lock, [&] { return stop || generation != seen; });
          if (stop) return;
          seen = generation;
          latch = done.get();
        }
        for (int i = 0; i < kOpsPerWorker; ++i) {
          pthread_mutex_lock(&mu);
          ++counter;
          pthread_mutex_unlock(&mu);
        }
        latch->count_down();
      }
    });
  }
  for (auto _ : state) {
    {
      std::lock_guard<std::mutex> lock(start_mu);
      done = std::make_unique<Latch>(threads);
      ++generation;
    }
    start_cv.notify_all();
    done->wait();
  }
  {
    std::lock_guard<std::mutex> lock(start_mu);
    stop = true;
  }
  start_cv.notify_all();
  for (auto& w : workers) w.join();
  state.SetItemsProcessed(state.iterations() * threads * kOpsPerWorker);
  CheckCount(state, counter, threads, kOpsPerWorker);
}

// --- uncontended ------------------------------------------------------------

template <typename Mutex>
void BM_Uncontended(benchmark::State& state) {
  Mutex mu;
  int64_t counter = 0;
  Coroutine::Create([&] {
    for (auto _ : state) {
      mu.lock();
      benchmark::DoNotOptimize(++counter);
      mu.unlock();
    }
  })->Enter();
  state.SetItemsProcessed(state.iterations());
}

// --- read-mostly rwlock ---------------------------------------------------------

constexpr int kWriteEvery = 16;

// The same loop for both locks, through the std-style shared-lock names
// (CoRwlock: lock/unlock = WrLock/Unlock, lock_shared/unlock_shared = RdLock/Unlock).
template <typename SharedLock>
void BM_ReadMostly(benchmark::State& state) {
  SharedLock lock;
  int64_t writes = 0;
  std::atomic<int64_t> reads{0};
  RunOnCoroutines(state, 1, [&] {
    int64_t local_reads = 0;
    for (int i = 0; i < kOpsPerWorker; ++i) {
      if (i % kWriteEvery == 0) {
        lock.lock();
        ++writes;
        lock.unlock();
      } else {
        lock.lock_shared();
        benchmark::DoNotOptimize(writes);
        ++local_reads;
        lock.unlock_shared();
      }
    }
    reads.fetch_add(local_reads, std::memory_order_relaxed);
  });
  benchmark::DoNotOptimize(reads.load());
}

// --- registration -----------------------------------------------------------

void ThreadCounts(benchmark::internal::Benchmark* b) {
  b->ArgNames({"threads"});
  const int cpus = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  for (int n : {2, 4, 8, 16}) {
    if (n == 2 || n <= cpus) b->Arg(n);
  }
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK_TEMPLATE(BM_ContendedInCoroutines, aioco::CoMutex, 1)
    ->Name("locks/contended/aioco")
    ->Apply(ThreadCounts);
BENCHMARK_TEMPLATE(BM_ContendedInCoroutines, std::mutex, 1)
    ->Name("locks/contended/std_mutex")
    ->Apply(ThreadCounts);
BENCHMARK(BM_ContendedMcsInCoroutines)->Name("locks/contended/mcs")->Apply(ThreadCounts);
BENCHMARK(BM_ContendedPthread)->Name("locks/contended/pthread")->Apply(ThreadCounts);

// 4 coroutines per IoThread: waiters of one thread queue between waiters of
// the other, so some FIFO hand-offs cross threads.
BENCHMARK_TEMPLATE(BM_ContendedInCoroutines, aioco::CoMutex, 4)
    ->Name("locks/contended_4co/aioco")
    ->Apply(ThreadCounts);
BENCHMARK_TEMPLATE(BM_ContendedInCoroutines, std::mutex, 4)
    ->Name("locks/contended_4co/std_mutex")
    ->Apply(ThreadCounts);

BENCHMARK_TEMPLATE(BM_Uncontended, aioco::CoMutex)->Name("locks/uncontended/aioco");
BENCHMARK_TEMPLATE(BM_Uncontended, std::mutex)->Name("locks/uncontended/std_mutex");

BENCHMARK_TEMPLATE(BM_ReadMostly, aioco::CoRwlock)
    ->Name("locks/rwlock_read_mostly/aioco")
    ->Apply(ThreadCounts);
BENCHMARK_TEMPLATE(BM_ReadMostly, std::shared_mutex)
    ->Name("locks/rwlock_read_mostly/std_shared_mutex")
    ->Apply(ThreadCounts);

}  // namespace

BENCHMARK_MAIN();
