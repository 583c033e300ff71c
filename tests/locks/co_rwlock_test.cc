// CoRwlock tests: QEMU's /locking/co-rwlock/upgrade and
// /locking/co-rwlock/downgrade (the case that hung QEMU's pre-2021 rwlock),
// FIFO fairness, cross-thread reader/writer stress, and the lock-free reader
// path: writers arriving among lock-free readers, Upgrade/Downgrade next to
// them, and destruction right after the last unlock.

#include "locks/co_rwlock.h"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "aio/aio_context.h"
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

// Goes once round the calling coroutine's AioContext loop (other coroutines
// there run meanwhile).
void YieldToLoop() {
  Coroutine* self = Coroutine::Self();
  self->aio_context()->CoSchedule(self);
  Coroutine::Yield();
}

// A writer that arrives while many readers hold the lock (they took it
// lock-free: nobody was queued) gets it only once the last of them has
// left, and readers that arrive after the writer queue behind it.
TEST(CoRwlockTest, WriterWaitsForLockFreeReadersAndBlocksLaterOnes) {
  CoRwlock lock;
  constexpr int kReaders = 8;
  constexpr int kLateReaders = 4;
  int reading = 0;
  bool writing = false, writer_done = false;
  int late_done = 0;
  std::vector<Coroutine*> readers;
  for (int i = 0; i < kReaders; ++i) {
    readers.push_back(Coroutine::Create([&] {
      lock.RdLock();
      ++reading;
      Coroutine::Yield();
      --reading;
      lock.Unlock();
    }));
  }
  Coroutine* writer = Coroutine::Create([&] {
    lock.WrLock();
    EXPECT_EQ(reading, 0);
    writing = true;
    Coroutine::Yield();
    writing = false;
    lock.Unlock();
    writer_done = true;
  });
  std::vector<Coroutine*> late;
  for (int i = 0; i < kLateReaders; ++i) {
    late.push_back(Coroutine::Create([&] {
      lock.RdLock();
      EXPECT_TRUE(writer_done);
      ++late_done;
      lock.Unlock();
    }));
  }

  for (Coroutine* co : readers) co->Enter();
  EXPECT_EQ(reading, kReaders);  // readers share the lock without waiting
  writer->Enter();
  EXPECT_FALSE(writing);
  for (Coroutine* co : late) co->Enter();
  EXPECT_EQ(late_done, 0);  // queued behind the writer
  for (int i = 0; i < kReaders; ++i) {
    EXPECT_FALSE(writing) << "writer ran with " << kReaders - i
                          << " readers left";
    readers[i]->Enter();  // the last one out grants the writer
  }
  EXPECT_TRUE(writing);
  EXPECT_EQ(late_done, 0);
  writer->Enter();  // unlock: the late readers run
  EXPECT_TRUE(writer_done);
  EXPECT_EQ(late_done, kLateReaders);

  // The lock is free again: a reader and then a writer take it at once.
  bool done = false;
  Coroutine::Create([&] {
    lock.RdLock();
    lock.Unlock();
    lock.WrLock();
    lock.Unlock();
    done = true;
  })->Enter();
  EXPECT_TRUE(done);
}

// Upgrade among lock-free readers queues until they leave, and readers
// arriving meanwhile queue behind it; Downgrade then lets the queued reader
// in and, with the queue empty, new readers enter lock-free while the
// downgraded reader still holds.
TEST(CoRwlockTest, UpgradeAndDowngradeAmongLockFreeReaders) {
  CoRwlock lock;
  std::string log;
  Coroutine* r1 = Coroutine::Create([&] {
    lock.RdLock();
    Coroutine::Yield();
    lock.Upgrade();  // r2 still reads: queues
    log += 'W';
    Coroutine::Yield();
    lock.Downgrade();  // grants r3
    log += 'D';
    Coroutine::Yield();
    lock.Unlock();
    log += 'U';
  });
  Coroutine* r2 = Coroutine::Create([&] {
    lock.RdLock();
    Coroutine::Yield();
    lock.Unlock();
    log += '2';
  });
  Coroutine* r3 = Coroutine::Create([&] {
    lock.RdLock();
    log += '3';
    Coroutine::Yield();
    lock.Unlock();
  });
  Coroutine* r4 = Coroutine::Create([&] {
    lock.RdLock();
    log += '4';
    lock.Unlock();
  });
  r1->Enter();
  r2->Enter();  // two readers, lock-free
  r1->Enter();  // Upgrade queues behind r2's read share
  EXPECT_EQ(log, "");
  r3->Enter();  // queues behind the upgrade
  EXPECT_EQ(log, "");
  r2->Enter();  // last reader out: r1 writes
  EXPECT_EQ(log, "2W");
  r1->Enter();  // Downgrade: r3 reads next to r1
  EXPECT_EQ(log, "2WD3");
  r4->Enter();  // nobody queued: r4 reads at once
  EXPECT_EQ(log, "2WD34");
  r3->Enter();
  r1->Enter();
  EXPECT_EQ(log, "2WD34U");

  // Downgrade with nobody queued, then a reader joins and a writer waits
  // for both.
  bool wrote = false;
  Coroutine* holder = Coroutine::Create([&] {
    lock.WrLock();
    lock.Downgrade();
    Coroutine::Yield();
    lock.Unlock();
  });
  Coroutine* reader = Coroutine::Create([&] {
    lock.RdLock();
    Coroutine::Yield();
    lock.Unlock();
  });
  Coroutine* writer = Coroutine::Create([&] {
    lock.WrLock();
    wrote = true;
    lock.Unlock();
  });
  holder->Enter();
  reader->Enter();
  writer->Enter();
  EXPECT_FALSE(wrote);
  holder->Enter();
  EXPECT_FALSE(wrote);
  reader->Enter();
  EXPECT_TRUE(wrote);
}

// Two IoThreads hammering one lock with mostly lock-free readers, writers
// and Upgrade/Downgrade cycles. Readers sometimes hold the lock across a
// trip round their loop so that writers meet held read shares. Checks: no
// reader overlaps a writer, writers never overlap, the two halves of the
// protected pair are always equal, and every operation completed.
TEST(CoRwlockTest, TwoThreadHammerWithLockFreeReaders) {
  IoThreads io(2);
  CoRwlock lock;
  std::atomic<int> readers{0};
  std::atomic<int> writers{0};
  std::atomic<bool> overlap{false};
  std::atomic<bool> torn{false};
  std::atomic<int64_t> reads{0};
  int64_t a = 0, b = 0;  // guarded by lock; writers bump both
  const int iterations = Scaled(50000);
  constexpr int kPerThread = 3;
  std::vector<AioContext*> ctxs;
  for (int i = 0; i < 2 * kPerThread; ++i) ctxs.push_back(io.ctx(i % 2));
  auto read_section = [&] {
    readers.fetch_add(1);
    if (writers.load() != 0) overlap = true;
    if (a != b) torn = true;
    readers.fetch_sub(1);
  };
  auto write_section = [&] {
    if (writers.fetch_add(1) != 0 || readers.load() != 0) overlap = true;
    ++a;
    ++b;
    writers.fetch_sub(1);
  };
  RunCoroutines(ctxs, [&](int id) {
    int64_t local_reads = 0;
    for (int n = 0; n < iterations; ++n) {
      const int op = (n * 7 + id) % 32;
      if (op == 0) {
        lock.WrLock();
        write_section();
        lock.Unlock();
      } else if (op == 1) {
        lock.RdLock();
        read_section();
        lock.Upgrade();
        write_section();
        lock.Downgrade();
        read_section();
        lock.Unlock();
        local_reads += 2;
      } else {
        std::shared_lock<CoRwlock> l(lock);
        read_section();
        if (op % 8 == 2) {
          YieldToLoop();
          read_section();
        }
        ++local_reads;
      }
    }
    reads.fetch_add(local_reads);
  });
  int64_t expected_writes = 0, expected_reads = 0;
  for (int id = 0; id < 2 * kPerThread; ++id) {
    for (int n = 0; n < iterations; ++n) {
      const int op = (n * 7 + id) % 32;
      if (op == 0) {
        ++expected_writes;
      } else if (op == 1) {
        ++expected_writes;
        expected_reads += 2;
      } else {
        ++expected_reads;
      }
    }
  }
  EXPECT_FALSE(overlap.load());
  EXPECT_FALSE(torn.load());
  EXPECT_EQ(a, expected_writes);
  EXPECT_EQ(b, expected_writes);
  EXPECT_EQ(reads.load(), expected_reads);
}

// Readers on two IoThreads keep the lock read-held almost all the time
// (each holds it across a trip round its loop, and they overlap). Without
// the queued bit stopping new lock-free readers a writer would starve; with
// it every write completes while the readers keep going. The readers stop
// after the writes or at a cap far above what the writes need.
TEST(CoRwlockTest, WriterNotStarvedByOverlappingReaders) {
  IoThreads io(2);
  CoRwlock lock;
  const int writes = Scaled(2000);
  const int64_t reader_cap = int64_t{writes} * 1000;
  std::atomic<int> writes_done{0};
  std::atomic<bool> cap_hit{false};
  std::atomic<int> readers{0};
  std::atomic<bool> overlap{false};
  std::vector<AioContext*> ctxs = {io.ctx(0), io.ctx(1), io.ctx(0),
                                   io.ctx(1), io.ctx(1)};
  RunCoroutines(ctxs, [&](int id) {
    if (id == 4) {  // the writer
      for (int n = 0; n < writes; ++n) {
        lock.WrLock();
        if (readers.load() != 0) overlap = true;
        writes_done.fetch_add(1);
        lock.Unlock();
      }
      return;
    }
    for (int64_t n = 0; writes_done.load() < writes; ++n) {
      if (n == reader_cap) {
        cap_hit = true;
        break;
      }
      lock.RdLock();
      readers.fetch_add(1);
      YieldToLoop();
      readers.fetch_sub(1);
      lock.Unlock();
    }
  });
  EXPECT_EQ(writes_done.load(), writes);
  EXPECT_FALSE(cap_hit.load());
  EXPECT_FALSE(overlap.load());
}

// The last user may destroy the lock as soon as its Unlock() returns, even
// when the previous holder was a lock-free reader that had to hand the lock
// to a queued writer on another thread (ASan checks the hand-over touches
// nothing afterwards).
TEST(CoRwlockTest, DestroyRightAfterHandOverFromReader) {
  IoThreads io(2);
  const int rounds = Scaled(1000);
  int destroyed = 0;
  for (int round = 0; round < rounds; ++round) {
    CoRwlock* lock = new CoRwlock;
    std::atomic<bool> read_held{false};
    RunCoroutines({io.ctx(0), io.ctx(1)}, [&](int id) {
      if (id == 0) {
        lock->RdLock();
        read_held = true;
        // Vary how long the writer has to queue before we leave.
        for (int i = 0; i < round % 4; ++i) YieldToLoop();
        lock->Unlock();
      } else {
        while (!read_held.load()) YieldToLoop();
        lock->WrLock();
        lock->Unlock();
        delete lock;
        ++destroyed;
      }
    });
  }
  EXPECT_EQ(destroyed, rounds);
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
