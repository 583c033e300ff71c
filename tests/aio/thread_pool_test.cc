// ThreadPool and CoRunInThreadPool: a port of QEMU's
// tests/unit/test-thread-pool.c (/thread-pool/submit-no-complete,
// submit-aio, submit-co, submit-many, cancel, cancel-async), with the
// 2-second sleeps of long jobs replaced by gates the test opens, plus:
// coroutines in IoThreads resuming in their own context, result types,
// worker bounds and idle reaping, SetLimits, destruction draining the queue,
// and the coroutine-only abort.

#include <errno.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "aio/aio_context.h"
#include "aio/aio_wait.h"
#include "aio/io_thread.h"
#include "aio/thread_pool.h"
#include "coroutine/coroutine.h"
#include "gtest/gtest.h"
#include "tests/aio/aio_test_util.h"

namespace aioco {
namespace {

using testing_internal::Scaled;

// Polls `cond` (bounded: a hang becomes a failure after ~20 s, not a
// timing assertion).
template <typename Cond>
bool Eventually(Cond cond) {
  for (int i = 0; i < 20000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

// A gate long jobs wait at until the test opens it.
class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Pass() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

struct WorkerTestData {
  ThreadPoolRequest* req = nullptr;
  std::atomic<int> n{0};
  int ret = -EINPROGRESS;
};

// QEMU's worker_cb: 0 on the first run.
int WorkerCb(WorkerTestData* data) { return data->n.fetch_add(1); }

class ThreadPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ctx = AioContext::Create();
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    ctx_ = std::move(*ctx);
    AioContext::SetCurrent(ctx_.get());
    auto pool = ThreadPool::Create();
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = std::move(*pool);
  }
  void TearDown() override {
    pool_.reset();
    AioContext::SetCurrent(nullptr);
    ctx_.reset();
  }

  // done callback: records the result, clears the handle, counts down.
  auto DoneCb(WorkerTestData* data) {
    return [this, data](absl::StatusOr<int> r) {
      EXPECT_TRUE(data->ret == -EINPROGRESS || data->ret == -ECANCELED) << data->ret;
      data->ret = r.ok() ? *r : (absl::IsCancelled(r.status()) ? -ECANCELED : -EIO);
      data->req = nullptr;
      --active_;
    };
  }

  std::unique_ptr<AioContext> ctx_;
  std::unique_ptr<ThreadPool> pool_;
  int active_ = 0;
};

TEST_F(ThreadPoolTest, SubmitNoComplete) {
  WorkerTestData data;
  pool_->Submit([&data] { WorkerCb(&data); });
  EXPECT_TRUE(Eventually([&] { return data.n.load() == 1; }));
}

TEST_F(ThreadPoolTest, SubmitAio) {
  WorkerTestData data;
  data.req = pool_->SubmitAio(
      ctx_.get(), [&data] { return WorkerCb(&data); }, DoneCb(&data));
  active_ = 1;
  // Callbacks run only in the context's loop, never from SubmitAio.
  EXPECT_EQ(data.ret, -EINPROGRESS);
  while (active_ > 0) ctx_->Poll(true);
  EXPECT_EQ(active_, 0);
  EXPECT_EQ(data.n.load(), 1);
  EXPECT_EQ(data.ret, 0);
  EXPECT_EQ(data.req, nullptr);
}

TEST_F(ThreadPoolTest, SubmitAioVoid) {
  std::atomic<int> ran{0};
  absl::Status status = absl::UnknownError("not called");
  pool_->SubmitAio(
      ctx_.get(), [&ran] { ran.fetch_add(1); }, [&status](absl::Status s) { status = s; });
  while (absl::IsUnknown(status)) ctx_->Poll(true);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(ran.load(), 1);
}

TEST_F(ThreadPoolTest, SubmitCo) {
  WorkerTestData data;
  ThreadPool* pool = pool_.get();
  Coroutine* co = Coroutine::Create([&] {
    active_ = 1;
    data.n = 0;
    data.ret = -EINPROGRESS;
    int r = CoRunInThreadPool(pool, [&data] { return WorkerCb(&data); });
    // The worker ran it once, and we are back in our own context.
    EXPECT_EQ(data.n.load(), 1);
    EXPECT_EQ(AioContext::Current(), ctx_.get());
    data.ret = r;
    --active_;
  });
  co->Enter();
  // The coroutine yielded while the worker runs.
  EXPECT_EQ(active_, 1);
  EXPECT_EQ(data.ret, -EINPROGRESS);
  while (data.ret == -EINPROGRESS) ctx_->Poll(true);
  EXPECT_EQ(active_, 0);
  EXPECT_EQ(data.ret, 0);
}

TEST_F(ThreadPoolTest, SubmitMany) {
  constexpr int kRequests = 100;  // more than the workers that will start
  std::vector<WorkerTestData> data(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    data[i].req = pool_->SubmitAio(
        ctx_.get(), [d = &data[i]] { return WorkerCb(d); }, DoneCb(&data[i]));
  }
  active_ = kRequests;
  while (active_ > 0) ctx_->Poll(true);
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(data[i].n.load(), 1) << i;
    EXPECT_EQ(data[i].ret, 0) << i;
  }

  // And from coroutines.
  ThreadPool* pool = pool_.get();
  for (int i = 0; i < kRequests; ++i) {
    WorkerTestData* d = &data[i];
    d->n = 0;
    d->ret = -EINPROGRESS;
    Coroutine::Create([this, pool, d] {
      d->ret = CoRunInThreadPool(pool, [d] { return WorkerCb(d); });
      --active_;
    })->Enter();
  }
  active_ += kRequests;
  while (active_ > 0) ctx_->Poll(true);
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(data[i].n.load(), 1) << i;
    EXPECT_EQ(data[i].ret, 0) << i;
  }
  EXPECT_LE(pool_->stats().threads, ThreadPoolOptions().max_threads);
}

// QEMU's long_cb: runs only if nobody claimed `n` first; then n == 3.
struct LongJob {
  Gate* gate;
  std::atomic<int>* started;
  WorkerTestData* data;
  int operator()() const {
    int expected = 0;
    if (data->n.compare_exchange_strong(expected, 1)) {
      started->fetch_add(1);
      gate->Pass();
      data->n.fetch_or(2);
    }
    return 0;
  }
};

void TestCancel(AioContext* ctx, bool sync) {
  constexpr int kWorkers = 4;
  constexpr int kJobs = 20;
  auto pool_or = ThreadPool::Create({.min_threads = 0, .max_threads = kWorkers});
  ASSERT_TRUE(pool_or.ok());
  ThreadPool* pool = pool_or->get();
  Gate gate;
  std::atomic<int> started{0};
  std::vector<WorkerTestData> data(kJobs);
  int active = 0;
  for (int i = 0; i < kJobs; ++i) {
    WorkerTestData* d = &data[i];
    d->req = pool->SubmitAio(ctx, LongJob{&gate, &started, d}, [d, &active](absl::StatusOr<int> r) {
      EXPECT_TRUE(d->ret == -EINPROGRESS || d->ret == -ECANCELED) << d->ret;
      d->ret = r.ok() ? *r : (absl::IsCancelled(r.status()) ? -ECANCELED : -EIO);
      d->req = nullptr;
      --active;
    });
  }
  active = kJobs;
  ctx->Poll(false);
  EXPECT_EQ(active, kJobs);  // nothing completes while the gate is shut

  // Every worker is busy at the gate, so the rest stay queued.
  ASSERT_TRUE(Eventually([&] { return started.load() == kWorkers; }));
  int num_canceled = 0;
  for (int i = 0; i < kJobs; ++i) {
    int expected = 0;
    if (data[i].n.compare_exchange_strong(expected, 4)) {
      data[i].ret = -ECANCELED;
      EXPECT_TRUE(pool->Cancel(data[i].req)) << i;
      if (sync) {
        // bdrv_aio_cancel: wait until the request's callback has run.
        while (data[i].req != nullptr) ctx->Poll(true);
      }
      ++num_canceled;
    }
  }
  EXPECT_EQ(num_canceled, kJobs - kWorkers);
  // A running request cannot be cancelled.
  for (int i = 0; i < kJobs; ++i) {
    if (data[i].n.load() == 1) {
      EXPECT_FALSE(pool->Cancel(data[i].req)) << i;
    }
  }

  gate.Open();
  while (active > 0) ctx->Poll(true);
  int completed = 0;
  for (int i = 0; i < kJobs; ++i) {
    EXPECT_EQ(data[i].req, nullptr) << i;
    if (data[i].n.load() == 3) {
      EXPECT_EQ(data[i].ret, 0) << i;
      ++completed;
    } else if (data[i].n.load() == 4) {
      EXPECT_EQ(data[i].ret, -ECANCELED) << i;
    } else {
      ADD_FAILURE() << i << ": n=" << data[i].n.load()
                    << (data[i].n.load() == 0 ? " (not canceled but never started)"
                                              : " (aborted while running)");
    }
  }
  EXPECT_EQ(completed, kWorkers);
}

TEST_F(ThreadPoolTest, Cancel) { TestCancel(ctx_.get(), /*sync=*/true); }
TEST_F(ThreadPoolTest, CancelAsync) { TestCancel(ctx_.get(), /*sync=*/false); }

TEST_F(ThreadPoolTest, ResultTypes) {
  ThreadPool* pool = pool_.get();
  bool done = false;
  static int global = 7;
  Coroutine::Create([&] {
    std::unique_ptr<int> p = CoRunInThreadPool(pool, [] { return std::make_unique<int>(42); });
    EXPECT_EQ(*p, 42);
    int& ref = CoRunInThreadPool(pool, []() -> int& { return global; });
    EXPECT_EQ(&ref, &global);
    int side = 0;
    CoRunInThreadPool(pool, [&side] { side = 5; });
    EXPECT_EQ(side, 5);
    std::string s = CoRunInThreadPool(pool, [] { return std::string(100, 'x'); });
    EXPECT_EQ(s.size(), 100u);
    // Callable taken by reference: no copy, and mutable state stays.
    int calls = 0;
    auto counter = [&calls]() mutable { return ++calls; };
    EXPECT_EQ(CoRunInThreadPool(pool, counter), 1);
    EXPECT_EQ(CoRunInThreadPool(pool, counter), 2);
    done = true;
  })->Enter();
  while (!done) ctx_->Poll(true);
}

TEST_F(ThreadPoolTest, DefaultPool) {
  bool done = false;
  Coroutine::Create([&] {
    EXPECT_EQ(CoRunInThreadPool([] { return 3; }), 3);
    done = true;
  })->Enter();
  while (!done) ctx_->Poll(true);
  EXPECT_GE(ThreadPool::Default()->stats().threads, 1);
  // The worker may still be inside CoWake() on ctx_; ctx_ outlives that.
  EXPECT_TRUE(Eventually([] { return ThreadPool::Default()->stats().active == 0; }));
}

// Coroutines in IoThreads: each resumes in its own context and thread, and
// the loops keep running while the work blocks.
TEST(ThreadPoolIoThreadTest, ResumesInOwnContext) {
  constexpr int kThreads = 2;
  const int kCoroutines = Scaled(40);
  const int kCalls = Scaled(20);
  std::vector<std::unique_ptr<IoThread>> threads;
  for (int i = 0; i < kThreads; ++i) {
    auto t = IoThread::Create({.name = "pool-test-" + std::to_string(i)});
    ASSERT_TRUE(t.ok()) << t.status();
    threads.push_back(std::move(*t));
  }
  // Declared after the IoThreads, so destroyed first: its destructor waits
  // until the workers have returned from CoWake(), which touches the woken
  // coroutine's context after the coroutine may already have finished.
  auto pool_or = ThreadPool::Create();
  ASSERT_TRUE(pool_or.ok());
  ThreadPool* pool = pool_or->get();
  std::atomic<int> finished{0};
  std::atomic<int> wrong_context{0};
  std::atomic<long> sum{0};
  for (int c = 0; c < kCoroutines; ++c) {
    IoThread* home = threads[c % kThreads].get();
    Coroutine* co = Coroutine::Create([&, pool, home, c] {
      for (int k = 0; k < kCalls; ++k) {
        std::thread::id worker;
        int v = CoRunInThreadPool(pool, [&worker, c, k] {
          worker = std::this_thread::get_id();
          return c * 1000 + k;
        });
        if (AioContext::Current() != home->context() ||
            std::this_thread::get_id() != home->thread_id() ||
            worker == home->thread_id()) {
          wrong_context.fetch_add(1);
        }
        sum.fetch_add(v);
      }
      finished.fetch_add(1);
      AioWaitKick();
    });
    home->context()->CoSchedule(co);
  }
  AioWaitWhile(nullptr, [&] { return finished.load() < kCoroutines; });
  EXPECT_EQ(wrong_context.load(), 0);
  long want = 0;
  for (int c = 0; c < kCoroutines; ++c) {
    for (int k = 0; k < kCalls; ++k) want += c * 1000 + k;
  }
  EXPECT_EQ(sum.load(), want);
}

TEST(ThreadPoolLimitsTest, BoundedAndReaped) {
  constexpr int kMax = 3;
  auto pool_or = ThreadPool::Create(
      {.min_threads = 0, .max_threads = kMax, .idle_timeout_ns = 20 * 1000 * 1000});
  ASSERT_TRUE(pool_or.ok());
  ThreadPool* pool = pool_or->get();
  Gate gate;
  std::atomic<int> running{0}, max_running{0}, done{0};
  constexpr int kJobs = 10;
  for (int i = 0; i < kJobs; ++i) {
    pool->Submit([&] {
      int now = running.fetch_add(1) + 1;
      int prev = max_running.load();
      while (now > prev && !max_running.compare_exchange_weak(prev, now)) {
      }
      gate.Pass();
      running.fetch_sub(1);
      done.fetch_add(1);
    });
  }
  ASSERT_TRUE(Eventually([&] { return running.load() == kMax; }));
  ThreadPoolStats s = pool->stats();
  EXPECT_EQ(s.threads, kMax);
  EXPECT_EQ(s.active, kMax);
  EXPECT_EQ(s.queued, static_cast<size_t>(kJobs - kMax));
  gate.Open();
  ASSERT_TRUE(Eventually([&] { return done.load() == kJobs; }));
  EXPECT_EQ(max_running.load(), kMax);
  // Idle workers exit (min_threads = 0).
  EXPECT_TRUE(Eventually([&] { return pool->stats().threads == 0; }));
}

TEST(ThreadPoolLimitsTest, MinThreadsKept) {
  auto pool_or = ThreadPool::Create(
      {.min_threads = 2, .max_threads = 4, .idle_timeout_ns = 5 * 1000 * 1000});
  ASSERT_TRUE(pool_or.ok());
  ThreadPool* pool = pool_or->get();
  EXPECT_TRUE(Eventually([&] { return pool->stats().idle_threads == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // several timeouts
  EXPECT_EQ(pool->stats().threads, 2);

  // Raising the minimum starts workers; lowering the maximum stops them.
  ASSERT_TRUE(pool->SetLimits(4, 8).ok());
  EXPECT_TRUE(Eventually([&] { return pool->stats().idle_threads == 4; }));
  ASSERT_TRUE(pool->SetLimits(0, 1).ok());
  EXPECT_TRUE(Eventually([&] { return pool->stats().threads <= 1; }));
  EXPECT_TRUE(Eventually([&] { return pool->stats().threads == 0; }));
}

TEST(ThreadPoolLimitsTest, InvalidLimits) {
  EXPECT_TRUE(absl::IsInvalidArgument(ThreadPool::Create({.max_threads = 0}).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(ThreadPool::Create({.min_threads = 3, .max_threads = 2}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ThreadPool::Create({.min_threads = -1}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ThreadPool::Create({.idle_timeout_ns = 0}).status()));
  auto pool = ThreadPool::Create();
  ASSERT_TRUE(pool.ok());
  EXPECT_TRUE(absl::IsInvalidArgument((*pool)->SetLimits(2, 1)));
}

TEST(ThreadPoolLimitsTest, DestructorDrainsQueue) {
  std::atomic<int> ran{0};
  constexpr int kJobs = 50;
  {
    auto pool = ThreadPool::Create({.max_threads = 1});
    ASSERT_TRUE(pool.ok());
    for (int i = 0; i < kJobs; ++i) {
      (*pool)->Submit([&ran] {
        std::this_thread::yield();
        ran.fetch_add(1);
      });
    }
  }
  EXPECT_EQ(ran.load(), kJobs);
}

TEST(ThreadPoolDeathTest, OutsideCoroutine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(CoRunInThreadPool([] { return 1; }), "CoRunInThreadPool: called outside a coroutine");
}

TEST(ThreadPoolDeathTest, CoroutineWithoutContext) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        AioContext::SetCurrent(nullptr);
        Coroutine::Create([] { CoRunInThreadPool([] { return 1; }); })->Enter();
      },
      "CoRunInThreadPool: the coroutine does not run in an AioContext");
}

}  // namespace
}  // namespace aioco
