// Backend selection: kAuto prefers io_uring and falls back to epoll (forced
// with AIOCO_DISABLE_IO_URING=1); an explicit backend that cannot be used is
// an error from AioContext::Create().

#include <stdlib.h>

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

}  // namespace
}  // namespace aioco
