/*
 * The async runtime: what runs request handlers as coroutines on an event
 * loop. It knows nothing of servers or requests; async.c (the model) and
 * wait.c (the one place request I/O waits) build on it.
 *
 *   switch_x86_64.S, switch_aarch64.S   the hand-written context switch
 *   coro.c       contexts and coroutines (ucontext fallback), sanitizer
 *                annotations of every switch
 *   stack.c      guard-paged stacks, overflow reports
 *   timer.c      a min-heap of deadlines
 *   poller_epoll.c, poller_poll.c       readiness: one backend is built
 *   loop.c       tasks (a coroutine and what it waits for), the run queue,
 *                parking on descriptors and deadlines, posts from other
 *                threads
 *
 * A loop is driven by one thread at a time. Everything here that takes a
 * loop must be called from the thread driving it, except ss__loop_post.
 */
#ifndef SS_RUNTIME_H
#define SS_RUNTIME_H

#include "internal.h"

#include <signal.h>
#include <stdint.h>

/* ---- contexts and coroutines (coro.c, switch_*.S) -------------------- */

#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(SS_FORCE_UCONTEXT)
#define SS__CTX_ASM 1
typedef struct ss__ctx {
    void *sp;               /* the saved registers sit on the stack */
} ss__ctx;
#else
#define SS__CTX_ASM 0
#include <ucontext.h>
typedef struct ss__ctx {
    ucontext_t uc;
} ss__ctx;
#endif

/* Save the running context in `from` and continue `to`. */
void ss__ctx_switch(ss__ctx *from, const ss__ctx *to);
/* Make `ctx` call entry(arg) on [stack, stack + size) when switched to.
 * entry must never return. */
void ss__ctx_make(ss__ctx *ctx, void *stack, size_t size,
                  void (*entry)(void *), void *arg);
/* "x86-64", "aarch64" or "ucontext": which switch this build uses. */
const char *ss__ctx_kind(void);

typedef struct ss__coro {
    ss__ctx     ctx;
    void       *stack;          /* lowest usable byte; NULL: a thread's own */
    size_t      stack_size;
#if SS__ASAN
    void       *asan_fake;      /* its fake stack while switched away */
    const void *asan_caller_bottom;     /* the thread stack that resumed */
    size_t      asan_caller_size;       /* it, to switch back to */
#endif
#if SS__TSAN
    void       *tsan_fiber;
    sigset_t    tsan_sigmask;   /* the signal mask to resume it with */
#endif
} ss__coro;

/* The context of the calling thread's own stack (a loop's scheduler). */
void ss__coro_init_thread(ss__coro *co);
/* A coroutine on [stack, stack + size): 0 or -ENOMEM. */
int  ss__coro_init(ss__coro *co, void *stack, size_t size);
/* (Re)start it at entry(arg) at its next ss__coro_switch to it. */
void ss__coro_prepare(ss__coro *co, void (*entry)(void *), void *arg);
void ss__coro_destroy(ss__coro *co);
/* The first call of an entry function. */
void ss__coro_started(ss__coro *co);
/* Switch from the running `from` to `to`; returns when switched back.
 * Without sanitizers it is the bare switch, inline. */
#if SS__ASAN || SS__TSAN
void ss__coro_switch(ss__coro *from, ss__coro *to);
#else
static inline void ss__coro_switch(ss__coro *from, ss__coro *to)
{
    ss__ctx_switch(&from->ctx, &to->ctx);
}
#endif
/* The last switch away from a finished coroutine. */
_Noreturn void ss__coro_exit(ss__coro *from, ss__coro *to);

/* ---- stacks (stack.c) ---------------------------------------------------- */

typedef struct ss__stack {
    void   *map;                /* the mapping, guard page first */
    size_t  map_size;
    void   *lo;                 /* usable stack: [lo, lo + size) */
    size_t  size;
} ss__stack;

size_t ss__page_size(void);
/* Map `size` bytes (rounded up to pages) with a guard page below: 0 or
 * -errno. */
int  ss__stack_map(ss__stack *st, size_t size);
void ss__stack_unmap(ss__stack *st);
/* Whether addr lies in the guard page of st. */
bool ss__stack_guard_hit(const ss__stack *st, const void *addr);
/* Install, once per process, the SIGSEGV/SIGBUS handler that asks `hook`
 * whether a fault is a coroutine's overflow (hook prints its line, from a
 * signal handler: async-signal-safe calls only). 0 or -errno. */
int  ss__stack_guard_install(bool (*hook)(const void *addr));
/* Give the calling thread an alternate signal stack (kept until it exits)
 * unless it has one: 0 or -errno. */
int  ss__stack_altstack_ensure(void);

/* ---- timers (timer.c) ------------------------------------------------------ */

typedef struct ss__timer {
    int64_t  when;              /* monotonic ns (ss__now_ns) */
    unsigned index;             /* in the heap; SS__TIMER_IDLE when not */
} ss__timer;

#define SS__TIMER_IDLE (~0u)

typedef struct ss__timers {
    ss__timer **heap;
    unsigned    count, cap;
} ss__timers;

static inline bool ss__timer_armed(const ss__timer *t)
{
    return t->index != SS__TIMER_IDLE;
}
/* Arm (or move) t to `when`: 0 or -ENOMEM. */
int  ss__timers_add(ss__timers *h, ss__timer *t, int64_t when);
void ss__timers_remove(ss__timers *h, ss__timer *t);
/* The nearest deadline, or NULL. */
static inline ss__timer *ss__timers_first(const ss__timers *h)
{
    return h->count ? h->heap[0] : NULL;
}
void ss__timers_free(ss__timers *h);

/* ---- the loop (loop.c) and its poller (poller_*.c) ------------------------ */

typedef struct ss__loop ss__loop;
typedef struct ss__task ss__task;

/* What a parked task waits for, beside a deadline and ss__task_wake. */
typedef struct ss__waiting {
    int       fd;               /* -1: no descriptor */
    short     events;           /* POLLIN, POLLOUT */
    uint8_t   slot;             /* where the task is recorded: SS__WAIT_* */
    uint32_t  gen;              /* the descriptor entry's generation */
} ss__waiting;

enum { SS__WAIT_NONE, SS__WAIT_READER, SS__WAIT_WRITER, SS__WAIT_LIST };

struct ss__task {
    ss__coro     coro;
    ss__stack    stack;
    ss__loop    *loop;
    void       (*fn)(void *);
    void        *arg;
    void        *owner;         /* what it serves (a request), for reports */
    char         label[SS_ADDRESS_STRLEN];  /* who it serves, for reports
                                   made after it ended (slow_ns only) */
    ss__task    *next, *prev;   /* run queue, a descriptor's waiters, or
                                   the free list */
    ss__task    *lnext, *lprev; /* the loop's live tasks */
    ss__timer    timer;
    int          timer_result;  /* what the deadline means: -ETIMEDOUT or
                                   -ESHUTDOWN */
    ss__waiting  wait;
    int          result;        /* why it was woken */
    bool         parked;
    bool         queued;
    bool         uncancellable; /* waits for a blocking thread's result */
};

/* Per descriptor the loop waits on, indexed by descriptor number. A
 * connection (edge mode) has at most one task waiting each way: its
 * handler, or a broadcast holding its send lock; they get a slot each, so
 * an event wakes its task without walking a list. Any other wait (a
 * one-shot descriptor, a second task on a connection) is on the list. */
typedef struct ss__fdent {
    uint32_t   gen;             /* bumped when the descriptor is forgotten,
                                   so stale events are recognised */
    uint8_t    mode;            /* SS__FD_NONE, _EDGE or _ONESHOT */
    bool       readable;        /* edge mode: readable as far as known */
    bool       eof;             /* the peer's FIN or an error was reported:
                                   no further edge will come, so a short
                                   read no longer means "drained" */
    bool       writable;
    ss__task  *reader, *writer; /* edge mode */
    ss__task  *waiters;
} ss__fdent;

enum { SS__FD_NONE, SS__FD_EDGE, SS__FD_ONESHOT };

/* Event keys: a descriptor entry, or one of the loop's own descriptors. */
#define SS__KEY_SPECIAL   (1ull << 63)
#define SS__KEY_LISTEN    (SS__KEY_SPECIAL | 1)   /* server socket */
#define SS__KEY_WAKE      (SS__KEY_SPECIAL | 2)   /* the loop's wake-up */
#define SS__KEY_SERVER    (SS__KEY_SPECIAL | 3)   /* the server's wake-up */
#define SS__KEY_TIMER     (SS__KEY_SPECIAL | 4)   /* timerfd (embedding) */

static inline uint64_t ss__fd_key(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

typedef struct ss__event {
    uint64_t key;
    short    revents;           /* POLLIN, POLLOUT, POLLERR, POLLHUP,
                                   SS__POLL_EOF */
} ss__event;

/* An event bit of our own: the peer closed its side (EPOLLRDHUP). Reported
 * with POLLIN, since a read then returns 0. */
#define SS__POLL_EOF  0x4000

#define SS__EVENTS_MAX 256

/* A call to run on the loop's thread, posted from any thread. */
typedef struct ss__post {
    void           (*fn)(ss__loop *l, struct ss__post *p);
    struct ss__post *next;
} ss__post;

typedef struct ss__loop_hooks {
    void *arg;
    void (*on_listen)(ss__loop *l, void *arg);  /* the server socket is
                                                   readable */
    void (*on_server_wake)(ss__loop *l, void *arg);
    /* A task held the loop `ns` nanoseconds without waiting (only when
     * slow_ns > 0). */
    void (*on_slow)(ss__loop *l, ss__task *t, int64_t ns, void *arg);
    /* The running task overflowed its stack: say so, from a signal
     * handler (async-signal-safe calls only). */
    void (*on_overflow)(ss__loop *l, ss__task *t, void *arg);
} ss__loop_hooks;

struct ss__loop {
    /* the poller */
    int          pfd;           /* epoll descriptor; -1 for poll */
    int          timerfd;       /* armed to the nearest deadline while a
                                   foreign loop polls pfd; -1: none yet */
    int64_t      timerfd_when;  /* what it is armed to, 0: disarmed */
    struct ss__special {
        int      fd;
        uint64_t key;
    }            special[4];    /* poll backend: the level-triggered ones */
    int          nspecial;
    void        *pollset;       /* poll backend: struct pollfd array */
    unsigned     pollcap;

    /* tasks */
    ss__coro     sched;         /* the driving thread's own context */
    ss__task    *current;
    ss__task    *runq, *runq_tail;
    ss__task    *tasks;         /* live: started, not finished */
    ss__task    *free_tasks;
    unsigned     nfree;
    unsigned     live;          /* tasks started, not finished */
    ss__task    *exited;        /* just finished: pool or unmap it */
    size_t       stack_size;
    int64_t      slow_ns;       /* 0: no slow-task reports */
    bool         running;       /* inside ss__loop_run_once */

    /* deadlines */
    ss__timers   timers;

    /* descriptors */
    ss__fdent   *fds;
    unsigned     nfds;

    /* posts from other threads */
    ss__wakeup       wake;
    pthread_mutex_t  inbox_lock;
    ss__post        *inbox, *inbox_tail;
    atomic_bool      woken;     /* a wake-up is pending: posts skip it */

    ss__loop_hooks   hooks;
    ss__event        events[SS__EVENTS_MAX];
};

/* Poller backends: the same functions, one file each. */
int  ss__poller_open(ss__loop *l);
void ss__poller_close(ss__loop *l);
/* A level-triggered descriptor under `key`; exclusive: of the loops that
 * poll it, one is woken (EPOLLEXCLUSIVE). */
int  ss__poller_add_special(ss__loop *l, int fd, uint64_t key, bool exclusive);
void ss__poller_del_special(ss__loop *l, int fd);
/* Both directions of a connection, edge-triggered where the backend can
 * (the task's I/O then tries the call first and waits only on EAGAIN). */
int  ss__poller_watch(ss__loop *l, int fd, uint32_t gen);
/* One-shot interest in `events` of a descriptor the loop does not own. */
int  ss__poller_arm(ss__loop *l, int fd, uint32_t gen, short events);
/* Wait at most timeout_ms (-1: no limit) and fill l->events: the count or
 * -errno. */
int  ss__poller_wait(ss__loop *l, int timeout_ms);

/* Loops. */
int  ss__loop_init(ss__loop *l, size_t stack_size, const ss__loop_hooks *h);
/* Release everything; the loop must have no live task. */
void ss__loop_destroy(ss__loop *l);
/* Run what is ready; when nothing was, wait at most timeout_ns (< 0: no
 * limit, 0: not at all) for events or deadlines and run what they made
 * ready. Returns the count of tasks run and events handled, or -errno. */
int  ss__loop_run_once(ss__loop *l, int64_t timeout_ns);
/* The loop the calling thread drives, or NULL. */
ss__loop *ss__loop_running(void);
/* A descriptor that polls readable when the loop has work (its epoll
 * descriptor; deadlines go through a timerfd): -ENOTSUP for poll. */
int  ss__loop_fd(ss__loop *l);
/* Arm that timerfd to the nearest deadline (call after running), and
 * consume its expiry. Nothing without a timerfd. */
void ss__loop_arm_timerfd(ss__loop *l);
void ss__loop_timerfd_fired(ss__loop *l);

/* Start fn(arg) as a new task (run at the loop's next turn); owner is what
 * it serves. NULL on ENOMEM. */
ss__task *ss__loop_spawn(ss__loop *l, void (*fn)(void *), void *arg,
                         void *owner);
/* Park the running task until ss__task_wake, until `w` (if w->fd >= 0) is
 * ready, or until `deadline` (monotonic ns; < 0: none), which then means
 * `timeout_result`. Returns what woke it: 0 ready or the wake's result. */
int  ss__task_park(ss__task *t, const ss__waiting *w, int64_t deadline,
                   int timeout_result);
/* ss__task_park on a connection's own edge-mode descriptor with no
 * deadline, its way's slot free: the fast path of every ping-pong. */
static inline int ss__task_park_edge(ss__task *t, int fd, bool write)
{
    ss__loop *l = t->loop;
    ss__fdent *e = &l->fds[fd];
    ss__task **slot = write ? &e->writer : &e->reader;
    ss__waiting w = {fd, write ? POLLOUT : POLLIN, SS__WAIT_NONE, e->gen};

    if (*slot)
        return ss__task_park(t, &w, -1, 0);
    *slot = t;
    w.slot = write ? SS__WAIT_WRITER : SS__WAIT_READER;
    t->wait = w;
    t->parked = true;
    ss__coro_switch(&t->coro, &l->sched);
    return t->result;
}
/* Make a parked task runnable with `result`; the loop's thread only. */
void ss__task_wake(ss__task *t, int result);
/* Move a parked task's deadline (< 0: remove it). */
int  ss__task_set_deadline(ss__task *t, int64_t deadline, int timeout_result);
/* Call fn(t, arg) for every parked task (fn may wake it). */
void ss__loop_each_parked(ss__loop *l, void (*fn)(ss__task *t, void *arg),
                          void *arg);

/* Descriptor entries (grown on demand: NULL on ENOMEM). Do not keep the
 * pointer across a call that may grow the table. */
ss__fdent *ss__loop_fdent_grow(ss__loop *l, int fd);
static inline ss__fdent *ss__loop_fdent(ss__loop *l, int fd)
{
    return fd >= 0 && (unsigned)fd < l->nfds ? &l->fds[fd]
                                             : ss__loop_fdent_grow(l, fd);
}
/* The descriptor is being closed: wake its waiters with -EBADF and bump
 * its generation. */
void ss__loop_forget_fd(ss__loop *l, int fd);
/* Wake the tasks waiting on fd for `revents`. */
void ss__loop_fd_ready(ss__loop *l, int fd, short revents);

/* From any thread: run p->fn(l, p) on the loop's thread soon. */
void ss__loop_post(ss__loop *l, ss__post *p);
/* From any thread: make the loop's wait return (a post does it too). */
void ss__loop_interrupt(ss__loop *l);

/* ---- blocking calls (blocking.c) -------------------------------------------- */

typedef struct ss__blocking ss__blocking;

/* A pool of at most `threads` threads, started as calls need them. */
ss__blocking *ss__blocking_new(unsigned threads);
/* Stop and join the threads (after their calls return) and free. */
void ss__blocking_free(ss__blocking *b);
/* In a forked child: the parent's threads are not there. */
void ss__blocking_forked(ss__blocking *b);
/* Run fn(arg) on a pool thread while the task t waits (its loop serves
 * others): fn's result, or -EAGAIN when no thread could be started. */
int  ss__blocking_run(ss__blocking *b, ss__task *t, int (*fn)(void *),
                      void *arg);

#endif /* SS_RUNTIME_H */
