/*
 * Async mode: every request runs as a coroutine (a task) on an event loop,
 * the handler written as for a thread. What blocks a thread elsewhere
 * parks the task here (wait.c), and the loop runs other requests.
 *
 * The model owns the serving loop: ss_serve_forever drives loop 0 in the
 * calling thread and starts a thread for each other loop. Every loop polls
 * the server socket (EPOLLEXCLUSIVE: a connection wakes one loop) and
 * keeps the requests it accepted for their whole life, so a request's
 * state is only ever touched by one thread. What must cross loops goes as
 * posts: commands to a loop (listen or not, a drain began, close cut the
 * requests short, stop), broadcasts to a receiver's loop.
 *
 * Shutdown stops the loops from accepting and returns at once; the
 * requests go on, on their loops' threads, and loop 0's in the thread that
 * calls close (or free), which drains them as the threading model's close
 * drains handler threads.
 *
 * Loops belong to the process that made them: they are made when the
 * server first serves (or is driven, ss_server_run_once / loop_fd), so a
 * prefork worker makes its own.
 */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SS_ASYNC_STACK_DEFAULT  (64 * 1024)
#define SS_ASYNC_STACK_MIN      (16 * 1024)
#define SS_ASYNC_STACK_MAX      ((size_t)1 << 30)
#define SS_ASYNC_LOOPS_MAX      1024
#define SS_ASYNC_BLOCKING       4
#define SS_ASYNC_BLOCKING_MAX   1024
#define SS_ACCEPT_BATCH         64      /* connections per readiness */
#define SS_DGRAM_BATCH          32      /* datagrams per recvmmsg */

/* Commands to a loop, run on its thread. */
enum {
    CMD_LISTEN = 1,     /* apply want_listen */
    CMD_DRAIN = 2,      /* a drain began: bound the waits it applies to */
    CMD_CUT = 4,        /* close cut requests short: end their waits */
    CMD_STOP = 8,       /* the loop's thread leaves */
};

typedef struct async async;

typedef struct aloop {
    ss__loop     loop;
    async       *a;
    ss_server   *server;
    unsigned     index;
    pthread_t    thread;
    bool         threaded;      /* a thread of ours drives it */
    bool         stop;
    atomic_bool  want_listen;
    bool         listening;     /* under a->lock */
    bool         accepted;      /* took a request since last looked at */
    ss__backoff  backoff;       /* after EMFILE and the like */
    ss__task    *resumer;       /* the task that ends the back-off */
    atomic_uint  cmds;
    ss__post     post;          /* carries cmds */
    /* datagram batches: SS_DGRAM_BATCH buffers of max_packet_size */
    void        *batch;
} aloop;

struct async {
    ss_async_options opt;
    ss_server       *server;
    aloop           *loops;     /* opt.loops of them, once made */
    pid_t            pid;       /* whose loops they are */
    atomic_int       requests;  /* request tasks alive, all loops */
    atomic_int       fatal;     /* a get_request error that ends serving */
    pthread_mutex_t  lock;
    pthread_cond_t   changed;   /* a loop stopped listening */
    ss__blocking    *blocking;
};

static const ss__model async_model;

static async *state(const ss_server *s)
{
    return s->model_state;
}

static int64_t ns_from(double seconds)
{
    return (int64_t)(seconds * 1e9);
}

/* ---- reports ------------------------------------------------------------ */

/* The task may have ended in the run that was slow, its request freed:
 * request_main left the client's address in its label. */
static void on_slow(ss__loop *l, ss__task *t, int64_t ns, void *arg)
{
    aloop *al = arg;

    (void)l;
    ss__log(al->server, "libsockserver: the handler of the request from %s "
            "held its event loop %.3f s without waiting; no other request "
            "of the loop ran meanwhile (run blocking work with "
            "ss_run_blocking)", t->label[0] ? t->label : "(a broadcast)",
            (double)ns / 1e9);
}

/* From the SIGSEGV handler: write(2) only, and formatting that takes no
 * lock. */
static void on_overflow(ss__loop *l, ss__task *t, void *arg)
{
    ss_request *r = t->owner;
    char who[SS_ADDRESS_STRLEN], line[400];
    int n;

    (void)l, (void)arg;
    n = snprintf(line, sizeof line,
                 "libsockserver: stack overflow in the handler of the request "
                 "from %s: its coroutine stack of %zu bytes is exhausted "
                 "(ss_async_options.stack_size); the process dies\n",
                 r ? ss_address_format(&r->client, who, sizeof who)
                   : "(a broadcast)", t->stack.size);
    if (n > 0)
        (void)!write(STDERR_FILENO, line,
                     (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ---- commands ----------------------------------------------------------- */

static void command(aloop *al, unsigned bits)
{
    if (atomic_fetch_or(&al->cmds, bits) == 0)
        ss__loop_post(&al->loop, &al->post);
}

static void pause_accepting(aloop *al, int err);

/* The listening state this loop should have, applied on its thread (or by
 * the thread that owns loop 0 while nobody drives it). A listener the
 * poller cannot take (out of memory) is tried again after a pause, as an
 * accept that failed for lack of memory. */
static void apply_listen(aloop *al)
{
    ss_server *s = al->server;
    bool want = atomic_load(&al->want_listen) && atomic_load(&s->fd) >= 0 &&
                !al->resumer && !ss__admission_full(s);
    bool changed = false;
    int err;

    if (want && !al->listening) {
        err = ss__poller_add_special(&al->loop, atomic_load(&s->fd),
                                     SS__KEY_LISTEN, al->a->opt.loops > 1);
        if (err < 0)
            pause_accepting(al, err);
        changed = err == 0;
    } else if (!want && al->listening) {
        ss__poller_del_special(&al->loop, atomic_load(&s->fd));
        changed = true;
    }
    if (changed) {
        pthread_mutex_lock(&al->a->lock);
        al->listening = want;
        pthread_cond_broadcast(&al->a->changed);
        pthread_mutex_unlock(&al->a->lock);
    }
}

static bool request_of_parked(ss__task *t, ss_request **r)
{
    *r = t->owner;
    return *r && !t->uncancellable;
}

/* A drain began: the waits of the requests it bounds end at its end. */
static void bound_by_drain(ss__task *t, void *arg)
{
    int64_t end = *(int64_t *)arg;
    ss_request *r;

    if (request_of_parked(t, &r) && r->inline_drain &&
        (!ss__timer_armed(&t->timer) || end < t->timer.when))
        (void)ss__task_set_deadline(t, end, -ESHUTDOWN);
}

/* Close cut the requests short: their connections are shut down, which
 * ends their waits on them as it ends a thread's (a read returns EOF);
 * this ends the others (ss_wait_fd on another descriptor, ss_sleep, a
 * send lock) with -ESHUTDOWN. */
static void cut_short(ss__task *t, void *arg)
{
    ss_request *r;

    (void)arg;
    if (request_of_parked(t, &r) && atomic_load(&r->forced) &&
        t->wait.fd != r->fd)
        ss__task_wake(t, -ESHUTDOWN);
}

static void on_command(ss__loop *l, ss__post *p)
{
    aloop *al = (aloop *)((char *)p - offsetof(aloop, post));
    unsigned bits = atomic_exchange(&al->cmds, 0);
    int64_t end;

    if (bits & CMD_LISTEN)
        apply_listen(al);
    if ((bits & CMD_DRAIN) &&
        (end = atomic_load(&al->server->drain_deadline_ns)) != 0)
        ss__loop_each_parked(l, bound_by_drain, &end);
    if (bits & CMD_CUT)
        ss__loop_each_parked(l, cut_short, NULL);
    if (bits & CMD_STOP)
        al->stop = true;
}

static void command_all(async *a, unsigned bits)
{
    unsigned i;

    for (i = 0; i < a->opt.loops; i++)
        command(&a->loops[i], bits);
}

/* ---- accepting ---------------------------------------------------------- */

static void resume_accepting(void *arg)
{
    aloop *al = arg;
    int64_t at = ns_from(al->backoff.resume);

    if (ss__task_park(al->loop.current, NULL, at, 0) == 0) {
        al->resumer = NULL;
        apply_listen(al);
    } else {
        al->resumer = NULL;     /* cancelled: the loop stops */
    }
}

/* Out of descriptors or memory: stop polling the server socket for a while
 * instead of spinning on it; a task of the loop's takes it up again. */
static void pause_accepting(aloop *al, int err)
{
    if (al->resumer)
        return;
    ss__backoff_failed(al->server, &al->backoff, err);
    if (!(al->resumer = ss__loop_spawn(&al->loop, resume_accepting, al,
                                       NULL)))
        return;     /* no memory even for that: keep polling */
    apply_listen(al);
}

static void get_request_failed(aloop *al, int err)
{
    switch (ss__get_request_error(err)) {
    case SS__GET_PAUSE:
        pause_accepting(al, err);
        break;
    case SS__GET_FATAL:
        /* The socket is unusable: every loop stops accepting, and
         * serve_forever (or run_once) returns the error, as it does in
         * the other models. */
        if (atomic_load(&al->a->fatal) == 0)
            atomic_store(&al->a->fatal, err);
        atomic_store(&al->want_listen, false);
        apply_listen(al);
        ss__wakeup_signal(&al->server->wake);
        break;
    case SS__GET_LOG:
        ss__log(al->server, "libsockserver: get_request: %s", ss_strerror(err));
        break;
    default:
        break;
    }
}

/* Receive up to SS_DGRAM_BATCH datagrams in one call; each becomes a
 * request. Only for the type's own get_request: an override is called
 * per request. */
#ifdef __linux__
static int receive_batch(aloop *al)
{
    ss_server *s = al->server;
    size_t size = s->max_packet_size;
    struct mmsghdr msgs[SS_DGRAM_BATCH];
    struct iovec iov[SS_DGRAM_BATCH];
    ss_address peers[SS_DGRAM_BATCH];
    ss_request *r;
    int i, n, err;

    if (!al->batch && !(al->batch = malloc(size * SS_DGRAM_BATCH)))
        return -ENOMEM;
    for (i = 0; i < SS_DGRAM_BATCH; i++) {
        iov[i] = (struct iovec){(char *)al->batch + (size_t)i * size, size};
        msgs[i].msg_hdr = (struct msghdr){
            .msg_name = &peers[i].storage,
            .msg_namelen = sizeof peers[i].storage,
            .msg_iov = &iov[i], .msg_iovlen = 1,
        };
    }
    do
        n = recvmmsg(atomic_load(&s->fd), msgs, SS_DGRAM_BATCH, MSG_DONTWAIT,
                     NULL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (i = 0; i < n; i++) {
        peers[i].len = msgs[i].msg_hdr.msg_namelen;
        err = ss__udp_request(s, iov[i].iov_base, msgs[i].msg_len, &peers[i],
                              (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0,
                              &r);
        if (err < 0) {
            get_request_failed(al, err);
            continue;
        }
        ss__dispatch(s, r);
        al->accepted = true;
    }
    return n;
}
#endif

static void on_listen(ss__loop *l, void *arg)
{
    aloop *al = arg;
    ss_server *s = al->server;
    ss_request *r;
    int i, err;

    (void)l;
#ifdef __linux__
    if (s->type->socktype == SOCK_DGRAM &&
        s->ops.get_request == s->type->ops->get_request) {
        if ((err = receive_batch(al)) < 0)
            get_request_failed(al, err);
        else if (al->backoff.failures)
            ss__backoff_succeeded(s, &al->backoff);
        return;
    }
#endif
    for (i = 0; i < SS_ACCEPT_BATCH; i++) {
        if (i > 0 && ss__shutdown_requested(s))
            break;
        if (!ss__admission_take(s)) {
            apply_listen(al);   /* max_connections: wait for an end */
            break;
        }
        if ((err = s->ops.get_request(s, &r)) < 0) {
            ss__admission_undo(s);
            get_request_failed(al, err);
            break;
        }
        r->admitted = s->options.max_connections > 0;
        if (al->backoff.failures)
            ss__backoff_succeeded(s, &al->backoff);
        ss__dispatch(s, r);
        al->accepted = true;
    }
}

/* The server's wake-up (loop 0): a shutdown was asked for, a drain began,
 * or a request ended at max_connections. The serving loop sees the
 * shutdown when this turn ends. */
static void on_server_wake(ss__loop *l, void *arg)
{
    aloop *al = arg;
    ss_server *s = al->server;

    (void)l;
    ss__wakeup_drain(&s->wake);
    if (atomic_load(&s->drain_deadline_ns) != 0)
        command_all(al->a, CMD_DRAIN);
    if (s->options.max_connections && !ss__admission_full(s))
        command_all(al->a, CMD_LISTEN);
}

/* ---- requests ------------------------------------------------------------- */

static void request_init(ss_server *s, ss_request *r)
{
    async *a = state(s);
    ss__loop *l = ss__loop_running();
    ss__fdent *e;

    if (!l || !a->loops || l < &a->loops[0].loop ||
        l > &a->loops[a->opt.loops - 1].loop)
        return;     /* not on one of our loops: process_request refuses */
    if (!r->datagram && r->fd >= 0) {
        if (!(e = ss__loop_fdent(l, r->fd)))
            return;
        /* A new connection: nothing of a former one with this number. */
        e->gen++;
        e->mode = SS__FD_NONE;
        e->readable = e->writable = true;
        e->eof = false;
    }
    r->loop = l;
}

static void request_main(void *arg)
{
    ss_request *r = arg;
    ss_server *s = r->server;
    async *a = state(s);

    if (r->loop->slow_ns)
        ss_address_format(&r->client, r->task->label, sizeof r->task->label);
    ss__run_request(s, r);
    /* The last one out tells whoever drains (on loop 0) to look. */
    if (atomic_fetch_sub(&a->requests, 1) == 1)
        ss__loop_interrupt(&a->loops[0].loop);
}

static int async_process_request(ss_server *s, ss_request *r,
                                 const ss_address *client)
{
    ss__task *t;

    (void)client;
    if (!r->loop) {
        r->what = "async: request outside the server's loops";
        return -ENOMEM;
    }
    atomic_fetch_add(&state(s)->requests, 1);
    if (!(t = ss__loop_spawn(r->loop, request_main, r, r))) {
        atomic_fetch_sub(&state(s)->requests, 1);
        r->what = "async: coroutine stack";
        return -ENOMEM;
    }
    r->task = t;
    return 0;
}

/* ---- loops -------------------------------------------------------------- */

/* Destroy the first n loops and the array. */
static void loops_free(async *a, unsigned n)
{
    unsigned i;

    for (i = 0; a->loops && i < n; i++) {
        ss__loop_destroy(&a->loops[i].loop);
        free(a->loops[i].batch);
    }
    free(a->loops);
    a->loops = NULL;
}

static int make_loops(ss_server *s)
{
    async *a = state(s);
    unsigned i;
    int err = 0;

    if (a->loops)
        return 0;
    if (!(a->loops = calloc(a->opt.loops, sizeof *a->loops)))
        return -ENOMEM;
    for (i = 0; i < a->opt.loops; i++) {
        aloop *al = &a->loops[i];
        ss__loop_hooks h = {
            .arg = al, .on_listen = on_listen,
            .on_server_wake = on_server_wake,
            .on_slow = on_slow, .on_overflow = on_overflow,
        };

        al->a = a;
        al->server = s;
        al->index = i;
        al->post.fn = on_command;
        atomic_init(&al->cmds, 0);
        atomic_init(&al->want_listen, false);
        if ((err = ss__loop_init(&al->loop, a->opt.stack_size, &h)) < 0) {
            loops_free(a, i);   /* the failed one cleaned itself up */
            return err;
        }
        al->loop.slow_ns = ns_from(a->opt.slow_handler_warning);
    }
    if ((err = ss__poller_add_special(&a->loops[0].loop, s->wake.rfd,
                                      SS__KEY_SERVER, false)) < 0) {
        loops_free(a, a->opt.loops);
        return err;
    }
    a->pid = getpid();
    return 0;
}

static void *loop_main(void *arg)
{
    aloop *al = arg;
    int n;

    (void)ss__stack_altstack_ensure();
    while (!al->stop) {
        if ((n = ss__loop_run_once(&al->loop, -1)) < 0) {
            ss__log(al->server, "libsockserver: async loop %u: %s", al->index,
                    ss_strerror(n));
            poll(NULL, 0, 10);
        }
    }
    return NULL;
}

static int start_threads(async *a)
{
    unsigned i;
    int rc;

    for (i = 1; i < a->opt.loops; i++) {
        aloop *al = &a->loops[i];

        if (al->threaded)
            continue;
        al->stop = false;
        if ((rc = ss__thread_create(&al->thread, NULL, loop_main, al)) != 0)
            return -rc;
        al->threaded = true;
    }
    return 0;
}

/* Set every loop's listening state; with wait, until the threaded loops
 * have applied it. */
static void listen_all(async *a, bool on, bool wait)
{
    unsigned i;

    for (i = 0; i < a->opt.loops; i++) {
        aloop *al = &a->loops[i];

        atomic_store(&al->want_listen, on);
        if (al->threaded)
            command(al, CMD_LISTEN);
        else
            apply_listen(al);
    }
    if (!wait)
        return;
    pthread_mutex_lock(&a->lock);
    for (i = 0; i < a->opt.loops; i++)
        while (a->loops[i].threaded && a->loops[i].listening != on)
            pthread_cond_wait(&a->changed, &a->lock);
    pthread_mutex_unlock(&a->lock);
}

static void stop_threads(async *a)
{
    unsigned i;

    for (i = 1; i < a->opt.loops; i++) {
        aloop *al = &a->loops[i];

        if (!al->threaded)
            continue;
        command(al, CMD_STOP);
        pthread_join(al->thread, NULL);
        al->threaded = false;
    }
}

/* ---- serving ------------------------------------------------------------- */

static int drive(aloop *al, double timeout)
{
    (void)ss__stack_altstack_ensure();
    return ss__loop_run_once(&al->loop, timeout < 0 ? -1 : ns_from(timeout));
}

static int async_serve(ss_server *s, double poll_interval)
{
    async *a = state(s);
    aloop *al;
    double interval = poll_interval > 0 ? poll_interval : 0.5, next;
    int err, n;

    if ((err = ss__begin_serving(s)) != 0)
        return err < 0 ? err : 0;
    if ((err = make_loops(s)) < 0 || (err = start_threads(a)) < 0) {
        ss__end_serving(s);
        return err;
    }
    al = &a->loops[0];
    atomic_store(&a->fatal, 0);
    listen_all(a, true, false);
    next = ss__now() + interval;
    while (!ss__shutdown_requested(s)) {
        double left = next - ss__now();

        if ((n = drive(al, left > 0 ? left : 0)) < 0) {
            err = n;
            break;
        }
        if ((err = atomic_exchange(&a->fatal, 0)) != 0)
            break;
        if (al->accepted || ss__now() >= next) {
            al->accepted = false;
            s->ops.service_actions(s);
            next = ss__now() + interval;
        }
    }
    listen_all(a, false, false);
    ss__end_serving(s);
    return err;
}

/* Driven from outside: what is runnable, or due, must show on the
 * descriptor the other loop polls. */
static void show_pending(aloop *al)
{
    if (al->loop.timerfd < 0)
        return;
    if (al->loop.runq)
        ss__loop_interrupt(&al->loop);
    ss__loop_arm_timerfd(&al->loop);
}

static int async_run_once(ss_server *s, double timeout)
{
    async *a = state(s);
    aloop *al;
    int n, err;

    if (a->opt.loops > 1)
        return -EINVAL;
    if ((err = make_loops(s)) < 0)
        return err;
    al = &a->loops[0];
    atomic_store(&al->want_listen, true);
    apply_listen(al);
    n = drive(al, timeout);
    if ((err = atomic_exchange(&a->fatal, 0)) != 0)
        n = err;
    show_pending(al);
    return n;
}

static int async_loop_fd(const ss_server *cs)
{
    ss_server *s = (ss_server *)cs;     /* the loops are made on demand */
    async *a = state(s);
    aloop *al;
    int err, fd;

    if (a->opt.loops > 1)
        return -EINVAL;
    if (atomic_load(&s->closed) || atomic_load(&s->fd) < 0)
        return -EBADF;
    if ((err = make_loops(s)) < 0)
        return err;
    al = &a->loops[0];
    atomic_store(&al->want_listen, true);
    apply_listen(al);
    /* (a listener the poller could not take left a task that resumes
     * accepting: runnable already) */
    if ((fd = ss__loop_fd(&al->loop)) >= 0)
        show_pending(al);
    return fd;
}

/* ---- close and free --------------------------------------------------------- */

/* Wait, driving loop 0, for the requests of every loop to end; after
 * `seconds` (at once when 0, never when < 0) cut them short: shut their
 * connections down, end their other waits. */
static void drain_for(ss_server *s, double seconds)
{
    async *a = state(s);
    double cut_at = seconds < 0 ? -1 : ss__now() + seconds;
    bool cut = false;

    if (!a->loops)
        return;
    command_all(a, CMD_DRAIN);
    while (atomic_load(&a->requests) > 0) {
        double wait = cut || cut_at < 0 ? -1 : cut_at - ss__now();

        if (!cut && cut_at >= 0 && wait <= 0) {
            cut = true;
            ss__registry_shutdown_all(s, SHUT_RDWR);
            command_all(a, CMD_CUT);
            continue;
        }
        if (drive(&a->loops[0], wait) < 0)
            break;      /* called from one of loop 0's own requests */
    }
}

static void drain_on_close(ss_server *s)
{
    double t = s->options.close_timeout;

    drain_for(s, t > 0 ? t : -1);
}

static void async_server_close(ss_server *s)
{
    async *a = state(s);

    if (a->loops && a->pid == getpid())
        listen_all(a, false, true);     /* before the socket closes */
    ss__close_and_wait(s, drain_on_close);
    if (a->loops && a->pid == getpid() && atomic_load(&a->requests) == 0)
        stop_threads(a);
}

/* Finish what remains on the loops themselves (a paused accept's timer)
 * once no thread drives them. */
static void settle(async *a)
{
    unsigned i;
    int turns;

    for (i = 0; i < a->opt.loops; i++) {
        aloop *al = &a->loops[i];

        if (al->resumer && al->resumer->parked)
            ss__task_wake(al->resumer, -ECANCELED);
        for (turns = 0; al->loop.live > 0 && turns < 100; turns++)
            drive(al, 0);
    }
}

static void async_destroy(ss_server *s)
{
    async *a = state(s);

    if (a->loops && a->pid == getpid()) {
        drain_for(s, ss__free_timeout(s));
        stop_threads(a);
        settle(a);
    }
    /* The blocking threads first: one may still be returning from the
     * post that woke its task's loop, which must not be freed under it. */
    ss__blocking_free(a->blocking);
    loops_free(a, a->loops ? a->opt.loops : 0);
    pthread_cond_destroy(&a->changed);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* A prefork worker, just forked: loops made by the parent (it drove the
 * server itself once) are the parent's; none of their threads is here. */
static void async_forked(ss_server *s)
{
    async *a = state(s);
    unsigned i;

    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->changed, NULL);
    if (a->loops) {
        for (i = 0; i < a->opt.loops; i++)
            a->loops[i].threaded = false;
        loops_free(a, a->opt.loops);
    }
    atomic_store(&a->requests, 0);
    ss__blocking_forked(a->blocking);
}

static int async_active(const ss_server *s)
{
    return atomic_load(&state(s)->requests);
}

/* ---- broadcast ------------------------------------------------------------ */

/* One broadcast: its receivers are sent to by tasks on their own loops;
 * the sender waits for them all (a task parks, a thread sleeps). It lives
 * on the sender's stack, so the sender returns only once told, by the
 * last job, that no loop touches it any more: `finished` is set by that
 * job itself on the sender's own loop or thread, or by the post it sends
 * there (wake_sender), never seen through `pending` alone, which the last
 * job clears before it posts. */
typedef struct bcast {
    const void      *buf;
    size_t           len;
    double           deadline;
    atomic_int       pending;
    atomic_int       reached;
    ss__task        *waiter;    /* a task on waiter->loop, or NULL */
    ss__post         done;
    pthread_mutex_t  lock;      /* a thread waits */
    pthread_cond_t   cond;
    bool             finished;  /* a task's: on its loop; a thread's: locked */
} bcast;

typedef struct bjob {
    ss__post     post;          /* to the receiver's loop */
    bcast       *b;
    ss_request  *r;
} bjob;

static void wake_sender(ss__loop *l, ss__post *p)
{
    bcast *b = (bcast *)((char *)p - offsetof(bcast, done));

    (void)l;
    b->finished = true;
    ss__task_wake(b->waiter, 0);
}

/* The last job to finish tells the sender; after that, b may be gone. */
static void job_done(bjob *j, int err)
{
    bcast *b = j->b;

    if (err == 0)
        atomic_fetch_add(&b->reached, 1);
    ss__request_unref(j->r);
    if (atomic_fetch_sub(&b->pending, 1) != 1)
        return;
    if (b->waiter) {
        if (ss__loop_running() == b->waiter->loop)
            wake_sender(NULL, &b->done);
        else
            ss__loop_post(b->waiter->loop, &b->done);
        return;
    }
    pthread_mutex_lock(&b->lock);
    b->finished = true;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void job_main(void *arg)
{
    bjob *j = arg;

    job_done(j, ss__io_broadcast_one(j->r, j->b->buf, j->b->len,
                                     j->b->deadline));
}

/* On the receiver's loop. */
static void job_start(ss__loop *l, ss__post *p)
{
    bjob *j = (bjob *)p;

    if (!ss__loop_spawn(l, job_main, j, NULL))
        job_done(j, -ENOMEM);
}

static void wait_for_jobs(bcast *b)
{
    if (b->waiter) {
        b->waiter->uncancellable = true;
        while (!b->finished)
            (void)ss__task_park(b->waiter, NULL, -1, 0);
        b->waiter->uncancellable = false;
        return;
    }
    pthread_mutex_lock(&b->lock);
    while (!b->finished)
        pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
}

static int async_broadcast(ss_server *s, const void *buf, size_t len,
                           const ss_request *except)
{
    ss__loop *here = ss__loop_running();
    bcast b = {.buf = buf, .len = len, .deadline = ss__broadcast_deadline(s)};
    ss_request **list;
    bjob *jobs;
    int i, n;

    /* A hook running on a loop's own stack can neither park nor block
     * the loop that may have to send. */
    if (here && !here->current)
        return -EBUSY;
    if ((n = ss__registry_snapshot(s, except, &list)) <= 0) {
        if (n == 0)
            free(list);
        return n;
    }
    if (!(jobs = calloc((size_t)n, sizeof *jobs))) {
        for (i = 0; i < n; i++)
            ss__request_unref(list[i]);
        free(list);
        return -ENOMEM;
    }
    b.waiter = here ? here->current : NULL;
    b.done.fn = wake_sender;
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    atomic_init(&b.pending, n);
    atomic_init(&b.reached, 0);
    for (i = 0; i < n; i++) {
        jobs[i] = (bjob){.post.fn = job_start, .b = &b, .r = list[i]};
        if (list[i]->loop == here)
            job_start(here, &jobs[i].post);
        else if (list[i]->loop)
            ss__loop_post(list[i]->loop, &jobs[i].post);
        else
            job_done(&jobs[i], -EBADF);
    }
    free(list);
    wait_for_jobs(&b);
    free(jobs);
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.lock);
    return atomic_load(&b.reached);
}

/* ---- the model ------------------------------------------------------------ */

static const ss_server_ops async_ops = {
    .process_request = async_process_request,
    .server_close    = async_server_close,
};

static const ss__model async_model = {
    .name = "async",
    .ops = &async_ops,
    .active = async_active,
    .destroy = async_destroy,
    .same_process = true,
    .nonblocking = true,
    .request_init = request_init,
    .serve = async_serve,
    .run_once = async_run_once,
    .loop_fd = async_loop_fd,
    .broadcast = async_broadcast,
    .forked = async_forked,
};

static int check_options(ss_async_options *o)
{
    size_t page = ss__page_size();

    if (o->loops == 0)
        o->loops = 1;
    if (o->stack_size == 0)
        o->stack_size = SS_ASYNC_STACK_DEFAULT;
    if (o->blocking_threads == 0)
        o->blocking_threads = SS_ASYNC_BLOCKING;
    if (o->loops > SS_ASYNC_LOOPS_MAX || o->stack_size < SS_ASYNC_STACK_MIN ||
        o->stack_size > SS_ASYNC_STACK_MAX ||
        o->blocking_threads > SS_ASYNC_BLOCKING_MAX ||
        !(o->slow_handler_warning >= 0))
        return -EINVAL;
    o->stack_size = ss__round_up(o->stack_size, page);
    return 0;
}

int ss_server_use_async(ss_server *s, const ss_async_options *options)
{
    ss_async_options o = {0};
    async *a;
    int err;

    if (!s)
        return -EINVAL;
    if (options)
        o = *options;
    if ((err = check_options(&o)) < 0)
        return err;
    if (s->model && !s->model->same_process)
        return -ENOTSUP;    /* forking: a process per request */
    if (s->model || atomic_load(&s->started))
        return -EBUSY;
    if (!(a = calloc(1, sizeof *a)))
        return -ENOMEM;
    if (!(a->blocking = ss__blocking_new(o.blocking_threads))) {
        free(a);
        return -ENOMEM;
    }
    a->opt = o;
    a->server = s;
    atomic_init(&a->requests, 0);
    atomic_init(&a->fatal, 0);
    pthread_mutex_init(&a->lock, NULL);
    ss__cond_init_monotonic(&a->changed);
    /* cannot fail: it refuses only what the checks above refused, in the
     * thread that owns the server, before it serves */
    if ((err = ss__server_set_model(s, &async_model, a)) < 0) {
        ss__blocking_free(a->blocking);
        pthread_cond_destroy(&a->changed);
        pthread_mutex_destroy(&a->lock);
        free(a);
    }
    return err;
}

/* ---- ss_run_blocking, in every model ----------------------------------------- */

int ss_run_blocking(ss_request *r, int (*fn)(void *arg), void *arg)
{
    ss__loop *l;

    if (!r || !fn)
        return -EINVAL;
    l = r->loop;
    if (!l || !l->current || ss__loop_running() != l ||
        r->server->model != &async_model)
        return fn(arg);     /* a thread that may block, or a loop hook */
    return ss__blocking_run(state(r->server)->blocking, l->current, fn, arg);
}
