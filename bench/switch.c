/*
 * switch - the cost of one coroutine context switch: the library's own
 * (src/switch_x86_64.S or src/switch_aarch64.S, through the internal
 * ss__coro_* calls async mode makes) against glibc's swapcontext.
 *
 *   switch [-n SWITCHES] [-r ROUNDS]
 *
 * Each measurement ping-pongs between the calling thread's stack and one
 * coroutine on a stack of its own: every round trip is two switches, as a
 * request that waits and is resumed costs in async mode. A round times
 * SWITCHES switches (default 10,000,000) with CLOCK_MONOTONIC; the
 * library's switch and swapcontext take turns, ROUNDS times each (default
 * 5), and the fastest round of each is reported (the one least disturbed
 * by anything else on the core), with the median beside it. Prints a
 * table, then one line for bench/run:
 *
 *   switch kind=x86-64 ss_ns=2.1 ss_median_ns=2.2 swapcontext_ns=95.3
 *   swapcontext_median_ns=96.0 ratio=45.4 switches=10000000 rounds=5
 *
 * ratio = swapcontext_ns / ss_ns. swapcontext saves and restores the
 * signal mask with a system call (rt_sigprocmask) at every switch; the
 * library's switch saves only the callee-saved registers and the
 * floating-point control words, which is what makes it cheaper. Built only
 * with the library's sources (bench/CMakeLists.txt links the static
 * library, whose internal symbols the shared one hides), like
 * tests/test_switch.c. A sanitizer build of the library annotates every
 * switch: measure a build without one.
 */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#define STACK_SIZE (64 * 1024)

static unsigned long switches = 10000000;
static unsigned rounds = 5;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the library's switch ---------------------------------------------- */

static ss__coro ss_main, ss_co;
static volatile unsigned long ss_count;

static void ss_entry(void *arg)
{
    (void)arg;
    ss__coro_started(&ss_co);
    for (;;) {
        ss_count++;
        ss__coro_switch(&ss_co, &ss_main);
    }
}

/* One round: ns per switch. */
static double ss_round(void)
{
    unsigned long trips = switches / 2, i;
    int64_t t0;

    t0 = now_ns();
    for (i = 0; i < trips; i++)
        ss__coro_switch(&ss_main, &ss_co);
    return (double)(now_ns() - t0) / (double)(2 * trips);
}

/* ---- glibc's swapcontext ----------------------------------------------- */

static ucontext_t uc_main, uc_co;
static volatile unsigned long uc_count;

static void uc_entry(void)
{
    for (;;) {
        uc_count++;
        swapcontext(&uc_co, &uc_main);
    }
}

static double uc_round(void)
{
    unsigned long trips = switches / 2, i;
    int64_t t0;

    t0 = now_ns();
    for (i = 0; i < trips; i++)
        swapcontext(&uc_main, &uc_co);
    return (double)(now_ns() - t0) / (double)(2 * trips);
}

/* ---- main ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-n SWITCHES] [-r ROUNDS]\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    ss__stack st;
    void *uc_stack;
    double *ss_ns, *uc_ns, ss_best, uc_best, ss_med, uc_med;
    unsigned r;
    int i;

    for (i = 1; i < argc; i++) {
        char *end;

        if (i + 1 >= argc)
            return usage(argv[0]);
        if (strcmp(argv[i], "-n") == 0)
            switches = strtoul(argv[++i], &end, 10);
        else if (strcmp(argv[i], "-r") == 0)
            rounds = (unsigned)strtoul(argv[++i], &end, 10);
        else
            return usage(argv[0]);
        if (*end || switches < 2 || rounds < 1 || rounds > 1000)
            return usage(argv[0]);
    }
    ss_ns = calloc(rounds, sizeof *ss_ns);
    uc_ns = calloc(rounds, sizeof *uc_ns);
    uc_stack = malloc(STACK_SIZE);
    if (!ss_ns || !uc_ns || !uc_stack || ss__stack_map(&st, STACK_SIZE) < 0) {
        fprintf(stderr, "switch: out of memory\n");
        return 1;
    }

    ss__coro_init_thread(&ss_main);
    if (ss__coro_init(&ss_co, st.lo, st.size) < 0) {
        fprintf(stderr, "switch: cannot make a coroutine\n");
        return 1;
    }
    ss__coro_prepare(&ss_co, ss_entry, NULL);

    getcontext(&uc_co);
    uc_co.uc_stack.ss_sp = uc_stack;
    uc_co.uc_stack.ss_size = STACK_SIZE;
    uc_co.uc_link = NULL;
    makecontext(&uc_co, uc_entry, 0);

    /* A warm-up of each: page in the stacks and the code. */
    {
        unsigned long keep = switches;

        switches = keep < 200000 ? keep : 200000;
        ss_round();
        uc_round();
        switches = keep;
    }
    for (r = 0; r < rounds; r++) {
        ss_ns[r] = ss_round();
        uc_ns[r] = uc_round();
    }
    ss_best = ss_ns[0], uc_best = uc_ns[0];
    for (r = 1; r < rounds; r++) {
        if (ss_ns[r] < ss_best)
            ss_best = ss_ns[r];
        if (uc_ns[r] < uc_best)
            uc_best = uc_ns[r];
    }
    ss_med = median(ss_ns, rounds);
    uc_med = median(uc_ns, rounds);
    if (ss_count + uc_count < switches / 2) {
        fprintf(stderr, "switch: the coroutines did not run\n");
        return 1;
    }

    printf("%-28s %12s %12s\n", "context switch", "ns (best)", "ns (median)");
    printf("%-28s %12.2f %12.2f\n", "libsockserver", ss_best, ss_med);
    printf("%-28s %12.2f %12.2f\n", "glibc swapcontext", uc_best, uc_med);
    printf("swapcontext / libsockserver: %.1fx (%s switch; %lu switches x %u "
           "rounds each)\n", uc_best / ss_best, ss__ctx_kind(), switches,
           rounds);
    printf("switch kind=%s ss_ns=%.2f ss_median_ns=%.2f swapcontext_ns=%.2f "
           "swapcontext_median_ns=%.2f ratio=%.1f switches=%lu rounds=%u\n",
           ss__ctx_kind(), ss_best, ss_med, uc_best, uc_med, uc_best / ss_best,
           switches, rounds);
    /* The coroutines never finish: nothing to tear down but the process. */
    return 0;
}
