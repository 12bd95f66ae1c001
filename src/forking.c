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
#include <string.h>
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

/* The parent's bookkeeping. It lives in memory that a forked process sees
 * as zeros (ss__map_parent_only): the parent writes it after every fork,
 * and in memory shared copy-on-write with the children each fork would
 * make those writes copy a page. What must survive a fork (the limit, the
 * size) is derived from the server's options instead. */
typedef struct forking {
    pid_t      pid;     /* whose children these are; see mine() */
    atomic_int count;   /* atomic: ss_server_active_handlers reads it from
                           any thread */
    double     reaped_at;   /* when collect last ran */
    void      *spare;       /* the last request's memory, for the next */
    size_t     spare_size;
    child      children[];  /* max_children entries */
} forking;

/* Whether the kernel wipes the table in a forked process. A property of
 * the kernel, so of every process the server may end up in. */
static atomic_bool table_wiped;

static int max_children(const ss_server *s)
{
    return s->options.max_children > 0 ? s->options.max_children
                                       : SS_MAX_CHILDREN_DEFAULT;
}

/* 0 when max_children entries do not fit in a size_t. */
static size_t state_size(const ss_server *s)
{
    size_t max = (size_t)max_children(s);

    if (max > (SIZE_MAX - sizeof(forking)) / sizeof(child))
        return 0;
    return sizeof(forking) + max * sizeof(child);
}

static void forget(forking *f, int i)
{
    if (f->children[i].pidfd >= 0)
        ss__close(f->children[i].pidfd);
    f->children[i] = f->children[--f->count];
}

/* The table of this process. A process forked from the one that set the
 * server up (a daemon, a handler's child) sees it wiped, or where the
 * kernel cannot wipe it, holding the other process's children: either way
 * it starts a table of its own. */
static forking *mine(ss_server *s)
{
    forking *f = s->model_state;
    pid_t self;

    /* A wiped table reads pid 0 in any other process: a set pid is ours. */
    if (f->pid != 0 && atomic_load_explicit(&table_wiped,
                                            memory_order_relaxed))
        return f;
    if (f->pid != (self = getpid())) {
        while (f->count > 0)
            forget(f, 0);   /* closes inherited pidfds */
        f->pid = self;
    }
    return f;
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
    forking *f = mine(s);
    int max = max_children(s);
    pid_t pid;

    (void)client;
    /* Reaping is service_actions' job; here only the limit matters. */
    if (f->count >= max)
        collect(f, false);
    while (f->count >= max) {
        if (ss__shutdown_requested(s)) {
            atomic_store(&r->forced, true);     /* not a handler error */
            return -ESHUTDOWN;
        }
        wait_any(s, f, -1, true);
        collect(f, false);
    }
    /* The request is not in the registry (same_process is false): the
     * child does not write the server's pages to leave it. */
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
    forking *f = mine(s);   /* no system call once the pid is set */

    s->type->ops->service_actions(s);
    if (f->count >= max_children(s) || ss__now() - f->reaped_at >= SS_REAP_INTERVAL)
        collect(f, false);
}

static void forking_handle_timeout(ss_server *s)
{
    collect(mine(s), false);
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
    forking *f = mine(s);
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

/* One request at a time lives in the parent, from accept to fork: reusing
 * its memory keeps malloc's pages (and errno, which free saves) out of the
 * parent's writes between forks. */
static void *forking_request_alloc(ss_server *s, size_t size)
{
    forking *f = s->model_state;
    void *m = f->spare;

    if (!m || f->spare_size < size)
        return NULL;
    f->spare = NULL;
    return memset(m, 0, size);
}

static bool forking_request_release(ss_server *s, void *m, size_t size)
{
    forking *f = s->model_state;

    if (f->spare && f->spare_size >= size)
        return false;
    free(f->spare);
    f->spare = m;
    f->spare_size = size;
    return true;
}

/* A table that is not this process's own (see mine()) has no children
 * of this process in it. */
static int forking_active(const ss_server *s)
{
    const forking *f = s->model_state;

    return f->pid == getpid() ? atomic_load(&f->count) : 0;
}

static void forking_free(ss_server *s, forking *f)
{
    free(f->spare);
    ss__unmap_parent_only(f, state_size(s));
}

static void forking_destroy(ss_server *s)
{
    forking *f = mine(s);

    collect(f, false);
    while (f->count > 0)
        forget(f, 0);   /* still running: no longer watched */
    forking_free(s, f);
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
    .request_alloc = forking_request_alloc,
    .request_release = forking_request_release,
    .same_process = false,
};

int ss_server_use_forking(ss_server *s)
{
    forking *f;
    size_t size;
    bool wiped;
    int err;

    if (!s)
        return -EINVAL;
    if (s->prefork)
        return -ENOTSUP;
    if ((size = state_size(s)) == 0 ||
        !(f = ss__map_parent_only(size, &wiped)))
        return -ENOMEM;
    atomic_store(&table_wiped, wiped);
    f->pid = getpid();
    if ((err = ss__server_set_model(s, &forking_model, f)) < 0) {
        forking_free(s, f);
        return err;
    }
    if (s->options.timeout == 0)
        s->timeout = SS_FORKING_TIMEOUT;
    return 0;
}
