// Context lifetime against cross-thread scheduling. A thread outside the
// context publishes work (CoWake(), CoSchedule(), ScheduleOneshot(),
// BottomHalf::Schedule()) and then still has to wake the loop; the home
// thread may run that work, and the owner destroy the context, before the
// scheduling thread has left the call. Each test repeats "create a context,
// schedule from a foreign thread, destroy the context as soon as the work
// has run" many times; a scheduler that touches the context after publishing
// without the context waiting for it is a heap-use-after-free under ASan and
// a race on the freed memory under TSan (which sees it whatever the timing,
// since no happens-before edge orders the late access before the free).
//
// The home loops spin on Poll(false) (or busy-poll, for IoThread) so they
// pick the work up while the scheduler is still inside the call.

#include <atomic>
#include <memory>
#include <thread>

#include "aio/aio_context.h"
#include "aio/bottom_half.h"
#include "aio/io_thread.h"
#include "coroutine/coroutine.h"
#include "gtest/gtest.h"
#include "timers/clock.h"
#include "timers/timer.h"

namespace aioco {
namespace {

// Sanitizer builds run fewer iterations, each slower; TSan needs only a few
// to see the missing happens-before edge.
#if defined(AIOCO_TEST_SANITIZER)
constexpr int kIterations = 100;
#else
constexpr int kIterations = 300;
#endif

// epoll: io_uring set-up and tear-down would dominate the iteration time;
// the window under test does not depend on the backend.
AioContextOptions Options() {
  AioContextOptions opts;
  opts.fd_monitor = FdMonitorKind::kEpoll;
  return opts;
}

std::unique_ptr<AioContext> NewContext() {
  auto ctx = AioContext::Create(Options());
  EXPECT_TRUE(ctx.ok()) << ctx.status();
  return std::move(*ctx);
}

// Runs `ctx`'s loop on this thread without blocking until `done`, then
// destroys the context at once.
void SpinThenDestroy(std::unique_ptr<AioContext> ctx, const std::atomic<bool>& done) {
  AioContext::SetCurrent(ctx.get());
  while (!done.load(std::memory_order_acquire)) ctx->Poll(false);
  AioContext::SetCurrent(nullptr);
  ctx.reset();
}

TEST(AioLifetimeTest, ForeignCoWakeThenHomeDestroysContext) {
  for (int i = 0; i < kIterations; ++i) {
    std::unique_ptr<AioContext> ctx = NewContext();
    std::atomic<bool> done{false};
    bool resumed = false;
    Coroutine* co = Coroutine::Create([&] {
      Coroutine::Yield();
      resumed = true;
      done.store(true, std::memory_order_release);
    });
    AioContext::SetCurrent(ctx.get());
    ctx->CoEnter(co);  // runs until the Yield(): co now belongs to ctx
    std::thread waker([co] { CoWake(co); });
    SpinThenDestroy(std::move(ctx), done);
    waker.join();
    ASSERT_TRUE(resumed) << "iteration " << i;
  }
}

TEST(AioLifetimeTest, ForeignCoScheduleThenHomeDestroysContext) {
  for (int i = 0; i < kIterations; ++i) {
    std::unique_ptr<AioContext> ctx = NewContext();
    std::atomic<bool> done{false};
    AioContext* raw = ctx.get();
    std::thread scheduler([raw, &done] {
      raw->CoSchedule(Coroutine::Create([&done] { done.store(true, std::memory_order_release); }));
    });
    SpinThenDestroy(std::move(ctx), done);
    scheduler.join();
  }
}

TEST(AioLifetimeTest, ForeignOneshotThenHomeDestroysContext) {
  for (int i = 0; i < kIterations; ++i) {
    std::unique_ptr<AioContext> ctx = NewContext();
    std::atomic<bool> done{false};
    AioContext* raw = ctx.get();
    std::thread scheduler([raw, &done] {
      raw->ScheduleOneshot([&done] { done.store(true, std::memory_order_release); });
    });
    SpinThenDestroy(std::move(ctx), done);
    scheduler.join();
  }
}

// A foreign thread arms an already-due timer; the home thread runs it and
// destroys the context while the arming thread may still be waking the loop.
// The Timer object itself outlives the foreign call (the caller's duty).
TEST(AioLifetimeTest, ForeignTimerArmThenHomeDestroysContext) {
  for (int i = 0; i < kIterations; ++i) {
    std::unique_ptr<AioContext> ctx = NewContext();
    std::atomic<bool> done{false};
    std::unique_ptr<Timer> timer = ctx->NewTimer(
        ClockType::kMonotonic, [&done] { done.store(true, std::memory_order_release); });
    Timer* raw = timer.get();
    std::thread armer([raw] { raw->ModNs(ClockNs(ClockType::kMonotonic)); });
    SpinThenDestroy(std::move(ctx), done);
    armer.join();
    EXPECT_FALSE(timer->pending());
  }
}

// The owner deletes the BH as soon as its callback ran, while the foreign
// Schedule() may still be waking the loop, then destroys the context.
TEST(AioLifetimeTest, ForeignBhScheduleThenHomeDeletesBhAndContext) {
  for (int i = 0; i < kIterations; ++i) {
    std::unique_ptr<AioContext> ctx = NewContext();
    std::atomic<bool> done{false};
    BottomHalf* bh =
        ctx->NewBh([&done] { done.store(true, std::memory_order_release); }, "lifetime");
    std::thread scheduler([bh] { bh->Schedule(); });
    AioContext::SetCurrent(ctx.get());
    while (!done.load(std::memory_order_acquire)) ctx->Poll(false);
    bh->Delete();
    ctx->Poll(false);  // frees the BH
    AioContext::SetCurrent(nullptr);
    ctx.reset();
    scheduler.join();
  }
}

// QEMU's pattern: an IoThread runs a coroutine that a worker wakes; the
// coroutine signals its owner when it finishes and the owner tears the
// IoThread down immediately (stop BH, join, context destroyed). A BH that
// reschedules itself keeps the loop from blocking, so the waker's Notify()
// finds it awake and makes no system call (a blocked loop would only run
// the coroutine after the waker's eventfd write, its last access).
TEST(AioLifetimeTest, ForeignCoWakeThenOwnerDestroysIoThread) {
  for (int i = 0; i < kIterations / 4; ++i) {
    IoThreadOptions opts;
    opts.aio = Options();
    auto t = IoThread::Create(opts);
    ASSERT_TRUE(t.ok()) << t.status();
    AioContext* ctx = (*t)->context();
    std::atomic<Coroutine*> yielded{nullptr};
    std::atomic<bool> done{false};
    BottomHalf* spinner = nullptr;  // home thread only
    ctx->ScheduleOneshot([&] {
      spinner = ctx->NewBh([&spinner] { spinner->Schedule(); }, "spinner");
      spinner->Schedule();
      ctx->CoEnter(Coroutine::Create([&] {
        yielded.store(Coroutine::Self(), std::memory_order_release);
        Coroutine::Yield();
        spinner->Delete();
        done.store(true, std::memory_order_release);
      }));
    });
    Coroutine* co;
    while ((co = yielded.load(std::memory_order_acquire)) == nullptr) std::this_thread::yield();
    std::thread waker([co] { CoWake(co); });
    while (!done.load(std::memory_order_acquire)) {
    }
    t->reset();
    waker.join();
  }
}

}  // namespace
}  // namespace aioco
