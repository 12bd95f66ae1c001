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
#define SS_SLOT_PACKET          512     /* datagram bytes the request slot
                                           holds; longer ones are malloc'ed */
#define SS_SLOT_MAX             4096    /* request bytes at most in the slot:
                                           it crosses the fork on the stack */

/* The parent writes its bookkeeping, and the next request, after every
 * fork. In memory shared copy-on-write with the children each fork would
 * make those writes copy a page, so both live in memory that a forked
 * process sees as zeros (ss__map_parent_only): the table below, and the
 * request slot after it, which the child refills from the parent's stack
 * (fork_request). What must survive a fork is in `forking`, written only
 * when the model is set up. */
typedef struct table {
    atomic_int pid;         /* whose children these are, 0 in a process
                               that inherited the table wiped; see mine() */
    atomic_int count;       /* atomic: ss_server_active_handlers reads it
                               from any thread */
    double     reaped_at;   /* when collect last ran */
    bool       slot_busy;   /* the request slot holds a request */
    pid_t      children[];  /* max_children entries */
} table;

typedef struct forking {
    table  *t;
    size_t  map_size;       /* the table and the slot */
    bool    wiped;          /* the kernel wipes them in a forked process */
    int     max;
    /* One request at a time lives in the parent, from accept to fork: its
     * memory is reused from one request to the next, which keeps malloc's
     * pages (and errno, which free saves) out of the parent's writes. */
    void   *slot;           /* in the table's mapping; NULL: no slot */
    size_t  slot_size;
} forking;

static forking *state(const ss_server *s)
{
    return s->model_state;
}

static void forget(table *t, int i)
{
    t->children[i] = t->children[--t->count];
}

/* Whether the table holds this process's children. A process forked from
 * the one that set the server up (a daemon, a handler's child) sees it
 * wiped (pid 0), or where the kernel cannot wipe it, holding the other
 * process's children. No system call where the kernel wipes. */
static bool owned(const forking *f)
{
    pid_t pid = atomic_load(&f->t->pid);

    return f->wiped ? pid != 0 : pid == getpid();
}

/* The table of this process: one not owned yet is started afresh. */
static table *mine(ss_server *s)
{
    forking *f = state(s);
    table *t = f->t;

    if (!owned(f)) {
        atomic_store(&t->count, 0);
        t->slot_busy = false;
        atomic_store(&t->pid, getpid());
    }
    return t;
}

/* Reap this server's children that have exited (all of them, waiting, when
 * blocking). */
static void collect(table *t, bool blocking)
{
    int i = 0, status;
    pid_t rc;

    t->reaped_at = ss__now();
    while (i < t->count) {
        do
            rc = waitpid(t->children[i], &status, blocking ? 0 : WNOHANG);
        while (rc < 0 && errno == EINTR);
        if (rc == t->children[i] || (rc < 0 && errno == ECHILD))
            forget(t, i);   /* ECHILD: someone else reaped it */
        else
            i++;
    }
}

/* Sleep until a child exits, `deadline` passes (< 0: never) or, with
 * wake, a shutdown is requested. Returns 0 or -ETIMEDOUT. The children's
 * pidfds are opened for this wait only: kept open, they would leak into
 * every process forked meanwhile, the application's included. A child
 * without a pidfd (no pidfd_open, or no memory to poll them) is checked
 * again after SS_NO_PIDFD_POLL. */
static int wait_any(ss_server *s, table *t, double deadline, bool wake)
{
    struct pollfd spare = {.fd = -1};  /* room for the wake-up fd alone */
    struct pollfd *all = malloc(((size_t)t->count + 1) * sizeof *all);
    struct pollfd *p = all ? all : &spare;
    double until = deadline;
    int i, n = 0, rc;

    for (i = 0; i < t->count; i++) {
        int fd = all ? ss__pidfd_open(t->children[i]) : -ENOMEM;

        if (fd >= 0)
            p[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
        else if (until < 0 || until > ss__now() + SS_NO_PIDFD_POLL)
            until = ss__now() + SS_NO_PIDFD_POLL;
    }
    if (wake)
        p[n++] = (struct pollfd){.fd = s->wake.rfd, .events = POLLIN};
    rc = poll(p, (nfds_t)n, until < 0 ? -1 : ss__ms_until(until));
    for (i = 0; i < n - (wake ? 1 : 0); i++)
        ss__close(p[i].fd);
    free(all);
    if (rc == 0 && deadline >= 0 && ss__now() >= deadline)
        return -ETIMEDOUT;
    return 0;
}

static void signal_all(table *t, int sig)
{
    int i;

    for (i = 0; i < t->count; i++)
        kill(t->children[i], sig);
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
    ss__stats_request_end(s, r);        /* its bytes: shared memory */
    _exit(status == 0 ? 0 : 1);
}

/* Fork, and run the request in the child. A request in a slot the kernel
 * wipes crosses the fork in this frame, and the child puts it back where
 * it was: the request, its state and its packet keep the addresses the
 * parent's hooks saw. The copy is sized to the slot (a variable-length
 * array) so that it takes no more stack pages than it needs. */
static pid_t fork_request(ss_server *s, ss_request *r)
{
    forking *f = state(s);
    bool carry = f->wiped && (void *)r == f->slot;
    max_align_t copy[carry ? f->slot_size / sizeof(max_align_t) : 1];
    pid_t pid;

    if (carry)
        memcpy(copy, r, f->slot_size);
    if ((pid = fork()) == 0) {
        ss__forked();
        if (carry)
            memcpy(r, copy, f->slot_size);
        run_child(s, r);
    }
    return pid;
}

static int forking_process_request(ss_server *s, ss_request *r,
                                   const ss_address *client)
{
    table *t = mine(s);
    int max = state(s)->max;
    pid_t pid;

    (void)client;
    /* Reaping is service_actions' job; here only the limit matters. */
    if (t->count >= max)
        collect(t, false);
    while (t->count >= max) {
        if (ss__shutdown_requested(s)) {
            atomic_store(&r->forced, true);     /* not a handler error */
            return -ESHUTDOWN;
        }
        wait_any(s, t, -1, true);
        collect(t, false);
    }
    /* The request is not in the registry (same_process is false): the
     * child does not write the server's pages to leave it. */
    if ((pid = fork_request(s, r)) < 0) {
        r->what = "fork";
        return -errno;
    }
    t->children[t->count] = pid;
    ss__stats_peak(s, (unsigned)atomic_fetch_add(&t->count, 1) + 1);
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
    table *t = mine(s);

    s->type->ops->service_actions(s);
    if (t->count >= state(s)->max ||
        ss__now() - t->reaped_at >= SS_REAP_INTERVAL)
        collect(t, false);
}

static void forking_handle_timeout(ss_server *s)
{
    collect(mine(s), false);
}

/* Wait for the children until `seconds` pass; true when none is left. */
static bool wait_children(ss_server *s, table *t, double seconds)
{
    double deadline = ss__now() + seconds;

    collect(t, false);
    while (t->count > 0 && wait_any(s, t, deadline, false) == 0)
        collect(t, false);
    return t->count == 0;
}

static void forking_server_close(ss_server *s)
{
    table *t = mine(s);
    double timeout = s->options.close_timeout;

    s->type->ops->server_close(s);      /* stop listening first */
    if (s->options.no_block_on_close) {
        collect(t, false);
        return;
    }
    if (timeout > 0 && !wait_children(s, t, timeout)) {
        signal_all(t, SIGTERM);
        if (!wait_children(s, t, timeout))
            signal_all(t, SIGKILL);
    }
    collect(t, true);
}

static void *forking_request_alloc(ss_server *s, size_t size)
{
    forking *f = state(s);
    table *t = mine(s);

    if (!f->slot || t->slot_busy || size > f->slot_size)
        return NULL;
    t->slot_busy = true;
    return memset(f->slot, 0, size);
}

static bool forking_request_release(ss_server *s, void *m)
{
    forking *f = state(s);

    if (!f->slot || m != f->slot)
        return false;
    mine(s)->slot_busy = false;
    return true;
}

/* A table this process does not own has no children of this process. */
static int forking_active(const ss_server *s)
{
    const forking *f = state(s);

    return owned(f) ? atomic_load(&f->t->count) : 0;
}

static void forking_free(forking *f)
{
    ss__unmap_parent_only(f->t, f->map_size);
    free(f);
}

static void forking_destroy(ss_server *s)
{
    forking *f = state(s);

    collect(mine(s), false);    /* the rest still run: no longer watched */
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
    .request_alloc = forking_request_alloc,
    .request_release = forking_request_release,
    .same_process = false,
};

/* The table's size, rounded for the slot after it; 0 when max entries do
 * not fit in a size_t. */
static size_t table_size(int max)
{
    const size_t align = _Alignof(max_align_t);

    if ((size_t)max > (SIZE_MAX - sizeof(table) - align) / sizeof(pid_t))
        return 0;
    return ss__round_up(sizeof(table) + (size_t)max * sizeof(pid_t), align);
}

/* The slot's size: a request with the handler's state (and a short
 * packet), rounded to whole max_align_t; 0 (no slot) when the copy that
 * crosses the fork would be too large for the stack. (The constructors
 * keep state_size far from overflowing the sum.) */
static size_t slot_size(const ss_server *s)
{
    size_t packet = s->type->socktype == SOCK_DGRAM ? SS_SLOT_PACKET : 0;
    size_t n = ss__round_up(ss__request_size(s, packet), sizeof(max_align_t));

    return n <= SS_SLOT_MAX ? n : 0;
}

static forking *forking_new(const ss_server *s)
{
    forking *f = calloc(1, sizeof *f);
    size_t t_size;

    if (!f)
        return NULL;
    f->max = s->options.max_children > 0 ? s->options.max_children
                                         : SS_MAX_CHILDREN_DEFAULT;
    f->slot_size = slot_size(s);
    if (!(t_size = table_size(f->max)) ||
        t_size > SIZE_MAX - f->slot_size ||
        !(f->t = ss__map_parent_only(f->map_size = t_size + f->slot_size,
                                     &f->wiped))) {
        free(f);
        return NULL;
    }
    if (f->slot_size)
        f->slot = (char *)f->t + t_size;
    atomic_store(&f->t->pid, getpid());
    return f;
}

int ss_server_use_forking(ss_server *s)
{
    forking *f;
    int err;

    if (!s)
        return -EINVAL;
    if (s->layer)
        return -ENOTSUP;    /* a process per request under prefork */
    if (!(f = forking_new(s)))
        return -ENOMEM;
    if ((err = ss__server_set_model(s, &forking_model, f)) < 0) {
        forking_free(f);
        return err;
    }
    if (s->options.timeout == 0)
        s->timeout = SS_FORKING_TIMEOUT;
    return 0;
}
