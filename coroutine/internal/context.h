// -----------------------------------------------------------------------------
// File: coroutine/internal/context.h
// -----------------------------------------------------------------------------
//
// The context-switch backend seam. Three backends:
//   * assembly (AArch64; x86-64 sanitizer builds or
//     --define=aioco_context=asm): context_<arch>_<abi>_elf.S, a switch that
//     saves only the callee-saved registers (plus FPCR on AArch64, and the
//     x86-64 MXCSR/x87 control words with --define=aioco_fp_control=
//     coroutine); every start gets a fresh initial frame.
//   * inline asm (x86-64 default, see context_config.h): the switch is an
//     asm statement with a clobber list (inline_switch.h), so the compiler
//     spills only the registers live across it; the control words likewise
//     only with --define=aioco_fp_control=coroutine. A pooled coroutine's
//     finished run stays parked in CoroutineStart()'s loop and is resumed
//     for the next run (Stack::start_top).
//   * ucontext (--config=ucontext, or architectures without a .S file):
//     makecontext() creates a context, sigsetjmp()/siglongjmp() switch (no
//     signal-mask system call per switch). The trampoline loops, so a pooled
//     coroutine is restarted without creating its context again.
//
// ContextPrepare(co, frame_top): make `co` start in CoroutineStart(co) the
//   next time it is switched to, with its frames below `frame_top`.
// ContextSwap(from, to, action): suspend `from`, resume `to`; returns the
//   action passed by whoever later resumes `from`.
// ContextInitLeader(ts): make the thread's leader a valid switch target.
//
// Thread safety: operates on the coroutines named, on the calling thread.

#ifndef AIOCO_COROUTINE_INTERNAL_CONTEXT_H_
#define AIOCO_COROUTINE_INTERNAL_CONTEXT_H_

#include <cstdint>

#include "coroutine/coroutine.h"
#include "coroutine/internal/context_config.h"
#include "coroutine/internal/core_access.h"
#include "coroutine/internal/inline_switch.h"
#include "coroutine/internal/thread_state.h"


namespace aioco {
namespace coroutine_internal {

// Runs on a new stack (defined in coroutine.cc). `fake_stack` is the ASan
// fake stack to restore on landing (nullptr for a fresh one).
[[noreturn]] void CoroutineStart(Coroutine* co, void* fake_stack);

#if defined(AIOCO_CONTEXT_UCONTEXT)

void ContextPrepare(Coroutine* co, char* frame_top);

intptr_t ContextSwap(Coroutine* from, Coroutine* to, intptr_t action);

inline void ContextInitLeader(ThreadState* ts) {
  CoreAccess::backend(&ts->leader) = &ts->leader_env;
}

#elif defined(AIOCO_CONTEXT_INLINE_ASM)

extern "C" void aioco_context_start_inline();

// Calls CoroutineStart(co, nullptr) (context_asm.cc).
void CoroutineStartThunk(Coroutine* co);

// The first switch jumps to aioco_context_start_inline with rsp at `slot`
// (16-byte aligned, for the call it makes through slot[0]) and the coroutine
// in rsi; no control words are loaded, so they are inherited. Inline: it is
// part of every Create().
inline void ContextPrepare(Coroutine* co, char* frame_top) {
  uintptr_t top = reinterpret_cast<uintptr_t>(frame_top) & ~uintptr_t{15};
  auto* slot = reinterpret_cast<void**>(top - 16);
  slot[0] = reinterpret_cast<void*>(&CoroutineStartThunk);
  CoreAccess::sp(co) = slot;
  CoreAccess::fp(co) = nullptr;
  CoreAccess::pc(co) = reinterpret_cast<void*>(&aioco_context_start_inline);
}

__attribute__((always_inline)) inline intptr_t ContextSwap(Coroutine* from,
                                                           Coroutine* to,
                                                           intptr_t action) {
  return InlineSwitch(from, to, action);
}

inline void ContextInitLeader(ThreadState*) {}

#else  // assembly backend

void ContextPrepare(Coroutine* co, char* frame_top);

extern "C" intptr_t aioco_context_swap(void** save_sp, void* load_sp,
                                       intptr_t arg);
extern "C" void aioco_context_start();

inline intptr_t ContextSwap(Coroutine* from, Coroutine* to, intptr_t action) {
  return aioco_context_swap(&CoreAccess::sp(from), CoreAccess::sp(to), action);
}

inline void ContextInitLeader(ThreadState*) {}

#endif

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // AIOCO_COROUTINE_INTERNAL_CONTEXT_H_
