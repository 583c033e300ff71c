#include "timers/timer.h"

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "timers/clock.h"
#include "timers/timer_list.h"

namespace aioco {
namespace {

constexpr int64_t kFar = int64_t{1} << 60;  // never expires during a test

class TimerListTest : public ::testing::Test {
 protected:
  TimerList list_{ClockType::kMonotonic, [this] { ++notified_; }};
  int notified_ = 0;
};

TEST(ClockTest, MonotonicDoesNotGoBackwards) {
  int64_t a = ClockNs(ClockType::kMonotonic);
  int64_t b = ClockNs(ClockType::kMonotonic);
  EXPECT_LE(a, b);
  EXPECT_GT(ClockNs(ClockType::kRealtime), int64_t{1600000000} * 1000000000);
  EXPECT_EQ(ClockTypeName(ClockType::kRealtime), "realtime");
  EXPECT_EQ(ClockTypeName(ClockType::kMonotonic), "monotonic");
}

TEST_F(TimerListTest, FiresInDeadlineOrder) {
  std::vector<int> order;
  std::vector<std::unique_ptr<Timer>> timers;
  const int64_t deadlines[] = {50, 10, 40, 20, 30, 0};
  for (int i = 0; i < 6; ++i) {
    timers.push_back(list_.NewTimer([&order, i] { order.push_back(i); }));
  }
  for (int i = 0; i < 6; ++i) timers[i]->ModNs(deadlines[i]);
  EXPECT_TRUE(list_.RunTimers());
  EXPECT_EQ(order, (std::vector<int>{5, 1, 3, 4, 2, 0}));
  for (auto& t : timers) EXPECT_FALSE(t->pending());
  EXPECT_FALSE(list_.RunTimers());
  EXPECT_EQ(list_.DeadlineNs(), -1);
}

TEST_F(TimerListTest, FifoTieBreak) {
  std::vector<int> order;
  std::vector<std::unique_ptr<Timer>> timers;
  for (int i = 0; i < 8; ++i) {
    timers.push_back(list_.NewTimer([&order, i] { order.push_back(i); }));
  }
  // Arm in a scrambled order, all with the same deadline: arm order wins.
  const int arm[] = {3, 7, 0, 5, 1, 6, 2, 4};
  for (int i : arm) timers[i]->ModNs(100);
  // Re-arming moves a timer to the back of its deadline's queue.
  timers[3]->ModNs(100);
  EXPECT_TRUE(list_.RunTimers());
  EXPECT_EQ(order, (std::vector<int>{7, 0, 5, 1, 6, 2, 4, 3}));
}

TEST_F(TimerListTest, CancelAndRearm) {
  int fired = 0;
  auto t = list_.NewTimer([&] { ++fired; });
  EXPECT_FALSE(t->pending());
  EXPECT_EQ(t->expire_time_ns(), -1);
  t->ModNs(kFar);
  EXPECT_TRUE(t->pending());
  EXPECT_EQ(t->expire_time_ns(), kFar);
  EXPECT_GT(list_.DeadlineNs(), 0);
  EXPECT_FALSE(list_.RunTimers());
  t->Cancel();
  EXPECT_FALSE(t->pending());
  EXPECT_EQ(list_.DeadlineNs(), -1);
  t->Cancel();  // idempotent
  t->ModNs(-5);  // clamped to 0: already expired
  EXPECT_EQ(t->expire_time_ns(), 0);
  EXPECT_EQ(list_.DeadlineNs(), 0);
  t->ModNs(kFar);  // re-arm replaces the deadline
  EXPECT_FALSE(list_.RunTimers());
  t->ModNs(0);
  EXPECT_TRUE(list_.RunTimers());
  EXPECT_EQ(fired, 1);
}

TEST_F(TimerListTest, ModAnticipateOnlyMovesEarlier) {
  auto t = list_.NewTimer([] {});
  t->ModAnticipateNs(kFar);
  EXPECT_EQ(t->expire_time_ns(), kFar);
  t->ModAnticipateNs(kFar + 1);
  EXPECT_EQ(t->expire_time_ns(), kFar);
  t->ModAnticipateNs(kFar - 1);
  EXPECT_EQ(t->expire_time_ns(), kFar - 1);
}

TEST_F(TimerListTest, NotifiesOnlyWhenEarliestChanges) {
  auto a = list_.NewTimer([] {});
  auto b = list_.NewTimer([] {});
  auto c = list_.NewTimer([] {});
  a->ModNs(kFar);  // first timer: earliest
  EXPECT_EQ(notified_, 1);
  b->ModNs(kFar + 10);  // later: no change
  EXPECT_EQ(notified_, 1);
  c->ModNs(kFar);  // ties with the earliest, FIFO puts it after: no change
  EXPECT_EQ(notified_, 1);
  b->ModNs(kFar - 10);  // now earliest
  EXPECT_EQ(notified_, 2);
  b->Cancel();  // earliest got later: no notification needed
  EXPECT_EQ(notified_, 2);
  a->ModNs(kFar + 20);  // postponing never notifies
  EXPECT_EQ(notified_, 2);
  EXPECT_EQ(list_.ExpireTimeNs(), kFar);  // c
  c->Cancel();
  a->Cancel();
  EXPECT_EQ(list_.ExpireTimeNs(), -1);
  a->ModNs(kFar);  // empty list: earliest again
  EXPECT_EQ(notified_, 3);
}

TEST_F(TimerListTest, CallbackCanRearmCancelAndDestroy) {
  int a_runs = 0, b_runs = 0;
  std::unique_ptr<Timer> b;
  std::unique_ptr<Timer> a = list_.NewTimer([&] {
    ++a_runs;
    if (a_runs < 3) a->ModNs(0);  // re-arm for "now": runs on the next call
    b->Cancel();
  });
  b = list_.NewTimer([&] { ++b_runs; });
  std::unique_ptr<Timer> self_destroying;
  self_destroying = list_.NewTimer([&] { self_destroying.reset(); });
  a->ModNs(0);
  b->ModNs(1);
  self_destroying->ModNs(2);
  // One call runs `a` once: its re-arm for the past is held back for the
  // next call (the call must terminate), and being the earliest it also
  // holds back the timers behind it.
  EXPECT_TRUE(list_.RunTimers());
  EXPECT_EQ(a_runs, 1);
  EXPECT_EQ(list_.DeadlineNs(), 0);
  while (list_.RunTimers()) {
  }
  EXPECT_EQ(a_runs, 3);
  EXPECT_EQ(b_runs, 0);  // cancelled by `a`
  EXPECT_EQ(self_destroying, nullptr);
  EXPECT_EQ(list_.DeadlineNs(), -1);
}

TEST_F(TimerListTest, RandomizedAgainstSortedModel) {
  std::mt19937 rng(42);
  constexpr int kTimers = 200;
  std::vector<int> fired;
  std::vector<std::unique_ptr<Timer>> timers;
  std::vector<int64_t> deadline(kTimers, -1);
  for (int i = 0; i < kTimers; ++i) {
    timers.push_back(list_.NewTimer([&fired, i] { fired.push_back(i); }));
  }
  for (int step = 0; step < 5000; ++step) {
    int i = rng() % kTimers;
    if (rng() % 4 == 0) {
      timers[i]->Cancel();
      deadline[i] = -1;
    } else {
      deadline[i] = rng() % 1000;
      timers[i]->ModNs(deadline[i]);
    }
  }
  // The lock-free copy of the earliest deadline matches the model.
  int64_t earliest = -1;
  for (int64_t d : deadline) {
    if (d >= 0 && (earliest < 0 || d < earliest)) earliest = d;
  }
  EXPECT_EQ(list_.ExpireTimeNs(), earliest);
  EXPECT_TRUE(list_.RunTimers());
  EXPECT_EQ(list_.ExpireTimeNs(), -1);
  // Fired exactly the armed timers, in non-decreasing deadline order.
  int armed = 0;
  for (int64_t d : deadline) armed += d >= 0;
  ASSERT_EQ(static_cast<int>(fired.size()), armed);
  for (size_t k = 1; k < fired.size(); ++k) {
    EXPECT_LE(deadline[fired[k - 1]], deadline[fired[k]]);
  }
}

TEST(TimerListLifetimeTest, DestroyingTheListDetachesTimers) {
  auto list = std::make_unique<TimerList>(ClockType::kRealtime, nullptr);
  auto t = list->NewTimer([] {});
  t->ModNs(kFar);
  EXPECT_TRUE(t->pending());
  list.reset();
  EXPECT_FALSE(t->pending());
  t->Cancel();  // no-op
  EXPECT_DEATH(t->ModNs(1), "Timer::ModNs: the timer's AioContext was destroyed");
  t.reset();  // no-op
}

TEST(TimerListGroupTest, SoonestOverClocks) {
  int notified = 0;
  TimerListGroup group([&] { ++notified; });
  EXPECT_EQ(group.DeadlineNs(), -1);
  int runs = 0;
  auto rt = group.NewTimer(ClockType::kRealtime, [&] { ++runs; });
  auto mono = group.NewTimer(ClockType::kMonotonic, [&] { ++runs; });
  rt->ModNs(ClockNs(ClockType::kRealtime) + 3600 * int64_t{1000000000});
  mono->ModNs(ClockNs(ClockType::kMonotonic) + 60 * int64_t{1000000000});
  EXPECT_EQ(notified, 2);
  int64_t d = group.DeadlineNs();
  EXPECT_GT(d, 0);
  EXPECT_LE(d, 60 * int64_t{1000000000});
  mono->ModNs(0);
  EXPECT_EQ(group.DeadlineNs(), 0);
  EXPECT_TRUE(group.RunTimers());
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(SoonestTimeout(-1, 5), 5);
  EXPECT_EQ(SoonestTimeout(7, -1), 7);
  EXPECT_EQ(SoonestTimeout(-1, -1), -1);
}

// Arming from other threads while the home thread runs timers.
TEST(TimerListThreadTest, CrossThreadArming) {
  std::atomic<int> notified{0};
  TimerList list(ClockType::kMonotonic, [&] { notified.fetch_add(1); });
  constexpr int kThreads = 4;
  constexpr int kIters = 2000;
  std::atomic<int> fired{0};
  std::vector<std::unique_ptr<Timer>> timers;
  for (int i = 0; i < kThreads; ++i) {
    timers.push_back(list.NewTimer([&] { fired.fetch_add(1); }));
  }
  std::atomic<bool> stop{false};
  std::thread home([&] {
    while (!stop.load()) list.RunTimers();
  });
  std::vector<std::thread> armers;
  for (int i = 0; i < kThreads; ++i) {
    armers.emplace_back([&, i] {
      for (int k = 0; k < kIters; ++k) {
        timers[i]->ModNs(k % 2 ? 0 : kFar);
        if (k % 3 == 0) timers[i]->Cancel();
      }
      timers[i]->ModNs(0);
    });
  }
  for (auto& t : armers) t.join();
  while (fired.load() == 0 || list.DeadlineNs() != -1) std::this_thread::yield();
  stop.store(true);
  home.join();
  for (auto& t : timers) EXPECT_FALSE(t->pending());
  EXPECT_GT(notified.load(), 0);
}

}  // namespace
}  // namespace aioco
