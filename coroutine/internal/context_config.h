// -----------------------------------------------------------------------------
// File: coroutine/internal/context_config.h
// -----------------------------------------------------------------------------
//
// Chooses the context-switch backend: AIOCO_CONTEXT_UCONTEXT is defined by
// the build for --config=ucontext, and here for architectures that have no
// assembly switch; AIOCO_CONTEXT_INLINE_ASM by --define=aioco_context=
// inline_asm. Otherwise the .S switch is used. Includes nothing, so it can precede any system header.
//
// Thread safety: preprocessor only.

#ifndef AIOCO_COROUTINE_INTERNAL_CONTEXT_CONFIG_H_
#define AIOCO_COROUTINE_INTERNAL_CONTEXT_CONFIG_H_

#if !defined(AIOCO_CONTEXT_UCONTEXT) && !defined(__x86_64__) && \
    !defined(__aarch64__)
#define AIOCO_CONTEXT_UCONTEXT 1
#endif

// AIOCO_CONTEXT_INLINE_ASM (--define=aioco_context=inline_asm) selects the
// inline-asm switch on x86-64; elsewhere it falls back to the .S switch.
#if defined(AIOCO_CONTEXT_INLINE_ASM) && \
    (!defined(__x86_64__) || defined(AIOCO_CONTEXT_UCONTEXT))
#undef AIOCO_CONTEXT_INLINE_ASM
#endif

#endif  // AIOCO_COROUTINE_INTERNAL_CONTEXT_CONFIG_H_
