// Coroutine core tests: QEMU's tests/unit/test-coroutine.c (the non-locking
// cases, in registration order), plus callables, stack options and the
// wake-up list seam used by //aio and //locks.

#include "coroutine/coroutine.h"

#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "coroutine/internal/access.h"
#include "gtest/gtest.h"

namespace aioco {
namespace {

using coroutine_internal::QueueWakeup;

// /basic/no-dangling-access: a finished coroutine (back in the pool) must
// not be touched when the coroutine it had entered later finishes.
TEST(CoroutineQemuTest, NoDanglingAccess) {
  Coroutine* c2 = Coroutine::Create([] { Coroutine::Yield(); });
  Coroutine* c1 = Coroutine::Create([c2] { c2->Enter(); });
  c1->Enter();  // c1 enters c2, c2 yields back to c1, c1 finishes
  ASSERT_FALSE(c2->entered());
  alignas(Coroutine) unsigned char saved[sizeof(Coroutine)];
  std::memcpy(saved, static_cast<void*>(c1), sizeof(Coroutine));
  std::memset(static_cast<void*>(c1), 0xff, sizeof(Coroutine));
  c2->Enter();  // finishes; must not look at c1, its old caller
  std::memcpy(static_cast<void*>(c1), saved, sizeof(Coroutine));
}

// /basic/lifecycle
TEST(CoroutineQemuTest, Lifecycle) {
  bool done = false;
  auto set_and_exit = [](void* opaque) { *static_cast<bool*>(opaque) = true; };
  Coroutine::Create(set_and_exit, &done)->Enter();
  EXPECT_TRUE(done);
  done = false;
  Coroutine::Create(set_and_exit, &done)->Enter();
  EXPECT_TRUE(done);
}

// /basic/yield
TEST(CoroutineQemuTest, Yield) {
  bool done = false;
  Coroutine* co = Coroutine::Create([&done] {
    for (int n = 0; n < 5; ++n) Coroutine::Yield();
    done = true;
  });
  int i = -1;
  while (!done) {
    co->Enter();
    ++i;
  }
  EXPECT_EQ(i, 5);
}

// /basic/nesting
struct NestData {
  unsigned n_enter = 0;
  unsigned n_return = 0;
  unsigned max = 128;
};

void Nest(void* opaque) {
  auto* nd = static_cast<NestData*>(opaque);
  ++nd->n_enter;
  if (nd->n_enter < nd->max) Coroutine::Create(&Nest, nd)->Enter();
  ++nd->n_return;
}

TEST(CoroutineQemuTest, Nesting) {
  NestData nd;
  Coroutine::Create(&Nest, &nd)->Enter();
  EXPECT_EQ(nd.n_enter, nd.max);
  EXPECT_EQ(nd.n_return, nd.max);
}

// /basic/self
TEST(CoroutineQemuTest, Self) {
  Coroutine* co = nullptr;
  Coroutine* seen = nullptr;
  co = Coroutine::Create([&] { seen = Coroutine::Self(); });
  co->Enter();
  EXPECT_EQ(seen, co);
  EXPECT_EQ(Coroutine::Self(), nullptr);
}

// /basic/entered
TEST(CoroutineQemuTest, Entered) {
  int step2_checks = 0;
  Coroutine* outer = Coroutine::Create([&] {
    Coroutine* self = Coroutine::Self();
    EXPECT_TRUE(self->entered());
    Coroutine* co2 = Coroutine::Create([&, caller = self] {
      EXPECT_TRUE(caller->entered());
      EXPECT_TRUE(Coroutine::Self()->entered());
      ++step2_checks;
      Coroutine::Yield();
      EXPECT_TRUE(caller->entered());
      EXPECT_TRUE(Coroutine::Self()->entered());
      ++step2_checks;
    });
    EXPECT_FALSE(co2->entered());
    co2->Enter();
    EXPECT_FALSE(co2->entered());
    co2->Enter();
  });
  EXPECT_FALSE(outer->entered());
  outer->Enter();
  EXPECT_EQ(step2_checks, 2);
}

// /basic/in_coroutine
TEST(CoroutineQemuTest, InCoroutine) {
  EXPECT_FALSE(Coroutine::InCoroutine());
  bool inside = false;
  Coroutine::Create([&] { inside = Coroutine::InCoroutine(); })->Enter();
  EXPECT_TRUE(inside);
  EXPECT_FALSE(Coroutine::InCoroutine());
}

// /basic/order
TEST(CoroutineQemuTest, Order) {
  std::vector<std::pair<int, int>> records;
  Coroutine* co = Coroutine::Create([&] {
    records.emplace_back(2, 1);
    EXPECT_TRUE(Coroutine::InCoroutine());
    Coroutine::Yield();
    records.emplace_back(2, 2);
    EXPECT_TRUE(Coroutine::InCoroutine());
  });
  records.emplace_back(1, 1);
  co->Enter();
  records.emplace_back(1, 2);
  EXPECT_FALSE(Coroutine::InCoroutine());
  co->Enter();
  records.emplace_back(1, 3);
  EXPECT_FALSE(Coroutine::InCoroutine());
  std::vector<std::pair<int, int>> want = {
      {1, 1}, {2, 1}, {1, 2}, {2, 2}, {1, 3}};
  EXPECT_EQ(records, want);
}

// --- Beyond QEMU's suite ------------------------------------------------------

TEST(CoroutineTest, EnterIfInactive) {
  int runs = 0;
  Coroutine* co = nullptr;
  co = Coroutine::Create([&] {
    ++runs;
    co->EnterIfInactive();  // entered: a no-op, not a recursive entry
    Coroutine::Yield();
    ++runs;
  });
  co->EnterIfInactive();
  EXPECT_EQ(runs, 1);
  co->EnterIfInactive();
  EXPECT_EQ(runs, 2);
}

TEST(CoroutineTest, AioContextIsTheEnterersContext) {
  // No event loop on this thread: coroutines run with a null context.
  AioContext* seen = reinterpret_cast<AioContext*>(1);
  Coroutine* co = Coroutine::Create([&] {
    seen = coroutine_internal::ThreadAioContext();
    Coroutine::Yield();
  });
  EXPECT_EQ(co->aio_context(), nullptr);
  co->Enter();
  EXPECT_EQ(seen, nullptr);
  EXPECT_EQ(co->aio_context(), nullptr);
  // EnterIn records the context it was entered in.
  auto* fake = reinterpret_cast<AioContext*>(alignof(std::max_align_t));
  coroutine_internal::EnterIn(fake, co);  // finishes
  Coroutine* co2 = Coroutine::Create([] { Coroutine::Yield(); });
  coroutine_internal::EnterIn(fake, co2);
  EXPECT_EQ(co2->aio_context(), fake);
  co2->Enter();
}

TEST(CoroutineTest, CallableIsDestroyedWhenItReturns) {
  auto token = std::make_shared<int>(7);
  int seen = 0;
  Coroutine* co = Coroutine::Create([token, &seen] {
    seen = *token;
    Coroutine::Yield();
  });
  EXPECT_EQ(token.use_count(), 2);
  co->Enter();
  EXPECT_EQ(seen, 7);
  EXPECT_EQ(token.use_count(), 2);  // still suspended
  co->Enter();
  EXPECT_EQ(token.use_count(), 1);  // finished: the copy is gone
}

TEST(CoroutineTest, LargeCallableLivesOnTheCoroutineStack) {
  struct Big {
    unsigned char bytes[64 * 1024];
  };
  auto big = std::make_unique<Big>();
  for (size_t i = 0; i < sizeof(big->bytes); ++i) big->bytes[i] = i & 0xff;
  bool ok = false;
  Coroutine::Create([copy = *big, &ok] {
    ok = true;
    for (size_t i = 0; i < sizeof(copy.bytes); ++i) {
      if (copy.bytes[i] != (i & 0xff)) ok = false;
    }
  })->Enter();
  EXPECT_TRUE(ok);
}

TEST(CoroutineTest, AlignedCallable) {
  struct alignas(64) Aligned {
    int v = 3;
  };
  uintptr_t addr = 0;
  int v = 0;
  Coroutine::Create([a = Aligned(), &addr, &v] {
    addr = reinterpret_cast<uintptr_t>(&a);
    v = a.v;
  })->Enter();
  EXPECT_EQ(addr % 64, 0u);
  EXPECT_EQ(v, 3);
}

TEST(CoroutineTest, TryCreateRejectsOversizedCallable) {
  struct Huge {
    unsigned char bytes[64 * 1024];
  };
  CoroutineOptions small;
  small.stack_size = 64 * 1024;
  auto co = Coroutine::TryCreate(small, [h = Huge()] { (void)h; });
  ASSERT_FALSE(co.ok());
  EXPECT_EQ(co.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CoroutineTest, StackOptions) {
  for (bool guard : {true, false}) {
    CoroutineOptions opts;
    opts.stack_size = 256 * 1024;
    opts.guard_page = guard;
    // Use most of the stack to show it is really there.
    size_t touched = 0;
    Coroutine* co = Coroutine::Create(opts, [&touched] {
      volatile unsigned char buf[192 * 1024];
      for (size_t i = 0; i < sizeof(buf); i += 4096) buf[i] = 1;
      touched = sizeof(buf);
    });
    co->Enter();
    EXPECT_EQ(touched, 192u * 1024);
    auto plain = Coroutine::TryCreate(opts, [](void*) {}, nullptr);
    ASSERT_TRUE(plain.ok()) << plain.status();
    (*plain)->Enter();
  }
}

TEST(CoroutineTest, DeepRecursionWithinTheDefaultStack) {
  struct Rec {
    static int Depth(int n) {
      volatile char pad[512];
      pad[0] = static_cast<char>(n);
      return n == 0 ? pad[0] : 1 + Depth(n - 1);
    }
  };
  int got = 0;
  Coroutine::Create([&got] { got = Rec::Depth(1000); })->Enter();
  EXPECT_EQ(got, 1000);
}

// Wake-ups queued by a coroutine run, depth first, from the enclosing Enter
// once it yields (QEMU's pending-list order).
TEST(CoroutineTest, WakeupsRunDepthFirstAfterTheWakerYields) {
  std::vector<int> order;
  Coroutine* c4 = Coroutine::Create([&] { order.push_back(4); });
  Coroutine* c3 = Coroutine::Create([&] { order.push_back(3); });
  Coroutine* c2 = Coroutine::Create([&] {
    order.push_back(2);
    QueueWakeup(Coroutine::Self(), c4);
  });
  Coroutine* c1 = Coroutine::Create([&] {
    order.push_back(1);
    QueueWakeup(Coroutine::Self(), c2);
    QueueWakeup(Coroutine::Self(), c3);
    order.push_back(10);  // still running: nothing woken yet
    Coroutine::Yield();
    order.push_back(11);
  });
  c1->Enter();
  EXPECT_EQ(order, (std::vector<int>{1, 10, 2, 4, 3}));
  c1->Enter();
  EXPECT_EQ(order.back(), 11);
}

// A long chain of wake-ups runs iteratively: no host-stack growth.
TEST(CoroutineTest, LongWakeupChainDoesNotRecurse) {
#if defined(AIOCO_TEST_SANITIZER)
  constexpr int kChain = 20000;
#else
  constexpr int kChain = 200000;
#endif
  struct State {
    int remaining = kChain;
    int ran = 0;
  } state;
  struct Link {
    static void Run(void* opaque) {
      auto* s = static_cast<State*>(opaque);
      ++s->ran;
      if (--s->remaining > 0) {
        QueueWakeup(Coroutine::Self(), Coroutine::Create(&Run, s));
      }
    }
  };
  // A recursive implementation would need kChain nested host frames.
  Coroutine::Create(&Link::Run, &state)->Enter();
  EXPECT_EQ(state.ran, kChain);
}

TEST(CoroutineTest, PingPongThroughWakeups) {
  constexpr int kRounds = 25000;
  Coroutine* a = nullptr;
  Coroutine* b = nullptr;
  int count = 0;
  a = Coroutine::Create([&] {
    for (int i = 0; i < kRounds; ++i) {
      ++count;
      QueueWakeup(Coroutine::Self(), b);
      Coroutine::Yield();
    }
  });
  b = Coroutine::Create([&] {
    for (int i = 0; i < kRounds; ++i) {
      ++count;
      QueueWakeup(Coroutine::Self(), a);
      Coroutine::Yield();
    }
  });
  a->Enter();  // the whole exchange runs inside this one call (a finishes)
  EXPECT_EQ(count, 2 * kRounds);
  EXPECT_FALSE(b->entered());
  b->Enter();  // b's last yield; it finishes now
}

}  // namespace
}  // namespace aioco
