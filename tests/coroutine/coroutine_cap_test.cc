// As many live guarded coroutines as vm.max_map_count allows; past the cap
// TryCreate() fails cleanly (naming the cap) and unguarded stacks still work.

#include <vector>

#include "absl/status/status.h"
#include "coroutine/coroutine.h"
#include "coroutine/internal/stack.h"
#include "gtest/gtest.h"

namespace aioco {
namespace {

TEST(CoroutineCapTest, LiveCoroutinesUpToTheMappingCap) {
  const size_t cap = Coroutine::MaxLiveGuardedStacks();
  ASSERT_GT(cap, 0u);
  if (cap > 200000) GTEST_SKIP() << "vm.max_map_count too large to exhaust";
  const size_t live_before = coroutine_internal::LiveGuardedStacks();
  // Own (unpooled) small stacks: the cap counts mappings, not bytes.
  CoroutineOptions opts;
  opts.stack_size = 16 * 1024;
  std::vector<Coroutine*> live;
  live.reserve(cap);
  absl::Status last;
  int ran = 0;
  for (;;) {
    absl::StatusOr<Coroutine*> co =
        Coroutine::TryCreate(opts, [&ran] { ++ran; Coroutine::Yield(); });
    if (!co.ok()) {
      last = co.status();
      break;
    }
    live.push_back(*co);
    ASSERT_LE(live.size(), cap);
  }
  EXPECT_EQ(live.size(), cap - live_before);
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(last.message().find("vm.max_map_count"), absl::string_view::npos)
      << last;
  // Unguarded stacks for massive fan-out are not bound by the cap.
  CoroutineOptions unguarded = opts;
  unguarded.guard_page = false;
  for (int i = 0; i < 1000; ++i) {
    Coroutine* co = Coroutine::Create(unguarded, [&ran] { ++ran; });
    co->Enter();
  }
  // Every live coroutine really runs.
  for (Coroutine* co : live) co->Enter();
  for (Coroutine* co : live) co->Enter();
  EXPECT_EQ(ran, static_cast<int>(live.size()) + 1000);
  EXPECT_EQ(coroutine_internal::LiveGuardedStacks(), live_before);
  // And the cap no longer blocks creation.
  absl::StatusOr<Coroutine*> again = Coroutine::TryCreate(opts, [] {});
  ASSERT_TRUE(again.ok()) << again.status();
  (*again)->Enter();
}

}  // namespace
}  // namespace aioco
