// The floating-point control state (rounding mode; on x86-64 the MXCSR and
// x87 control words) across switches. The default assembly switch keeps it
// per coroutine, as the ABI treats it as callee-saved; the other backends
// keep it per thread (documented in coroutine/internal/context.h).

#include <cfenv>

#include "coroutine/coroutine.h"
#include "gtest/gtest.h"

namespace aioco {
namespace {

// 1/3 rounded in the current mode (SSE arithmetic, so MXCSR decides).
double OneThird() {
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

#if defined(__x86_64__) && !defined(AIOCO_TEST_FP_PER_THREAD)
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
#endif

}  // namespace
}  // namespace aioco
