/* -----------------------------------------------------------------------------
 * File: coroutine/internal/context_aarch64_aapcs_elf.S
 * -----------------------------------------------------------------------------
 *
 * Context switch for AArch64 AAPCS64 (ELF). Same contract as the x86-64
 * version: aioco_context_swap(save_sp, load_sp, arg) saves x19-x30, d8-d15
 * and FPCR on the current stack, stores sp in *save_sp, switches to load_sp
 * and returns `arg` in the resumed context. aioco_context_start calls
 * x20(x19) on a new stack and never returns.
 *
 * Frame layout: context_asm_offsets.h.
 */

#include "coroutine/internal/context_asm_offsets.h"

        .text
        .globl  aioco_context_swap
        .hidden aioco_context_swap
        .type   aioco_context_swap, %function
        .p2align 4
aioco_context_swap:
        .cfi_startproc
        sub     sp, sp, #AIOCO_CTX_FRAME
        .cfi_adjust_cfa_offset AIOCO_CTX_FRAME
        stp     x19, x20, [sp, #AIOCO_CTX_X19]
        stp     x21, x22, [sp, #AIOCO_CTX_X21]
        stp     x23, x24, [sp, #AIOCO_CTX_X23]
        stp     x25, x26, [sp, #AIOCO_CTX_X25]
        stp     x27, x28, [sp, #AIOCO_CTX_X27]
        stp     x29, x30, [sp, #AIOCO_CTX_X29]
        stp     d8, d9, [sp, #AIOCO_CTX_D8]
        stp     d10, d11, [sp, #AIOCO_CTX_D10]
        stp     d12, d13, [sp, #AIOCO_CTX_D12]
        stp     d14, d15, [sp, #AIOCO_CTX_D14]
        mrs     x9, fpcr
        str     x9, [sp, #AIOCO_CTX_FPCR]
        mov     x10, sp
        str     x10, [x0]
        mov     sp, x1
        ldr     x10, [sp, #AIOCO_CTX_FPCR]
        cmp     x9, x10
        b.eq    1f
        msr     fpcr, x10
1:
        ldp     x19, x20, [sp, #AIOCO_CTX_X19]
        ldp     x21, x22, [sp, #AIOCO_CTX_X21]
        ldp     x23, x24, [sp, #AIOCO_CTX_X23]
        ldp     x25, x26, [sp, #AIOCO_CTX_X25]
        ldp     x27, x28, [sp, #AIOCO_CTX_X27]
        ldp     x29, x30, [sp, #AIOCO_CTX_X29]
        ldp     d8, d9, [sp, #AIOCO_CTX_D8]
        ldp     d10, d11, [sp, #AIOCO_CTX_D10]
        ldp     d12, d13, [sp, #AIOCO_CTX_D12]
        ldp     d14, d15, [sp, #AIOCO_CTX_D14]
        add     sp, sp, #AIOCO_CTX_FRAME
        .cfi_adjust_cfa_offset -AIOCO_CTX_FRAME
        mov     x0, x2
        ret
        .cfi_endproc
        .size   aioco_context_swap, .-aioco_context_swap

        .globl  aioco_context_start
        .hidden aioco_context_start
        .type   aioco_context_start, %function
        .p2align 4
aioco_context_start:
        .cfi_startproc
        .cfi_undefined x30
        mov     x0, x19
        blr     x20
        brk     #0
        .cfi_endproc
        .size   aioco_context_start, .-aioco_context_start

        .section .note.GNU-stack,"",%progbits
