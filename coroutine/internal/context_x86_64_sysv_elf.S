/* -----------------------------------------------------------------------------
 * File: coroutine/internal/context_x86_64_sysv_elf.S
 * -----------------------------------------------------------------------------
 *
 * Context switch for x86-64 System V (ELF).
 *
 * intptr_t aioco_context_swap(void** save_sp, void* load_sp, intptr_t arg)
 *   Saves the callee-saved state of the calling context on its own stack,
 *   stores the stack pointer in *save_sp, switches to load_sp and resumes the
 *   context suspended there, which sees `arg` as the return value of its own
 *   aioco_context_swap call (or, for a new context, starts in
 *   aioco_context_start). The control registers (MXCSR, x87 control word)
 *   are stored and reloaded like Boost.Context does; comparing them first
 *   measured slower (the read-back stalls on store forwarding). A new
 *   context's frame carries AIOCO_CTX_FP_INHERIT instead of values: it
 *   starts with its first enterer's, so preparing a frame reads nothing.
 *   This is only done with AIOCO_CONTEXT_FP_PER_COROUTINE
 *   (--define=aioco_fp_control=coroutine); by default (see
 *   context_config.h) the control words are not switched at all: they stay
 *   per thread, as with glibc's setjmp/longjmp that QEMU switches with. Reading MXCSR
 *   (stmxcsr) is most of the cost of a switch.
 *
 * aioco_context_start: first code run on a new stack (jumped to). The prepared frame
 *   holds the coroutine in rbx and the C++ entry in r12; calls r12(rbx),
 *   which never returns.
 *
 * Frame layout: context_asm_offsets.h.
 */

#include "coroutine/internal/context_asm_offsets.h"
#include "coroutine/internal/context_config.h"

        .text
        .globl  aioco_context_swap
        .hidden aioco_context_swap
        .type   aioco_context_swap, @function
        .p2align 4
aioco_context_swap:
        .cfi_startproc
        endbr64
        subq    $AIOCO_CTX_SAVED, %rsp
        .cfi_adjust_cfa_offset AIOCO_CTX_SAVED
#if !defined(AIOCO_CONTEXT_FP_PER_THREAD)
        stmxcsr AIOCO_CTX_MXCSR(%rsp)
        fnstcw  AIOCO_CTX_FPUCW(%rsp)
#endif
        movq    %r15, AIOCO_CTX_R15(%rsp)
        movq    %r14, AIOCO_CTX_R14(%rsp)
        movq    %r13, AIOCO_CTX_R13(%rsp)
        movq    %r12, AIOCO_CTX_R12(%rsp)
        movq    %rbx, AIOCO_CTX_RBX(%rsp)
        movq    %rbp, AIOCO_CTX_RBP(%rsp)
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
#if !defined(AIOCO_CONTEXT_FP_PER_THREAD)
        cmpl    $AIOCO_CTX_FP_INHERIT, AIOCO_CTX_MXCSR(%rsp)
        je      .Lfpucw_done
        ldmxcsr AIOCO_CTX_MXCSR(%rsp)
        fldcw   AIOCO_CTX_FPUCW(%rsp)
#endif
.Lfpucw_done:
        movq    AIOCO_CTX_RET(%rsp), %r8
        movq    AIOCO_CTX_R15(%rsp), %r15
        movq    AIOCO_CTX_R14(%rsp), %r14
        movq    AIOCO_CTX_R13(%rsp), %r13
        movq    AIOCO_CTX_R12(%rsp), %r12
        movq    AIOCO_CTX_RBX(%rsp), %rbx
        movq    AIOCO_CTX_RBP(%rsp), %rbp
        addq    $AIOCO_CTX_FRAME, %rsp
        .cfi_adjust_cfa_offset -AIOCO_CTX_FRAME
        movq    %rdx, %rax
        /* An indirect jump, not `ret`: the return stack buffer predicts the
         * suspended caller, never the context being resumed, while the
         * branch predictor learns the alternating targets of this jump. */
        jmp     *%r8
        .cfi_adjust_cfa_offset AIOCO_CTX_FRAME
        .cfi_endproc
        .size   aioco_context_swap, .-aioco_context_swap

        .globl  aioco_context_start
        .hidden aioco_context_start
        .type   aioco_context_start, @function
        .p2align 4
aioco_context_start:
        .cfi_startproc
        .cfi_undefined rip
        endbr64
        movq    %rbx, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
        .size   aioco_context_start, .-aioco_context_start

/* aioco_context_start_inline: first code run on a new stack by the
 * inline-asm switch (inline_switch.h), which jumps here with the coroutine
 * in rsi and rsp at a 16-byte aligned slot holding the C++ entry. The
 * control words are not loaded: the coroutine inherits its enterer's. */
        .globl  aioco_context_start_inline
        .hidden aioco_context_start_inline
        .type   aioco_context_start_inline, @function
        .p2align 4
aioco_context_start_inline:
        .cfi_startproc
        .cfi_undefined rip
        endbr64
        movq    %rsi, %rdi
        callq   *(%rsp)
        ud2
        .cfi_endproc
        .size   aioco_context_start_inline, .-aioco_context_start_inline

        .section .note.GNU-stack,"",@progbits
