/*
 * The forking mix-in: Python's ForkingMixIn. Each request runs in a child
 * process that calls finish_request, handle_error on failure and
 * shutdown_request, then _exit(0 or 1): it never returns into the serving
 * loop. The parent only closes its copy of the connection.
 *
 * Unlike Python, max_children is a hard limit: before forking, the server
 * waits for one of its own children to exit. Children are watched through
 * pidfds and reaped one pid at a time, never with waitpid(-1), so a child
 * the application forked itself keeps its exit status for its owner
 * (CPython's simple_subprocess test, issue 1540386).
 */
#include "internal.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define SS_MAX_CHILDREN_DEFAULT 40
#define SS_FORKING_TIMEOUT      300.0   /* Python's ForkingMixIn.timeout */
#define SS_NO_PIDFD_POLL        0.01    /* seconds, when pidfds are missing */
#define SS_REAP_INTERVAL        0.02    /* service_actions reaps at most this
                                           often, unless at max_children */

typedef struct child {
    pid_t pid;
    int   pidfd;    /* opened only when the server must wait; -1 until
                       then, or where pidfd_open is unavailable */
} child;

typedef struct forking {
    int        max;
    atomic_int count;   /* atomic: ss_server_active_handlers reads it from
                           any thread */
    child     *children;    /* max entries */
    double     reaped_at;   /* when collect last ran */
} forking;

static forking *state(const ss_server *s)
{
    return s->model_state;
}

static void forget(forking *f, int i)
{
    if (f->children[i].pidfd >= 0)
        ss__close(f->children[i].pidfd);
    f->children[i] = f->children[--f->count];
}

/* Reap this server's children that have exited (all of them, waiting, when
 * blocking). */
static void collect(forking *f, bool blocking)
{
    int i = 0, status;
    pid_t rc;

    f->reaped_at = ss__now();
    while (i < f->count) {
        do
            rc = waitpid(f->children[i].pid, &status, blocking ? 0 : WNOHANG);
        while (rc < 0 && errno == EINTR);
        if (rc == f->children[i].pid || (rc < 0 && errno == ECHILD))
            forget(f, i);   /* ECHILD: someone else reaped it */
        else
            i++;
    }
}

/* Sleep until a child exits, `deadline` passes (< 0: never) or, with
 * wake, a shutdown is requested. Returns 0 or -ETIMEDOUT. Children get
 * their pidfd here: most never need one. */
static int wait_any(ss_server *s, forking *f, double deadline, bool wake)
{
    struct pollfd *p = malloc(((size_t)f->count + 1) * sizeof *p);
    double until = deadline;
    int i, n = 0, rc;

    if (!p)
        return -ENOMEM;
    for (i = 0; i < f->count; i++) {
        if (f->children[i].pidfd < 0)
            f->children[i].pidfd = ss__pidfd_open(f->children[i].pid);
        if (f->children[i].pidfd >= 0)
            p[n++] = (struct pollfd){.fd = f->children[i].pidfd,
                                     .events = POLLIN};
        else if (until < 0 || until > ss__now() + SS_NO_PIDFD_POLL)
            until = ss__now() + SS_NO_PIDFD_POLL;
    }
    if (wake)
        p[n++] = (struct pollfd){.fd = s->wake.rfd, .events = POLLIN};
    rc = poll(p, (nfds_t)n, until < 0 ? -1 : ss__ms_until(until));
    free(p);
    if (rc == 0 && deadline >= 0 && ss__now() >= deadline)
        return -ETIMEDOUT;
    return 0;
}

static void signal_all(forking *f, int sig)
{
    int i;

    for (i = 0; i < f->count; i++)
        kill(f->children[i].pid, sig);
}

/* In the child: never return into the serving loop. It writes as little
 * as it can to memory shared copy-on-write with the parent: every page it
 * writes costs a fault and a copy, and a fork per request pays them all. */
static void run_child(ss_server *s, ss_request *r)
{
    int status;

    if (s->type->socktype == SOCK_STREAM)
        ss__server_close_socket(s);     /* the datagram reply needs it */
    status = ss__finish_and_report(s, r);
    s->ops.shutdown_request(s, r);      /* no free: the process ends now */
    _exit(status == 0 ? 0 : 1);
}

static int forking_process_request(ss_server *s, ss_request *r,
                                   const ss_address *client)
{
    forking *f = state(s);
    pid_t pid;

    (void)client;
    /* Reaping is service_actions' job; here only the limit matters. */
    if (f->count >= f->max)
        collect(f, false);
    while (f->count >= f->max) {
        if (ss__shutdown_requested(s)) {
            atomic_store(&r->forced, true);     /* not a handler error */
            return -ESHUTDOWN;
        }
        wait_any(s, f, -1, true);
        collect(f, false);
    }
    /* The child must not touch the registry (the server's pages), and a
     * forking server never broadcasts. */
    ss__registry_remove(s, r);
    if ((pid = fork()) < 0) {
        r->what = "fork";
        return -errno;
    }
    if (pid == 0)
        run_child(s, r);
    f->children[f->count].pid = pid;
    f->children[f->count].pidfd = -1;
    f->count++;
    /* Close only: shutdown_request would half-close the child's copy. */
    s->ops.close_request(s, r);
    ss__request_unref(r);
    return 0;
}

/* Reap after every request, as Python does, but not more often than every
 * SS_REAP_INTERVAL under load: a waitpid per live child per request would
 * cost more than the requests. */
static void forking_service_actions(ss_server *s)
{
    forking *f = state(s);

    s->type->ops->service_actions(s);
    if (f->count >= f->max || ss__now() - f->reaped_at >= SS_REAP_INTERVAL)
        collect(f, false);
}

static void forking_handle_timeout(ss_server *s)
{
    collect(state(s), false);
}

/* Wait for the children until `seconds` pass; true when none is left. */
static bool wait_children(ss_server *s, forking *f, double seconds)
{
    double deadline = ss__now() + seconds;

    collect(f, false);
    while (f->count > 0 && wait_any(s, f, deadline, false) == 0)
        collect(f, false);
    return f->count == 0;
}

static void forking_server_close(ss_server *s)
{
    forking *f = state(s);
    double t = s->options.close_timeout;

    s->type->ops->server_close(s);      /* stop listening first */
    if (s->options.no_block_on_close) {
        collect(f, false);
        return;
    }
    if (t > 0 && !wait_children(s, f, t)) {
        signal_all(f, SIGTERM);
        if (!wait_children(s, f, t))
            signal_all(f, SIGKILL);
    }
    collect(f, true);
}

static int forking_active(const ss_server *s)
{
    return state(s)->count;
}

static void forking_free(forking *f)
{
    free(f->children);
    free(f);
}

static void forking_destroy(ss_server *s)
{
    forking *f = state(s);

    collect(f, false);
    while (f->count > 0)
        forget(f, 0);   /* still running: no longer watched */
    forking_free(f);
}

static const ss_server_ops forking_ops = {
    .process_request = forking_process_request,
    .service_actions = forking_service_actions,
    .handle_timeout  = forking_handle_timeout,
    .server_close    = forking_server_close,
};

static const ss__model forking_model = {
    .name = "forking",
    .ops = &forking_ops,
    .active = forking_active,
    .destroy = forking_destroy,
    .same_process = false,
};

int ss_server_use_forking(ss_server *s)
{
    forking *f;
    int err;

    if (!s)
        return -EINVAL;
    if (s->prefork)
        return -ENOTSUP;
    if (!(f = calloc(1, sizeof *f)))
        return -ENOMEM;
    f->max = s->options.max_children > 0 ? s->options.max_children
                                         : SS_MAX_CHILDREN_DEFAULT;
    if (!(f->children = calloc((size_t)f->max, sizeof *f->children))) {
        free(f);
        return -ENOMEM;
    }
    if ((err = ss__server_set_model(s, &forking_model, f)) < 0) {
        forking_free(f);
        return err;
    }
    if (s->options.timeout == 0)
        s->timeout = SS_FORKING_TIMEOUT;
    return 0;
}
