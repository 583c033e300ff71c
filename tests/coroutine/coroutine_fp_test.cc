// The floating-point control state (rounding mode; on x86-64 the MXCSR and
// x87 control words) across switches. By default it is per thread (shared
// by the coroutines a thread runs); --define=aioco_fp_control=coroutine makes
// the x86-64 switches keep it per coroutine, as the ABI treats it as
// callee-saved (see coroutine/coroutine.h).

#include <cfenv>

#include "coroutine/coroutine.h"
#include "gtest/gtest.h"

namespace aioco {
namespace {

// 1/3 rounded in the current mode (SSE arithmetic, so MXCSR decides). Only
// the per-coroutine test below uses it, and only some builds compile that.
[[maybe_unused]] double OneThird() {
  volatile double one = 1.0;
  volatile double three = 3.0;
  return one / three;
}

TEST(CoroutineFpTest, NewCoroutineStartsWithTheEnterersRoundingMode) {
  ASSERT_EQ(std::fesetround(FE_UPWARD), 0);
  int seen = -1;
  Coroutine::Create([&seen] { seen = std::fegetround(); })->Enter();
  std::fesetround(FE_TONEAREST);
  EXPECT_EQ(seen, FE_UPWARD);
}

#if defined(__x86_64__) && defined(AIOCO_TEST_FP_PER_COROUTINE) && \
    !defined(AIOCO_CONTEXT_UCONTEXT)
#define AIOCO_TEST_EXPECT_PER_COROUTINE 1
#endif

#if defined(AIOCO_TEST_EXPECT_PER_COROUTINE)
TEST(CoroutineFpTest, RoundingModeIsPerCoroutine) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  const double nearest = OneThird();
  double inside_before = 0;
  double inside_after = 0;
  int mode_after = -1;
  Coroutine* co = Coroutine::Create([&] {
    std::fesetround(FE_UPWARD);
    inside_before = OneThird();
    Coroutine::Yield();
    mode_after = std::fegetround();
    inside_after = OneThird();
    std::fesetround(FE_TONEAREST);
  });
  co->Enter();
  // The coroutine's mode did not leak into its caller...
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
  EXPECT_EQ(OneThird(), nearest);
  co->Enter();
  // ...and came back when it resumed.
  EXPECT_EQ(mode_after, FE_UPWARD);
  EXPECT_EQ(inside_after, inside_before);
  EXPECT_GT(inside_before, nearest);
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
}
#elif defined(__x86_64__)
// The documented default: a mode a coroutine sets is its thread's, so it is
// still in force when the coroutine yields (it must restore it itself).
TEST(CoroutineFpTest, RoundingModeIsPerThread) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  int mode_in_caller = -1;
  Coroutine* co = Coroutine::Create([] {
    std::fesetround(FE_UPWARD);
    Coroutine::Yield();
    std::fesetround(FE_TONEAREST);
  });
  co->Enter();
  mode_in_caller = std::fegetround();
  co->Enter();
  EXPECT_EQ(mode_in_caller, FE_UPWARD);
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
}
#endif

}  // namespace
}  // namespace aioco
