// A program for gdb_test.sh: when it reaches BreakHere() it has
//   - coroutine "parked": yielded inside ParkedInAlpha(),
//   - coroutine "nested": yielded inside ParkedInBeta(), four frames deep,
//   - coroutine "scheduled": CoSchedule()d on an AioContext, not yet run,
//   - coroutine "runner": running, on this thread, inside BreakHere().
// It then finishes them all and exits 0.

#include <cstdio>
#include <memory>

#include "aio/aio_context.h"
#include "coroutine/coroutine.h"

namespace {

volatile int g_sink = 0;

__attribute__((noinline)) void ParkedInAlpha() {
  g_sink = g_sink + 1;
  aioco::Coroutine::Yield();
  g_sink = g_sink + 1;
}

__attribute__((noinline)) void ParkedInBeta(int depth) {
  if (depth > 0) {
    ParkedInBeta(depth - 1);
    g_sink = g_sink + 1;
    return;
  }
  aioco::Coroutine::Yield();
}

__attribute__((noinline)) void BreakHere() {
  g_sink = g_sink + 1;
  __asm__ volatile("" ::: "memory");
}

}  // namespace

int main() {
  std::unique_ptr<aioco::AioContext> ctx = aioco::AioContext::Create().value();
  aioco::AioContext::SetCurrent(ctx.get());

  aioco::Coroutine* parked = aioco::Coroutine::Create([] { ParkedInAlpha(); });
  parked->Enter();

  aioco::Coroutine* nested = aioco::Coroutine::Create([] { ParkedInBeta(3); });
  nested->Enter();

  bool scheduled_ran = false;
  aioco::Coroutine* scheduled =
      aioco::Coroutine::Create([&scheduled_ran] { scheduled_ran = true; });
  ctx->CoSchedule(scheduled);

  aioco::Coroutine* runner = aioco::Coroutine::Create([] { BreakHere(); });
  runner->Enter();

  parked->Enter();
  nested->Enter();
  while (!scheduled_ran) ctx->Poll(true);
  std::printf("gdb_target: done (%d)\n", g_sink);
  aioco::AioContext::SetCurrent(nullptr);
  return 0;
}
