// Tests of the io_uring FdMonitor backend through the FdMonitor interface:
// level-triggered readiness, modify (cancel + re-add), deferred removal
// while a poll is in flight, many fds (SQ and CQ overflow), destruction with
// removals in flight, signals during a blocking Wait(), and the init probe
// refusing io_uring under a seccomp filter. Every test is skipped (not
// passed) where the kernel does not let us use io_uring.

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "aio/fd_monitor_kind.h"
#include "aio/internal/fd_monitor.h"
#include "gtest/gtest.h"

namespace aioco {
namespace aio_internal {
namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
      r = fds[0];
      w = fds[1];
    }
  }
  ~Pipe() {
    if (r >= 0) close(r);
    if (w >= 0) close(w);
  }
  void Put() {
    char c = 'x';
    ASSERT_EQ(write(w, &c, 1), 1);
  }
  void Drain() {
    char buf[64];
    while (read(r, buf, sizeof(buf)) > 0) {
    }
  }
};

// `n` pipes, or fewer if the process runs out of fds.
std::vector<std::unique_ptr<Pipe>> OpenPipes(int n) {
  std::vector<std::unique_ptr<Pipe>> pipes;
  for (int i = 0; i < n; ++i) {
    auto p = std::make_unique<Pipe>();
    if (p->r < 0) break;
    pipes.push_back(std::move(p));
  }
  return pipes;
}

std::vector<AioHandler*> ToVector(const ReadyList& ready) {
  std::vector<AioHandler*> v;
  for (AioHandler* h = ready.head; h != nullptr; h = h->ready_next) v.push_back(h);
  return v;
}

class IoUringMonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FdMonitor>> m =
        NewIoUringMonitor([this](AioHandler* h) { released_.push_back(h); });
    if (!m.ok()) GTEST_SKIP() << "io_uring unavailable here: " << m.status();
    monitor_ = std::move(*m);
  }

  // Wait(timeout) into a fresh list; checks the count and no duplicates.
  std::vector<AioHandler*> WaitReady(int64_t timeout_ns) {
    ReadyList ready;
    int n = monitor_->Wait(timeout_ns, &ready);
    std::vector<AioHandler*> v = ToVector(ready);
    EXPECT_GE(n, 0);
    EXPECT_EQ(static_cast<size_t>(n), v.size());
    EXPECT_EQ(std::set<AioHandler*>(v.begin(), v.end()).size(), v.size()) << "duplicate";
    return v;
  }

  // Points `h` at `fd` with interest `events` and adds it; returns Add()'s
  // result (0 or -errno) for the caller to assert on.
  int Watch(AioHandler* h, int fd, uint32_t events) {
    h->fd = fd;
    h->events = events;
    return monitor_->Add(h);
  }

  // Removes `h`; if that is deferred, waits (bounded) for its release.
  void RemoveAndSettle(AioHandler* h) {
    if (monitor_->Remove(h)) return;
    const size_t want = released_.size() + 1;
    SettleReleases(want);
    EXPECT_EQ(released_.back(), h);
  }

  // Removes every handler in `handlers` (none released yet) and waits
  // (bounded) until each deferred removal has been released.
  void RemoveAllAndSettle(std::vector<AioHandler>* handlers) {
    size_t sync_removed = 0;
    for (AioHandler& h : *handlers) sync_removed += monitor_->Remove(&h) ? 1 : 0;
    SettleReleases(handlers->size() - sync_removed);
  }

  // Runs short Wait()s until `n` handlers in all have been released. A
  // release is not readiness: Wait(-1) would keep blocking after it.
  void SettleReleases(size_t n) {
    for (int i = 0; i < 10000 && released_.size() < n; ++i) {
      EXPECT_TRUE(WaitReady(1000000).empty());
    }
    ASSERT_EQ(released_.size(), n);
  }

  std::unique_ptr<FdMonitor> monitor_;
  std::vector<AioHandler*> released_;
};

TEST_F(IoUringMonitorTest, Kind) { EXPECT_EQ(monitor_->kind(), FdMonitorKind::kIoUring); }

TEST_F(IoUringMonitorTest, EmptyWaitDoesNotBlock) {
  EXPECT_TRUE(WaitReady(0).empty());
  EXPECT_TRUE(WaitReady(1000000).empty());  // 1 ms timeout expires
}

TEST_F(IoUringMonitorTest, ReadIsLevelTriggered) {
  Pipe p;
  AioHandler h;
  ASSERT_EQ(Watch(&h, p.r, kEventRead), 0);
  EXPECT_TRUE(WaitReady(0).empty());

  p.Put();
  std::vector<AioHandler*> v = WaitReady(-1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0], &h);
  EXPECT_TRUE(h.revents & kEventRead);

  // Not consumed: reported again (level-triggered), and again.
  for (int i = 0; i < 3; ++i) {
    v = WaitReady(-1);
    ASSERT_EQ(v.size(), 1u) << i;
    EXPECT_TRUE(h.revents & kEventRead);
  }

  // Consumed: quiet.
  p.Drain();
  EXPECT_TRUE(WaitReady(0).empty());
  EXPECT_TRUE(WaitReady(0).empty());
  RemoveAndSettle(&h);
}

TEST_F(IoUringMonitorTest, WriteReadyAtOnce) {
  Pipe p;
  AioHandler h;
  ASSERT_EQ(Watch(&h, p.w, kEventWrite), 0);
  std::vector<AioHandler*> v = WaitReady(-1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(h.revents & kEventWrite);
  EXPECT_FALSE(h.revents & kEventRead);
  RemoveAndSettle(&h);
}

TEST_F(IoUringMonitorTest, HangupReported) {
  Pipe p;
  AioHandler h;
  ASSERT_EQ(Watch(&h, p.r, kEventRead), 0);
  EXPECT_TRUE(WaitReady(0).empty());
  close(p.w);
  p.w = -1;
  std::vector<AioHandler*> v = WaitReady(-1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(h.revents & kEventHangup);
  RemoveAndSettle(&h);
}

TEST_F(IoUringMonitorTest, BadFdRefused) {
  Pipe p;
  int fd = dup(p.r);
  close(fd);
  AioHandler h;
  EXPECT_EQ(Watch(&h, fd, kEventRead), -EBADF);
}

TEST_F(IoUringMonitorTest, RegularFileAlwaysReady) {
  char path[] = "/tmp/aioco_uring_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  AioHandler h;
  ASSERT_EQ(Watch(&h, fd, kEventRead | kEventWrite), 0);
  for (int i = 0; i < 3; ++i) {
    std::vector<AioHandler*> v = WaitReady(-1);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(h.revents & (kEventRead | kEventWrite), kEventRead | kEventWrite);
  }
  RemoveAndSettle(&h);
  close(fd);
}

TEST_F(IoUringMonitorTest, ModifyWhileArmed) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  AioHandler h;
  ASSERT_EQ(Watch(&h, sv[0], kEventRead), 0);
  EXPECT_TRUE(WaitReady(0).empty());  // the read poll is now in flight

  // Read -> write: the in-flight read poll is cancelled and re-added.
  h.events = kEventWrite;
  ASSERT_EQ(monitor_->Modify(&h), 0);
  std::vector<AioHandler*> v = WaitReady(-1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(h.revents & kEventWrite);

  // Write -> read with nothing to read: quiet, then readable.
  h.events = kEventRead;
  ASSERT_EQ(monitor_->Modify(&h), 0);
  EXPECT_TRUE(WaitReady(0).empty());
  EXPECT_TRUE(WaitReady(0).empty());
  char c = 'y';
  ASSERT_EQ(write(sv[1], &c, 1), 1);
  v = WaitReady(-1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(h.revents & kEventRead);
  EXPECT_FALSE(h.revents & kEventWrite);

  // Read -> read|write while readable: both reported.
  h.events = kEventRead | kEventWrite;
  ASSERT_EQ(monitor_->Modify(&h), 0);
  v = WaitReady(-1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE((h.revents & kEventWrite) || (h.revents & kEventRead));

  RemoveAndSettle(&h);
  close(sv[0]);
  close(sv[1]);
}

// The context's own eventfd (AddNotifier) is watched by one multi-shot
// poll: each write is reported (once per Wait(), however many writes came
// in between) without re-arming, and removal still waits for the kernel.
TEST_F(IoUringMonitorTest, NotifierIsEdgeTriggeredAndReportedOncePerWait) {
  const int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(efd, 0);
  auto put = [efd] {
    uint64_t one = 1;
    ASSERT_EQ(write(efd, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  };
  auto drain = [efd] {
    uint64_t v;
    return read(efd, &v, sizeof(v)) == static_cast<ssize_t>(sizeof(v));
  };
  AioHandler h;
  h.fd = efd;
  h.events = kEventRead;
  ASSERT_EQ(monitor_->AddNotifier(&h), 0);
  EXPECT_TRUE(WaitReady(0).empty());
  for (int round = 0; round < 5; ++round) {
    put();
    put();  // two wake-ups before the Wait(): one report
    std::vector<AioHandler*> v = WaitReady(-1);
    ASSERT_EQ(v.size(), 1u) << round;
    EXPECT_TRUE(h.revents & kEventRead);
    h.revents = 0;
    EXPECT_TRUE(drain());
    // Drained, and no new write: quiet, even though the poll saw two edges.
    EXPECT_TRUE(WaitReady(0).empty()) << round;
  }
  // A write from another thread wakes a blocking Wait().
  std::thread writer([&put] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    put();
  });
  std::vector<AioHandler*> v = WaitReady(-1);
  writer.join();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(drain());
  RemoveAndSettle(&h);  // the multi-shot poll is cancelled, then released
  put();
  EXPECT_TRUE(WaitReady(0).empty());
  close(efd);
}

TEST_F(IoUringMonitorTest, RemoveWithPollInFlightReleasesLater) {
  Pipe p;
  AioHandler h;
  ASSERT_EQ(Watch(&h, p.r, kEventRead), 0);
  EXPECT_TRUE(WaitReady(0).empty());  // POLL_ADD submitted, nothing ready

  EXPECT_FALSE(monitor_->Remove(&h));  // the kernel still holds the request
  EXPECT_TRUE(released_.empty());      // not released synchronously
  p.Put();                             // readiness after removal: not reported

  SettleReleases(1);  // the cancel completes; nothing is reported
  EXPECT_EQ(released_[0], &h);
  EXPECT_TRUE(WaitReady(0).empty());
  EXPECT_EQ(released_.size(), 1u);
}

TEST_F(IoUringMonitorTest, RemoveReadyHandlerReleasesOnce) {
  Pipe p;
  AioHandler h;
  ASSERT_EQ(Watch(&h, p.r, kEventRead), 0);
  EXPECT_TRUE(WaitReady(0).empty());
  p.Put();
  // The poll completes in the kernel, but its completion is not reaped
  // before Remove(): removal must still wait for it and report nothing.
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(monitor_->Remove(&h));
  SettleReleases(1);
  EXPECT_EQ(released_[0], &h);
}

TEST_F(IoUringMonitorTest, RemoveBeforeArmingIsSynchronous) {
  Pipe p;
  AioHandler h;
  ASSERT_EQ(Watch(&h, p.r, kEventRead), 0);
  EXPECT_TRUE(monitor_->Remove(&h));  // never submitted
  p.Put();
  EXPECT_TRUE(WaitReady(0).empty());
  EXPECT_TRUE(released_.empty());
}

TEST_F(IoUringMonitorTest, RemoveAfterCompletionIsSynchronous) {
  Pipe p;
  AioHandler h;
  ASSERT_EQ(Watch(&h, p.r, kEventRead), 0);
  p.Put();
  ASSERT_EQ(WaitReady(-1).size(), 1u);  // completed; re-arm only queued
  EXPECT_TRUE(monitor_->Remove(&h));
  EXPECT_TRUE(WaitReady(0).empty());
  EXPECT_TRUE(released_.empty());
}

TEST_F(IoUringMonitorTest, ManyFds) {
  // More fds than the SQ (128) and CQ (256) rings hold.
  constexpr int kFds = 400;
  std::vector<std::unique_ptr<Pipe>> pipes = OpenPipes(kFds);
  if (pipes.size() < kFds) GTEST_SKIP() << "out of fds";
  std::vector<AioHandler> handlers(kFds);
  for (int i = 0; i < kFds; ++i) ASSERT_EQ(Watch(&handlers[i], pipes[i]->r, kEventRead), 0);
  EXPECT_TRUE(WaitReady(0).empty());
  for (int i = 0; i < kFds; i += 2) pipes[i]->Put();

  // Every even handler is reported exactly once before it is consumed...
  std::set<AioHandler*> seen;
  while (seen.size() < kFds / 2) {
    for (AioHandler* h : WaitReady(-1)) {
      const int i = static_cast<int>(h - handlers.data());
      ASSERT_EQ(i % 2, 0) << i;
      EXPECT_TRUE(seen.insert(h).second) << "reported twice before re-arm: " << i;
      pipes[i]->Drain();
    }
  }
  EXPECT_TRUE(WaitReady(0).empty());

  // ...and the odd ones all become ready at once.
  for (int i = 1; i < kFds; i += 2) pipes[i]->Put();
  seen.clear();
  while (seen.size() < kFds / 2) {
    for (AioHandler* h : WaitReady(-1)) {
      const int i = static_cast<int>(h - handlers.data());
      ASSERT_EQ(i % 2, 1) << i;
      seen.insert(h);
      pipes[i]->Drain();
    }
  }

  // Removing all of them: each is released exactly once.
  RemoveAllAndSettle(&handlers);
  EXPECT_EQ(std::set<AioHandler*>(released_.begin(), released_.end()).size(), released_.size());
}

TEST_F(IoUringMonitorTest, AllReadyAtOnceOverflowsCq) {
  // Every fd is ready when its POLL_ADD is submitted, so all complete inline
  // within one submission: more completions than the CQ ring holds (256),
  // which the kernel parks on its overflow list.
  constexpr int kFds = 400;
  std::vector<std::unique_ptr<Pipe>> pipes = OpenPipes(kFds);
  if (pipes.size() < kFds) GTEST_SKIP() << "out of fds";
  std::vector<AioHandler> handlers(kFds);
  for (int i = 0; i < kFds; ++i) {
    pipes[i]->Put();
    ASSERT_EQ(Watch(&handlers[i], pipes[i]->r, kEventRead), 0);
  }
  std::set<AioHandler*> seen;
  for (int round = 0; round < 100 && seen.size() < kFds; ++round) {
    for (AioHandler* h : WaitReady(-1)) {
      EXPECT_TRUE(seen.insert(h).second) << "reported twice before re-arm";
      EXPECT_TRUE(h->revents & kEventRead);
      pipes[h - handlers.data()]->Drain();
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kFds));
  EXPECT_TRUE(WaitReady(0).empty());
  RemoveAllAndSettle(&handlers);
}

TEST_F(IoUringMonitorTest, DestroyReleasesInFlightRemovals) {
  Pipe p1, p2;
  AioHandler h1, h2;
  ASSERT_EQ(Watch(&h1, p1.r, kEventRead), 0);
  ASSERT_EQ(Watch(&h2, p2.r, kEventRead), 0);
  WaitReady(0);
  EXPECT_FALSE(monitor_->Remove(&h1));
  EXPECT_FALSE(monitor_->Remove(&h2));
  monitor_.reset();
  EXPECT_EQ(std::set<AioHandler*>(released_.begin(), released_.end()),
            (std::set<AioHandler*>{&h1, &h2}));
}

TEST_F(IoUringMonitorTest, CrossThreadWake) {
  Pipe p;
  AioHandler h;
  ASSERT_EQ(Watch(&h, p.r, kEventRead), 0);
  for (int i = 0; i < 20; ++i) {
    std::thread writer([&] { p.Put(); });
    std::vector<AioHandler*> v = WaitReady(-1);
    writer.join();
    ASSERT_EQ(v.size(), 1u);
    p.Drain();
  }
  RemoveAndSettle(&h);
}

std::atomic<int> g_signals{0};
// Relaxed: a counter only; the test's seq_cst loads need no ordering with
// anything else the handler does.
void CountSignal(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }

TEST_F(IoUringMonitorTest, SignalDoesNotEndBlockingWaitEarly) {
  struct sigaction sa = {};
  sa.sa_handler = CountSignal;  // no SA_RESTART: the wait sees EINTR
  struct sigaction old;
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  Pipe p;
  AioHandler h;
  ASSERT_EQ(Watch(&h, p.r, kEventRead), 0);
  WaitReady(0);

  g_signals.store(0);
  std::atomic<bool> returned{false};
  std::vector<AioHandler*> v;
  pthread_t waiter_thread;
  std::thread waiter([&] {
    ReadyList ready;
    monitor_->Wait(-1, &ready);
    v = ToVector(ready);
    returned.store(true);
  });
  waiter_thread = waiter.native_handle();
  // Interrupt the blocked Wait() a few times; it must keep waiting.
  while (g_signals.load() < 3 && !returned.load()) {
    pthread_kill(waiter_thread, SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_FALSE(returned.load()) << "Wait(-1) returned on a signal";
  p.Put();
  waiter.join();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0], &h);
  sigaction(SIGUSR1, &old, nullptr);
  RemoveAndSettle(&h);
}

// --- Init probe under a seccomp filter (in a child process) ---

// Makes `nr` fail with `err` for this process and its future threads.
bool RefuseSyscall(long nr, int err) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<uint32_t>(err) & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

void ProbeRefused(long nr, int err) {
  if (!RefuseSyscall(nr, err)) {
    std::fprintf(stderr, "seccomp unavailable\n");
    std::_Exit(2);
  }
  absl::StatusOr<std::unique_ptr<FdMonitor>> m = NewIoUringMonitor(nullptr);
  if (m.ok()) {
    std::fprintf(stderr, "io_uring monitor initialised despite the filter\n");
    std::_Exit(1);
  }
  std::fprintf(stderr, "refused: %s\n", std::string(m.status().message()).c_str());
  std::_Exit(0);
}

TEST_F(IoUringMonitorTest, SetupRefusedIsAnError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ProbeRefused(__NR_io_uring_setup, ENOSYS), ::testing::ExitedWithCode(0),
              "refused: io_uring_queue_init: Function not implemented");
  EXPECT_EXIT(ProbeRefused(__NR_io_uring_setup, EPERM), ::testing::ExitedWithCode(0),
              "refused: io_uring_queue_init: Operation not permitted");
}

TEST_F(IoUringMonitorTest, EnterRefusedIsAnError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ProbeRefused(__NR_io_uring_enter, EPERM), ::testing::ExitedWithCode(0),
              "refused: io_uring");
}

}  // namespace
}  // namespace aio_internal
}  // namespace aioco
