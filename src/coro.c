/*
 * Coroutines: a context (registers and a stack) that can be switched to and
 * from. The switch itself is hand-written for x86-64 and AArch64
 * (switch_x86_64.S, switch_aarch64.S) and makes no system call; elsewhere,
 * or with -DSS_FORCE_UCONTEXT, it is glibc's swapcontext, which also saves
 * and restores the signal mask (a sigprocmask system call per switch).
 *
 * The sanitizers need to know about every switch: AddressSanitizer keeps
 * per-stack state (the bounds of the stack in use, fake stacks for
 * use-after-return), ThreadSanitizer a per-fiber clock. ss__coro_switch
 * tells them, so the async tests run in the ASan and TSan builds too.
 * ThreadSanitizer also needs the signals held across a switch (see
 * tsan_hold_signals).
 *
 * Coroutines only ever switch between a loop's scheduler (a thread's own
 * stack) and one coroutine, never from coroutine to coroutine: each
 * coroutine remembers the bounds of the thread stack that resumed it, which
 * AddressSanitizer needs to switch back.
 */
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

#if SS__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if SS__TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* ---- the raw context ---------------------------------------------------- */

#if SS__CTX_ASM

void ss__ctx_start(void);   /* switch_*.S */

#if defined(__x86_64__)
/* The frame ss__ctx_switch pops: the MXCSR and x87 control word, r12-r15,
 * rbx, rbp, then the return address. Entered through `ret`, ss__ctx_start
 * finds a 16-byte aligned stack, as a call instruction expects. */
void ss__ctx_make(ss__ctx *ctx, void *stack, size_t size,
                  void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 16) - 8;
    uint32_t mxcsr;
    uint16_t fpucw;

    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    memset(sp, 0, 10 * sizeof *sp);
    sp[0] = (uint64_t)mxcsr | (uint64_t)fpucw << 32;
    sp[1] = (uint64_t)(uintptr_t)entry;     /* r12 */
    sp[2] = (uint64_t)(uintptr_t)arg;       /* r13 */
    /* r14, r15, rbx: 0; rbp: 0 ends the frame-pointer chain */
    sp[7] = (uint64_t)(uintptr_t)ss__ctx_start;
    ctx->sp = sp;
}

const char *ss__ctx_kind(void)
{
    return "x86-64";
}
#elif defined(__aarch64__)
/* The 176-byte frame of ss__ctx_switch: x19-x30, d8-d15, fpcr. */
void ss__ctx_make(ss__ctx *ctx, void *stack, size_t size,
                  void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 176);
    uint64_t fpcr;

    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)entry;     /* x19 */
    sp[1] = (uint64_t)(uintptr_t)arg;       /* x20 */
    sp[10] = 0;                             /* x29: ends the frame chain */
    sp[11] = (uint64_t)(uintptr_t)ss__ctx_start;  /* x30 */
    sp[20] = fpcr;
    ctx->sp = sp;
}

const char *ss__ctx_kind(void)
{
    return "aarch64";
}
#endif

#else /* ucontext */

/* makecontext passes int arguments only: the pointers travel in halves. */
static void ucontext_start(unsigned fhi, unsigned flo, unsigned ahi,
                           unsigned alo)
{
    void (*entry)(void *) =
        (void (*)(void *))(((uintptr_t)fhi << 16 << 16) | flo);
    void *arg = (void *)(((uintptr_t)ahi << 16 << 16) | alo);

    entry(arg);
    abort();    /* an entry function never returns */
}

void ss__ctx_make(ss__ctx *ctx, void *stack, size_t size,
                  void (*entry)(void *), void *arg)
{
    uintptr_t f = (uintptr_t)entry, a = (uintptr_t)arg;

    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = stack;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))ucontext_start, 4,
                (unsigned)(f >> 16 >> 16), (unsigned)f,
                (unsigned)(a >> 16 >> 16), (unsigned)a);
}

void ss__ctx_switch(ss__ctx *from, const ss__ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}

const char *ss__ctx_kind(void)
{
    return "ucontext";
}

#endif

/* ---- coroutines ------------------------------------------------------- */

#if SS__TSAN
/* ThreadSanitizer runs a signal handler at once only when the signal
 * arrives inside an intercepted blocking call; otherwise it keeps the
 * signal on the running fiber until that fiber's next intercepted call (or
 * atomic operation). A signal that arrives in the last instructions before a
 * coroutine parks would then wait for that coroutine to run again, which a
 * handler parked on an idle client never does: SIGINT did not shut such a
 * server down. So signals are blocked across every switch: blocking them is
 * an intercepted call, which runs what the leaving fiber holds; unblocking
 * them on the arriving fiber delivers, there, what came in between. The
 * synchronous faults stay unblocked (a fault with them blocked kills the
 * process). Only this build pays the two system calls per switch. */
static void tsan_hold_signals(ss__coro *to)
{
    sigset_t async;

    ss__async_signals(&async);
    pthread_sigmask(SIG_BLOCK, &async, &to->tsan_sigmask);
}

static void tsan_release_signals(const ss__coro *self)
{
    pthread_sigmask(SIG_SETMASK, &self->tsan_sigmask, NULL);
}
#endif

void ss__coro_init_thread(ss__coro *co)
{
    memset(co, 0, sizeof *co);
#if SS__TSAN
    co->tsan_fiber = __tsan_get_current_fiber();
#endif
}

int ss__coro_init(ss__coro *co, void *stack, size_t size)
{
    memset(co, 0, sizeof *co);
    co->stack = stack;
    co->stack_size = size;
#if SS__TSAN
    if (!(co->tsan_fiber = __tsan_create_fiber(0)))
        return -ENOMEM;
#endif
    return 0;
}

void ss__coro_prepare(ss__coro *co, void (*entry)(void *), void *arg)
{
#if SS__ASAN
    /* A reused stack may hold the poisoned redzones of frames that never
     * returned (the entry function of the previous coroutine). */
    __asan_unpoison_memory_region(co->stack, co->stack_size);
#endif
    ss__ctx_make(&co->ctx, co->stack, co->stack_size, entry, arg);
}

void ss__coro_destroy(ss__coro *co)
{
#if SS__TSAN
    if (co->stack && co->tsan_fiber)
        __tsan_destroy_fiber(co->tsan_fiber);
    co->tsan_fiber = NULL;
#else
    (void)co;
#endif
}

void ss__coro_started(ss__coro *co)
{
#if SS__ASAN
    __sanitizer_finish_switch_fiber(NULL, &co->asan_caller_bottom,
                                    &co->asan_caller_size);
#elif SS__TSAN
    tsan_release_signals(co);
#else
    (void)co;
#endif
}

/* Where `to` runs, as AddressSanitizer wants it: a coroutine's own stack,
 * or for a thread's stack the bounds `from` learned when it was resumed. */
#if SS__ASAN
static void asan_target(const ss__coro *from, const ss__coro *to,
                        const void **bottom, size_t *size)
{
    if (to->stack) {
        *bottom = to->stack;
        *size = to->stack_size;
    } else {
        *bottom = from->asan_caller_bottom;
        *size = from->asan_caller_size;
    }
}
#endif

#if SS__ASAN || SS__TSAN
void ss__coro_switch(ss__coro *from, ss__coro *to)
{
#if SS__ASAN
    const void *bottom;
    size_t size;

    asan_target(from, to, &bottom, &size);
    __sanitizer_start_switch_fiber(&from->asan_fake, bottom, size);
#endif
#if SS__TSAN
    tsan_hold_signals(to);
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    ss__ctx_switch(&from->ctx, &to->ctx);
#if SS__TSAN
    tsan_release_signals(from);     /* back in `from` */
#endif
#if SS__ASAN
    /* Back in `from`. A coroutine learns which thread stack resumed it. */
    if (from->stack)
        __sanitizer_finish_switch_fiber(from->asan_fake,
                                        &from->asan_caller_bottom,
                                        &from->asan_caller_size);
    else
        __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
}
#endif

void ss__coro_exit(ss__coro *from, ss__coro *to)
{
#if SS__ASAN
    const void *bottom;
    size_t size;

    /* NULL: the fake stack of the finished coroutine is released. */
    asan_target(from, to, &bottom, &size);
    __sanitizer_start_switch_fiber(NULL, bottom, size);
#endif
#if SS__TSAN
    tsan_hold_signals(to);
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    ss__ctx_switch(&from->ctx, &to->ctx);
    abort();    /* nothing resumes a finished coroutine */
}
