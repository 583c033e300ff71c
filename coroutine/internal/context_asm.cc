// The assembly backend's C++ side: builds the initial frame that
// aioco_context_swap() "returns" into on a coroutine's first switch.
//
// The inline-asm backend's initial frame is two words (ContextPrepare() in
// context.h); the .S backend's is below. Every start (first use and each
// reuse from the pool) writes a fresh frame just below the callable storage, so the trampoline never loops and a
// finished coroutine's stack is simply abandoned:
//   1. ContextPrepare() writes the callee-saved slots (coroutine pointer and
//      C++ entry for aioco_context_start, zero frame pointer; on x86-64 the
//      "inherit the enterer's" marker for MXCSR/x87 CW, on AArch64 the
//      current FPCR) and the return address.
//   2. The first ContextSwap() to the coroutine pops them and returns into
//      aioco_context_start, which calls CoroutineStart(co).

#include "coroutine/internal/context.h"  // selects the backend

#if !defined(AIOCO_CONTEXT_UCONTEXT)

#include <cstddef>
#include <cstdint>

#include "coroutine/internal/context_asm_offsets.h"
#include "coroutine/internal/sanitizer.h"

namespace aioco {
namespace coroutine_internal {
namespace {

#if defined(__x86_64__)
struct AsmFrame {
  uint32_t mxcsr;
  uint16_t fpucw;
  uint16_t pad;
  void* r15;
  void* r14;
  void* r13;
  void* r12;
  void* rbx;
  void* rbp;
  void* ret;
};
static_assert(offsetof(AsmFrame, mxcsr) == AIOCO_CTX_MXCSR);
static_assert(offsetof(AsmFrame, fpucw) == AIOCO_CTX_FPUCW);
static_assert(offsetof(AsmFrame, r15) == AIOCO_CTX_R15);
static_assert(offsetof(AsmFrame, r14) == AIOCO_CTX_R14);
static_assert(offsetof(AsmFrame, r13) == AIOCO_CTX_R13);
static_assert(offsetof(AsmFrame, r12) == AIOCO_CTX_R12);
static_assert(offsetof(AsmFrame, rbx) == AIOCO_CTX_RBX);
static_assert(offsetof(AsmFrame, rbp) == AIOCO_CTX_RBP);
static_assert(offsetof(AsmFrame, ret) == AIOCO_CTX_RET);
static_assert(sizeof(AsmFrame) == AIOCO_CTX_FRAME);
static_assert(AIOCO_CTX_SAVED + 8 == AIOCO_CTX_FRAME);
#elif defined(__aarch64__)
struct AsmFrame {
  void* x19;
  void* x20;
  void* x21_x28[8];
  void* x29;
  void* lr;
  double d8_d15[8];
  uint64_t fpcr;
  uint64_t pad;
};
static_assert(offsetof(AsmFrame, x19) == AIOCO_CTX_X19);
static_assert(offsetof(AsmFrame, x21_x28) == AIOCO_CTX_X21);
static_assert(offsetof(AsmFrame, x29) == AIOCO_CTX_X29);
static_assert(offsetof(AsmFrame, lr) == AIOCO_CTX_LR);
static_assert(offsetof(AsmFrame, d8_d15) == AIOCO_CTX_D8);
static_assert(offsetof(AsmFrame, fpcr) == AIOCO_CTX_FPCR);
static_assert(sizeof(AsmFrame) == AIOCO_CTX_FRAME);
#else
#error "no assembly context switch for this architecture; use --config=ucontext"
#endif

AIOCO_NO_SANITIZE_THREAD void StartThunk(Coroutine* co) {
  CoroutineStart(co, nullptr);
}

}  // namespace

#if defined(AIOCO_CONTEXT_INLINE_ASM)

// ContextPrepare() is inline in context.h.
void CoroutineStartThunk(Coroutine* co) { StartThunk(co); }

#else

void ContextPrepare(Coroutine* co, char* frame_top) {
  uintptr_t top = reinterpret_cast<uintptr_t>(frame_top) & ~uintptr_t{15};
#if defined(__x86_64__)
  // After `ret` pops the return address, rsp must be 16-byte aligned so that
  // the `call` in aioco_context_start gives the callee the ABI's alignment.
  auto* frame = reinterpret_cast<AsmFrame*>(top - 16 - sizeof(AsmFrame));
  frame->mxcsr = AIOCO_CTX_FP_INHERIT;
  frame->fpucw = 0;
  frame->pad = 0;
  frame->r15 = frame->r14 = frame->r13 = nullptr;
  frame->r12 = reinterpret_cast<void*>(&StartThunk);
  frame->rbx = co;
  frame->rbp = nullptr;
  frame->ret = reinterpret_cast<void*>(&aioco_context_start);
#elif defined(__aarch64__)
  auto* frame = reinterpret_cast<AsmFrame*>(top - sizeof(AsmFrame));
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  *frame = AsmFrame{};
  frame->fpcr = fpcr;
  frame->x19 = co;
  frame->x20 = reinterpret_cast<void*>(&StartThunk);
  frame->x29 = nullptr;
  frame->lr = reinterpret_cast<void*>(&aioco_context_start);
#endif
  CoreAccess::sp(co) = frame;
}

#endif  // AIOCO_CONTEXT_INLINE_ASM

}  // namespace coroutine_internal
}  // namespace aioco

#endif  // !AIOCO_CONTEXT_UCONTEXT
