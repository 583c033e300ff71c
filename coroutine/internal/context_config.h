// -----------------------------------------------------------------------------
// File: coroutine/internal/context_config.h
// -----------------------------------------------------------------------------
//
// Chooses the context-switch backend. Exactly one of these ends up defined:
//   AIOCO_CONTEXT_INLINE_ASM  x86-64 default: the switch is an asm statement
//                             inlined into Enter()/Yield() (inline_switch.h).
//   AIOCO_CONTEXT_UCONTEXT    --config=ucontext, and architectures without an
//                             assembly switch.
//   (neither)                 the out-of-line .S switch: AArch64, sanitizer
//                             builds (every switch is announced to ASan/TSan
//                             out of line anyway), and
//                             --define=aioco_context=asm on x86-64.
//
// Floating-point control words on x86-64: AIOCO_CONTEXT_FP_PER_THREAD (the
// default) leaves MXCSR and the x87 control word alone on a switch, so
// coroutines share their thread's; AIOCO_CONTEXT_FP_PER_COROUTINE
// (--define=aioco_fp_control=coroutine) saves and restores them on every
// switch (about 2.5 ns per enter/yield round trip), as the ABI's
// callee-saved rule would have it.
//
// The build passes AIOCO_CONTEXT_UCONTEXT / AIOCO_CONTEXT_ASM /
// AIOCO_CONTEXT_FP_PER_COROUTINE as `defines`, so every translation unit
// that includes coroutine.h agrees on the choice. Includes nothing and is
// plain preprocessor, so it can precede any system header and is also read
// by the .S files.
//
// Thread safety: preprocessor only.

#ifndef AIOCO_COROUTINE_INTERNAL_CONTEXT_CONFIG_H_
#define AIOCO_COROUTINE_INTERNAL_CONTEXT_CONFIG_H_

#if !defined(AIOCO_CONTEXT_UCONTEXT) && !defined(__x86_64__) && \
    !defined(__aarch64__)
#define AIOCO_CONTEXT_UCONTEXT 1
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AIOCO_CONTEXT_SANITIZED_ 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define AIOCO_CONTEXT_SANITIZED_ 1
#endif
#endif

#if defined(AIOCO_CONTEXT_INLINE_ASM)
#undef AIOCO_CONTEXT_INLINE_ASM
#endif
#if defined(__x86_64__) && !defined(AIOCO_CONTEXT_UCONTEXT) && \
    !defined(AIOCO_CONTEXT_ASM) && !defined(AIOCO_CONTEXT_SANITIZED_)
#define AIOCO_CONTEXT_INLINE_ASM 1
#endif

#if defined(AIOCO_CONTEXT_FP_PER_COROUTINE)
#undef AIOCO_CONTEXT_FP_PER_THREAD
#elif defined(__x86_64__) && !defined(AIOCO_CONTEXT_FP_PER_THREAD)
#define AIOCO_CONTEXT_FP_PER_THREAD 1
#endif

#endif  // AIOCO_COROUTINE_INTERNAL_CONTEXT_CONFIG_H_
