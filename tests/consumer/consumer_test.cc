// Compiled in a scratch consumer workspace by consumer_workspace_test.sh: uses
// only public headers and the @aioco//:aioco label, as API.md promises.
#include <atomic>
#include <memory>
#include <mutex>

#include "aio/aio_context.h"
#include "aio/io_thread.h"
#include "coroutine/coroutine.h"
#include "gtest/gtest.h"
#include "locks/co_mutex.h"
#include "locks/co_queue.h"
#include "locks/co_rwlock.h"
#include "locks/co_sleep.h"
#include "timers/clock.h"
#include "timers/timer.h"

namespace {

TEST(ConsumerTest, CoroutineYieldsAndResumes) {
  int steps = 0;
  aioco::Coroutine* co = aioco::Coroutine::Create([&] {
    ++steps;
    aioco::Coroutine::Yield();
    ++steps;
  });
  co->Enter();
  EXPECT_EQ(steps, 1);
  co->Enter();
  EXPECT_EQ(steps, 2);
}

TEST(ConsumerTest, CoroutineHopsToAnIoThreadAndBack) {
  auto ctx = aioco::AioContext::Create();
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  auto thread = aioco::IoThread::Create();
  ASSERT_TRUE(thread.ok()) << thread.status();
  aioco::AioContext* home = ctx->get();
  aioco::AioContext* remote = (*thread)->context();

  aioco::CoMutex mu;
  std::atomic<bool> done{false};
  aioco::AioContext* seen_remote = nullptr;
  aioco::AioContext* seen_home = nullptr;
  aioco::Coroutine* co = aioco::Coroutine::Create([&] {
    aioco::CoRescheduleSelf(remote);
    {
      std::lock_guard<aioco::CoMutex> lock(mu);
      seen_remote = aioco::AioContext::Current();
    }
    aioco::CoSleepNs(aioco::ClockType::kMonotonic, 1000);
    aioco::CoRescheduleSelf(home);
    seen_home = aioco::AioContext::Current();
    done = true;
  });
  home->CoEnter(co);
  aioco::AioWaitWhile(home, [&] { return !done.load(); });
  EXPECT_EQ(seen_remote, remote);
  EXPECT_EQ(seen_home, home);
}

}  // namespace
