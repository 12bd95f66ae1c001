/*
 * The context switch for AArch64 (AAPCS64), the fast path of async mode.
 *
 *   void ss__ctx_switch(ss__ctx *from, const ss__ctx *to);
 *
 * Saves exactly what the procedure call standard says a called function
 * must preserve: x19-x28, the frame pointer x29, the link register x30,
 * the low 64 bits of v8-v15 (d8-d15), the stack pointer, and the
 * floating-point control register FPCR (rounding mode, flush-to-zero).
 * No system call: the signal mask is per thread and not switched.
 *
 * Frame, 176 bytes (a multiple of 16, so sp stays aligned):
 *   [0..95]    x19-x30        [96..159]  d8-d15
 *   [160]      fpcr           [168]      padding
 *
 * A new context (ss__ctx_make in coro.c) is a stack laid out as if
 * ss__ctx_switch had saved it, with x30 = ss__ctx_start, the entry
 * function in x19 and its argument in x20.
 */
#if defined(__aarch64__) && !defined(SS_FORCE_UCONTEXT)

        .text
        .globl  ss__ctx_switch
        .hidden ss__ctx_switch
        .type   ss__ctx_switch, %function
        .p2align 4
ss__ctx_switch:
        .cfi_startproc
        sub     sp, sp, #176
        .cfi_adjust_cfa_offset 176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]                /* from->sp */
        ldr     x9, [x1]                /* to->sp */
        mov     sp, x9
        ldr     x9, [sp, #160]
        msr     fpcr, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176
        .cfi_adjust_cfa_offset -176
        ret
        .cfi_endproc
        .size   ss__ctx_switch, .-ss__ctx_switch

/* The first instruction a new context runs: call entry(arg). The entry
 * function never returns (it switches away for the last time instead). */
        .globl  ss__ctx_start
        .hidden ss__ctx_start
        .type   ss__ctx_start, %function
        .p2align 4
ss__ctx_start:
        .cfi_startproc
        .cfi_undefined x30              /* the outermost frame */
        mov     x0, x20
        blr     x19
        brk     #0
        .cfi_endproc
        .size   ss__ctx_start, .-ss__ctx_start

#endif

        .section .note.GNU-stack, "", %progbits
