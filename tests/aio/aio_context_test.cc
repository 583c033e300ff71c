// AioContext::Poll() semantics on every fd monitor: a port of QEMU's
// tests/unit/test-aio.c (the aio_poll cases), plus fd handler, nested poll,
// idle BH, adaptive polling and destruction cases.

#include "aio/aio_context.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <thread>

#include "aio/internal/fd_monitor.h"
#include "aio/io_thread.h"
#include "gtest/gtest.h"
#include "tests/aio/aio_test_util.h"
#include "timers/clock.h"
#include "timers/timer.h"

namespace aioco {
namespace {

using testing_internal::EventReadyCb;
using testing_internal::EventTestData;
using testing_internal::TestNotifier;

class AioContextTest : public testing_internal::AioContextOnMonitorTest {
 protected:
  void SetUp() override {
    AioContextOnMonitorTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Drain();
  }
  void Drain() {
    while (ctx_->Poll(false)) {
    }
  }
};

// --- Bottom halves (test-aio.c /aio/bh/*) ---------------------------------

struct BhTestData {
  BottomHalf* bh = nullptr;
  int n = 0;
  int max = 0;
};

void BhTestCb(BhTestData* d) {
  if (++d->n < d->max) d->bh->Schedule();
}

void BhDeleteCb(BhTestData* d) {
  if (++d->n < d->max) {
    d->bh->Schedule();
  } else {
    d->bh->Delete();
    d->bh = nullptr;
  }
}

TEST_P(AioContextTest, BhSchedule) {
  BhTestData d;
  d.bh = ctx_->NewBh([&d] { BhTestCb(&d); }, "test");
  d.bh->Schedule();
  EXPECT_EQ(d.n, 0);
  EXPECT_TRUE(ctx_->Poll(true));
  EXPECT_EQ(d.n, 1);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 1);
  d.bh->Delete();
}

TEST_P(AioContextTest, BhSchedule10) {
  BhTestData d;
  d.max = 10;
  d.bh = ctx_->NewBh([&d] { BhTestCb(&d); }, "test");
  d.bh->Schedule();
  EXPECT_EQ(d.n, 0);
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 1);  // the self-reschedule waits for the next Poll()
  EXPECT_TRUE(ctx_->Poll(true));
  EXPECT_EQ(d.n, 2);
  while (d.n < 10) ctx_->Poll(true);
  EXPECT_EQ(d.n, 10);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 10);
  d.bh->Delete();
}

TEST_P(AioContextTest, BhCancel) {
  BhTestData d;
  d.bh = ctx_->NewBh([&d] { BhTestCb(&d); }, "test");
  d.bh->Schedule();
  d.bh->Cancel();
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 0);
  d.bh->Delete();
}

TEST_P(AioContextTest, BhDelete) {
  BhTestData d;
  d.bh = ctx_->NewBh([&d] { BhTestCb(&d); }, "test");
  d.bh->Schedule();
  d.bh->Delete();
  // A deleted BH is freed without running and without being progress.
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 0);
}

TEST_P(AioContextTest, BhCallbackDeleteOne) {
  BhTestData d;
  d.max = 1;
  d.bh = ctx_->NewBh([&d] { BhDeleteCb(&d); }, "test");
  d.bh->Schedule();
  while (d.n < 1) ctx_->Poll(true);
  EXPECT_EQ(d.bh, nullptr);
  EXPECT_FALSE(ctx_->Poll(false));
}

TEST_P(AioContextTest, BhCallbackDeleteMany) {
  BhTestData d[4];
  const int max[4] = {1, 3, 2, 4};
  for (int i = 0; i < 4; ++i) {
    d[i].max = max[i];
    BhTestData* p = &d[i];
    d[i].bh = ctx_->NewBh([p] { BhDeleteCb(p); }, "test");
  }
  for (auto& x : d) x.bh->Schedule();
  for (auto& x : d) EXPECT_EQ(x.n, 0);
  EXPECT_TRUE(ctx_->Poll(false));  // one pass runs every scheduled BH
  for (auto& x : d) EXPECT_EQ(x.n, 1);
  EXPECT_EQ(d[0].bh, nullptr);
  while (d[0].n < 1 || d[1].n < 3 || d[2].n < 2 || d[3].n < 4) ctx_->Poll(true);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(d[i].n, max[i]);
    EXPECT_EQ(d[i].bh, nullptr);
  }
  EXPECT_FALSE(ctx_->Poll(false));
}

TEST_P(AioContextTest, BhRunsInScheduleOrder) {
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) ctx_->ScheduleOneshot([&order, i] { order.push_back(i); });
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_FALSE(ctx_->Poll(false));
}

TEST_P(AioContextTest, IdleBhRunsButIsNotProgress) {
  int n = 0;
  BottomHalf* bh = ctx_->NewBh([&n] { ++n; }, "idle");
  bh->ScheduleIdle();
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(n, 1);
  // A blocking poll with only an idle BH pending returns after at most the
  // idle period.
  bh->ScheduleIdle();
  EXPECT_FALSE(ctx_->Poll(true));
  EXPECT_EQ(n, 2);
  bh->Delete();
}

TEST_P(AioContextTest, ScheduleTwiceRunsOnce) {
  int n = 0;
  BottomHalf* bh = ctx_->NewBh([&n] { ++n; }, "test");
  bh->Schedule();
  bh->Schedule();
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(n, 1);
  EXPECT_FALSE(ctx_->Poll(false));
  bh->Delete();
}

TEST_P(AioContextTest, BhDeletedInItsCallbackSurvivesNestedPoll) {
  int n = 0;
  BottomHalf* bh = nullptr;
  bh = ctx_->NewBh(
      [&n, &bh, this] {
        ++n;
        bh->Delete();
        // The nested BH poll reaches the deleted BH while its callback (this
        // lambda) still runs: it must be freed only after we return.
        EXPECT_FALSE(ctx_->Poll(false));
        ++n;
      },
      "self_deleting");
  bh->Schedule();
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(n, 2);
  EXPECT_FALSE(ctx_->Poll(false));
}

TEST_P(AioContextTest, NestedPollDrainsOuterBhs) {
  std::vector<int> order;
  ctx_->ScheduleOneshot([&] {
    order.push_back(1);
    // A nested Poll() runs the outer Poll()'s remaining BHs too.
    EXPECT_TRUE(ctx_->Poll(false));
    order.push_back(4);
  });
  ctx_->ScheduleOneshot([&] { order.push_back(2); });
  ctx_->ScheduleOneshot([&] { order.push_back(3); });
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_FALSE(ctx_->Poll(false));
}

// --- Event notifiers (test-aio.c /aio/event/*) ------------------------------

void DummyRead(void* opaque) {}

TEST_P(AioContextTest, EventAddRemove) {
  EventTestData d;
  ctx_->SetFdHandler(d.e.fd(), EventReadyCb, nullptr, &d);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 0);
  ctx_->SetFdHandler(d.e.fd(), nullptr, nullptr, nullptr);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 0);
}

TEST_P(AioContextTest, EventWait) {
  EventTestData d;
  d.active = 1;
  ctx_->SetFdHandler(d.e.fd(), EventReadyCb, nullptr, &d);
  while (ctx_->Poll(false)) {
  }
  EXPECT_EQ(d.n, 0);
  EXPECT_EQ(d.active, 1);
  d.e.Set();
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 1);
  EXPECT_EQ(d.active, 0);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 1);
  ctx_->SetFdHandler(d.e.fd(), nullptr, nullptr, nullptr);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 1);
}

TEST_P(AioContextTest, EventWaitNoFlushCb) {
  EventTestData d;
  ctx_->SetFdHandler(d.e.fd(), EventReadyCb, nullptr, &d);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 0);
  d.e.Set();
  EXPECT_TRUE(ctx_->Poll(true));  // ready: must not block
  d.n = 0;

  EventTestData dummy;
  dummy.active = 1;
  ctx_->SetFdHandler(dummy.e.fd(), EventReadyCb, nullptr, &dummy);
  d.e.Set();
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 1);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 1);
  d.e.Set();
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 2);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 2);

  dummy.e.Set();
  while (dummy.active) ctx_->Poll(true);
  EXPECT_EQ(d.n, 2);
  EXPECT_EQ(dummy.n, 1);
  EXPECT_EQ(dummy.active, 0);
  ctx_->SetFdHandler(dummy.e.fd(), nullptr, nullptr, nullptr);
  ctx_->SetFdHandler(d.e.fd(), nullptr, nullptr, nullptr);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 2);
}

TEST_P(AioContextTest, EventFlush) {
  EventTestData d;
  d.active = 10;
  d.auto_set = true;
  ctx_->SetFdHandler(d.e.fd(), EventReadyCb, nullptr, &d);
  while (ctx_->Poll(false)) {
  }
  EXPECT_EQ(d.n, 0);
  EXPECT_EQ(d.active, 10);
  d.e.Set();
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(d.n, 1);
  EXPECT_EQ(d.active, 9);
  EXPECT_TRUE(ctx_->Poll(false));
  while (d.active) ctx_->Poll(true);
  EXPECT_EQ(d.n, 10);
  EXPECT_EQ(d.active, 0);
  EXPECT_FALSE(ctx_->Poll(false));
  ctx_->SetFdHandler(d.e.fd(), nullptr, nullptr, nullptr);
  EXPECT_FALSE(ctx_->Poll(false));
}

// --- Fd handlers beyond test-aio.c --------------------------------------------

struct PipeData {
  int fds[2];
  int reads = 0;
  int writes = 0;
  AioContext* ctx = nullptr;
};

TEST_P(AioContextTest, PipeReadAndWriteHandlers) {
  PipeData p;
  ASSERT_EQ(pipe2(p.fds, O_NONBLOCK | O_CLOEXEC), 0);
  p.ctx = ctx_.get();
  // Writable at once; a level-triggered write handler fires every Poll()
  // until removed.
  ctx_->SetFdHandler(
      p.fds[1], nullptr,
      [](void* o) {
        auto* p = static_cast<PipeData*>(o);
        ++p->writes;
        char c = 'x';
        EXPECT_EQ(write(p->fds[1], &c, 1), 1);
        if (p->writes == 3) p->ctx->SetFdHandler(p->fds[1], nullptr, nullptr, nullptr);
      },
      &p);
  ctx_->SetFdHandler(
      p.fds[0],
      [](void* o) {
        auto* p = static_cast<PipeData*>(o);
        char buf[16];
        ssize_t r = read(p->fds[0], buf, sizeof(buf));
        if (r > 0) p->reads += static_cast<int>(r);
      },
      nullptr, &p);
  while (p.writes < 3 || p.reads < 3) ASSERT_TRUE(ctx_->Poll(true));
  EXPECT_EQ(p.writes, 3);
  EXPECT_EQ(p.reads, 3);
  EXPECT_FALSE(ctx_->Poll(false));
  // Switching the handler of an fd from read to write in place.
  ctx_->SetFdHandler(
      p.fds[0], nullptr, [](void* o) { ++static_cast<PipeData*>(o)->writes; }, &p);
  EXPECT_FALSE(ctx_->Poll(false));  // a pipe's read end is never writable
  ctx_->SetFdHandler(p.fds[0], nullptr, nullptr, nullptr);
  close(p.fds[0]);
  close(p.fds[1]);
}

TEST_P(AioContextTest, HangupWakesReadHandler) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  int n = 0;
  ctx_->SetFdHandler(fds[0], [](void* o) { ++*static_cast<int*>(o); }, nullptr, &n);
  EXPECT_FALSE(ctx_->Poll(false));
  close(fds[1]);
  EXPECT_TRUE(ctx_->Poll(true));
  EXPECT_GE(n, 1);
  ctx_->SetFdHandler(fds[0], nullptr, nullptr, nullptr);
  close(fds[0]);
}

struct RemoveOtherData {
  AioContext* ctx;
  TestNotifier a, b;
  int calls = 0;
};

TEST_P(AioContextTest, HandlerRemovedDuringDispatchDoesNotRun) {
  RemoveOtherData d{ctx_.get()};
  auto cb = [](void* o) {
    auto* d = static_cast<RemoveOtherData*>(o);
    // Whichever runs first removes both handlers (and clears both fds).
    if (++d->calls == 1) {
      d->ctx->SetFdHandler(d->a.fd(), nullptr, nullptr, nullptr);
      d->ctx->SetFdHandler(d->b.fd(), nullptr, nullptr, nullptr);
      d->a.TestAndClear();
      d->b.TestAndClear();
    }
  };
  ctx_->SetFdHandler(d.a.fd(), cb, nullptr, &d);
  ctx_->SetFdHandler(d.b.fd(), cb, nullptr, &d);
  d.a.Set();
  d.b.Set();
  EXPECT_TRUE(ctx_->Poll(false));  // both were ready in the same Wait()
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(d.calls, 1);
}

struct NestedFdData {
  AioContext* ctx;
  TestNotifier outer, inner;
  int outer_runs = 0, inner_runs = 0;
};

TEST_P(AioContextTest, NestedPollDoesNotRedispatchHandlers) {
  // Port of test-nested-aio-poll's intent: a nested Poll() from a handler
  // must neither re-enter that handler nor let the outer Poll() dispatch a
  // handler the nested one already ran.
  NestedFdData d{ctx_.get()};
  ctx_->SetFdHandler(
      d.outer.fd(),
      [](void* o) {
        auto* d = static_cast<NestedFdData*>(o);
        ++d->outer_runs;
        EXPECT_EQ(d->outer_runs, 1) << "outer handler re-entered";
        EXPECT_TRUE(d->outer.TestAndClear());
        d->inner.Set();
        EXPECT_TRUE(d->ctx->Poll(true));
        EXPECT_EQ(d->inner_runs, 1);
      },
      nullptr, &d);
  ctx_->SetFdHandler(
      d.inner.fd(),
      [](void* o) {
        auto* d = static_cast<NestedFdData*>(o);
        ++d->inner_runs;
        EXPECT_TRUE(d->inner.TestAndClear());
      },
      nullptr, &d);
  d.outer.Set();
  d.inner.Set();  // both ready in the outer Wait()
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(d.outer_runs, 1);
  EXPECT_EQ(d.inner_runs, 1);
  EXPECT_FALSE(ctx_->Poll(false));
  ctx_->SetFdHandler(d.outer.fd(), nullptr, nullptr, nullptr);
  ctx_->SetFdHandler(d.inner.fd(), nullptr, nullptr, nullptr);
}

TEST_P(AioContextTest, RegularFileIsAlwaysReady) {
  char path[] = "/tmp/aioco_regular_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  int n = 0;
  ctx_->SetFdHandler(fd, [](void* o) { ++*static_cast<int*>(o); }, nullptr, &n);
  EXPECT_TRUE(ctx_->Poll(true));
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(n, 2);
  ctx_->SetFdHandler(fd, nullptr, nullptr, nullptr);
  EXPECT_FALSE(ctx_->Poll(false));
  close(fd);
}

// --- Notify and blocking ------------------------------------------------------

TEST_P(AioContextTest, BlockingPollReturnsOnNotifyWithoutProgress) {
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ctx_->Notify();
  });
  EXPECT_FALSE(ctx_->Poll(true));  // a notify alone is not progress
  t.join();
}

TEST_P(AioContextTest, CrossThreadOneshotWakesBlockingPoll) {
  std::atomic<int> n{0};
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ctx_->ScheduleOneshot([&n] { n.fetch_add(1); });
  });
  while (n.load() == 0) ctx_->Poll(true);
  t.join();
  EXPECT_EQ(n.load(), 1);
}

// --- Timers (test-aio.c /aio/timer/schedule, shorter) -------------------------

TEST_P(AioContextTest, TimerSchedule) {
  constexpr int64_t kNs = 150 * 1000 * 1000;
  TestNotifier e;
  ctx_->SetFdHandler(e.fd(), DummyRead, nullptr, nullptr);
  ctx_->Poll(false);
  int n = 0;
  std::unique_ptr<Timer> timer;
  timer = ctx_->NewTimer(ClockType::kMonotonic, [&] {
    if (++n < 2) timer->ModNs(ClockNs(ClockType::kMonotonic) + kNs);
  });
  timer->ModNs(ClockNs(ClockType::kMonotonic) + kNs);
  EXPECT_EQ(n, 0);
  while (ctx_->Poll(false)) {
  }
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(n, 0);
  std::this_thread::sleep_for(std::chrono::nanoseconds(kNs + kNs / 2));
  EXPECT_EQ(n, 0);  // timers only run inside Poll()
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(n, 1);
  while (ctx_->Poll(false)) {
  }
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(n, 1);
  EXPECT_TRUE(ctx_->Poll(true));  // blocks until the re-armed timer fires
  EXPECT_EQ(n, 2);
  EXPECT_FALSE(ctx_->Poll(false));
  EXPECT_EQ(n, 2);
  ctx_->SetFdHandler(e.fd(), nullptr, nullptr, nullptr);
  timer->Cancel();
}

TEST_P(AioContextTest, TimerArmedFromAnotherThreadWakesBlockingPoll) {
  std::atomic<int> n{0};
  auto timer = ctx_->NewTimer(ClockType::kRealtime, [&n] { n.fetch_add(1); });
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    timer->ModNs(ClockNs(ClockType::kRealtime));
  });
  while (n.load() == 0) ctx_->Poll(true);
  t.join();
  EXPECT_EQ(n.load(), 1);
}

// --- Coroutines (test-aio.c /aio/coroutine/*) ---------------------------------

struct ChainData {
  int i = 0;
  int max = 25000;
  Coroutine* other = nullptr;
  AioContext* ctx = nullptr;
};

void Chain(void* opaque) {
  auto* d = static_cast<ChainData*>(opaque);
  for (d->i = 0; d->i < d->max; d->i++) {
    d->ctx->CoEnter(d->other);
    Coroutine::Yield();
  }
}

TEST_P(AioContextTest, CoroutineQueueChaining) {
  // CoEnter() from inside a coroutine must queue, not nest: 25000 nested
  // entries would exhaust the stack.
  ChainData a, b;
  a.ctx = b.ctx = ctx_.get();
  b.other = Coroutine::Create(Chain, &a);
  a.other = Coroutine::Create(Chain, &b);
  b.other->Enter();
  EXPECT_EQ(a.i, 25000);
  EXPECT_EQ(b.i, 24999);
  a.other->Enter();
  EXPECT_EQ(b.i, 25000);
}

TEST_P(AioContextTest, WorkerThreadCoEnterSchedules) {
  const std::thread::id main_id = std::this_thread::get_id();
  bool ran = false;
  Coroutine* co = Coroutine::Create([&] {
    EXPECT_EQ(std::this_thread::get_id(), main_id);
    ran = true;
  });
  std::thread worker([&] {
    EXPECT_EQ(AioContext::Current(), nullptr);
    ctx_->CoEnter(co);  // not this thread's context: schedules
  });
  worker.join();
  EXPECT_FALSE(ran);
  EXPECT_TRUE(ctx_->Poll(true));
  EXPECT_TRUE(ran);
  EXPECT_FALSE(ctx_->Poll(false));
}

TEST_P(AioContextTest, CoWakeFromCallbackEntersImmediately) {
  int stage = 0;
  Coroutine* co = Coroutine::Create([&] {
    stage = 1;
    Coroutine::Yield();
    stage = 2;
  });
  co->Enter();
  EXPECT_EQ(stage, 1);
  EXPECT_EQ(co->aio_context(), ctx_.get());
  ctx_->ScheduleOneshot([&] {
    CoWake(co);  // same context, outside a coroutine: runs now
    EXPECT_EQ(stage, 2);
  });
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(stage, 2);
}

TEST_P(AioContextTest, CoScheduleRunsInFifoOrder) {
  std::vector<int> order;
  Coroutine* cos[4];
  for (int i = 0; i < 4; ++i) {
    cos[i] = Coroutine::Create([&order, i] { order.push_back(i); });
  }
  for (Coroutine* co : cos) ctx_->CoSchedule(co);
  EXPECT_TRUE(ctx_->Poll(false));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

// --- Adaptive polling -----------------------------------------------------------

TEST_P(AioContextTest, AdaptivePollingDeliversEveryWakeAndStaysBounded) {
  constexpr int64_t kMax = 200 * 1000;
  ctx_->SetPollParams(kMax, 2, 2);
  EXPECT_EQ(ctx_->poll_ns(), 0);
  std::atomic<int> produced{0};
  int consumed = 0;
  const int kWakes = testing_internal::Scaled(2000);
  std::thread producer([&] {
    for (int i = 0; i < kWakes; ++i) {
      ctx_->ScheduleOneshot([&consumed] { ++consumed; });
      produced.fetch_add(1);
      if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  while (consumed < kWakes) {
    ctx_->Poll(true);
    EXPECT_GE(ctx_->poll_ns(), 0);
    EXPECT_LE(ctx_->poll_ns(), kMax);
  }
  producer.join();
  EXPECT_EQ(consumed, kWakes);
  ctx_->SetPollParams(0, 0, 0);
  EXPECT_EQ(ctx_->poll_ns(), 0);
}

// --- Reply polling ---------------------------------------------------------------

// After this loop hands work to another context, a blocking Poll() first
// spins for the answer: a window that halves (to a 1 us floor) when no
// answer came in it and doubles (to the ceiling) when one did. Each step is
// deterministic: nothing but the peer's answer notifies this context, and a
// timer bounds the blocking part (far enough out that the spin is never cut
// short by it, which would not count).
TEST_P(AioContextTest, ReplyPollingWindowFollowsTheAnswers) {
  const int64_t kCeiling = AioContextOptions().reply_poll_ns;
  ASSERT_GT(kCeiling, 0);
  EXPECT_EQ(ctx_->reply_poll_ns(), kCeiling);
  auto peer = IoThread::Create({});
  ASSERT_TRUE(peer.ok()) << peer.status();
  AioContext* const other = (*peer)->context();
  std::unique_ptr<Timer> timer = ctx_->NewTimer(ClockType::kMonotonic, [] {});

  // Unanswered work: the whole window is spent, then the loop blocks.
  int64_t expected = kCeiling;
  for (int i = 0; i < 6; ++i) {
    timer->ModNs(ClockNs(ClockType::kMonotonic) + 20'000'000);
    Drain();  // the arm's own notification
    std::latch ran(1);
    other->ScheduleOneshot([&ran] { ran.count_down(); });
    ran.wait();
    ctx_->Poll(true);  // spins, hears nothing, sleeps until the timer
    expected = std::max<int64_t>(expected / 2, 1000);
    EXPECT_EQ(ctx_->reply_poll_ns(), expected) << "round " << i;
  }

  // Answered work: the answer is there when the spin starts.
  timer->ModNs(ClockNs(ClockType::kMonotonic) + 60'000'000'000);
  Drain();
  AioContext* const self = ctx_.get();
  for (int i = 0; i < 6; ++i) {
    std::latch answered(1);
    bool got = false;
    other->ScheduleOneshot([self, &answered, &got] {
      self->ScheduleOneshot([&got] { got = true; });
      answered.count_down();
    });
    answered.wait();
    EXPECT_TRUE(ctx_->Poll(true));
    EXPECT_TRUE(got);
    expected = std::min(expected * 2, kCeiling);
    EXPECT_EQ(ctx_->reply_poll_ns(), expected) << "round " << i;
  }
  timer->Cancel();
}

// A reply spin that finds a watched fd ready ends at once: the handler runs
// in that iteration, the window stays (a spin cut short says nothing about
// the answer), and the next iteration spins for the answer again (and,
// hearing nothing, halves the window). The poll backend cannot tell without
// a full poll(2) and keeps spinning.
TEST_P(AioContextTest, ReplySpinEndsWhenFdsNeedAttention) {
  if (GetParam() == FdMonitorKind::kPoll) {
    GTEST_SKIP() << "the poll backend has no cheap readiness check";
  }
  const int64_t kCeiling = AioContextOptions().reply_poll_ns;
  auto peer = IoThread::Create({});
  ASSERT_TRUE(peer.ok()) << peer.status();
  std::unique_ptr<Timer> timer = ctx_->NewTimer(ClockType::kMonotonic, [] {});
  EventTestData d;
  ctx_->SetFdHandler(d.e.fd(), EventReadyCb, nullptr, &d);
  timer->ModNs(ClockNs(ClockType::kMonotonic) + 20'000'000);
  Drain();  // arms the handler; consumes the timer arm's notification
  ASSERT_EQ(d.n, 0);

  std::latch ran(1);  // unanswered work handed to the peer
  (*peer)->context()->ScheduleOneshot([&ran] { ran.count_down(); });
  ran.wait();
  d.e.Set();
  EXPECT_TRUE(ctx_->Poll(true));  // the spin sees the fd: served at once
  EXPECT_EQ(d.n, 1);
  EXPECT_EQ(ctx_->reply_poll_ns(), kCeiling);

  ctx_->Poll(true);  // spins again, hears nothing, sleeps until the timer
  EXPECT_EQ(ctx_->reply_poll_ns(), kCeiling / 2);
  EXPECT_EQ(d.n, 1);
  ctx_->SetFdHandler(d.e.fd(), nullptr, nullptr, nullptr);
  timer->Cancel();
}

// Work that stays on this context, or comes from a plain thread, is not
// work handed over: the window is never spent on it.
TEST_P(AioContextTest, ReplyPollingIgnoresLocalAndForeignWork) {
  const int64_t kCeiling = AioContextOptions().reply_poll_ns;
  std::unique_ptr<Timer> timer = ctx_->NewTimer(ClockType::kMonotonic, [] {});
  for (int i = 0; i < 4; ++i) {
    ctx_->ScheduleOneshot([] {});
    Drain();
    std::thread([this] { ctx_->ScheduleOneshot([] {}); }).join();
    Drain();
    timer->ModNs(ClockNs(ClockType::kMonotonic) + 1'000'000);
    Drain();
    ctx_->Poll(true);  // blocks until the timer, no spin
    EXPECT_EQ(ctx_->reply_poll_ns(), kCeiling);
  }
}

TEST_P(AioContextTest, ReplyPollingOff) {
  AioContextOptions opts;
  opts.fd_monitor = GetParam();
  opts.reply_poll_ns = 0;
  auto ctx = AioContext::Create(opts);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  EXPECT_EQ((*ctx)->reply_poll_ns(), 0);
  auto peer = IoThread::Create({});
  ASSERT_TRUE(peer.ok()) << peer.status();
  AioContext::SetCurrent(ctx->get());
  std::unique_ptr<Timer> timer = (*ctx)->NewTimer(ClockType::kMonotonic, [] {});
  timer->ModNs(ClockNs(ClockType::kMonotonic) + 1'000'000);
  std::latch ran(1);
  (*peer)->context()->ScheduleOneshot([&ran] { ran.count_down(); });
  ran.wait();
  while (timer->pending()) (*ctx)->Poll(true);
  EXPECT_EQ((*ctx)->reply_poll_ns(), 0);
  timer.reset();
  AioContext::SetCurrent(ctx_.get());
}

// --- Destruction ------------------------------------------------------------------

TEST_P(AioContextTest, DestroyWithPendingWork) {
  auto token = std::make_shared<int>(7);
  bool ran = false;
  // A one-shot that never got to run: discarded, its captures destroyed.
  ctx_->ScheduleOneshot([token, &ran] { ran = true; });
  EXPECT_EQ(token.use_count(), 2);
  // A deleted BH not yet freed, a scheduled-then-deleted one, a pending
  // timer and a registered fd handler.
  BottomHalf* a = ctx_->NewBh([] {}, "a");
  a->Delete();
  BottomHalf* b = ctx_->NewBh([] {}, "b");
  b->Schedule();
  b->Delete();
  auto timer = ctx_->NewTimer(ClockType::kMonotonic, [&ran] { ran = true; });
  timer->ModNs(ClockNs(ClockType::kMonotonic) + int64_t{3600} * 1000000000);
  TestNotifier e;
  ctx_->SetFdHandler(e.fd(), DummyRead, nullptr, nullptr);
  e.Set();
  AioContext::SetCurrent(nullptr);
  ctx_.reset();
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_FALSE(timer->pending());  // detached
  timer.reset();
}

INSTANTIATE_TEST_SUITE_P(Monitors, AioContextTest,
                         ::testing::ValuesIn(testing_internal::AllMonitorKinds()),
                         testing_internal::MonitorKindParamName);

}  // namespace
}  // namespace aioco
