// Misuse of the coroutine API aborts with a message naming the misuse; a
// stack overflow into the guard page is reported as such.

#include <csignal>
#include <cstddef>
#include <cstdint>

#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"
#include "coroutine/internal/stack.h"
#include "gtest/gtest.h"

namespace aioco {
namespace {

using coroutine_internal::Access;


TEST(CoroutineDeathTest, EnteringTheRunningCoroutine) {
  EXPECT_DEATH(Coroutine::Create([] { Coroutine::Self()->Enter(); })->Enter(),
               "re-entered recursively");
}

TEST(CoroutineDeathTest, EnteringAnEnteredAncestor) {
  EXPECT_DEATH(
      {
        Coroutine* parent = nullptr;
        parent = Coroutine::Create([&parent] {
          Coroutine::Create([&parent] { parent->Enter(); })->Enter();
        });
        parent->Enter();
      },
      "re-entered recursively");
}

TEST(CoroutineDeathTest, EnteringAScheduledCoroutine) {
  EXPECT_DEATH(
      {
        Coroutine* co = Coroutine::Create([] {});
        const char* expected = nullptr;
        Access::scheduled(co).compare_exchange_strong(expected,
                                                      "TestScheduler");
        co->Enter();
      },
      "already scheduled in 'TestScheduler'");
}

TEST(CoroutineDeathTest, YieldOutsideACoroutine) {
  EXPECT_DEATH(Coroutine::Yield(), "Yield: called outside a coroutine");
}

TEST(CoroutineDeathTest, FinishingWithALockHeld) {
  EXPECT_DEATH(Coroutine::Create([] {
                 ++Access::locks_held(Coroutine::Self());
               })->Enter(),
               "finished while holding 1 coroutine lock");
}

TEST(CoroutineDeathTest, CreateAbortsPastTheMappingCap) {
  EXPECT_DEATH(
      {
        coroutine_internal::SetLiveGuardedCapForTesting(
            coroutine_internal::LiveGuardedStacks() + 1);
        CoroutineOptions own;  // not pooled: always a new stack
        own.stack_size = 64 * 1024;
        Coroutine::Create(own, [] {});
        Coroutine::Create(own, [] {});
      },
      "Coroutine::Create: too many live coroutines.*vm.max_map_count");
}

TEST(CoroutineDeathTest, CreateAbortsOnAnOversizedCallable) {
  struct Huge {
    unsigned char bytes[32 * 1024];
  };
  CoroutineOptions small;
  small.stack_size = 64 * 1024;
  EXPECT_DEATH(Coroutine::Create(small, [h = Huge()] { (void)h; }),
               "does not fit");
}

int Recurse(int n) {
  if (n < 0) return 0;  // never: keeps the compiler from proving the recursion infinite
  volatile char frame[1024];
  frame[0] = static_cast<char>(n);
  return Recurse(n + 1) + frame[0];
}

TEST(CoroutineDeathTest, StackOverflowIsReported) {
  CoroutineOptions small;
  small.stack_size = 64 * 1024;
  EXPECT_DEATH(Coroutine::Create(small, [] { Recurse(0); })->Enter(),
               "coroutine stack overflow: coroutine 0x[0-9a-f]+");
}

TEST(CoroutineDeathTest, StackOverflowOfADefaultCoroutineIsReported) {
  EXPECT_DEATH(Coroutine::Create([] { Recurse(0); })->Enter(),
               "coroutine stack overflow");
}

// A fault that is not a guard-page hit keeps its default behaviour.
TEST(CoroutineDeathTest, OtherFaultsAreNotReportedAsOverflow) {
  Coroutine::Create([] {})->Enter();  // the handler is installed by now
  auto fault = [] {
    // An unmapped address that is not null (UBSan would flag a null store).
    volatile uintptr_t addr = 64;
    *reinterpret_cast<volatile int*>(addr) = 1;
  };
#if defined(AIOCO_TEST_SANITIZER)
  // The sanitizer's own SEGV report (we chain to its handler).
  EXPECT_DEATH(Coroutine::Create(fault)->Enter(), "Sanitizer: SEGV");
#else
  EXPECT_EXIT(Coroutine::Create(fault)->Enter(),
              testing::KilledBySignal(SIGSEGV), "");
#endif
}

}  // namespace
}  // namespace aioco

// Re-executes the binary for each death test instead of forking: a forked
// child inherits pooled coroutines whose TSan fibers the sanitizer no longer
// tracks consistently after fork().
int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  return RUN_ALL_TESTS();
}
