/*
 * The event loop: tasks (a coroutine and what it waits for), a run queue,
 * deadlines, readiness from the poller, and posts from other threads.
 *
 * A task runs until it parks: on a descriptor (ss__task_park with a
 * waiting), a deadline, or an explicit ss__task_wake. Parking switches to
 * the loop's scheduler, the context of the thread driving the loop; an
 * event, an expired deadline or a wake makes the task runnable again, and
 * the scheduler switches back to it. Tasks never switch to each other.
 *
 * One turn (ss__loop_run_once): wait for events (not at all when tasks are
 * runnable; else until the nearest deadline or the caller's timeout), mark
 * the descriptors ready and queue their waiters, fire the expired
 * deadlines, then run the tasks queued so far. A task woken during the turn
 * runs at the next one, so tasks that keep waking each other cannot starve
 * the poller.
 *
 * Finished tasks keep their stacks on a free list for the next task: in
 * steady state starting a request's task maps nothing.
 */
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

#define SS_FREE_TASKS_MAX 256   /* finished tasks kept for reuse */

/* Initial-exec: one load, not a __tls_get_addr call, in the shared
 * library. */
static _Thread_local ss__loop *running_loop
    __attribute__((tls_model("initial-exec")));

ss__loop *ss__loop_running(void)
{
    return running_loop;
}

/* ---- stack overflows ---------------------------------------------------- */

/* A fault in (or just below: a frame larger than the guard page) the guard
 * page of the task this thread runs. */
static bool on_fault(const void *addr)
{
    ss__loop *l = running_loop;
    ss__task *t = l ? l->current : NULL;
    const char *a = addr;
    size_t reach = 16 * ss__page_size();

    if (!t || !t->stack.map)
        return false;
    if (!(ss__stack_guard_hit(&t->stack, addr) ||
          (a < (const char *)t->stack.map &&
           a + reach >= (const char *)t->stack.map)))
        return false;
    if (l->hooks.on_overflow)
        l->hooks.on_overflow(l, t, l->hooks.arg);
    return true;
}

/* ---- set-up ------------------------------------------------------------ */

int ss__loop_init(ss__loop *l, size_t stack_size, const ss__loop_hooks *h)
{
    int err;

    memset(l, 0, sizeof *l);
    l->pfd = l->timerfd = -1;
    l->wake.rfd = l->wake.wfd = -1;
    l->stack_size = stack_size;
    if (h)
        l->hooks = *h;
    pthread_mutex_init(&l->inbox_lock, NULL);
    atomic_init(&l->woken, false);
    if ((err = ss__stack_guard_install(on_fault)) < 0 ||
        (err = ss__poller_open(l)) < 0 ||
        (err = ss__wakeup_open(&l->wake)) < 0 ||
        (err = ss__poller_add_special(l, l->wake.rfd, SS__KEY_WAKE,
                                      false)) < 0) {
        ss__loop_destroy(l);
        return err;
    }
    return 0;
}

static void task_free(ss__task *t)
{
    ss__coro_destroy(&t->coro);
    ss__stack_unmap(&t->stack);
    free(t);
}

void ss__loop_destroy(ss__loop *l)
{
    ss__task *t;

    while ((t = l->free_tasks)) {
        l->free_tasks = t->next;
        task_free(t);
    }
    l->nfree = 0;
    ss__timers_free(&l->timers);
    free(l->fds);
    l->fds = NULL;
    l->nfds = 0;
    ss__poller_close(l);
    ss__wakeup_close(&l->wake);
    pthread_mutex_destroy(&l->inbox_lock);
}

/* ---- descriptors ----------------------------------------------------- */

ss__fdent *ss__loop_fdent_grow(ss__loop *l, int fd)
{
    if (fd < 0)
        return NULL;
    if ((unsigned)fd >= l->nfds) {
        unsigned n = l->nfds ? l->nfds : 64;
        ss__fdent *p;

        while (n <= (unsigned)fd)
            n *= 2;
        if (!(p = realloc(l->fds, n * sizeof *p)))
            return NULL;
        memset(p + l->nfds, 0, (n - l->nfds) * sizeof *p);
        l->fds = p;
        l->nfds = n;
    }
    return &l->fds[fd];
}

/* Take t off whatever it waits on. */
static void unwait(ss__loop *l, ss__task *t)
{
    ss__fdent *e;

    switch (t->wait.slot) {
    case SS__WAIT_READER:
        l->fds[t->wait.fd].reader = NULL;
        break;
    case SS__WAIT_WRITER:
        l->fds[t->wait.fd].writer = NULL;
        break;
    case SS__WAIT_LIST:
        e = &l->fds[t->wait.fd];
        if (t->prev)
            t->prev->next = t->next;
        else
            e->waiters = t->next;
        if (t->next)
            t->next->prev = t->prev;
        t->next = t->prev = NULL;
        break;
    default:
        break;
    }
    t->wait.slot = SS__WAIT_NONE;
    t->wait.fd = -1;
}

static void enqueue(ss__loop *l, ss__task *t)
{
    t->next = NULL;
    t->queued = true;
    if (l->runq_tail)
        l->runq_tail->next = t;
    else
        l->runq = t;
    l->runq_tail = t;
}

static inline void wake(ss__loop *l, ss__task *t, int result)
{
    if (t->wait.slot != SS__WAIT_NONE)
        unwait(l, t);
    if (ss__timer_armed(&t->timer))
        ss__timers_remove(&l->timers, &t->timer);
    t->parked = false;
    t->result = result;
    enqueue(l, t);
}

static inline void fd_ready(ss__loop *l, int fd, short revents)
{
    ss__fdent *e = &l->fds[fd];
    ss__task *t, *next;

    if (revents & (POLLIN | POLLERR | POLLHUP)) {
        e->readable = true;
        if (revents & (SS__POLL_EOF | POLLERR | POLLHUP))
            e->eof = true;
        if ((t = e->reader))
            wake(l, t, 0);
    }
    if (revents & (POLLOUT | POLLERR | POLLHUP)) {
        e->writable = true;
        if ((t = e->writer))
            wake(l, t, 0);
    }
    for (t = e->waiters; t; t = next) {
        next = t->next;
        if ((t->wait.events & revents) || (revents & (POLLERR | POLLHUP)))
            wake(l, t, 0);
    }
}

void ss__loop_fd_ready(ss__loop *l, int fd, short revents)
{
    fd_ready(l, fd, revents);
}

void ss__loop_forget_fd(ss__loop *l, int fd)
{
    ss__fdent *e;

    if (fd < 0 || (unsigned)fd >= l->nfds)
        return;
    e = &l->fds[fd];
    if (e->reader)
        ss__task_wake(e->reader, -EBADF);
    if (e->writer)
        ss__task_wake(e->writer, -EBADF);
    while (e->waiters)
        ss__task_wake(e->waiters, -EBADF);
    e->gen++;
    e->mode = SS__FD_NONE;
    e->readable = e->writable = e->eof = false;
}

/* ---- tasks ------------------------------------------------------------ */

static void task_main(void *arg)
{
    ss__task *t = arg;
    ss__loop *l = t->loop;

    ss__coro_started(&t->coro);
    t->fn(t->arg);
    l->exited = t;      /* the scheduler keeps or releases the stack */
    ss__coro_exit(&t->coro, &l->sched);
}

ss__task *ss__loop_spawn(ss__loop *l, void (*fn)(void *), void *arg,
                         void *owner)
{
    ss__task *t = l->free_tasks;

    if (t) {
        l->free_tasks = t->next;
        l->nfree--;
    } else {
        if (!(t = calloc(1, sizeof *t)))
            return NULL;
        if (ss__stack_map(&t->stack, l->stack_size) < 0 ||
            ss__coro_init(&t->coro, t->stack.lo, t->stack.size) < 0) {
            ss__stack_unmap(&t->stack);
            free(t);
            return NULL;
        }
        t->timer.index = SS__TIMER_IDLE;
    }
    t->loop = l;
    t->fn = fn;
    t->arg = arg;
    t->owner = owner;
    t->wait.fd = -1;
    t->wait.slot = SS__WAIT_NONE;
    t->label[0] = '\0';
    t->result = 0;
    t->parked = false;
    t->uncancellable = false;
    ss__coro_prepare(&t->coro, task_main, t);
    l->live++;
    t->lprev = NULL;
    t->lnext = l->tasks;
    if (l->tasks)
        l->tasks->lprev = t;
    l->tasks = t;
    enqueue(l, t);
    return t;
}

/* A task finished: keep it for the next spawn, up to a limit. */
static void recycle(ss__loop *l, ss__task *t)
{
    l->live--;
    if (t->lprev)
        t->lprev->lnext = t->lnext;
    else
        l->tasks = t->lnext;
    if (t->lnext)
        t->lnext->lprev = t->lprev;
    t->owner = NULL;
    if (l->nfree < SS_FREE_TASKS_MAX) {
        t->next = l->free_tasks;
        l->free_tasks = t;
        l->nfree++;
    } else {
        task_free(t);
    }
}

static void resume(ss__loop *l, ss__task *t)
{
    int64_t start = l->slow_ns ? ss__now_ns() : 0;

    t->queued = false;
    l->current = t;
    ss__coro_switch(&l->sched, &t->coro);
    l->current = NULL;
    if (start) {
        int64_t ns = ss__now_ns() - start;

        if (ns >= l->slow_ns && l->hooks.on_slow)
            l->hooks.on_slow(l, t, ns, l->hooks.arg);
    }
    if (l->exited) {
        recycle(l, l->exited);
        l->exited = NULL;
    }
}

int ss__task_park(ss__task *t, const ss__waiting *w, int64_t deadline,
                  int timeout_result)
{
    ss__loop *l = t->loop;
    int err;

    if (deadline >= 0) {
        if ((err = ss__timers_add(&l->timers, &t->timer, deadline)) < 0)
            return err;
        t->timer_result = timeout_result;
    }
    if (w && w->fd >= 0) {
        ss__fdent *e = &l->fds[w->fd];

        t->wait = *w;
        if (e->mode == SS__FD_EDGE && w->events == POLLIN && !e->reader) {
            e->reader = t;
            t->wait.slot = SS__WAIT_READER;
        } else if (e->mode == SS__FD_EDGE && w->events == POLLOUT &&
                   !e->writer) {
            e->writer = t;
            t->wait.slot = SS__WAIT_WRITER;
        } else {
            t->wait.slot = SS__WAIT_LIST;
            t->prev = NULL;
            t->next = e->waiters;
            if (e->waiters)
                e->waiters->prev = t;
            e->waiters = t;
        }
    } else {
        t->wait.fd = -1;
        t->wait.slot = SS__WAIT_NONE;
    }
    t->parked = true;
    ss__coro_switch(&t->coro, &l->sched);
    return t->result;
}

void ss__task_wake(ss__task *t, int result)
{
    if (t->parked)
        wake(t->loop, t, result);
}

int ss__task_set_deadline(ss__task *t, int64_t deadline, int timeout_result)
{
    ss__loop *l = t->loop;

    if (deadline < 0) {
        ss__timers_remove(&l->timers, &t->timer);
        return 0;
    }
    t->timer_result = timeout_result;
    return ss__timers_add(&l->timers, &t->timer, deadline);
}

void ss__loop_each_parked(ss__loop *l, void (*fn)(ss__task *t, void *arg),
                          void *arg)
{
    ss__task *t, *next;

    for (t = l->tasks; t; t = next) {
        next = t->lnext;
        if (t->parked)
            fn(t, arg);
    }
}

/* ---- posts from other threads ---------------------------------------- */

void ss__loop_interrupt(ss__loop *l)
{
    if (!atomic_exchange(&l->woken, true))
        ss__wakeup_signal(&l->wake);
}

void ss__loop_post(ss__loop *l, ss__post *p)
{
    p->next = NULL;
    pthread_mutex_lock(&l->inbox_lock);
    if (l->inbox_tail)
        l->inbox_tail->next = p;
    else
        l->inbox = p;
    l->inbox_tail = p;
    pthread_mutex_unlock(&l->inbox_lock);
    ss__loop_interrupt(l);
}

/* The wake-up fired: cleared before the inbox is taken, so a post made
 * meanwhile signals again rather than being left behind. */
static int take_inbox(ss__loop *l)
{
    ss__post *p, *next;
    int n = 0;

    ss__wakeup_drain(&l->wake);
    atomic_store(&l->woken, false);
    pthread_mutex_lock(&l->inbox_lock);
    p = l->inbox;
    l->inbox = l->inbox_tail = NULL;
    pthread_mutex_unlock(&l->inbox_lock);
    for (; p; p = next, n++) {
        next = p->next;
        p->fn(l, p);
    }
    return n;
}

/* ---- one turn ------------------------------------------------------------ */

static int handle_events(ss__loop *l, int n)
{
    int i, done = 0;

    for (i = 0; i < n; i++) {
        uint64_t key = l->events[i].key;

        if (key & SS__KEY_SPECIAL) {
            done++;
            switch (key) {
            case SS__KEY_LISTEN:
                l->hooks.on_listen(l, l->hooks.arg);
                break;
            case SS__KEY_WAKE:
                take_inbox(l);
                break;
            case SS__KEY_SERVER:
                l->hooks.on_server_wake(l, l->hooks.arg);
                break;
            case SS__KEY_TIMER:
                ss__loop_timerfd_fired(l);
                break;
            }
        } else {
            unsigned fd = (uint32_t)key;

            if (fd < l->nfds && l->fds[fd].gen == (uint32_t)(key >> 32)) {
                fd_ready(l, (int)fd, l->events[i].revents);
                done++;
            }
        }
    }
    return done;
}

static int fire_timers(ss__loop *l)
{
    ss__timer *first;
    int64_t now;
    int n = 0;

    if (!ss__timers_first(&l->timers))
        return 0;
    now = ss__now_ns();
    while ((first = ss__timers_first(&l->timers)) && first->when <= now) {
        ss__task *t = (ss__task *)((char *)first -
                                   offsetof(ss__task, timer));

        ss__timers_remove(&l->timers, first);
        ss__task_wake(t, t->timer_result);
        n++;
    }
    return n;
}

/* Milliseconds to wait: none with tasks runnable, else until the nearest
 * deadline or the caller's limit, whichever comes first (rounded up, so the
 * wait does not end before the deadline). */
static int wait_ms(ss__loop *l, int64_t timeout_ns)
{
    ss__timer *first = ss__timers_first(&l->timers);
    int64_t ns = timeout_ns;

    if (l->runq)
        return 0;
    if (first) {
        int64_t left = first->when - ss__now_ns();

        if (left < 0)
            left = 0;
        if (ns < 0 || left < ns)
            ns = left;
    }
    if (ns < 0)
        return -1;
    if (ns > (int64_t)86400 * 1000000000)
        return 86400 * 1000;
    return (int)((ns + 999999) / 1000000);
}

/* Run the tasks queued before the call; ones queued meanwhile wait. */
static int run_queued(ss__loop *l)
{
    ss__task *t, *last = l->runq_tail;
    int n = 0;

    while ((t = l->runq)) {
        l->runq = t->next;
        if (!l->runq)
            l->runq_tail = NULL;
        resume(l, t);
        n++;
        if (t == last)
            break;
    }
    return n;
}

int ss__loop_run_once(ss__loop *l, int64_t timeout_ns)
{
    ss__loop *outer = running_loop;
    int n, done;

    if (l->running)
        return -EBUSY;      /* from inside one of its own tasks */
    l->running = true;
    running_loop = l;
    ss__coro_init_thread(&l->sched);
    n = ss__poller_wait(l, wait_ms(l, timeout_ns));
    if (n < 0) {
        done = n;
    } else {
        done = handle_events(l, n);
        done += fire_timers(l);
        done += run_queued(l);
    }
    running_loop = outer;
    l->running = false;
    return done;
}
