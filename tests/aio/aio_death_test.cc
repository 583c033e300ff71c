// Misuse of //aio aborts with a message naming it: double scheduling of a
// coroutine, leaked bottom halves, destroying a context with a coroutine
// still scheduled on it, and coroutine-only / non-coroutine functions called
// from the wrong place.

#include <memory>

#include "aio/aio_context.h"
#include "aio/aio_wait.h"
#include "gtest/gtest.h"

namespace aioco {
namespace {

class AioDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

std::unique_ptr<AioContext> NewContext() {
  auto ctx = AioContext::Create();
  EXPECT_TRUE(ctx.ok()) << ctx.status();
  return std::move(*ctx);
}

TEST_F(AioDeathTest, DoubleScheduleNamesTheFirstScheduler) {
  EXPECT_DEATH(
      {
        auto ctx = NewContext();
        Coroutine* co = Coroutine::Create([] { Coroutine::Yield(); });
        co->Enter();
        ctx->CoSchedule(co);
        ctx->CoSchedule(co);
      },
      "CoSchedule: coroutine was already scheduled in 'CoSchedule'");
}

TEST_F(AioDeathTest, WakeOfAScheduledCoroutineAborts) {
  EXPECT_DEATH(
      {
        auto ctx = NewContext();
        auto other = NewContext();
        AioContext::SetCurrent(ctx.get());
        Coroutine* co = Coroutine::Create([] { Coroutine::Yield(); });
        co->Enter();  // co now belongs to ctx
        AioContext::SetCurrent(other.get());
        ctx->CoSchedule(co);
        CoWake(co);  // from another context: schedules again
      },
      "CoWake: coroutine was already scheduled in 'CoSchedule'");
}

TEST_F(AioDeathTest, LeakedBottomHalfIsNamed) {
  EXPECT_DEATH(
      {
        auto ctx = NewContext();
        ctx->NewBh([] {}, "leaky_bh");
        ctx.reset();
      },
      "BH 'leaky_bh' leaked, aborting");
}

TEST_F(AioDeathTest, ScheduledButNotDeletedBottomHalfLeaks) {
  EXPECT_DEATH(
      {
        auto ctx = NewContext();
        BottomHalf* keep = ctx->NewBh([] {}, "keep");
        keep->Delete();
        ctx->NewBh([] {}, "scheduled_bh")->Schedule();
        ctx.reset();
      },
      "BH 'scheduled_bh' leaked, aborting");
}

TEST_F(AioDeathTest, DestroyWithScheduledCoroutine) {
  EXPECT_DEATH(
      {
        auto ctx = NewContext();
        Coroutine* co = Coroutine::Create([] {});
        ctx->CoSchedule(co);
        ctx.reset();
      },
      "destroyed while a coroutine is scheduled on it");
}

TEST_F(AioDeathTest, CoRescheduleSelfOutsideCoroutine) {
  EXPECT_DEATH(
      {
        auto ctx = NewContext();
        CoRescheduleSelf(ctx.get());
      },
      "CoRescheduleSelf: called outside a coroutine");
}

TEST_F(AioDeathTest, CoRescheduleSelfWithoutEventLoop) {
  EXPECT_DEATH(
      {
        auto ctx = NewContext();
        AioContext* target = ctx.get();
        Coroutine::Create([target] { CoRescheduleSelf(target); })->Enter();
      },
      "CoRescheduleSelf: the calling thread runs no AioContext");
}

TEST_F(AioDeathTest, AioWaitWhileInCoroutine) {
  EXPECT_DEATH(
      {
        auto ctx = NewContext();
        AioContext* c = ctx.get();
        Coroutine::Create([c] { AioWaitWhile(c, [] { return false; }); })->Enter();
      },
      "AioWaitWhile: called from a coroutine");
}

TEST_F(AioDeathTest, CoEnterSelf) {
  EXPECT_DEATH(
      {
        auto ctx = NewContext();
        AioContext::SetCurrent(ctx.get());
        AioContext* c = ctx.get();
        Coroutine::Create([c] { c->CoEnter(Coroutine::Self()); })->Enter();
      },
      "CoEnter: a coroutine cannot enter itself");
}

TEST_F(AioDeathTest, SetFdHandlerOnClosedFd) {
  EXPECT_DEATH(
      {
        AioContextOptions opts;
        opts.fd_monitor = FdMonitorKind::kEpoll;
        auto ctx = AioContext::Create(opts);
        (*ctx)->SetFdHandler(1 << 20, [](void*) {}, nullptr, nullptr);
      },
      "SetFdHandler\\(fd=1048576\\)");
}

}  // namespace
}  // namespace aioco
