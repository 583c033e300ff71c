// CoMutex tests: QEMU's test-coroutine /locking/co-mutex and
// /locking/co-mutex/lockable (one thread, no AioContext), and
// test-aio-multithread /aio/multi/mutex/contended and /mutex/handoff
// (coroutines on 2..4 IoThreads, `counter == atomic_counter`).

#include "locks/co_mutex.h"

#include <atomic>
#include <mutex>
#include <vector>

#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"
#include "gtest/gtest.h"
#include "locks/co_queue.h"
#include "tests/locks/locks_test_util.h"

namespace aioco {
namespace locks_internal {

// Drives CoMutex's internal steps to reach the token hand-off
// deterministically (in real runs it needs a race: QEMU sees it about ten
// times per million contended lock operations).
struct CoMutexTestPeer {
  // A locker that has counted itself in `locked` but not queued yet.
  static void AddPendingLocker(CoMutex& mu) { mu.locked_.fetch_add(1); }
  static unsigned Handoff(const CoMutex& mu) { return mu.handoff_.load(); }
  // That locker's remaining steps (slow path, then bookkeeping).
  static void FinishPendingLock(CoMutex& mu) {
    Coroutine* self = Coroutine::Self();
    mu.LockSlowPath(coroutine_internal::ThreadAioContext(), self);
    mu.Acquired(self);
  }
};

}  // namespace locks_internal

namespace {

using locks_internal::CoMutexTestPeer;
using locks_testing::IoThreads;
using locks_testing::RunCoroutines;
using locks_testing::RunInCoroutine;
using locks_testing::Scaled;

// --- /locking/co-mutex ------------------------------------------------------

struct MutexTestState {
  CoMutex mu;
  bool locked = false;
  int done_count = 0;
};

template <typename Lock, typename Unlock>
void RunCoMutexSequence(MutexTestState& s, Lock lock, Unlock unlock) {
  auto body = [&s, &lock, &unlock] {
    lock();
    EXPECT_FALSE(s.locked);
    s.locked = true;
    Coroutine::Yield();
    s.locked = false;
    unlock();
    ++s.done_count;
  };
  Coroutine* c1 = Coroutine::Create(body);
  Coroutine* c2 = Coroutine::Create(body);

  c1->Enter();  // c1 takes the lock and yields holding it
  EXPECT_TRUE(s.locked);
  c2->Enter();  // c2 queues in lock() (same thread: no spinning) and yields
  EXPECT_TRUE(s.locked);
  EXPECT_EQ(s.done_count, 0);

  // c1 unlocks, handing the mutex to c2, and finishes; c2 then runs within
  // this same Enter() (queued wake-up), takes the lock and yields.
  c1->Enter();
  EXPECT_EQ(s.done_count, 1);
  EXPECT_TRUE(s.locked);

  c2->Enter();
  EXPECT_EQ(s.done_count, 2);
  EXPECT_FALSE(s.locked);
}

TEST(CoMutexTest, HandsOffBetweenCoroutinesOfOneThread) {
  MutexTestState s;
  RunCoMutexSequence(s, [&] { s.mu.lock(); }, [&] { s.mu.unlock(); });
}

// --- /locking/co-mutex/lockable ------------------------------------------

// A type-erased lockable, as QEMU's QemuLockable: null in, null out.
struct ErasedLockable {
  void* object;
  void (*lock)(void*);
  void (*unlock)(void*);
};

template <typename L>
const ErasedLockable* MakeLockable(L* l, ErasedLockable* storage) {
  if (l == nullptr) return nullptr;
  *storage = {l, [](void* o) { static_cast<L*>(o)->lock(); },
              [](void* o) { static_cast<L*>(o)->unlock(); }};
  return storage;
}

TEST(CoMutexTest, Lockable) {
  MutexTestState s;
  ErasedLockable storage;
  const ErasedLockable* lockable = MakeLockable(&s.mu, &storage);
  ASSERT_NE(lockable, nullptr);
  RunCoMutexSequence(
      s, [&] { lockable->lock(lockable->object); },
      [&] { lockable->unlock(lockable->object); });

  ErasedLockable unused;
  EXPECT_EQ(MakeLockable(static_cast<CoMutex*>(nullptr), &unused), nullptr);
}

TEST(CoMutexTest, StdGuardsWork) {
  MutexTestState s;
  RunCoMutexSequence(
      s, [&] { s.mu.lock(); }, [&] { s.mu.unlock(); });

  CoMutex mu;
  int ran = 0;
  Coroutine* co = Coroutine::Create([&] {
    {
      std::lock_guard<CoMutex> guard(mu);
      mu.AssertHeld();
      ++ran;
    }
    {
      std::unique_lock<CoMutex> lock(mu, std::try_to_lock);
      EXPECT_TRUE(lock.owns_lock());
      lock.unlock();
      EXPECT_FALSE(lock.owns_lock());
      lock.lock();
      ++ran;
    }
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();
  });
  co->Enter();
  EXPECT_EQ(ran, 2);
}

TEST(CoMutexTest, TryLockFailsWhileHeldAndWhileQueued) {
  CoMutex mu;
  bool release = false;
  Coroutine* holder = Coroutine::Create([&] {
    mu.lock();
    while (!release) Coroutine::Yield();
    mu.unlock();
  });
  bool waiter_got_it = false;
  Coroutine* waiter = Coroutine::Create([&] {
    mu.lock();
    waiter_got_it = true;
    mu.unlock();
  });
  holder->Enter();
  EXPECT_FALSE(mu.try_lock());  // held (outside any coroutine)
  waiter->Enter();              // queues
  EXPECT_FALSE(mu.try_lock());  // held, and a waiter is queued
  release = true;
  holder->Enter();  // unlock hands over to the waiter, which runs after
  EXPECT_TRUE(waiter_got_it);
  // Free again: non-coroutine code can take and release it.
  ASSERT_TRUE(mu.try_lock());
  mu.AssertHeld();
  mu.unlock();
}

TEST(CoMutexTest, WaitersAcquireInFifoOrder) {
  CoMutex mu;
  std::vector<int> order;
  bool release = false;
  Coroutine* holder = Coroutine::Create([&] {
    mu.lock();
    while (!release) Coroutine::Yield();
    mu.unlock();
  });
  holder->Enter();
  constexpr int kWaiters = 6;
  for (int i = 0; i < kWaiters; ++i) {
    Coroutine::Create([&, i] {
      std::lock_guard<CoMutex> lock(mu);
      order.push_back(i);
    })->Enter();
  }
  EXPECT_TRUE(order.empty());
  release = true;
  holder->Enter();
  ASSERT_EQ(order.size(), static_cast<size_t>(kWaiters));
  for (int i = 0; i < kWaiters; ++i) EXPECT_EQ(order[i], i);
}

// The unlocker finds a counted but unqueued locker: it publishes a token and
// leaves; the late locker queues, sees the token, takes the wake-up
// responsibility, pops its own record and owns the mutex without yielding.
TEST(CoMutexTest, LateLockerTakesTheHandoffToken) {
  CoMutex mu;
  Coroutine* holder = Coroutine::Create([&] {
    mu.lock();
    Coroutine::Yield();
    mu.unlock();
  });
  holder->Enter();
  CoMutexTestPeer::AddPendingLocker(mu);
  EXPECT_EQ(CoMutexTestPeer::Handoff(mu), 0u);
  holder->Enter();  // unlock: nobody to pop, token published
  EXPECT_NE(CoMutexTestPeer::Handoff(mu), 0u);
  EXPECT_FALSE(mu.try_lock());  // the late locker's count keeps it taken

  bool owned_without_yield = false;
  Coroutine* late = Coroutine::Create([&] {
    CoMutexTestPeer::FinishPendingLock(mu);
    owned_without_yield = true;
    mu.AssertHeld();
    mu.unlock();
  });
  late->Enter();
  EXPECT_TRUE(owned_without_yield);
  EXPECT_EQ(CoMutexTestPeer::Handoff(mu), 0u);
  ASSERT_TRUE(mu.try_lock());
  mu.unlock();
}

// --- /aio/multi/mutex/contended and /mutex/handoff --------------------------

// Each coroutine increments `counter` under the mutex and `atomic_counter`
// outside it; lost mutual exclusion makes them differ. atomic_counter is
// incremented after unlock, as QEMU's test does.
void RunContended(int threads, int coroutines_per_thread, int iterations) {
  IoThreads io(threads);
  ASSERT_EQ(io.size(), threads);
  CoMutex mu;
  int counter = 0;
  std::atomic<int> atomic_counter{0};
  std::vector<AioContext*> ctxs;
  for (int c = 0; c < coroutines_per_thread; ++c) {
    for (int t = 0; t < threads; ++t) ctxs.push_back(io.ctx(t));
  }
  RunCoroutines(ctxs, [&](int) {
    for (int i = 0; i < iterations; ++i) {
      mu.lock();
      ++counter;
      mu.unlock();
      atomic_counter.fetch_add(1, std::memory_order_relaxed);
    }
  });
  // The coroutines finished (RunCoroutines synchronises with each of them).
  EXPECT_EQ(counter, atomic_counter.load());
  EXPECT_EQ(counter, static_cast<int>(ctxs.size()) * iterations);
}

class CoMutexMultiThreadTest : public ::testing::TestWithParam<int> {};

TEST_P(CoMutexMultiThreadTest, Contended) {
  RunContended(GetParam(), /*coroutines_per_thread=*/1, Scaled(100000));
}

TEST_P(CoMutexMultiThreadTest, ContendedSeveralCoroutinesPerThread) {
  RunContended(GetParam(), /*coroutines_per_thread=*/4, Scaled(10000));
}

INSTANTIATE_TEST_SUITE_P(Threads, CoMutexMultiThreadTest,
                         ::testing::Values(2, 3, 4));

// Two threads, one coroutine each: the case that reaches the token hand-off
// (an unlocker finds a locker that has counted itself but not queued yet).
TEST(CoMutexHandoffTest, TwoThreads) {
  RunContended(2, /*coroutines_per_thread=*/1, Scaled(300000));
}

// A coroutine that migrates between contexts while holding the lock.
TEST(CoMutexTest, HolderMovesBetweenContexts) {
  IoThreads io(2);
  CoMutex mu;
  int counter = 0;
  std::atomic<int> atomic_counter{0};
  const int iterations = Scaled(2000);
  RunCoroutines({io.ctx(0), io.ctx(1), io.ctx(0), io.ctx(1)}, [&](int i) {
    for (int n = 0; n < iterations; ++n) {
      std::lock_guard<CoMutex> lock(mu);
      int seen = counter;
      CoRescheduleSelf(io.ctx((i + n) % 2));
      counter = seen + 1;
      atomic_counter.fetch_add(1, std::memory_order_relaxed);
    }
  });
  EXPECT_EQ(counter, atomic_counter.load());
  EXPECT_EQ(counter, 4 * iterations);
}

// --- misuse ----------------------------------------------------------------

using CoMutexDeathTest = ::testing::Test;

TEST_F(CoMutexDeathTest, LockOutsideCoroutine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        CoMutex mu;
        mu.lock();
      },
      "CoMutex::lock\\(\\) called outside a coroutine");
}

TEST_F(CoMutexDeathTest, CoroutineFinishesHoldingTheLock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        static CoMutex mu;
        Coroutine::Create([] { mu.lock(); })->Enter();
      },
      "finished while holding 1 coroutine lock");
}

TEST_F(CoMutexDeathTest, UnlockByNonHolder) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        CoMutex mu;
        Coroutine::Create([&] { mu.unlock(); })->Enter();
      },
      "CoMutex::unlock\\(\\) called by a coroutine that does not hold");
}

TEST_F(CoMutexDeathTest, AssertHeldByOtherCoroutine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        static CoMutex mu;
        Coroutine* holder = Coroutine::Create([] {
          mu.lock();
          Coroutine::Yield();
        });
        holder->Enter();
        Coroutine::Create([] { mu.AssertHeld(); })->Enter();
      },
      "CoMutex::AssertHeld\\(\\): mutex not held by the caller");
}

}  // namespace
}  // namespace aioco
