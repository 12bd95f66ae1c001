/*
 * The context switch for x86-64 (System V ABI), the fast path of async mode.
 *
 *   void ss__ctx_switch(ss__ctx *from, const ss__ctx *to);
 *
 * Saves exactly what the ABI says a called function must preserve: the
 * callee-saved registers rbx, rbp and r12-r15, the stack pointer, and the
 * floating-point control state (MXCSR's control bits and the x87 control
 * word). Everything else is caller-saved, so the C caller has already
 * spilled what it needs. No system call: unlike glibc's swapcontext, the
 * signal mask is not saved or restored (it is per thread, and a coroutine
 * never changes it).
 *
 * A new context (ss__ctx_make in coro.c) is a stack laid out as if
 * ss__ctx_switch had saved it, with ss__ctx_start as the return address,
 * the entry function in r12 and its argument in r13.
 */
#if defined(__x86_64__) && !defined(SS_FORCE_UCONTEXT)

        .text
        .globl  ss__ctx_switch
        .hidden ss__ctx_switch
        .type   ss__ctx_switch, @function
        .p2align 4
ss__ctx_switch:
        .cfi_startproc
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        subq    $8, %rsp
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)            /* from->sp */
        movq    (%rsi), %rsp            /* to->sp */
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        .cfi_adjust_cfa_offset -8
        popq    %r12
        .cfi_adjust_cfa_offset -8
        popq    %r13
        .cfi_adjust_cfa_offset -8
        popq    %r14
        .cfi_adjust_cfa_offset -8
        popq    %r15
        .cfi_adjust_cfa_offset -8
        popq    %rbx
        .cfi_adjust_cfa_offset -8
        popq    %rbp
        .cfi_adjust_cfa_offset -8
        ret
        .cfi_endproc
        .size   ss__ctx_switch, .-ss__ctx_switch

/* The first instruction a new context runs, entered by ss__ctx_switch's
 * ret with a 16-byte aligned stack: call entry(arg). The entry function
 * never returns (it switches away for the last time instead). */
        .globl  ss__ctx_start
        .hidden ss__ctx_start
        .type   ss__ctx_start, @function
        .p2align 4
ss__ctx_start:
        .cfi_startproc
        .cfi_undefined rip              /* the outermost frame */
        movq    %r13, %rdi
        call    *%r12
        ud2
        .cfi_endproc
        .size   ss__ctx_start, .-ss__ctx_start

#endif

        .section .note.GNU-stack, "", @progbits
