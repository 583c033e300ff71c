// CoRwlock tests: QEMU's /locking/co-rwlock/upgrade and
// /locking/co-rwlock/downgrade (the case that hung QEMU's pre-2021 rwlock),
// FIFO fairness, and a cross-thread reader/writer stress.

#include "locks/co_rwlock.h"

#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "coroutine/coroutine.h"
#include "gtest/gtest.h"
#include "tests/locks/locks_test_util.h"

namespace aioco {
namespace {

using locks_testing::IoThreads;
using locks_testing::RunCoroutines;
using locks_testing::Scaled;

// /locking/co-rwlock/upgrade: c1 reads, c2 queues to write, c1 upgrades:
// c1 must queue behind c2 even though it is the only reader.
TEST(CoRwlockTest, UpgradeQueuesBehindWriter) {
  CoRwlock lock;
  bool c1_done = false, c2_done = false;
  Coroutine* c1 = Coroutine::Create([&] {
    lock.RdLock();
    Coroutine::Yield();
    lock.Upgrade();
    lock.Unlock();
    c1_done = true;
  });
  Coroutine* c2 = Coroutine::Create([&] {
    lock.WrLock();
    Coroutine::Yield();
    lock.Unlock();
    c2_done = true;
  });

  c1->Enter();  // reader
  c2->Enter();  // writer queued
  c1->Enter();  // upgrade: queued behind c2, which now runs until its yield
  EXPECT_FALSE(c1_done);
  EXPECT_FALSE(c2_done);
  c2->Enter();  // c2 unlocks; c1 gets the write lock and finishes
  EXPECT_TRUE(c1_done);
  EXPECT_TRUE(c2_done);
}

TEST(CoRwlockTest, UpgradeOfSoleReaderDoesNotBlock) {
  CoRwlock lock;
  bool done = false;
  Coroutine::Create([&] {
    lock.RdLock();
    lock.Upgrade();
    lock.Downgrade();
    lock.Unlock();
    done = true;
  })->Enter();
  EXPECT_TRUE(done);
}

// /locking/co-rwlock/downgrade.
TEST(CoRwlockTest, DowngradeWakesQueuedReaders) {
  CoRwlock lock;
  bool c1_done = false, c2_done = false, c3_done = false, c4_done = false;
  Coroutine* c1 = Coroutine::Create([&] {
    lock.RdLock();
    Coroutine::Yield();
    lock.Unlock();
    Coroutine::Yield();
    c1_done = true;
  });
  Coroutine* c2 = Coroutine::Create([&] {
    lock.WrLock();
    lock.Downgrade();
    lock.Unlock();
    c2_done = true;
  });
  Coroutine* c3 = Coroutine::Create([&] {
    lock.RdLock();
    lock.Unlock();
    c3_done = true;
  });
  Coroutine* c4 = Coroutine::Create([&] {
    lock.WrLock();
    lock.Unlock();
    c4_done = true;
  });

  c1->Enter();  // reader holds
  c2->Enter();  // writer queued
  c3->Enter();  // reader queued behind the writer
  c4->Enter();  // writer queued
  c1->Enter();  // c1 unlocks: c2 writes, downgrades, c3 reads, ..., c4 writes
  EXPECT_TRUE(c2_done);
  EXPECT_TRUE(c3_done);
  EXPECT_TRUE(c4_done);
  c1->Enter();
  EXPECT_TRUE(c1_done);
}

// Requests are granted in arrival order: readers that arrive while a writer
// is queued wait for it, and consecutive readers at the head run together.
TEST(CoRwlockTest, GrantsInTicketOrder) {
  CoRwlock lock;
  std::string log;
  bool release = false;
  Coroutine* holder = Coroutine::Create([&] {
    lock.WrLock();
    while (!release) Coroutine::Yield();
    lock.Unlock();
  });
  holder->Enter();
  auto reader = [&](char name) {
    return Coroutine::Create([&, name] {
      std::shared_lock<CoRwlock> l(lock);
      log += name;
      Coroutine::Yield();  // hold the read lock across a yield
      log += static_cast<char>(name - 'a' + 'A');
    });
  };
  auto writer = [&](char name) {
    return Coroutine::Create([&, name] {
      std::unique_lock<CoRwlock> l(lock);
      log += name;
    });
  };
  Coroutine* r1 = reader('a');
  Coroutine* r2 = reader('b');
  Coroutine* w = writer('w');
  Coroutine* r3 = reader('c');
  for (Coroutine* co : {r1, r2, w, r3}) co->Enter();  // all queue
  EXPECT_EQ(log, "");
  release = true;
  holder->Enter();  // grants a, then b (chain); w waits for both
  EXPECT_EQ(log, "ab");
  r1->Enter();
  r2->Enter();  // last reader out: w, then c
  EXPECT_EQ(log, "abABwc");
  r3->Enter();
  EXPECT_EQ(log, "abABwcC");
}

// Readers and writers on several threads: a writer never overlaps anybody,
// readers may overlap each other.
TEST(CoRwlockTest, CrossThreadReadersAndWriters) {
  IoThreads io(3);
  CoRwlock lock;
  std::atomic<int> readers{0};
  std::atomic<int> writers{0};
  std::atomic<bool> overlap{false};
  int value = 0;
  int expected_writes = 0;
  const int iterations = Scaled(3000);
  std::vector<AioContext*> ctxs;
  for (int i = 0; i < 9; ++i) ctxs.push_back(io.ctx(i % 3));
  RunCoroutines(ctxs, [&](int id) {
    for (int n = 0; n < iterations; ++n) {
      if ((n + id) % 4 == 0) {
        lock.WrLock();
        if (writers.fetch_add(1) != 0 || readers.load() != 0) overlap = true;
        ++value;
        writers.fetch_sub(1);
        lock.Unlock();
      } else if ((n + id) % 4 == 1) {
        lock.RdLock();
        readers.fetch_add(1);
        if (writers.load() != 0) overlap = true;
        readers.fetch_sub(1);
        lock.Upgrade();
        if (writers.fetch_add(1) != 0 || readers.load() != 0) overlap = true;
        ++value;
        writers.fetch_sub(1);
        lock.Downgrade();
        readers.fetch_add(1);
        if (writers.load() != 0) overlap = true;
        readers.fetch_sub(1);
        lock.Unlock();
      } else {
        std::shared_lock<CoRwlock> l(lock);
        readers.fetch_add(1);
        if (writers.load() != 0) overlap = true;
        readers.fetch_sub(1);
      }
    }
  });
  for (int id = 0; id < 9; ++id) {
    for (int n = 0; n < iterations; ++n) {
      if ((n + id) % 4 <= 1) ++expected_writes;
    }
  }
  EXPECT_FALSE(overlap.load());
  EXPECT_EQ(value, expected_writes);
}

using CoRwlockDeathTest = ::testing::Test;

TEST_F(CoRwlockDeathTest, OutsideCoroutine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        CoRwlock lock;
        lock.RdLock();
      },
      "CoRwlock::RdLock\\(\\) called outside a coroutine");
}

TEST_F(CoRwlockDeathTest, DowngradeWithoutWriteLock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        static CoRwlock lock;
        Coroutine::Create([] {
          lock.RdLock();
          lock.Downgrade();
        })->Enter();
      },
      "CoRwlock::Downgrade\\(\\) called without the write lock");
}

}  // namespace
}  // namespace aioco
