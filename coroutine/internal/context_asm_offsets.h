/* -----------------------------------------------------------------------------
 * File: coroutine/internal/context_asm_offsets.h
 * -----------------------------------------------------------------------------
 *
 * Layout of the frame the assembly context switch keeps on a suspended stack,
 * shared by the .S files and C++ (context_asm.h static_asserts it against
 * AsmFrame). Plain macros: this header is also read by the assembler.
 *
 * Thread safety: constants only.
 */

#ifndef AIOCO_COROUTINE_INTERNAL_CONTEXT_ASM_OFFSETS_H_
#define AIOCO_COROUTINE_INTERNAL_CONTEXT_ASM_OFFSETS_H_

#if defined(__x86_64__)
/* x86-64 System V: rbx, rbp, r12-r15 plus the MXCSR control bits and the x87
 * control word are callee-saved. The return address sits above them. */
#define AIOCO_CTX_MXCSR 0
#define AIOCO_CTX_FPUCW 4
#define AIOCO_CTX_R15 8
#define AIOCO_CTX_R14 16
#define AIOCO_CTX_R13 24
#define AIOCO_CTX_R12 32
#define AIOCO_CTX_RBX 40
#define AIOCO_CTX_RBP 48
#define AIOCO_CTX_RET 56
#define AIOCO_CTX_SAVED 56 /* bytes below the return address */
#define AIOCO_CTX_FRAME 64 /* including the return address */
/* In a new context's MXCSR slot (reserved bits set: never a real value):
 * keep the enterer's control words instead of loading any. Reading them
 * when the frame is prepared would cost as much as a switch. */
#define AIOCO_CTX_FP_INHERIT 0xffffffff
#elif defined(__aarch64__)
/* AAPCS64: x19-x28, fp (x29), lr (x30), d8-d15 and FPCR. */
#define AIOCO_CTX_X19 0
#define AIOCO_CTX_X21 16
#define AIOCO_CTX_X23 32
#define AIOCO_CTX_X25 48
#define AIOCO_CTX_X27 64
#define AIOCO_CTX_X29 80 /* fp, then lr (x30) at +88 */
#define AIOCO_CTX_LR 88
#define AIOCO_CTX_D8 96
#define AIOCO_CTX_D10 112
#define AIOCO_CTX_D12 128
#define AIOCO_CTX_D14 144
#define AIOCO_CTX_FPCR 160
#define AIOCO_CTX_FRAME 176
#endif

#endif /* AIOCO_COROUTINE_INTERNAL_CONTEXT_ASM_OFFSETS_H_ */
