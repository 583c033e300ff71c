// -----------------------------------------------------------------------------
// File: tests/aio/aio_test_util.h
// -----------------------------------------------------------------------------
//
// Helpers shared by the //aio tests: an eventfd "event notifier" (QEMU's
// EventNotifier in test-aio.c), the fd-monitor parameter list with io_uring
// skip logic, a fixture that runs each test on a fresh AioContext per fd
// monitor, and iteration scaling under sanitizers.
//
// Thread safety: TestNotifier is thread-safe (eventfd system calls).
// AioContextOnMonitorTest is home-thread-only: its context is the test
// thread's current context from SetUp() to TearDown().

#ifndef AIOCO_TESTS_AIO_AIO_TEST_UTIL_H_
#define AIOCO_TESTS_AIO_AIO_TEST_UTIL_H_

#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "aio/aio_context.h"
#include "aio/fd_monitor_kind.h"
#include "aio/internal/fd_monitor.h"
#include "gtest/gtest.h"

namespace aioco {
namespace testing_internal {

// Iteration counts are divided by this under ASan/TSan (set by the BUILD
// file from the //:asan and //:tsan config settings).
#if defined(AIOCO_TEST_SANITIZER)
inline constexpr int kSanitizerScale = 20;
#else
inline constexpr int kSanitizerScale = 1;
#endif

inline int Scaled(int n) { return n / kSanitizerScale > 0 ? n / kSanitizerScale : 1; }

// An eventfd with QEMU EventNotifier semantics.
class TestNotifier {
 public:
  TestNotifier() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~TestNotifier() { close(fd_); }
  TestNotifier(const TestNotifier&) = delete;
  TestNotifier& operator=(const TestNotifier&) = delete;
  int fd() const { return fd_; }
  void Set() {
    uint64_t one = 1;
    ssize_t r = write(fd_, &one, sizeof(one));
    (void)r;
  }
  bool TestAndClear() {
    uint64_t v = 0;
    return read(fd_, &v, sizeof(v)) == sizeof(v) && v != 0;
  }

 private:
  int fd_;
};

// QEMU test-aio.c's EventNotifierTestData and its read handler: counts
// calls, consumes the event, and (auto_set) re-arms it while `active` lasts.
struct EventTestData {
  TestNotifier e;
  int n = 0;
  int active = 0;
  bool auto_set = false;
};

inline void EventReadyCb(void* opaque) {
  auto* d = static_cast<EventTestData*>(opaque);
  EXPECT_TRUE(d->e.TestAndClear());
  d->n++;
  if (d->active > 0) d->active--;
  if (d->auto_set && d->active) d->e.Set();
}

inline std::vector<FdMonitorKind> AllMonitorKinds() {
  return {FdMonitorKind::kEpoll, FdMonitorKind::kPoll, FdMonitorKind::kIoUring};
}

inline std::string MonitorKindParamName(const ::testing::TestParamInfo<FdMonitorKind>& info) {
  return std::string(FdMonitorKindName(info.param));
}

// OK if `kind` can be used here; otherwise the reason (for GTEST_SKIP).
inline absl::Status MonitorAvailable(FdMonitorKind kind) {
  if (kind != FdMonitorKind::kIoUring) return absl::OkStatus();
  auto m = aio_internal::NewIoUringMonitor([](aio_internal::AioHandler*) {});
  return m.ok() ? absl::OkStatus() : m.status();
}

// Parameterized by fd monitor: SetUp() creates `ctx_` on GetParam() and
// makes it this thread's current context, as QEMU's main loop does, or
// skips the test where that monitor is unavailable here. A fixture that
// extends SetUp() calls this one first and returns if IsSkipped() or
// HasFatalFailure().
class AioContextOnMonitorTest : public ::testing::TestWithParam<FdMonitorKind> {
 protected:
  void SetUp() override {
    absl::Status available = MonitorAvailable(GetParam());
    if (!available.ok()) GTEST_SKIP() << "fd monitor unavailable: " << available;
    AioContextOptions opts;
    opts.fd_monitor = GetParam();
    auto ctx = AioContext::Create(opts);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    ctx_ = std::move(*ctx);
    ASSERT_EQ(ctx_->fd_monitor(), GetParam());
    AioContext::SetCurrent(ctx_.get());
  }
  void TearDown() override {
    AioContext::SetCurrent(nullptr);
    ctx_.reset();
  }

  std::unique_ptr<AioContext> ctx_;
};

}  // namespace testing_internal
}  // namespace aioco

#endif  // AIOCO_TESTS_AIO_AIO_TEST_UTIL_H_
