// -----------------------------------------------------------------------------
// File: coroutine/internal/inline_switch.h
// -----------------------------------------------------------------------------
//
// The x86-64 inline-asm backend (the default there; see context_config.h):
// the context switch as an asm statement, and the inlined fast paths of
// Coroutine::Enter() and Coroutine::Yield() built on it. Included by
// coroutine.h; not for direct use.
//
// The switch saves the stack pointer, frame pointer and resume address into
// the suspended coroutine's object and declares every other register
// clobbered, so the compiler saves only what is live across it at each call
// site (usually little). The MXCSR and x87 control words are saved there too
// and reloaded by the resumed side, unless the build has
// --define=aioco_fp_control=thread. A new coroutine starts in
// aioco_context_start_inline (context_x86_64_sysv_elf.S), which skips the
// reload, so it inherits its first enterer's control words.
//
// Thread-local state is read with an initial-exec TLS sequence inside a
// volatile asm statement: it is executed again on every call and never
// reused across a switch, after which a coroutine may run on another thread.
// (Initial-exec means static TLS: a shared library holding //coroutine must
// be loaded at program start or fit glibc's static TLS surplus if dlopen()ed.)
//
// Fast paths: Enter() when the thread is set up, the coroutine is neither
// scheduled nor entered, and it yields without queueing wake-ups; Yield()
// always. Everything else (misuse aborts, wake-up lists, finishing and
// pooling) runs out of line in coroutine.cc.
//
// Thread safety: as Coroutine::Enter()/Yield().

#ifndef AIOCO_COROUTINE_INTERNAL_INLINE_SWITCH_H_
#define AIOCO_COROUTINE_INTERNAL_INLINE_SWITCH_H_

#include "coroutine/internal/context_config.h"

#if defined(AIOCO_CONTEXT_INLINE_ASM)

#include <atomic>
#include <cstdint>

#include "coroutine/coroutine.h"
#include "coroutine/internal/core_access.h"
#include "coroutine/internal/thread_state.h"

// The assembler needs literal offsets; core_access.h static_asserts them.
#define AIOCO_INLINE_SP_ "0"
#define AIOCO_INLINE_PC_ "8"
#define AIOCO_INLINE_FP_ "16"
#define AIOCO_INLINE_MXCSR_ "24"
#define AIOCO_INLINE_FPUCW_ "28"

#if defined(AIOCO_CONTEXT_FP_PER_THREAD)
#define AIOCO_INLINE_FP_SAVE_
#define AIOCO_INLINE_FP_LOAD_
#else
#define AIOCO_INLINE_FP_SAVE_                    \
  "stmxcsr " AIOCO_INLINE_MXCSR_ "(%%rdi)\n\t" \
  "fnstcw " AIOCO_INLINE_FPUCW_ "(%%rdi)\n\t"
#define AIOCO_INLINE_FP_LOAD_                    \
  "ldmxcsr " AIOCO_INLINE_MXCSR_ "(%%rsi)\n\t" \
  "fldcw " AIOCO_INLINE_FPUCW_ "(%%rsi)\n\t"
#endif

#if defined(__AVX512F__)
#define AIOCO_INLINE_AVX512_CLOBBERS_                                        \
  , "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", \
      "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30",        \
      "xmm31", "k1", "k2", "k3", "k4", "k5", "k6", "k7"
#else
#define AIOCO_INLINE_AVX512_CLOBBERS_
#endif

namespace aioco {
namespace coroutine_internal {

// The calling thread's ThreadState (defined in coroutine.cc under this
// assembler name).
__attribute__((always_inline)) inline ThreadState* FastThreadState() {
  ThreadState* ts;
  __asm__ volatile(
      "movq aioco_coroutine_thread_state@gottpoff(%%rip), %0\n\t"
      "addq %%fs:0, %0"
      : "=r"(ts));
  return ts;
}

// Suspends `*from` (whose state is saved in it) and resumes `*to`. Every
// register but rsp and rbp is declared clobbered; rbp is saved and restored
// explicitly (it may be the frame pointer, which cannot be a clobber). When
// `*from` is resumed later, the switch that resumes it leaves its own `from`
// in `*from`, `*from`'s old value (the one resumed) in `*to`, and its action
// in the return value: callers can use those registers instead of values
// spilled before the switch.
__attribute__((always_inline)) inline intptr_t InlineSwitchEx(
    Coroutine** from, Coroutine** to, intptr_t action) {
  __asm__ volatile(
      "leaq 1f(%%rip), %%rax\n\t"
      "movq %%rsp, " AIOCO_INLINE_SP_ "(%%rdi)\n\t"
      "movq %%rbp, " AIOCO_INLINE_FP_ "(%%rdi)\n\t"
      "movq %%rax, " AIOCO_INLINE_PC_ "(%%rdi)\n\t"
      AIOCO_INLINE_FP_SAVE_
      "movq " AIOCO_INLINE_SP_ "(%%rsi), %%rsp\n\t"
      "movq " AIOCO_INLINE_FP_ "(%%rsi), %%rbp\n\t"
      "jmpq *" AIOCO_INLINE_PC_ "(%%rsi)\n"
      // Resumed here by a switch whose `to` (in rsi) is our `from`.
      "1:\n\t"
      "endbr64\n\t"
      AIOCO_INLINE_FP_LOAD_
      : "+D"(*from), "+S"(*to), "+d"(action)
      :
      : "rax", "rbx", "rcx", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
        "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
        "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)",
        "mm0", "mm1", "mm2", "mm3", "mm4", "mm5", "mm6", "mm7", "memory",
        "cc" AIOCO_INLINE_AVX512_CLOBBERS_);
  return action;
}

// Suspends `from` and resumes `to`; returns the action passed by whoever
// later resumes `from`.
__attribute__((always_inline)) inline intptr_t InlineSwitch(Coroutine* from,
                                                            Coroutine* to,
                                                            intptr_t action) {
  return InlineSwitchEx(&from, &to, action);
}

// Out of line (coroutine.cc).
void EnterSlow(ThreadState* ts, Coroutine* co);
void EnterFinish(ThreadState* ts, AioContext* ctx, Coroutine* co,
                 intptr_t action);
[[noreturn]] void DieYieldOutside();

}  // namespace coroutine_internal

inline void Coroutine::Enter() {
  using coroutine_internal::kActionEnter;
  using coroutine_internal::kActionYield;
  coroutine_internal::ThreadState* ts = coroutine_internal::FastThreadState();
  // Acquire: pairs with the acq_rel compare-exchange that claims the marker
  // (AioContext::ScheduleCoroutine(), CoSleep's wake).
  const char* scheduled = scheduled_.load(std::memory_order_acquire);
  if (__builtin_expect(
          (!ts->initialized) | (scheduled != nullptr) | (caller_ != nullptr),
          0)) {
    coroutine_internal::EnterSlow(ts, this);
    return;
  }
  Coroutine* const from = ts->current;
  Coroutine* switcher = from != nullptr ? from : &ts->leader;
  Coroutine* resumed = this;
  AioContext* const ctx = ts->aio_ctx;
  caller_ = switcher;
  // Release: publishes the context before anything publishes this coroutine;
  // pairs with the acquire load in aio_context() (CoWake()).
  ctx_.store(ctx, std::memory_order_release);
  ts->current = this;
  const intptr_t ret =
      coroutine_internal::InlineSwitchEx(&switcher, &resumed, kActionEnter);
  // Only this coroutine can switch back to us (by yielding or finishing),
  // so we are on the same thread, `switcher` is this coroutine and
  // `resumed` is the enterer again. Using them (and reading the thread
  // state afresh) keeps the compiler from reloading spilled values, which
  // could stall on false store dependencies.
  Coroutine* const co = switcher;
  coroutine_internal::ThreadState* const ts2 =
      coroutine_internal::FastThreadState();
  ts2->current = resumed == &ts2->leader ? nullptr : resumed;
  if (__builtin_expect((co->wakeup_head_ != nullptr) | (ret != kActionYield),
                       0)) {
    coroutine_internal::EnterFinish(ts2, ctx, co, ret);
  }
}

inline void Coroutine::Yield() {
  coroutine_internal::ThreadState* ts = coroutine_internal::FastThreadState();
  Coroutine* const self = ts->current;
  if (__builtin_expect(self == nullptr, 0)) {
    coroutine_internal::DieYieldOutside();
  }
  Coroutine* const to = self->caller_;
  self->caller_ = nullptr;
  // Possibly on another thread afterwards: nothing above is reused.
  coroutine_internal::InlineSwitch(self, to, coroutine_internal::kActionYield);
}

}  // namespace aioco

#endif  // AIOCO_CONTEXT_INLINE_ASM

#endif  // AIOCO_COROUTINE_INTERNAL_INLINE_SWITCH_H_
