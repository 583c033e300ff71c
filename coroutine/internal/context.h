// -----------------------------------------------------------------------------
// File: coroutine/internal/context.h
// -----------------------------------------------------------------------------
//
// The context-switch backend seam. Three backends:
//   * assembly (default): context_<arch>_<abi>_elf.S, a switch that saves
//     only the callee-saved state (registers, MXCSR/x87 control words or
//     FPCR); every start gets a fresh initial frame.
//   * inline asm (x86-64, --define=aioco_context=inline_asm): the switch is
//     an asm statement with a clobber list, so the compiler spills only the
//     registers live across it; FP control words stay per thread.
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
#include "coroutine/internal/thread_state.h"


namespace aioco {
namespace coroutine_internal {

// Runs on a new stack (defined in coroutine.cc). `fake_stack` is the ASan
// fake stack to restore on landing (nullptr for a fresh one).
[[noreturn]] void CoroutineStart(Coroutine* co, void* fake_stack);

void ContextPrepare(Coroutine* co, char* frame_top);

#if defined(AIOCO_CONTEXT_UCONTEXT)

intptr_t ContextSwap(Coroutine* from, Coroutine* to, intptr_t action);

inline void ContextInitLeader(ThreadState* ts) {
  CoreAccess::backend(&ts->leader) = &ts->leader_env;
}

#elif defined(AIOCO_CONTEXT_INLINE_ASM)

extern "C" void aioco_context_start();
extern "C" void aioco_context_start_inline();

// The switch as inline asm: saves rbp and a resume address on the current
// stack and declares every other register clobbered, so the compiler saves
// only what is live across the switch (often nothing). The MXCSR and x87
// control words are per thread here, not per coroutine (as with QEMU's
// sigsetjmp backend): a coroutine that changes them must restore them
// before it yields.
__attribute__((always_inline)) inline intptr_t ContextSwap(Coroutine* from,
                                                           Coroutine* to,
                                                           intptr_t action) {
  void** save = &CoreAccess::sp(from);
  void* load = CoreAccess::sp(to);
  intptr_t arg = action;
  __asm__ volatile(
      "subq $128, %%rsp\n\t"  // step over the red zone
      "pushq %%rbp\n\t"
      "leaq 1f(%%rip), %%rax\n\t"
      "pushq %%rax\n\t"
      "movq %%rsp, (%[save])\n\t"
      "movq %[load], %%rsp\n\t"
      "popq %%rax\n\t"
      "jmpq *%%rax\n"
      "1:\n\t"
      "popq %%rbp\n\t"
      "addq $128, %%rsp\n\t"
      : "+d"(arg), [save] "+D"(save), [load] "+S"(load)
      :
      : "rax", "rbx", "rcx", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
        "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
        "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)",
        "memory", "cc");
  return arg;
}

inline void ContextInitLeader(ThreadState*) {}

#else  // assembly backend

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
