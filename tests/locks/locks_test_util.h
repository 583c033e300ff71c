// -----------------------------------------------------------------------------
// File: tests/locks/locks_test_util.h
// -----------------------------------------------------------------------------
//
// Helpers for the //locks tests: IoThread sets, running coroutines on them
// and waiting for them from the test's main thread, iteration scaling under
// sanitizers.
//
// Thread safety: Latch is thread-safe; IoThreads is used by the test thread.

#ifndef AIOCO_TESTS_LOCKS_LOCKS_TEST_UTIL_H_
#define AIOCO_TESTS_LOCKS_LOCKS_TEST_UTIL_H_

#include <condition_variable>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "aio/aio_context.h"
#include "aio/io_thread.h"
#include "coroutine/coroutine.h"
#include "gtest/gtest.h"

namespace aioco {
namespace locks_testing {

// Iteration counts are divided by this under ASan/TSan (AIOCO_TEST_SANITIZER
// is set by tests/locks/BUILD.bazel from the //:asan and //:tsan settings).
#if defined(AIOCO_TEST_SANITIZER)
inline constexpr int kSanitizerScale = 10;
#else
inline constexpr int kSanitizerScale = 1;
#endif

inline int Scaled(int n) {
  return n / kSanitizerScale > 0 ? n / kSanitizerScale : 1;
}

// Count-down latch for the threads of a run.
using Latch = std::latch;

// N IoThreads, stopped and joined on destruction.
class IoThreads {
 public:
  explicit IoThreads(int n) {
    for (int i = 0; i < n; ++i) {
      auto thread = IoThread::Create();
      EXPECT_TRUE(thread.ok()) << thread.status();
      if (thread.ok()) threads_.push_back(std::move(*thread));
    }
  }
  int size() const { return static_cast<int>(threads_.size()); }
  AioContext* ctx(int i) const { return threads_[i]->context(); }

 private:
  std::vector<std::unique_ptr<IoThread>> threads_;
};

// Starts `fn(i)` in a new coroutine on `ctx` for each i in [0, n) and
// returns once every one of them has finished.
inline void RunCoroutines(const std::vector<AioContext*>& ctxs,
                          const std::function<void(int)>& fn) {
  Latch done(static_cast<int>(ctxs.size()));
  for (size_t i = 0; i < ctxs.size(); ++i) {
    Coroutine* co = Coroutine::Create([&fn, &done, i] {
      fn(static_cast<int>(i));
      done.count_down();
    });
    ctxs[i]->CoSchedule(co);
  }
  done.wait();
}

// Runs `fn` in one coroutine on `ctx` and waits for it.
inline void RunInCoroutine(AioContext* ctx, const std::function<void()>& fn) {
  RunCoroutines({ctx}, [&fn](int) { fn(); });
}

}  // namespace locks_testing
}  // namespace aioco

#endif  // AIOCO_TESTS_LOCKS_LOCKS_TEST_UTIL_H_
