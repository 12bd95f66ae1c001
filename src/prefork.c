/*
 * Prefork: the parent binds, then ss_serve_forever starts `workers` child
 * processes, each running the serving loop on the shared listening socket
 * with the server's process model (sync, threading or the pool: N processes
 * x M threads, as nginx and Apache's worker MPM do). The parent supervises:
 * a worker that dies is restarted, with a back-off when it dies young, and a
 * line on stderr saying why. Shutdown stops every worker with SIGTERM (a
 * worker then finishes its requests and exits), SIGKILL after
 * close_timeout, and reaps them.
 */
#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SS_YOUNG_DEATH    1.0   /* a worker dying sooner is failing */
#define SS_RESTART_MIN    0.1   /* back-off after a young death, s */
#define SS_RESTART_MAX    5.0
#define SS_KILL_GRACE     0.25  /* after close_timeout, before SIGKILL, s */
#define SS_NO_PIDFD_POLL  0.05

typedef struct worker {
    pid_t    pid;           /* 0 when not running */
    int      pidfd;         /* -1 where pidfd_open is unavailable */
    double   started;
    double   restart_at;    /* when to start it again */
    unsigned failures;      /* young deaths in a row */
} worker;

typedef struct prefork {
    unsigned count;
    worker  *w;
} prefork;

static prefork *state(const ss_server *s)
{
    return s->layer_state;
}

/* ---- in the worker ------------------------------------------------------ */

/* Make the inherited copy of the server this process's own. */
static int become_worker(ss_server *s, unsigned index, pid_t supervisor)
{
    prefork *p = state(s);
    unsigned i;
    int err;

    ss__forked();
    ss__stats_worker(s, index);
    for (i = 0; i < p->count; i++)
        if (p->w[i].pidfd >= 0)
            ss__close(p->w[i].pidfd);
    /* The parent's wake-up descriptor would wake every worker. */
    ss__wakeup_close(&s->wake);
    if (ss__wakeup_open(&s->wake) < 0)
        return -errno;
    /* A lock held by another parent thread at fork time stays held here. */
    pthread_mutex_init(&s->lock, NULL);
    ss__cond_init_monotonic(&s->cond);
    pthread_mutex_init(&s->reg_lock, NULL);
    s->serving = false;
    atomic_store(&s->shutdown_request, 0);
    if (s->model && s->model->forked)
        s->model->forked(s);
    /* From here on the worker is a server of the inner model, whose
     * requests a shutdown's drain bounds: the parent kills the worker
     * close_timeout after asking it to stop. */
    ss__server_drop_layer(s);
    s->drain_all = true;
    if ((err = ss__signals_in_worker(s)) < 0)
        return err;
    /* A supervisor that dies (killed, crashed) stops its workers as its
     * shutdown would: SIGTERM, so no orphan goes on serving the port
     * unsupervised. One already dead: the worker stops at once. */
    if (ss__die_with_parent(supervisor, SIGTERM))
        ss_server_request_shutdown(s);
    return 0;
}

static void worker_main(ss_server *s, unsigned index, double poll_interval,
                        pid_t supervisor)
{
    int err = become_worker(s, index, supervisor);

    if (err == 0)
        err = ss__model_serve(s, poll_interval);
    else
        ss__log(s, "libsockserver: prefork worker %d: %s", (int)getpid(),
                ss_strerror(err));
    ss_server_close(s);     /* drains the worker's own handlers */
    _exit(err == 0 ? 0 : 1);
}

/* ---- in the parent ------------------------------------------------------ */

static int start_worker(ss_server *s, unsigned i, double poll_interval)
{
    worker *w = &state(s)->w[i];
    pid_t supervisor = getpid();
    pid_t pid = fork();

    if (pid < 0) {
        w->restart_at = ss__now() + SS_RESTART_MAX;
        ss__log(s, "libsockserver: prefork worker %u: fork: %s; retrying in "
                "%.0f s", i, ss_strerror(-errno), SS_RESTART_MAX);
        return -errno;
    }
    if (pid == 0)
        worker_main(s, i, poll_interval, supervisor);
    w->pid = pid;
    w->pidfd = ss__pidfd_open(pid);
    if (w->pidfd < 0)
        w->pidfd = -1;
    w->started = ss__now();
    return 0;
}

static void describe_exit(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    /* cannot happen: the last case; waitpid without WUNTRACED or
     * WCONTINUED reports only exits and deaths by a signal */
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "ended (status 0x%x)", (unsigned)status);
}

/* Reap worker i if it has exited; when `restart`, schedule its restart. */
static bool reap_worker(ss_server *s, unsigned i, bool blocking, bool restart)
{
    worker *w = &state(s)->w[i];
    char why[96];
    double delay;
    int status;
    pid_t rc;

    if (w->pid == 0)
        return true;
    do
        rc = waitpid(w->pid, &status, blocking ? 0 : WNOHANG);
    while (rc < 0 && errno == EINTR);
    if (rc == 0)
        return false;
    if (w->pidfd >= 0)
        ss__close(w->pidfd);
    w->pidfd = -1;
    w->pid = 0;
    ss__stats_worker_died(s, i);    /* its live requests died with it */
    if (!restart || rc < 0)
        return true;
    w->failures = ss__now() - w->started < SS_YOUNG_DEATH ? w->failures + 1 : 0;
    delay = 0;
    if (w->failures > 0) {
        delay = SS_RESTART_MIN * (double)(1u << (w->failures < 6 ? w->failures - 1 : 5));
        /* unreachable: with these constants the back-off tops out at
         * 0.1 s * 2^5 = 3.2 s; the cap holds if they change */
        if (delay > SS_RESTART_MAX)
            delay = SS_RESTART_MAX;
    }
    w->restart_at = ss__now() + delay;
    describe_exit(status, why, sizeof why);
    ss__log(s, "libsockserver: prefork worker %u (pid %d) %s; restarting it%s",
            i, (int)rc, why, delay > 0 ? " after a back-off" : "");
    return true;
}

/* Sleep until a worker exits, a restart is due, the wake-up descriptor
 * fires or `interval` passes. */
static void supervise_wait(ss_server *s, double interval)
{
    prefork *p = state(s);
    struct pollfd *fds = malloc(((size_t)p->count + 1) * sizeof *fds);
    double until = ss__now() + interval;
    unsigned i, n = 0;

    if (!fds) {
        until = ss__now() + SS_NO_PIDFD_POLL;
    } else {
        fds[n++] = (struct pollfd){.fd = s->wake.rfd, .events = POLLIN};
    }
    for (i = 0; i < p->count; i++) {
        worker *w = &p->w[i];

        if (w->pid == 0 && w->restart_at < until)
            until = w->restart_at;
        else if (w->pid != 0 && w->pidfd >= 0 && fds)
            fds[n++] = (struct pollfd){.fd = w->pidfd, .events = POLLIN};
        else if (w->pid != 0 && ss__now() + SS_NO_PIDFD_POLL < until)
            until = ss__now() + SS_NO_PIDFD_POLL;
    }
    if (fds) {
        if (poll(fds, n, ss__ms_until(until)) > 0 && fds[0].revents)
            ss__wakeup_drain(&s->wake);
        free(fds);
    } else {
        poll(NULL, 0, ss__ms_until(until));
    }
}

static void supervise(ss_server *s, double interval)
{
    prefork *p = state(s);
    unsigned i;

    while (!ss__shutdown_requested(s)) {
        for (i = 0; i < p->count; i++) {
            reap_worker(s, i, false, true);
            if (p->w[i].pid == 0 && ss__now() >= p->w[i].restart_at &&
                !ss__shutdown_requested(s))
                start_worker(s, i, interval);
        }
        s->ops.service_actions(s);
        supervise_wait(s, interval);
    }
}

static bool all_reaped(ss_server *s, bool blocking)
{
    bool done = true;
    unsigned i;

    for (i = 0; i < state(s)->count; i++)
        if (!reap_worker(s, i, blocking, false))
            done = false;
    return done;
}

static void signal_workers(ss_server *s, int sig)
{
    unsigned i;

    for (i = 0; i < state(s)->count; i++)
        if (state(s)->w[i].pid != 0)
            kill(state(s)->w[i].pid, sig);
}

/* SIGTERM, wait up to close_timeout (0: as long as they take) and a
 * little more, SIGKILL, reap. The little more is for a worker's own drain,
 * which ends its requests close_timeout after the SIGTERM reached it. */
static void stop_workers(ss_server *s)
{
    double t = s->options.close_timeout;
    double deadline = ss__now() + t + SS_KILL_GRACE;

    signal_workers(s, SIGTERM);
    if (t > 0) {
        while (!all_reaped(s, false) && ss__now() < deadline)
            poll(NULL, 0, 5);
        signal_workers(s, SIGKILL);
    }
    all_reaped(s, true);
}

static int prefork_serve(ss_server *s, double poll_interval)
{
    double interval = poll_interval > 0 ? poll_interval : 0.5;
    unsigned i;
    int err;

    if ((err = ss__begin_serving(s)) != 0)
        return err < 0 ? err : 0;
    for (i = 0; i < state(s)->count; i++)
        state(s)->w[i].restart_at = 0;
    supervise(s, interval);
    stop_workers(s);
    ss__end_serving(s);
    return 0;
}

/* The parent's server_close: the workers first, then the inner model's
 * close (the listening socket, the parent's own handlers if any). */
static void prefork_server_close(ss_server *s)
{
    stop_workers(s);
    s->inner.server_close(s);
}

/* The workers serve, in other processes: nothing to drive here. */
static int prefork_run_once(ss_server *s, double timeout)
{
    (void)s, (void)timeout;
    return -EINVAL;
}

static int prefork_loop_fd(const ss_server *s)
{
    (void)s;
    return -EINVAL;
}

static void prefork_destroy(ss_server *s)
{
    free(state(s)->w);
    free(state(s));
}

static const ss_server_ops prefork_ops = {
    .server_close = prefork_server_close,
};

static const ss__model prefork_layer = {
    .name = "prefork",
    .ops = &prefork_ops,
    .destroy = prefork_destroy,
    .same_process = false,      /* handlers live in the workers */
    .serve = prefork_serve,
    .run_once = prefork_run_once,
    .loop_fd = prefork_loop_fd,
};

int ss_server_use_prefork(ss_server *s, unsigned workers)
{
    prefork *p;
    unsigned i;
    int err;

    if (!s || workers == 0)
        return -EINVAL;
    if (s->layer || atomic_load(&s->started))
        return -EBUSY;
    if (s->model && !s->model->same_process)
        return -ENOTSUP;    /* forking inside prefork workers */
    if (!(p = calloc(1, sizeof *p)) || !(p->w = calloc(workers, sizeof *p->w))) {
        free(p);
        return -ENOMEM;
    }
    p->count = workers;
    for (i = 0; i < workers; i++)
        p->w[i].pidfd = -1;
    if ((err = ss__stats_prefork(s, workers)) < 0 ||
        (err = ss__server_set_layer(s, &prefork_layer, p)) < 0) {
        free(p->w);
        free(p);
        return err;
    }
    return 0;
}
