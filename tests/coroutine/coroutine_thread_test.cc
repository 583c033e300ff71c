// Coroutines that move between threads, and coroutine-safe TLS.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "coroutine/co_tls.h"
#include "coroutine/coroutine.h"
#include "coroutine/internal/access.h"
#include "gtest/gtest.h"

namespace aioco {
namespace {

AIOCO_DEFINE_STATIC_CO_TLS(int, thread_tag);

// Hands a coroutine back and forth: the holder enters it, it yields, the
// holder passes it to the other thread.
class Baton {
 public:
  void Pass(int to) {
    std::lock_guard<std::mutex> lock(mu_);
    turn_ = to;
    cv_.notify_all();
  }
  void WaitFor(int me) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return turn_ == me; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int turn_ = 0;
};

TEST(CoroutineThreadTest, CoroutineMovesBetweenThreads) {
#if defined(AIOCO_TEST_SANITIZER)
  constexpr int kHops = 200;
#else
  constexpr int kHops = 2000;
#endif
  Baton baton;
  int data = 0;  // touched by the coroutine on both threads
  int seen_tag_mismatches = 0;
  int self_mismatches = 0;
  Coroutine* co = nullptr;
  co = Coroutine::Create([&] {
    for (int i = 0; i < kHops; ++i) {
      const int tag_before = get_thread_tag();
      ++data;
      Coroutine::Yield();
      // Resumed by the other thread: the TLS accessors must see its values.
      if (get_thread_tag() == tag_before) ++seen_tag_mismatches;
      if (Coroutine::Self() != co) ++self_mismatches;
    }
  });
  auto worker = [&](int me, int other, int hops) {
    set_thread_tag(me);
    for (int i = 0; i < hops; ++i) {
      baton.WaitFor(me);
      co->Enter();
      baton.Pass(other);
    }
  };
  std::thread a(worker, 1, 2, kHops / 2 + 1);
  std::thread b(worker, 2, 1, kHops / 2);
  baton.Pass(1);
  a.join();
  b.join();
  EXPECT_EQ(data, kHops);
  EXPECT_EQ(seen_tag_mismatches, 0);
  EXPECT_EQ(self_mismatches, 0);
}

TEST(CoroutineThreadTest, ThreadAioContextFollowsTheThread) {
  auto* ctx_a = reinterpret_cast<AioContext*>(64);
  auto* ctx_b = reinterpret_cast<AioContext*>(128);
  AioContext* before = nullptr;
  AioContext* after = nullptr;
  Coroutine* co = Coroutine::Create([&] {
    before = coroutine_internal::ThreadAioContext();
    Coroutine::Yield();
    after = coroutine_internal::ThreadAioContext();
  });
  std::thread([&] {
    coroutine_internal::SetThreadAioContext(ctx_a);
    co->Enter();
    EXPECT_EQ(co->aio_context(), ctx_a);
  }).join();
  std::thread([&] {
    coroutine_internal::SetThreadAioContext(ctx_b);
    co->Enter();
  }).join();
  EXPECT_EQ(before, ctx_a);
  EXPECT_EQ(after, ctx_b);
}

TEST(CoroutineThreadTest, CoTlsIsPerThread) {
  set_thread_tag(5);
  EXPECT_EQ(get_thread_tag(), 5);
  int other = -1;
  std::thread([&] { other = get_thread_tag(); }).join();
  EXPECT_EQ(other, 0);
  *get_ptr_thread_tag() = 6;
  EXPECT_EQ(get_thread_tag(), 6);
}

TEST(CoroutineThreadTest, ManyThreadsCreateAndFinish) {
  constexpr int kThreads = 4;
#if defined(AIOCO_TEST_SANITIZER)
  constexpr int kPerThread = 2000;
#else
  constexpr int kPerThread = 50000;
#endif
  std::atomic<int> total{0};
  std::thread threads[kThreads];
  for (auto& t : threads) {
    t = std::thread([&] {
      for (int i = 0; i < kPerThread; ++i) {
        Coroutine* co = Coroutine::Create([&] {
          Coroutine::Yield();
          total.fetch_add(1, std::memory_order_relaxed);
        });
        co->Enter();
        co->Enter();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(total.load(), kThreads * kPerThread);
}

}  // namespace
}  // namespace aioco
