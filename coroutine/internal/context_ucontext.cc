// The ucontext backend: makecontext() creates a context, sigsetjmp() and
// siglongjmp() switch between contexts (no signal-mask system call per
// switch, unlike swapcontext()).
//
// State: each Stack holds the sigjmp_buf its coroutine lands on
// (Stack::env); a thread's leader uses ThreadState::leader_env.
//
// Creating a context (ContextPrepare, when the stack has none that fits):
//   1. getcontext()/makecontext() for Trampoline on the stack, below the
//      callable storage and a reserve of at least kMinReserve bytes.
//   2. sigsetjmp() a local creator buffer and swapcontext() into it.
//   3. Trampoline sigsetjmp()s Stack::env and siglongjmp()s back.
//   4. The first ContextSwap() to the coroutine lands after step 3 and runs
//      CoroutineStart(), which loops: each time the coroutine finishes, its
//      terminate switch is resumed for the next use, so a pooled stack whose
//      storage still fits the reserve needs no new context.
// ASan builds create a new context for every use (the finished run's fake
// frames are released). Under TSan each switch changes fibers between the
// sigsetjmp() and the siglongjmp(), so TSan files every jump buffer under
// the fiber that will be resumed through it.

#include "coroutine/internal/context_config.h"

#if defined(AIOCO_CONTEXT_UCONTEXT)

// glibc's fortified longjmp refuses to jump to another stack.
#undef _FORTIFY_SOURCE
#define _FORTIFY_SOURCE 0

#include <setjmp.h>
#include <ucontext.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "coroutine/internal/context.h"
#include "coroutine/internal/sanitizer.h"
#include "coroutine/internal/stack.h"

namespace aioco {
namespace coroutine_internal {
namespace {

constexpr size_t kMinReserve = 256;

// Under ASan a finished run's frames go with its fake stack, which ASan
// frees at the terminating switch, so the trampoline loop cannot resume.
#if defined(AIOCO_ASAN)
constexpr bool kRemakeEachRun = true;
#else
constexpr bool kRemakeEachRun = false;
#endif

AIOCO_NO_SANITIZE_THREAD void Trampoline(unsigned hi, unsigned lo) {
  Coroutine* co = reinterpret_cast<Coroutine*>(
      (static_cast<uintptr_t>(hi) << 32) | static_cast<uintptr_t>(lo));
  Stack* st = CoreAccess::stack(co);
  const void* bottom_old;
  size_t size_old;
  AsanFinishSwitch(nullptr, &bottom_old, &size_old);
  void* fake_stack = nullptr;
  if (sigsetjmp(st->env, 0) == 0) {
    AsanStartSwitch(&fake_stack, bottom_old, size_old);
    TsanSwitchToFiber(st->creator_fiber);
    siglongjmp(*st->creator_env, 1);
  }
  CoroutineStart(co, fake_stack);
}

}  // namespace

void ContextPrepare(Coroutine* co, char* frame_top) {
  Stack* st = CoreAccess::stack(co);
  CoreAccess::backend(co) = &st->env;
  size_t needed = static_cast<size_t>(st->top - frame_top);
  if (!kRemakeEachRun && st->uc_ready && needed <= st->uc_reserve) return;

  size_t reserve = needed < kMinReserve ? kMinReserve : needed;
  uintptr_t ctx_top =
      (reinterpret_cast<uintptr_t>(st->top) - reserve) & ~uintptr_t{15};
  ucontext_t uc;
  ucontext_t old_uc;
  if (getcontext(&uc) != 0) {
    std::fprintf(stderr, "aioco: getcontext() failed creating a coroutine\n");
    std::abort();
  }
  uc.uc_link = nullptr;
  uc.uc_stack.ss_sp = st->lo;
  uc.uc_stack.ss_size = ctx_top - reinterpret_cast<uintptr_t>(st->lo);
  uc.uc_stack.ss_flags = 0;
  uintptr_t p = reinterpret_cast<uintptr_t>(co);
  makecontext(&uc, reinterpret_cast<void (*)()>(&Trampoline), 2,
              static_cast<unsigned>(p >> 32), static_cast<unsigned>(p));

  sigjmp_buf creator;
  st->creator_env = &creator;
  st->creator_fiber = TsanCurrentFiber();
  void* fake_stack = nullptr;
  if (sigsetjmp(creator, 0) == 0) {
    AsanStartSwitch(&fake_stack, st->lo, uc.uc_stack.ss_size);
    TsanSwitchToFiber(CoreAccess::tsan_fiber(co));
    swapcontext(&old_uc, &uc);
  }
  const void* bottom_old;
  size_t size_old;
  AsanFinishSwitch(fake_stack, &bottom_old, &size_old);
  st->creator_env = nullptr;
  st->uc_reserve = static_cast<size_t>(
      st->top - reinterpret_cast<char*>(ctx_top));
  st->uc_ready = true;
}

__attribute__((noinline)) intptr_t ContextSwap(Coroutine* from, Coroutine* to,
                                               intptr_t action) {
  auto* from_env = static_cast<sigjmp_buf*>(CoreAccess::backend(from));
  int ret = sigsetjmp(*from_env, 0);
  if (ret == 0) {
    TsanSwitchToFiber(CoreAccess::tsan_fiber(to));
    siglongjmp(*static_cast<sigjmp_buf*>(CoreAccess::backend(to)),
               static_cast<int>(action));
  }
  return ret;
}

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_CONTEXT_UCONTEXT
