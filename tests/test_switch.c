/*
 * The context switch itself (src/switch_*.S, src/coro.c), below the loop:
 * values the compiler keeps in callee-saved registers survive switches in
 * both directions, the floating-point control state belongs to each
 * context, a coroutine can use nearly all of its stack, and the guard page
 * below it faults, and a signal caught just before a switch is handled
 * before the switch lands. tests/cross/run builds this same file for AArch64 and
 * runs it under qemu, with a stand-in for cmocka.
 */
#ifdef SS_CROSS_TEST
#include "cross/cmocka_shim.h"
#else
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#endif

#include "runtime.h"

#include <fenv.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static ss__coro mainc, co;
static ss__stack st;

static void make(void (*entry)(void *), void *arg, size_t size)
{
    assert_int_equal(ss__stack_map(&st, size), 0);
    ss__coro_init_thread(&mainc);
    assert_int_equal(ss__coro_init(&co, st.lo, st.size), 0);
    ss__coro_prepare(&co, entry, arg);
}

static void unmake(void)
{
    ss__coro_destroy(&co);
    ss__stack_unmap(&st);
}

/* ---- registers --------------------------------------------------------- */

static volatile long co_sums[6];

/* Six running sums live across every switch: at -O2 the compiler keeps
 * them in callee-saved registers, which the switch must preserve. */
static void summer(void *arg)
{
    long a = (long)arg, b = a * 3, c = a * 5, d = a * 7, e = a * 11,
         f = a * 13;
    int i;

    ss__coro_started(&co);
    for (i = 0; i < 1000; i++) {
        ss__coro_switch(&co, &mainc);
        a += 1, b += 3, c += 5, d += 7, e += 11, f += 13;
    }
    co_sums[0] = a, co_sums[1] = b, co_sums[2] = c;
    co_sums[3] = d, co_sums[4] = e, co_sums[5] = f;
    ss__coro_exit(&co, &mainc);
}

static void test_callee_saved_values_survive_switches(void **state)
{
    long m1 = 17, m2 = 19, m3 = 23, m4 = 29, m5 = 31, m6 = 37;
    int i;

    (void)state;
    make(summer, (void *)1L, 64 * 1024);
    for (i = 0; i <= 1000; i++) {
        ss__coro_switch(&mainc, &co);
        m1 += 2, m2 += 4, m3 += 6, m4 += 8, m5 += 10, m6 += 12;
    }
    assert_int_equal(m1, 17 + 2002);
    assert_int_equal(m6, 37 + 12012);
    assert_int_equal(co_sums[0], 1 + 1000);
    assert_int_equal(co_sums[1], 3 + 3000);
    assert_int_equal(co_sums[5], 13 + 13000);
    unmake();
}

/* ---- floating-point control state ---------------------------------------- */

static volatile int co_round_ok;

static void rounder(void *arg)
{
    (void)arg;
    ss__coro_started(&co);
    fesetround(FE_UPWARD);
    ss__coro_switch(&co, &mainc);
    co_round_ok = fegetround() == FE_UPWARD;
    ss__coro_exit(&co, &mainc);
}

static void test_each_context_keeps_its_rounding_mode(void **state)
{
    (void)state;
    make(rounder, NULL, 64 * 1024);
    fesetround(FE_TONEAREST);
    ss__coro_switch(&mainc, &co);
    assert_int_equal(fegetround(), FE_TONEAREST);
    fesetround(FE_TOWARDZERO);
    ss__coro_switch(&mainc, &co);
    assert_true(co_round_ok);
    assert_int_equal(fegetround(), FE_TOWARDZERO);
    fesetround(FE_TONEAREST);
    unmake();
}

/* ---- stacks --------------------------------------------------------------- */

static int depth_reached;

static int recurse(int depth)
{
    volatile char frame[512];

    frame[0] = (char)depth;
    frame[sizeof frame - 1] = frame[0];
    return depth == 0 ? 0 : recurse(depth - 1) + (frame[0] != 0);
}

static void deep(void *arg)
{
    ss__coro_started(&co);
    depth_reached = recurse((int)(intptr_t)arg);
    ss__coro_exit(&co, &mainc);
}

static void test_a_coroutine_uses_most_of_its_stack(void **state)
{
    (void)state;
    /* 100 frames of 512+ bytes in 128 KiB */
    make(deep, (void *)(intptr_t)100, 128 * 1024);
    ss__coro_switch(&mainc, &co);
    assert_int_equal(depth_reached, 100);
    unmake();
}

static void test_the_guard_page_faults(void **state)
{
    pid_t pid;
    int status;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        make(deep, (void *)(intptr_t)100000, 32 * 1024);
        ss__coro_switch(&mainc, &co);
        _exit(0);   /* not reached: the recursion overflows */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_true(WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
}

/* ---- signals ----------------------------------------------------------- */

static volatile sig_atomic_t caught;

static void on_usr1(int sig)
{
    (void)sig;
    caught = 1;
}

/* The coroutine sends itself SIGUSR1 with a bare system call (nothing a
 * sanitizer intercepts) and switches away at once. */
static void signal_then_switch(void *arg)
{
    (void)arg;
    ss__coro_started(&co);
    syscall(SYS_tgkill, (long)getpid(), (long)syscall(SYS_gettid),
            (long)SIGUSR1);
    ss__coro_switch(&co, &mainc);
    ss__coro_exit(&co, &mainc);
}

/* A signal that arrives while a coroutine runs has run its handler by the
 * time the switch away from it lands. The kernel does that by itself;
 * ThreadSanitizer defers a signal that arrives outside an intercepted call
 * to the running fiber's next such call, and that fiber may not run again
 * (an async handler parked on an idle client: SIGINT never shut its
 * server down). The switch hands it over. */
static void test_a_signal_caught_before_a_switch_is_handled(void **state)
{
    struct sigaction sa, old;

    (void)state;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    caught = 0;
    make(signal_then_switch, NULL, 64 * 1024);
    ss__coro_switch(&mainc, &co);
    assert_int_equal(caught, 1);
    ss__coro_switch(&mainc, &co);   /* it exits */
    unmake();
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
}

static void test_the_switch_is_the_expected_one(void **state)
{
    const char *kind = ss__ctx_kind();

    (void)state;
#if defined(SS_FORCE_UCONTEXT)
    assert_string_equal(kind, "ucontext");
#elif defined(__x86_64__)
    assert_string_equal(kind, "x86-64");
#elif defined(__aarch64__)
    assert_string_equal(kind, "aarch64");
#else
    assert_string_equal(kind, "ucontext");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callee_saved_values_survive_switches),
        cmocka_unit_test(test_each_context_keeps_its_rounding_mode),
        cmocka_unit_test(test_a_coroutine_uses_most_of_its_stack),
        cmocka_unit_test(test_the_guard_page_faults),
        cmocka_unit_test(test_a_signal_caught_before_a_switch_is_handled),
        cmocka_unit_test(test_the_switch_is_the_expected_one),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
