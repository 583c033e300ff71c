// CoQueue tests: FIFO wake order, WaitFront, RestartAll, EnterNext/EnterAll
// from outside coroutines with a std::mutex and with no lock, and a
// producer/consumer across IoThreads with a CoMutex and with a std::mutex.

#include "locks/co_queue.h"

#include <atomic>
#include <deque>
#include <mutex>
#include <vector>

#include "coroutine/coroutine.h"
#include "gtest/gtest.h"
#include "locks/co_mutex.h"
#include "tests/locks/locks_test_util.h"

namespace aioco {
namespace {

using locks_testing::IoThreads;
using locks_testing::RunCoroutines;
using locks_testing::Scaled;

TEST(CoQueueTest, NextWakesInFifoOrderAfterTheWakerYields) {
  CoQueue queue;
  std::vector<int> order;
  for (int i = 0; i < 3; ++i) {
    Coroutine::Create([&, i] {
      queue.Wait();
      order.push_back(i);
    })->Enter();
  }
  EXPECT_FALSE(queue.empty());
  bool waker_after_next = false;
  Coroutine::Create([&] {
    EXPECT_TRUE(queue.Next());
    // The woken coroutine runs only once we yield or finish.
    EXPECT_TRUE(order.empty());
    waker_after_next = true;
  })->Enter();
  EXPECT_TRUE(waker_after_next);
  EXPECT_EQ(order, std::vector<int>({0}));
  Coroutine::Create([&] { queue.RestartAll(); })->Enter();
  EXPECT_EQ(order, std::vector<int>({0, 1, 2}));
  EXPECT_TRUE(queue.empty());
  Coroutine::Create([&] { EXPECT_FALSE(queue.Next()); })->Enter();
}

TEST(CoQueueTest, WaitFrontJoinsAtTheHead) {
  CoQueue queue;
  std::vector<int> order;
  Coroutine::Create([&] {
    queue.Wait();
    order.push_back(1);
  })->Enter();
  Coroutine::Create([&] {
    queue.WaitFront(static_cast<CoMutex*>(nullptr));
    order.push_back(2);
  })->Enter();
  EXPECT_TRUE(queue.EnterNext());
  EXPECT_TRUE(queue.EnterNext(nullptr));
  EXPECT_FALSE(queue.EnterNext());
  EXPECT_EQ(order, std::vector<int>({2, 1}));
}

// EnterNext() from outside a coroutine runs the waiter inside the call (same
// context), so the lock must be dropped around it: with a std::mutex held
// across the call this would self-deadlock otherwise.
TEST(CoQueueTest, EnterNextDropsTheLockAroundTheWake) {
  CoQueue queue;
  std::mutex mu;
  int woken = 0;
  for (int i = 0; i < 3; ++i) {
    Coroutine::Create([&] {
      std::unique_lock<std::mutex> lock(mu);
      queue.Wait(&mu);
      ++woken;  // lock re-taken
    })->Enter();
  }
  std::unique_lock<std::mutex> lock(mu);
  EXPECT_TRUE(queue.EnterNext(&mu));
  EXPECT_EQ(woken, 1);
  queue.EnterAll(&mu);
  EXPECT_EQ(woken, 3);
  EXPECT_TRUE(queue.empty());
}

TEST(CoQueueTest, WaitWithCoMutexReacquiresIt) {
  CoQueue queue;
  CoMutex mu;
  int state = 0;
  Coroutine* waiter = Coroutine::Create([&] {
    std::lock_guard<CoMutex> lock(mu);
    while (state == 0) queue.Wait(&mu);
    mu.AssertHeld();
    state = 2;
  });
  waiter->Enter();
  Coroutine::Create([&] {
    std::lock_guard<CoMutex> lock(mu);
    state = 1;
    queue.Next();
  })->Enter();
  EXPECT_EQ(state, 2);
}

// Bounded buffer: producers and consumers on different IoThreads.
template <typename Mutex>
void ProducerConsumer() {
  IoThreads io(2);
  Mutex mu;
  CoQueue not_empty, not_full;
  std::deque<int> items;
  constexpr size_t kCapacity = 4;
  const int per_producer = Scaled(5000);
  constexpr int kProducers = 2;  // ids 0-1 produce, 2-3 consume
  std::atomic<long> consumed_sum{0};
  std::atomic<int> consumed{0};
  const int total = kProducers * per_producer;

  std::vector<AioContext*> ctxs = {io.ctx(0), io.ctx(1), io.ctx(1), io.ctx(0)};
  RunCoroutines(ctxs, [&](int id) {
    std::unique_lock<Mutex> lock(mu);
    if (id < kProducers) {
      for (int i = 1; i <= per_producer; ++i) {
        while (items.size() >= kCapacity) not_full.Wait(&mu);
        items.push_back(i);
        not_empty.Next();
      }
    } else {
      for (;;) {
        while (items.empty() && consumed.load() < total) not_empty.Wait(&mu);
        if (items.empty()) break;  // everything consumed
        consumed_sum += items.front();
        items.pop_front();
        if (++consumed == total) not_empty.RestartAll();  // release the other
        not_full.Next();
      }
    }
  });
  EXPECT_EQ(consumed.load(), total);
  EXPECT_EQ(consumed_sum.load(),
            static_cast<long>(kProducers) * per_producer * (per_producer + 1) / 2);
  EXPECT_TRUE(items.empty());
}

TEST(CoQueueTest, ProducerConsumerAcrossThreadsWithCoMutex) {
  ProducerConsumer<CoMutex>();
}

TEST(CoQueueTest, ProducerConsumerAcrossThreadsWithStdMutex) {
  ProducerConsumer<std::mutex>();
}

using CoQueueDeathTest = ::testing::Test;

TEST_F(CoQueueDeathTest, WaitOutsideCoroutine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        CoQueue queue;
        queue.Wait();
      },
      "CoQueue::Wait\\(\\) called outside a coroutine");
}

TEST_F(CoQueueDeathTest, EnteringAWaiterByAnotherPathAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        static CoQueue queue;
        Coroutine* co = Coroutine::Create([] { queue.Wait(); });
        co->Enter();
        co->Enter();
      },
      "CoQueue::Wait");
}

}  // namespace
}  // namespace aioco
