// AioContext::EventFd(): the context embedded in a foreign poll() loop. A
// port of QEMU's tests/unit/test-aio.c /aio-gsource/* cases, with a plain
// poll() loop in the role of the glib main loop: one "iteration" polls the
// EventFd() and, when it is readable, runs Poll(false).

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "aio/aio_context.h"
#include "gtest/gtest.h"
#include "tests/aio/aio_test_util.h"
#include "timers/clock.h"
#include "timers/timer.h"

namespace aioco {
namespace {

using testing_internal::EventReadyCb;
using testing_internal::EventTestData;

class EventFdTest : public testing_internal::AioContextOnMonitorTest {
 protected:
  void SetUp() override {
    AioContextOnMonitorTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    fd_ = ctx_->EventFd();
    ASSERT_GE(fd_, 0);
    EXPECT_EQ(ctx_->EventFd(), fd_);  // stable
    while (Iterate(false)) {
    }
  }

  // One iteration of the foreign loop; true if the context made progress.
  bool Iterate(bool blocking) {
    struct pollfd p = {fd_, POLLIN, 0};
    int r = poll(&p, 1, blocking ? -1 : 0);
    if (r <= 0) return false;
    return ctx_->Poll(false);
  }
  bool Readable() {
    struct pollfd p = {fd_, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
  }

  int fd_ = -1;
};

struct BhTestData {
  BottomHalf* bh = nullptr;
  int n = 0;
  int max = 0;
};

TEST_P(EventFdTest, Flush) {
  EXPECT_FALSE(Iterate(false));
  ctx_->Notify();
  while (Iterate(false)) {
  }
  EXPECT_FALSE(Iterate(false));
  EXPECT_FALSE(Readable());
}

TEST_P(EventFdTest, BhSchedule) {
  BhTestData d;
  d.bh = ctx_->NewBh([&d] { ++d.n; }, "test");
  d.bh->Schedule();
  EXPECT_TRUE(Readable());
  EXPECT_TRUE(Iterate(true));
  EXPECT_EQ(d.n, 1);
  EXPECT_FALSE(Iterate(false));
  d.bh->Delete();
}

TEST_P(EventFdTest, BhSchedule10) {
  BhTestData d;
  d.max = 10;
  d.bh = ctx_->NewBh(
      [&d] {
        if (++d.n < d.max) d.bh->Schedule();
      },
      "test");
  d.bh->Schedule();
  EXPECT_TRUE(Iterate(false));
  EXPECT_EQ(d.n, 1);
  EXPECT_TRUE(Iterate(true));
  EXPECT_EQ(d.n, 2);
  while (Iterate(false)) {
  }
  EXPECT_EQ(d.n, 10);
  EXPECT_FALSE(Iterate(false));
  d.bh->Delete();
}

TEST_P(EventFdTest, BhCancelAndDelete) {
  int n = 0;
  BottomHalf* a = ctx_->NewBh([&n] { ++n; }, "a");
  a->Schedule();
  a->Cancel();
  while (Iterate(false)) {
  }
  EXPECT_EQ(n, 0);
  BottomHalf* b = ctx_->NewBh([&n] { ++n; }, "b");
  b->Schedule();
  b->Delete();
  while (Iterate(false)) {
  }
  EXPECT_EQ(n, 0);
  a->Delete();
  // The delete's notification may cost one extra iteration; then quiet.
  Iterate(false);
  EXPECT_FALSE(Iterate(false));
}

TEST_P(EventFdTest, BhCallbackDeleteMany) {
  BhTestData d[4];
  const int max[4] = {1, 3, 2, 4};
  for (int i = 0; i < 4; ++i) {
    BhTestData* p = &d[i];
    p->max = max[i];
    p->bh = ctx_->NewBh(
        [p] {
          if (++p->n < p->max) {
            p->bh->Schedule();
          } else {
            p->bh->Delete();
            p->bh = nullptr;
          }
        },
        "test");
  }
  for (auto& x : d) x.bh->Schedule();
  EXPECT_TRUE(Iterate(false));
  for (auto& x : d) EXPECT_EQ(x.n, 1);
  while (Iterate(false)) {
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(d[i].n, max[i]);
    EXPECT_EQ(d[i].bh, nullptr);
  }
}

TEST_P(EventFdTest, EventWait) {
  EventTestData d;
  d.active = 1;
  ctx_->SetFdHandler(d.e.fd(), EventReadyCb, nullptr, &d);
  while (Iterate(false)) {
  }
  EXPECT_EQ(d.n, 0);
  EXPECT_FALSE(Readable());
  d.e.Set();
  EXPECT_TRUE(Readable());  // an fd registered after EventFd() is covered
  EXPECT_TRUE(Iterate(true));
  EXPECT_EQ(d.n, 1);
  EXPECT_EQ(d.active, 0);
  EXPECT_FALSE(Iterate(false));
  ctx_->SetFdHandler(d.e.fd(), nullptr, nullptr, nullptr);
  while (Iterate(false)) {
  }
  d.e.Set();
  EXPECT_FALSE(Iterate(false));  // removed handlers no longer wake the loop
  EXPECT_EQ(d.n, 1);
}

TEST_P(EventFdTest, EventFlush) {
  EventTestData d;
  d.active = 10;
  d.auto_set = true;
  ctx_->SetFdHandler(d.e.fd(), EventReadyCb, nullptr, &d);
  while (Iterate(false)) {
  }
  EXPECT_EQ(d.n, 0);
  d.e.Set();
  EXPECT_TRUE(Iterate(false));
  EXPECT_EQ(d.n, 1);
  EXPECT_EQ(d.active, 9);
  while (d.active) Iterate(true);
  EXPECT_EQ(d.n, 10);
  EXPECT_FALSE(Iterate(false));
  ctx_->SetFdHandler(d.e.fd(), nullptr, nullptr, nullptr);
}

TEST_P(EventFdTest, HandlersRegisteredBeforeEventFdAreCovered) {
  AioContextOptions opts;
  opts.fd_monitor = GetParam();
  auto ctx = AioContext::Create(opts);
  ASSERT_TRUE(ctx.ok());
  EventTestData d;
  (*ctx)->SetFdHandler(d.e.fd(), EventReadyCb, nullptr, &d);
  int fd = (*ctx)->EventFd();
  while ((*ctx)->Poll(false)) {
  }
  d.e.Set();
  struct pollfd p = {fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, -1), 1);
  EXPECT_TRUE((*ctx)->Poll(false));
  EXPECT_EQ(d.n, 1);
  (*ctx)->SetFdHandler(d.e.fd(), nullptr, nullptr, nullptr);
}

TEST_P(EventFdTest, TimerSchedule) {
  constexpr int64_t kNs = 100 * 1000 * 1000;
  int n = 0;
  std::unique_ptr<Timer> timer;
  int64_t expiry = 0;
  timer = ctx_->NewTimer(ClockType::kMonotonic, [&] {
    if (++n < 2) {
      expiry = ClockNs(ClockType::kMonotonic) + kNs;
      timer->ModNs(expiry);
    }
  });
  expiry = ClockNs(ClockType::kMonotonic) + kNs;
  timer->ModNs(expiry);
  while (Iterate(false)) {
  }
  std::this_thread::sleep_for(std::chrono::nanoseconds(kNs + kNs / 2));
  EXPECT_EQ(n, 0);
  EXPECT_TRUE(Readable());  // the expired timer shows on the fd
  EXPECT_TRUE(Iterate(true));
  EXPECT_EQ(n, 1);
  while (n < 2) Iterate(true);
  // The second run happened no earlier than its deadline.
  EXPECT_GE(ClockNs(ClockType::kMonotonic), expiry);
  EXPECT_FALSE(Iterate(false));
  EXPECT_FALSE(Readable());
}

TEST_P(EventFdTest, CrossThreadWorkWakesForeignLoop) {
  std::atomic<int> n{0};
  constexpr int kRounds = 50;
  std::thread t([&] {
    for (int i = 0; i < kRounds; ++i) {
      int before = n.load();
      ctx_->ScheduleOneshot([&n] { n.fetch_add(1); });
      while (n.load() == before) std::this_thread::yield();
    }
  });
  while (n.load() < kRounds) Iterate(true);
  t.join();
  EXPECT_EQ(n.load(), kRounds);
}

TEST_P(EventFdTest, CoroutineScheduledFromAnotherThread) {
  bool ran = false;
  Coroutine* co = Coroutine::Create([&ran] { ran = true; });
  std::thread t([&] { ctx_->CoSchedule(co); });
  t.join();
  while (!ran) Iterate(true);
  EXPECT_TRUE(ran);
}

TEST_P(EventFdTest, RegularFileKeepsEventFdReadable) {
  char path[] = "/tmp/aioco_embed_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  int n = 0;
  ctx_->SetFdHandler(fd, [](void* o) { ++*static_cast<int*>(o); }, nullptr, &n);
  EXPECT_TRUE(Iterate(true));
  EXPECT_TRUE(Iterate(true));
  EXPECT_EQ(n, 2);
  ctx_->SetFdHandler(fd, nullptr, nullptr, nullptr);
  while (Iterate(false)) {
  }
  EXPECT_FALSE(Readable());
  close(fd);
}

INSTANTIATE_TEST_SUITE_P(Monitors, EventFdTest,
                         ::testing::ValuesIn(testing_internal::AllMonitorKinds()),
                         testing_internal::MonitorKindParamName);

}  // namespace
}  // namespace aioco
