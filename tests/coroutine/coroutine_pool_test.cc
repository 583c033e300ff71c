// Coroutine pools: reuse, the local/global split, runtime tuning from
// several threads, and the local pool's release at thread exit.

#include <array>
#include <atomic>
#include <thread>
#include <vector>

#include "coroutine/coroutine.h"
#include "coroutine/internal/stack.h"
#include "gtest/gtest.h"

namespace aioco {
namespace {

// Sanitizer builds scale down: every new stack there is also a TSan fiber,
// which costs milliseconds to create.
#if defined(AIOCO_TEST_SANITIZER)
constexpr int kLifecycles = 5000;
constexpr int kBigBurst = 400;    // > two local batches
constexpr unsigned kRaise = 300;  // pool limit raise for kRaisedBurst
constexpr int kRaisedBurst = 700;
constexpr int kThreadBurst = 200;
constexpr int kRounds = 4;
#else
constexpr int kLifecycles = 1000000;
constexpr int kBigBurst = 1000;
constexpr unsigned kRaise = 1000;
constexpr int kRaisedBurst = 1500;
constexpr int kThreadBurst = 300;
constexpr int kRounds = 100;
#endif

void Nothing(void*) {}

// Finishes `n` coroutines that were all alive at once.
void RunBurst(int n) {
  std::vector<Coroutine*> live;
  live.reserve(n);
  for (int i = 0; i < n; ++i) {
    Coroutine* co = Coroutine::Create([] { Coroutine::Yield(); });
    co->Enter();
    live.push_back(co);
  }
  for (Coroutine* co : live) co->Enter();
}

TEST(CoroutinePoolTest, LifecyclesReuseOneStack) {
  Coroutine::Create(&Nothing, nullptr)->Enter();  // warm the pool
  CoroutinePoolStats before = GetCoroutinePoolStats();
  for (int i = 0; i < kLifecycles; ++i) {
    Coroutine::Create(&Nothing, nullptr)->Enter();
  }
  CoroutinePoolStats after = GetCoroutinePoolStats();
  EXPECT_EQ(after.created, before.created);
  EXPECT_EQ(after.reused - before.reused, static_cast<size_t>(kLifecycles));
}

TEST(CoroutinePoolTest, CallableLifecyclesReuseToo) {
  Coroutine::Create([] {})->Enter();
  CoroutinePoolStats before = GetCoroutinePoolStats();
  int sum = 0;
  for (int i = 0; i < kLifecycles / 10; ++i) {
    Coroutine::Create([&sum, i] { sum += i & 1; })->Enter();
  }
  EXPECT_EQ(sum, kLifecycles / 20);
  EXPECT_EQ(GetCoroutinePoolStats().created, before.created);
}

// A pooled coroutine's next run reuses its parked start frame when the new
// callable fits above it and gets a new frame when a bigger one reaches
// into it; either way each run sees its own entry, opaque and callable.
TEST(CoroutinePoolTest, ReuseWithCallablesOfDifferentSizes) {
  Coroutine::Create(&Nothing, nullptr)->Enter();  // warm the pool
  const CoroutinePoolStats before = GetCoroutinePoolStats();
  constexpr int kRuns = 64;
  long sum = 0;
  long expected = 0;
  for (int i = 0; i < kRuns; ++i) {
    if (i % 3 == 0) {
      std::array<long, 1024> big{};  // 8 KiB: below the parked frame
      big.fill(i);
      Coroutine* co = Coroutine::Create([big, &sum] {
        Coroutine::Yield();
        for (long v : big) sum += v;
      });
      co->Enter();
      co->Enter();
      expected += 1024L * i;
    } else if (i % 3 == 1) {
      Coroutine::Create([i, &sum] { sum += i; })->Enter();
      expected += i;
    } else {
      auto add = [](void* opaque) { ++*static_cast<long*>(opaque); };
      Coroutine::Create(add, &sum)->Enter();
      expected += 1;
    }
  }
  EXPECT_EQ(sum, expected);
  EXPECT_EQ(GetCoroutinePoolStats().created, before.created);
}

TEST(CoroutinePoolTest, LocalPoolHoldsTwoBatchesAndOverflowsGlobally) {
  // Run everything on a fresh thread so its local pool starts empty.
  std::thread([] {
    const size_t limit = GetCoroutinePoolStats().max_global;
    RunBurst(kBigBurst);
    CoroutinePoolStats s = GetCoroutinePoolStats();
    EXPECT_LE(s.local_free, 256u);
    EXPECT_GE(s.local_free, 129u);  // two batches, the head one partly full
    EXPECT_GT(s.global_free, 0u);
    // The global pool takes whole batches while under its limit, so it may
    // overshoot by less than one batch.
    EXPECT_LT(s.global_free, limit + 128);
    // The next burst is served from the pools before any new stack.
    size_t created = s.created;
    size_t pooled = s.local_free + s.global_free;
    RunBurst(static_cast<int>(pooled));
    EXPECT_EQ(GetCoroutinePoolStats().created, created);
  }).join();
}

// The global pool is split into domains (NUMA nodes under IoThreadGroup): a
// thread overflows into and refills from its own domain's list only.
TEST(CoroutinePoolTest, DomainsKeepTheirStacks) {
  EXPECT_EQ(Coroutine::ThreadPoolDomain(), 0u);
  Coroutine::IncPoolSize(kRaise);  // room: the overflow must be kept
  size_t domain3 = 0;
  std::thread([&domain3] {
    Coroutine::SetThreadPoolDomain(3);
    EXPECT_EQ(Coroutine::ThreadPoolDomain(), 3u);
    RunBurst(kBigBurst);
    domain3 = GetCoroutinePoolDomainFree();
  }).join();
  EXPECT_GE(domain3, 128u);
  std::thread([domain3] {
    Coroutine::SetThreadPoolDomain(5);
    const CoroutinePoolStats s = GetCoroutinePoolStats();
    EXPECT_EQ(GetCoroutinePoolDomainFree(), 0u);
    EXPECT_GE(s.global_free, domain3);
    Coroutine::Create(&Nothing, nullptr)->Enter();  // a new stack
    const CoroutinePoolStats t = GetCoroutinePoolStats();
    EXPECT_EQ(t.created, s.created + 1);
    EXPECT_EQ(t.reused, s.reused);
    EXPECT_EQ(GetCoroutinePoolDomainFree(), 0u);
  }).join();
  std::thread([domain3] {
    Coroutine::SetThreadPoolDomain(3 + Coroutine::kMaxPoolDomains);  // modulo
    EXPECT_EQ(Coroutine::ThreadPoolDomain(), 3u);
    const CoroutinePoolStats s = GetCoroutinePoolStats();
    EXPECT_EQ(GetCoroutinePoolDomainFree(), domain3);
    Coroutine::Create(&Nothing, nullptr)->Enter();  // a batch from domain 3
    const CoroutinePoolStats t = GetCoroutinePoolStats();
    EXPECT_EQ(t.created, s.created);
    EXPECT_EQ(t.reused, s.reused + 1);
    EXPECT_EQ(GetCoroutinePoolDomainFree(), domain3 - 128);
  }).join();
  Coroutine::DecPoolSize(kRaise);
}

TEST(CoroutinePoolTest, IncAndDecMoveTheGlobalLimit) {
  const size_t base = GetCoroutinePoolStats().max_global;
  Coroutine::IncPoolSize(kRaise);
  EXPECT_EQ(GetCoroutinePoolStats().max_global, base + kRaise);
  std::thread([] { RunBurst(kRaisedBurst); }).join();
  // That thread overflowed batches into the raised global pool.
  EXPECT_GT(GetCoroutinePoolStats().global_free, base);
  Coroutine::DecPoolSize(kRaise);
  CoroutinePoolStats s = GetCoroutinePoolStats();
  EXPECT_EQ(s.max_global, base);
  EXPECT_LE(s.global_free, base);  // shrinking releases excess batches
}

TEST(CoroutinePoolTest, TuningFromSeveralThreadsAtOnce) {
  const size_t base = GetCoroutinePoolStats().max_global;
  constexpr int kThreads = 4;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &errors] {
      for (int r = 0; r < kRounds; ++r) {
        Coroutine::IncPoolSize(64 * (t + 1));
        RunBurst(kThreadBurst);  // overflows batches while others tune
        CoroutinePoolStats s = GetCoroutinePoolStats();
        if (s.local_free > 256) errors.fetch_add(1);
        Coroutine::DecPoolSize(64 * (t + 1));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  CoroutinePoolStats s = GetCoroutinePoolStats();
  EXPECT_EQ(s.max_global, base);
  EXPECT_LT(s.global_free, base + 128);
}

TEST(CoroutinePoolTest, ThreadExitFreesTheLocalPool) {
  const size_t live_before = coroutine_internal::LiveGuardedStacks();
  const size_t global_before = GetCoroutinePoolStats().global_free;
  size_t local_in_thread = 0;
  std::thread([&] {
    RunBurst(200);
    local_in_thread = GetCoroutinePoolStats().local_free;
  }).join();
  EXPECT_GT(local_in_thread, 0u);
  // Every stack the thread created is either in the global pool or unmapped.
  const size_t live_after = coroutine_internal::LiveGuardedStacks();
  const size_t global_after = GetCoroutinePoolStats().global_free;
  EXPECT_EQ(live_after - live_before, global_after - global_before);
}

TEST(CoroutinePoolTest, UnpooledStacksAreUnmappedWhenTheyFinish) {
  const size_t live_before = coroutine_internal::LiveGuardedStacks();
  CoroutineOptions own;
  own.stack_size = 128 * 1024;
  Coroutine* co = Coroutine::Create(own, [] { Coroutine::Yield(); });
  co->Enter();
  EXPECT_EQ(coroutine_internal::LiveGuardedStacks(), live_before + 1);
  co->Enter();
  EXPECT_EQ(coroutine_internal::LiveGuardedStacks(), live_before);
}

}  // namespace
}  // namespace aioco
