/*
 * Coroutine stacks: mmap'ed, with a PROT_NONE guard page below, so that a
 * handler that runs out of stack faults at once instead of writing over
 * whatever lies below. Pages are committed as they are touched: a 64 KiB
 * stack of which a handler uses 6 KiB costs two pages of memory. The loop
 * keeps finished coroutines, stacks and all, for reuse (loop.c), so no
 * mmap or munmap happens per request in steady state.
 *
 * A fault in a guard page is reported with one line naming the request
 * before the process dies: a SIGSEGV handler, run on an alternate signal
 * stack (the coroutine's own stack is exhausted), asks the loop whether the
 * fault is the current coroutine's overflow (ss__stack_overflow_hook) and
 * prints its line; then it restores the default action and returns, so the
 * faulting instruction faults again and the process dies as it would have.
 * Faults that are not ours go to the handler installed before ours.
 */
#include "runtime.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SS_ALTSTACK_SIZE (64 * 1024)

size_t ss__page_size(void)
{
    static size_t page;

    if (!page) {
        long n = sysconf(_SC_PAGESIZE);

        page = n > 0 ? (size_t)n : 4096;
    }
    return page;
}

int ss__stack_map(ss__stack *st, size_t size)
{
    size_t page = ss__page_size();
    size_t map = ss__round_up(size, page) + page;
    char *p = mmap(NULL, map, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
#ifdef MAP_STACK
                   | MAP_STACK
#endif
                   , -1, 0);

    if (p == MAP_FAILED)
        return -errno;
    if (mprotect(p, page, PROT_NONE) < 0) {
        int err = -errno;

        munmap(p, map);
        return err;
    }
    st->map = p;
    st->map_size = map;
    st->lo = p + page;
    st->size = map - page;
    return 0;
}

void ss__stack_unmap(ss__stack *st)
{
    if (st->map)
        (void)munmap(st->map, st->map_size);
    st->map = NULL;
}

bool ss__stack_guard_hit(const ss__stack *st, const void *addr)
{
    const char *a = addr;

    return st->map && a >= (const char *)st->map && a < (const char *)st->lo;
}

/* ---- reporting overflows ------------------------------------------------ */

static bool (*overflow_hook)(const void *addr);
static struct sigaction previous_segv, previous_bus;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

/* Hand a fault that is not ours to whoever handled it before. */
static void chain(int sig, siginfo_t *info, void *uc)
{
    const struct sigaction *old = sig == SIGBUS ? &previous_bus
                                                : &previous_segv;

    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, info, uc);
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
    } else {
        /* Die of the fault: the instruction runs again without us. */
        signal(sig, SIG_DFL);
    }
}

static void on_fault(int sig, siginfo_t *info, void *uc)
{
    int saved = errno;

    /* The hook prints the line when the fault is a coroutine's overflow;
     * either way the fault then takes its course: the handler before ours
     * (a sanitizer's report), or the default action. */
    if (overflow_hook)
        (void)overflow_hook(info->si_addr);
    chain(sig, info, uc);
    errno = saved;
}

/* Put our handler in front of sig's, unless it is there already. */
static int install(int sig, struct sigaction *previous)
{
    struct sigaction sa, cur;

    if (sigaction(sig, NULL, &cur) < 0)
        return -errno;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_fault)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, previous) < 0 ? -errno : 0;
}

/* At every loop's start, not once per process: a handler installed since
 * (a test framework's, say) goes behind ours again. */
int ss__stack_guard_install(bool (*hook)(const void *addr))
{
    int err;

    pthread_mutex_lock(&install_lock);
    overflow_hook = hook;
    err = install(SIGSEGV, &previous_segv);
    if (!err)
        err = install(SIGBUS, &previous_bus);
    pthread_mutex_unlock(&install_lock);
    return err;
}

/* ---- the alternate signal stack of each thread that runs a loop ---------- */

static pthread_key_t altstack_key;
static pthread_once_t altstack_once = PTHREAD_ONCE_INIT;
static _Thread_local bool altstack_ready
    __attribute__((tls_model("initial-exec")));

/* At thread exit: stop using the alternate stack, then release it. */
static void altstack_release(void *p)
{
    stack_t off = {.ss_flags = SS_DISABLE};

    sigaltstack(&off, NULL);
    munmap(p, SS_ALTSTACK_SIZE);
}

static void altstack_key_create(void)
{
    (void)pthread_key_create(&altstack_key, altstack_release);
}

/* A thread that already has an alternate stack (the application's, or a
 * sanitizer's) keeps it. Ours lives until the thread exits. */
int ss__stack_altstack_ensure(void)
{
    stack_t cur, st;
    void *p;

    if (altstack_ready)
        return 0;
    if (sigaltstack(NULL, &cur) < 0)
        return -errno;
    if (!(cur.ss_flags & SS_DISABLE)) {
        altstack_ready = true;
        return 0;
    }
    pthread_once(&altstack_once, altstack_key_create);
    p = mmap(NULL, SS_ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    st.ss_sp = p;
    st.ss_size = SS_ALTSTACK_SIZE;
    st.ss_flags = 0;
    if (sigaltstack(&st, NULL) < 0 || pthread_setspecific(altstack_key, p)) {
        int err = -errno;

        st.ss_flags = SS_DISABLE;
        sigaltstack(&st, NULL);
        munmap(p, SS_ALTSTACK_SIZE);
        return err ? err : -ENOMEM;
    }
    altstack_ready = true;
    return 0;
}
