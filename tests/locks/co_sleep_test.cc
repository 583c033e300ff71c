// CoSleeper / CoSleepNs / CoTimeout tests: sleeping on the context's timers,
// waking early from another thread, timeout with in-time and late
// completion (the late cleanup runs, the shared state is freed by the last
// side: ASan checks the latter).

#include "locks/co_sleep.h"

#include <atomic>
#include <memory>

#include "absl/status/status.h"
#include "aio/aio_context.h"
#include "coroutine/coroutine.h"
#include "gtest/gtest.h"
#include "locks/co_timeout.h"
#include "tests/locks/locks_test_util.h"
#include "timers/clock.h"

namespace aioco {
namespace {

using locks_testing::IoThreads;
using locks_testing::Latch;
using locks_testing::RunInCoroutine;

constexpr int64_t kMs = 1000 * 1000;

TEST(CoSleepTest, SleepsAtLeastTheRequestedTime) {
  IoThreads io(1);
  int64_t elapsed = 0;
  RunInCoroutine(io.ctx(0), [&] {
    int64_t start = ClockNs(ClockType::kMonotonic);
    CoSleepNs(ClockType::kMonotonic, 5 * kMs);
    elapsed = ClockNs(ClockType::kMonotonic) - start;
  });
  EXPECT_GE(elapsed, 5 * kMs);
}

TEST(CoSleepTest, ZeroAndNegativeDurationsReturn) {
  IoThreads io(1);
  int returned = 0;
  RunInCoroutine(io.ctx(0), [&] {
    CoSleepNs(ClockType::kMonotonic, 0);
    ++returned;
    CoSleepNs(ClockType::kRealtime, -5);
    ++returned;
  });
  EXPECT_EQ(returned, 2);
}

// The sleeper is woken from the test's thread long before its (one hour)
// timer: only Wake() can end this sleep.
TEST(CoSleepTest, WakeFromAnotherThreadEndsTheSleepEarly) {
  IoThreads io(1);
  CoSleeper sleeper;
  std::atomic<bool> sleeping{false};
  std::atomic<bool> woke{false};
  Latch done(1);
  Coroutine* co = Coroutine::Create([&] {
    sleeping = true;
    sleeper.SleepNs(ClockType::kMonotonic, 3600 * 1000 * kMs);
    woke = true;
    done.count_down();
  });
  io.ctx(0)->CoSchedule(co);
  // Wake() with nobody asleep is a no-op, so keep trying until it lands.
  while (!woke.load()) {
    if (sleeping.load()) sleeper.Wake();
    std::this_thread::yield();
  }
  done.wait();
  EXPECT_TRUE(woke.load());
}

TEST(CoSleepTest, SleepWithoutTimerUntilWake) {
  IoThreads io(2);
  CoSleeper sleeper;
  std::atomic<int> stage{0};
  Latch done(1);
  io.ctx(0)->CoSchedule(Coroutine::Create([&] {
    stage = 1;
    sleeper.Sleep();
    stage = 2;
    done.count_down();
  }));
  // Waker: a coroutine in another context.
  Latch waker_done(1);
  io.ctx(1)->CoSchedule(Coroutine::Create([&] {
    while (stage.load() != 2) {
      sleeper.Wake();
      CoSleepNs(ClockType::kMonotonic, 100 * 1000);
    }
    waker_done.count_down();
  }));
  done.wait();
  waker_done.wait();
  EXPECT_EQ(stage.load(), 2);
}

TEST(CoSleepTest, WakeWithNobodySleepingIsANoOp) {
  CoSleeper sleeper;
  sleeper.Wake();
  sleeper.Wake();
}

TEST(CoTimeoutTest, FinishesInTime) {
  IoThreads io(1);
  absl::Status status;
  bool ran = false, cleaned = false;
  RunInCoroutine(io.ctx(0), [&] {
    status = CoTimeout([&] { ran = true; }, 3600 * 1000 * kMs,
                       [&] { cleaned = true; });
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_TRUE(ran);
  EXPECT_FALSE(cleaned);  // cleanup is only for late completion
}

TEST(CoTimeoutTest, FinishesInTimeAfterYielding) {
  IoThreads io(1);
  absl::Status status;
  bool ran = false;
  RunInCoroutine(io.ctx(0), [&] {
    status = CoTimeout(
        [&] {
          CoSleepNs(ClockType::kMonotonic, 1 * kMs);
          ran = true;
        },
        3600 * 1000 * kMs);
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_TRUE(ran);
}

// The work blocks on a sleeper that only the test wakes, after CoTimeout()
// has returned: the timeout is certain, then the work completes late and
// its cleanup runs.
TEST(CoTimeoutTest, TimesOutAndCleansUpOnLateCompletion) {
  IoThreads io(1);
  CoSleeper gate;
  std::atomic<bool> work_started{false};
  std::atomic<bool> work_finished{false};
  absl::Status status;
  Latch cleaned(1);
  RunInCoroutine(io.ctx(0), [&] {
    status = CoTimeout(
        [&] {
          work_started = true;
          gate.Sleep();
          work_finished = true;
        },
        1 * kMs, [&] { cleaned.count_down(); });
  });
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_TRUE(work_started.load());
  EXPECT_FALSE(work_finished.load());
  // Let the work finish; its cleanup runs after it.
  while (!work_finished.load()) {
    gate.Wake();
    std::this_thread::yield();
  }
  cleaned.wait();
}

TEST(CoTimeoutTest, ZeroRunsInlineNegativeIsRejected) {
  IoThreads io(1);
  absl::Status zero, negative;
  Coroutine* inline_runner = nullptr;
  Coroutine* caller = nullptr;
  bool negative_ran = false;
  RunInCoroutine(io.ctx(0), [&] {
    caller = Coroutine::Self();
    zero = CoTimeout([&] { inline_runner = Coroutine::Self(); }, 0);
    negative = CoTimeout([&] { negative_ran = true; }, -1);
  });
  EXPECT_TRUE(zero.ok());
  EXPECT_EQ(inline_runner, caller);
  EXPECT_TRUE(absl::IsInvalidArgument(negative)) << negative;
  EXPECT_FALSE(negative_ran);
}

using CoSleepDeathTest = ::testing::Test;

TEST_F(CoSleepDeathTest, SleepNsNeedsAContext) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      Coroutine::Create([] { CoSleepNs(ClockType::kMonotonic, 1); })->Enter(),
      "CoSleeper::SleepNs\\(\\) needs an AioContext");
}

TEST_F(CoSleepDeathTest, SleepOutsideCoroutine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        CoSleeper sleeper;
        sleeper.Sleep();
      },
      "CoSleeper::Sleep\\(\\) called outside a coroutine");
}

}  // namespace
}  // namespace aioco
