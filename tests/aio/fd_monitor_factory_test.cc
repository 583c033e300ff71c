// Backend selection: kAuto prefers io_uring and falls back to epoll (forced
// with AIOCO_DISABLE_IO_URING=1); an explicit backend that cannot be used is
// an error from AioContext::Create(). Also each backend's watch of the
// context's own eventfd (AddNotifier): edge-triggered on epoll and io_uring
// (reported per write, never drained), level-triggered on poll.

#include <fcntl.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "aio/aio_context.h"
#include "aio/fd_monitor_kind.h"
#include "aio/internal/fd_monitor.h"
#include "gtest/gtest.h"

namespace aioco {
namespace {

bool IoUringWorksHere() {
  return aio_internal::NewIoUringMonitor([](aio_internal::AioHandler*) {}).ok();
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = getenv(name);
    had_old_ = old != nullptr;
    if (had_old_) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_old_) {
      setenv(name_, old_.c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  bool had_old_;
  std::string old_;
};

TEST(FdMonitorFactoryTest, Names) {
  EXPECT_EQ(FdMonitorKindName(FdMonitorKind::kAuto), "auto");
  EXPECT_EQ(FdMonitorKindName(FdMonitorKind::kEpoll), "epoll");
  EXPECT_EQ(FdMonitorKindName(FdMonitorKind::kIoUring), "io_uring");
  EXPECT_EQ(FdMonitorKindName(FdMonitorKind::kPoll), "poll");
}

TEST(FdMonitorFactoryTest, AutoPrefersIoUring) {
  ScopedEnv env("AIOCO_DISABLE_IO_URING", "0");
  auto ctx = AioContext::Create();
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  EXPECT_EQ((*ctx)->fd_monitor(), IoUringWorksHere() ? FdMonitorKind::kIoUring : FdMonitorKind::kEpoll);
}

TEST(FdMonitorFactoryTest, EnvironmentForcesFallbackToEpoll) {
  ScopedEnv env("AIOCO_DISABLE_IO_URING", "1");
  auto ctx = AioContext::Create();
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  EXPECT_EQ((*ctx)->fd_monitor(), FdMonitorKind::kEpoll);
  // An explicit request for the disabled backend is an error, not a
  // silent fallback.
  AioContextOptions opts;
  opts.fd_monitor = FdMonitorKind::kIoUring;
  auto uring = AioContext::Create(opts);
  ASSERT_FALSE(uring.ok());
  EXPECT_EQ(uring.status().code(), absl::StatusCode::kUnavailable);
}

TEST(FdMonitorFactoryTest, ExplicitKindsAreHonoured) {
  ScopedEnv env("AIOCO_DISABLE_IO_URING", "0");
  for (FdMonitorKind kind : {FdMonitorKind::kEpoll, FdMonitorKind::kPoll}) {
    AioContextOptions opts;
    opts.fd_monitor = kind;
    auto ctx = AioContext::Create(opts);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    EXPECT_EQ((*ctx)->fd_monitor(), kind);
  }
  AioContextOptions opts;
  opts.fd_monitor = FdMonitorKind::kIoUring;
  auto ctx = AioContext::Create(opts);
  if (IoUringWorksHere()) {
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    EXPECT_EQ((*ctx)->fd_monitor(), FdMonitorKind::kIoUring);
  } else {
    EXPECT_FALSE(ctx.ok());
  }
}

TEST(FdMonitorFactoryTest, InvalidPollParameters) {
  AioContextOptions opts;
  opts.poll_max_ns = -1;
  EXPECT_EQ(AioContext::Create(opts).status().code(), absl::StatusCode::kInvalidArgument);
  opts.poll_max_ns = 0;
  opts.reply_poll_ns = -1;
  EXPECT_EQ(AioContext::Create(opts).status().code(), absl::StatusCode::kInvalidArgument);
}

// --- The notifier eventfd, per backend ----------------------------------------

class NotifierTest : public ::testing::TestWithParam<FdMonitorKind> {};

TEST_P(NotifierTest, ReportedOncePerWriteWhenEdgeTriggered) {
  absl::StatusOr<std::unique_ptr<aio_internal::FdMonitor>> m =
      aio_internal::NewFdMonitor(GetParam(), [](aio_internal::AioHandler*) {});
  if (!m.ok()) GTEST_SKIP() << "backend unavailable here: " << m.status();
  aio_internal::FdMonitor& monitor = **m;
  const int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(efd, 0);
  aio_internal::AioHandler h;
  h.fd = efd;
  h.events = aio_internal::kEventRead;
  ASSERT_EQ(monitor.AddNotifier(&h), 0);
  const bool edge = monitor.NotifierEdgeTriggered();
  EXPECT_EQ(edge, GetParam() != FdMonitorKind::kPoll);
  auto wait = [&monitor, &h](int64_t timeout_ns) {
    aio_internal::ReadyList ready;
    int n = monitor.Wait(timeout_ns, &ready);
    EXPECT_TRUE(n == 0 || (n == 1 && ready.head == &h && ready.tail == &h)) << n;
    h.revents = 0;
    return n;
  };
  EXPECT_EQ(wait(0), 0);
  const uint64_t one = 1;
  for (int round = 0; round < 4; ++round) {
    ASSERT_EQ(write(efd, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
    EXPECT_EQ(wait(-1), 1) << round;
    // Not drained: an edge-triggered watch stays quiet until the next
    // write, a level-triggered one reports it again.
    EXPECT_EQ(wait(0), edge ? 0 : 1) << round;
  }
  monitor.Remove(&h);
  close(efd);
}

// --- EventsPending(), per backend -------------------------------------------

class EventsPendingTest : public ::testing::TestWithParam<FdMonitorKind> {};

// EventsPending(): false while nothing is ready, true once a watched fd is
// (also for a handler that was just reported, whose io_uring poll is re-armed
// only by the next Wait()), and the event is still reported by Wait()
// afterwards: looking consumes nothing. The poll backend always says false.
TEST_P(EventsPendingTest, LooksWithoutConsuming) {
  absl::StatusOr<std::unique_ptr<aio_internal::FdMonitor>> m =
      aio_internal::NewFdMonitor(GetParam(), [](aio_internal::AioHandler*) {});
  if (!m.ok()) GTEST_SKIP() << "backend unavailable here: " << m.status();
  aio_internal::FdMonitor& monitor = **m;
  const bool can_tell = GetParam() != FdMonitorKind::kPoll;
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  aio_internal::AioHandler h;
  h.fd = p[0];
  h.events = aio_internal::kEventRead;
  ASSERT_EQ(monitor.Add(&h), 0);
  auto wait0 = [&monitor] {
    aio_internal::ReadyList ready;
    return monitor.Wait(0, &ready);
  };
  EXPECT_EQ(wait0(), 0);
  EXPECT_FALSE(monitor.EventsPending());
  char c = 'x';
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(write(p[1], &c, 1), 1);
    EXPECT_EQ(monitor.EventsPending(), can_tell) << round;
    EXPECT_EQ(monitor.EventsPending(), can_tell) << round;  // still there
    EXPECT_EQ(wait0(), 1) << round;                         // not consumed
    ASSERT_EQ(read(p[0], &c, 1), 1);
    // Drained: nothing pending, though (io_uring) the handler waits to be
    // re-armed; EventsPending() arms it, and the next write shows.
    EXPECT_FALSE(monitor.EventsPending()) << round;
  }
  monitor.Remove(&h);
  close(p[0]);
  close(p[1]);
}

std::string BackendName(const ::testing::TestParamInfo<FdMonitorKind>& info) {
  return std::string(FdMonitorKindName(info.param));
}

INSTANTIATE_TEST_SUITE_P(Backends, NotifierTest,
                         ::testing::Values(FdMonitorKind::kEpoll, FdMonitorKind::kIoUring,
                                           FdMonitorKind::kPoll),
                         BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, EventsPendingTest,
                         ::testing::Values(FdMonitorKind::kEpoll, FdMonitorKind::kIoUring,
                                           FdMonitorKind::kPoll),
                         BackendName);

}  // namespace
}  // namespace aioco
