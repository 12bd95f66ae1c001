/*
 * The one place request I/O waits: the only code that knows whether a
 * request blocks its thread or yields its coroutine.
 *
 * Thread models (sync, threading, forking, pool, prefork): connections are
 * blocking sockets, so a ping-pong request costs one read and one write
 * system call. The handler timeout is applied to the socket
 * (SO_RCVTIMEO/SO_SNDTIMEO), and this file alone turns those into
 * deadlines: after EINTR it shortens the socket timeout to what is left, so
 * a stream of signals cannot extend a wait, and while a shutdown drains
 * (close_timeout) it shortens it to the end of the drain, after which I/O
 * fails with -ESHUTDOWN.
 *
 * Async mode (r->loop set): connections are non-blocking and registered
 * edge-triggered with the loop. A call is tried first when the socket is
 * known to be ready; on EAGAIN (or a short read, which means the socket is
 * drained) the task parks on the descriptor with the same deadlines, and
 * the loop runs other requests meanwhile. No lock and no clock read on that
 * path: the clock is read only to start a deadline, when a call with a
 * timeout (or during a drain) has to wait.
 */
#include "runtime.h"

#include <sys/time.h>

int ss__io_set_timeout(int fd, double seconds)
{
    struct timeval tv = {0, 0};

    if (seconds > 0) {      /* <= 0: no timeout */
        tv.tv_sec = (time_t)seconds;
        tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
        if (tv.tv_sec == 0 && tv.tv_usec == 0)
            tv.tv_usec = 1;     /* 0 would mean "no timeout" */
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        return -errno;
    return 0;
}

/* Seconds left of the drain a shutdown (or a datagram server's close)
 * started, < 0: none. It bounds only the requests ss__dispatch marked:
 * close drains the others by shutting their connections down. */
static double drain_left(const ss_request *r)
{
    return r->inline_drain ? ss__drain_left(r->server) : -1;
}

/* The limits on one I/O call that started at `start` (0 = not yet read
 * from the clock): the seconds it may still wait (< 0: no limit) and
 * whether the drain, not the handler timeout, is the nearer limit. */
static double io_left(ss_request *r, double *start, bool *draining)
{
    double drain = drain_left(r);
    double left = -1;

    *draining = false;
    if (r->timeout > 0) {
        if (*start == 0)
            *start = ss__now();
        left = *start + r->timeout - ss__now();
        if (left < 0)
            left = 0;
    }
    if (drain >= 0 && (left < 0 || drain <= left)) {
        left = drain;
        *draining = true;
    }
    return left;
}

/* The drain is over: the server cuts this request short. */
static int drained(ss_request *r)
{
    atomic_store(&r->forced, true);
    return -ESHUTDOWN;
}

/* Before a call, and again after EINTR: make the socket timeout match what
 * is left. Returns 0, or the error the call ends with when nothing is left.
 * Costs nothing in the common case: no drain, and the socket already holds
 * the handler timeout (or none). */
static int io_arm(ss_request *r, double *start, bool after_eintr)
{
    bool draining;
    double left;
    int err;

    if (!after_eintr && !r->timeo_dirty &&
        (!r->inline_drain ||
         atomic_load_explicit(&r->server->drain_deadline_ns,
                              memory_order_relaxed) == 0))
        return 0;
    left = io_left(r, start, &draining);
    if (left == 0)
        return draining ? drained(r) : -ETIMEDOUT;
    if (!after_eintr && !draining && !r->timeo_dirty)
        return 0;   /* a drain is on, but the handler timeout ends first */
    if (left < 0 && !r->timeo_dirty)
        return 0;   /* no limit at all, and none on the socket */
    if ((err = ss__io_set_timeout(r->fd, left)) < 0)
        return err;
    /* Dirty unless the socket holds exactly the handler timeout (or no
     * timeout) again. */
    r->timeo_dirty = left >= 0 && (draining || after_eintr);
    return 0;
}

/* A blocking call failed with EAGAIN: its socket timeout expired. */
static int io_expired(ss_request *r)
{
    return drain_left(r) == 0 ? drained(r) : -ETIMEDOUT;
}

/* ---- thread models: blocking sockets --------------------------------------- */

static ssize_t block_recv(ss_request *r, void *buf, size_t len)
{
    double start = r->timeout > 0 ? ss__now() : 0;
    bool eintr = false;
    ssize_t n;
    int err;

    for (;;) {
        if ((err = io_arm(r, &start, eintr)) < 0)
            return err;
        n = recv(r->fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            break;
        eintr = true;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK ? io_expired(r) : -errno;
}

/* Send some of buf: bytes sent (>0) or -errno. `more` when earlier calls
 * sent part of the same buffer, so that the time left, not the whole
 * timeout, applies. */
static ssize_t block_send(ss_request *r, const void *buf, size_t len,
                          double *start, bool more)
{
    bool eintr = false;
    ssize_t n;
    int err;

    for (;;) {
        /* A continuation gets what is left of the whole send's time, as
         * a call restarted after EINTR does. */
        if ((err = io_arm(r, start, eintr || more)) < 0)
            return err;
        n = send(r->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            break;
        eintr = true;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK ? io_expired(r) : -errno;
}

/* The connection's lock keeps a broadcast from another thread out of the
 * middle of this send, and the descriptor open meanwhile. */
static int block_sendall(ss_request *r, const char *buf, size_t len,
                         ss__sending *x)
{
    ssize_t n;
    int err = 0;

    if (x->start == 0 && r->timeout > 0)
        x->start = ss__now();       /* only a call that sends reads it */
    if (r->has_wlock)
        pthread_mutex_lock(&r->wlock);
    if (r->fd < 0)
        err = -EBADF;
    while (!err && len > 0) {
        n = block_send(r, buf, len, &x->start, x->more);
        x->more = true;
        if (n < 0) {
            err = (int)n;
        } else {
            buf += n;
            len -= (size_t)n;
        }
    }
    if (r->has_wlock)
        pthread_mutex_unlock(&r->wlock);
    return err;
}

/* Wait for fd (when >= 0) to be ready for `events` until `deadline` (< 0:
 * none): 1 ready, 0 at the deadline, or -errno. The request's own
 * connection is watched too (events 0: only a hang-up is reported), so the
 * shutdown close makes of an idle handler's connection ends this wait as
 * it would end a read; a drain bounds it for the requests it applies to. */
static int block_wait(ss_request *r, int fd, short events, double deadline)
{
    struct pollfd p[2] = {
        {.fd = fd, .events = events},
        {.fd = !r->datagram && r->fd != fd ? r->fd : -1, .events = 0},
    };
    double drain, until;
    int n;

    for (;;) {
        drain = drain_left(r);
        until = deadline;
        if (drain >= 0 && (until < 0 || ss__now() + drain < until))
            until = ss__now() + drain;
        n = poll(p, 2, until < 0 ? -1 : ss__ms_until(until));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0 && p[0].revents)
            return 1;
        if (n > 0 && p[1].revents) {
            if (atomic_load(&r->forced))
                return -ESHUTDOWN;
            p[1].fd = -1;   /* the client hung up: not this wait's business */
        }
        if (drain_left(r) == 0)
            return drained(r);
        if (deadline >= 0 && ss__now() >= deadline)
            return 0;
    }
}

/* ---- async mode: the task yields ------------------------------------------ */

/* A task waiting for a connection's send lock. */
typedef struct ss__lockwait {
    ss__task            *task;
    struct ss__lockwait *next;
} ss__lockwait;

static int64_t to_ns(double seconds)
{
    return (int64_t)(seconds * 1e9);
}

/* Outside a task (a hook on the loop's own stack, verify_request say:
 * the loop's current task is NULL while its scheduler runs):
 * nothing can yield, so the thread waits. */
static int poll_instead(int fd, short events, int64_t at, int result)
{
    int err = ss__io_poll(fd, events, at < 0 ? -1 : (double)at / 1e9);

    return err == -ETIMEDOUT ? result : err;
}

/* Register fd for this wait. The request's own connection once, for both
 * directions, edge-triggered; another request's connection is already
 * registered; anything else gets one-shot interest, re-armed per wait
 * (which also reports it at once if it is ready now). */
static int watch(ss_request *r, ss__loop *l, int fd, short events,
                 ss__waiting *w)
{
    ss__fdent *e = ss__loop_fdent(l, fd);
    int err = 0;

    if (!e)
        return -ENOMEM;
    if (fd == r->fd) {
        if (!r->watched && (err = ss__poller_watch(l, fd, e->gen)) == 0) {
            e->mode = SS__FD_EDGE;
            r->watched = true;
        }
    } else if (e->mode != SS__FD_EDGE) {
        if ((err = ss__poller_arm(l, fd, e->gen, events)) == 0)
            e->mode = SS__FD_ONESHOT;
    }
    w->fd = fd;
    w->events = events;
    w->gen = e->gen;
    return err;
}

/* Park the running task until fd (when >= 0) is ready for `events`, until
 * `deadline` (ss__now; < 0: none), or until the drain ends (for the
 * requests it applies to). 0 when ready or woken, -ETIMEDOUT at the
 * deadline, -ESHUTDOWN when the drain ended or the server cut the request
 * short, or -errno. */
static int yield_wait(ss_request *r, int fd, short events, double deadline)
{
    ss__loop *l = r->loop;
    ss__task *t = l->current;
    ss__waiting w = {.fd = -1};
    int64_t at = -1;
    int result = -ETIMEDOUT, err;

    if (deadline >= 0 || r->inline_drain) {
        int64_t end = r->inline_drain
            ? atomic_load_explicit(&r->server->drain_deadline_ns,
                                   memory_order_relaxed) : 0;

        at = deadline < 0 ? -1 : to_ns(deadline);
        if (end != 0 && (at < 0 || end <= at)) {
            at = end;
            result = -ESHUTDOWN;
        }
        if (at >= 0 && at <= ss__now_ns())
            return result == -ESHUTDOWN ? drained(r) : result;
    }
    if (!t)
        return poll_instead(fd, events, at, result);
    if (at < 0 && fd >= 0 && fd == r->fd && r->watched &&
        (events == POLLIN || events == POLLOUT)) {
        /* The common case: the connection, registered already. */
        err = ss__task_park_edge(t, fd, events == POLLOUT);
    } else {
        if (fd >= 0 && (err = watch(r, l, fd, events, &w)) < 0)
            return err;
        err = ss__task_park(t, &w, at, result);
    }
    if (err == -ESHUTDOWN)
        return drained(r);
    return err;
}

/* Park until the request's own connection is ready for reading (or
 * writing), or *deadline (started now from the handler timeout when it is
 * < 0). With no deadline to keep, it goes straight to the loop. */
static int park_on_connection(ss_request *r, bool write, double *deadline)
{
    ss__task *t = r->loop->current;

    if (t && r->watched && *deadline < 0 && r->timeout <= 0 &&
        !r->inline_drain)
        return ss__task_park_edge(t, r->fd, write);
    if (*deadline < 0 && r->timeout > 0)
        *deadline = ss__now() + r->timeout;
    return yield_wait(r, r->fd, write ? POLLOUT : POLLIN, *deadline);
}

/* After the first try: wait, try again, until data, EOF or an error. */
static ssize_t yield_recv(ss_request *r, void *buf, size_t len)
{
    double deadline = -1;
    ssize_t n;
    int err;

    for (;;) {
        ss__fdent *e;

        if (r->fd < 0)
            return -EBADF;
        e = &r->loop->fds[r->fd];
        if (e->readable) {
            n = recv(r->fd, buf, len, 0);
            if (n > 0) {
                if ((size_t)n < len && !e->eof)
                    e->readable = false;
                return n;
            }
            if (n == 0)
                return 0;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            e->readable = false;
        }
        if ((err = park_on_connection(r, false, &deadline)) < 0)
            return err;
    }
}

/* Send some of buf before `deadline` (< 0: the handler timeout, started
 * at the first wait): bytes sent (> 0) or -errno. */
static ssize_t yield_send(ss_request *r, const void *buf, size_t len,
                          double *deadline)
{
    ssize_t n;
    int err;

    for (;;) {
        ss__fdent *e;

        if (r->fd < 0)
            return -EBADF;
        e = &r->loop->fds[r->fd];
        if (e->writable) {
            n = send(r->fd, buf, len, MSG_NOSIGNAL);
            if (n >= 0)
                return n;   /* a short send is retried: EAGAIN decides */
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            e->writable = false;
        }
        if ((err = park_on_connection(r, true, deadline)) < 0)
            return err;
    }
}

/* A connection's send lock, for tasks: held while a send is part-way and
 * waits, so a broadcast never lands in the middle of a message. Granted in
 * order; handed to the next waiter on release. */
static int send_lock(ss_request *r, double deadline)
{
    ss__task *t = r->loop->current;
    ss__lockwait me = {t, NULL}, **pp;
    int err;

    if (!r->wbusy) {
        r->wbusy = true;
        return 0;
    }
    if (!t)
        return -EBUSY;      /* a hook on the loop's stack cannot wait */
    for (pp = &r->wwaiters; *pp; pp = &(*pp)->next)
        ;
    *pp = &me;
    err = yield_wait(r, -1, 0, deadline);
    if (err == 0)
        return 0;           /* handed over: wbusy stays set for us */
    for (pp = &r->wwaiters; *pp; pp = &(*pp)->next)
        if (*pp == &me) {
            *pp = me.next;
            break;
        }
    return err;
}

static void send_unlock(ss_request *r)
{
    ss__lockwait *w;

    /* Skip waiters already woken by their deadline: they are leaving. */
    while ((w = r->wwaiters)) {
        r->wwaiters = w->next;
        if (w->task->parked) {
            ss__task_wake(w->task, 0);
            return;
        }
    }
    r->wbusy = false;
}

/* All of buf before `deadline` (< 0: none). With x, the deadline is the
 * handler timeout of the call x, counted from its first wait. Nobody may
 * send on the connection while this one waits part-way: it holds the
 * connection's send lock. */
static int yield_sendall(ss_request *r, const char *buf, size_t len,
                         double deadline, ss__sending *x)
{
    ssize_t n;
    int err;

    if (x && r->timeout > 0) {
        if (x->start == 0)
            x->start = ss__now();
        deadline = x->start + r->timeout;
    }
    if ((err = send_lock(r, deadline)) < 0)
        return err;
    while (len > 0) {
        n = yield_send(r, buf, len, &deadline);
        if (n < 0) {
            err = (int)n;
            break;
        }
        buf += n;
        len -= (size_t)n;
    }
    send_unlock(r);
    return err;
}

/* ---- the calls request.c makes ------------------------------------------- */

/* Async: the common case (the socket is known ready, and the call
 * completes) is tried here first; waiting is the slow path. */
ssize_t ss__io_recv(ss_request *r, void *buf, size_t len)
{
    ss__loop *l = r->loop;
    ssize_t n;

    if (!l) {
        if ((n = block_recv(r, buf, len)) > 0)
            r->bytes_in += (size_t)n;
        return n;
    }
    if (r->fd >= 0 && l->fds[r->fd].readable) {
        n = recv(r->fd, buf, len, 0);
        if (n > 0) {
            /* Short: the socket is drained, and the next bytes will raise
             * an edge; not so once the peer's FIN was reported, which
             * raises none of its own when it came with the data. */
            if ((size_t)n < len && !l->fds[r->fd].eof)
                l->fds[r->fd].readable = false;
            r->bytes_in += (size_t)n;
            return n;
        }
        if (n == 0)
            return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -errno;
        if (errno != EINTR)
            l->fds[r->fd].readable = false;
    }
    if ((n = yield_recv(r, buf, len)) > 0)
        r->bytes_in += (size_t)n;
    return n;
}

int ss__io_sendall(ss_request *r, const void *buf, size_t len, ss__sending *x)
{
    ss__loop *l = r->loop;
    size_t total = len;
    ssize_t n;
    int err;

    if (!l) {
        if ((err = block_sendall(r, buf, len, x)) == 0)
            r->bytes_out += total;
        return err;
    }
    if (len == 0)
        return r->fd < 0 ? -EBADF : 0;
    /* Nobody part-way through a send on it, and it all goes at once. */
    if (!r->wbusy && r->fd >= 0 && l->fds[r->fd].writable) {
        n = send(r->fd, buf, len, MSG_NOSIGNAL);
        if (n == (ssize_t)len) {
            r->bytes_out += total;
            return 0;
        }
        if (n > 0) {
            buf = (const char *)buf + n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            l->fds[r->fd].writable = false;
        } else if (n < 0 && errno != EINTR && errno != EWOULDBLOCK) {
            return -errno;
        }
    }
    if ((err = yield_sendall(r, buf, len, -1, x)) == 0)
        r->bytes_out += total;
    return err;
}

/* ss_wait_fd's work. A connection's own readiness may be known already. */
static int yield_wait_fd(ss_request *r, int fd, short events, double deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    ss__fdent *e = fd < (int)r->loop->nfds ? &r->loop->fds[fd] : NULL;
    int err;

    /* An edge-triggered descriptor reports changes, not states: ask the
     * kernel whether it is ready now before waiting for the next edge. */
    if (e && e->mode == SS__FD_EDGE && fd >= 0) {
        while ((err = poll(&p, 1, 0)) < 0 && errno == EINTR)
            ;
        if (err > 0)
            return 1;
        if (fd == r->fd) {
            if (events & POLLIN)
                e->readable = false;
            if (events & POLLOUT)
                e->writable = false;
        }
    }
    err = yield_wait(r, fd, events, deadline);
    return err == 0 ? 1 : err == -ETIMEDOUT ? 0 : err;
}

int ss__io_wait_readable(ss_request *r, double timeout)
{
    return ss_wait_fd(r, r->fd, POLLIN, timeout);
}

int ss__io_poll(int fd, short events, double deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;

    for (;;) {
        n = poll(&p, 1, deadline < 0 ? -1 : ss__ms_until(deadline));
        if (n > 0)
            return 0;
        if (n == 0 && ss__now() >= deadline)
            return -ETIMEDOUT;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* Datagram replies go out through the server's own non-blocking socket.
 * When its send buffer is full, wait for room: with poll, or in a task by
 * sleeping (the socket is the loop's, registered for reading). An
 * unconnected Unix datagram socket polls writable even while the
 * receiver's queue is full, so after a wait that said ready the sender
 * backs off (1 ms, doubling up to 50 ms) instead of spinning. */
int ss__io_sendto(ss_request *r, const void *buf, size_t len)
{
    ss_address mapped;
    const ss_address *to = ss__address_for_socket(
        &r->client, r->server->address.storage.ss_family, &mapped);
    double start = 0, left, pause = 0;
    bool draining, yield = r->loop && r->loop->current;
    ssize_t n;
    int err;

    for (;;) {
        n = sendto(r->fd, buf, len, MSG_NOSIGNAL,
                   (const struct sockaddr *)&to->storage, to->len);
        if (n >= 0) {
            r->bytes_out += len;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        left = io_left(r, &start, &draining);
        if (left == 0)
            return draining ? drained(r) : -ETIMEDOUT;
        if (yield || pause > 0) {
            double nap = left >= 0 && left < pause ? left : pause;

            if (nap == 0)
                nap = 0.001;
            if (yield && (err = yield_wait(r, -1, 0, ss__now() + nap)) < 0 &&
                err != -ETIMEDOUT)
                return err;
            if (!yield)
                poll(NULL, 0, (int)(nap * 1000) + 1);
            pause = pause == 0 ? 0.002 : pause * 2 > 0.05 ? 0.05 : pause * 2;
            continue;
        }
        pause = 0.001;
        err = ss__io_poll(r->fd, POLLOUT, left < 0 ? -1 : ss__now() + left);
        if (err == -ETIMEDOUT && draining)
            return drained(r);
        if (err < 0)
            return err;
    }
}

/* ---- broadcast ------------------------------------------------------------ */

static int lock_until(pthread_mutex_t *m, double deadline)
{
    struct timespec ts;

    ss__abstime(&ts, CLOCK_REALTIME, deadline - ss__now());
    return -pthread_mutex_timedlock(m, &ts);
}

/* A receiver that cannot take the message in time has its connection shut
 * down: it is stalled, and a partial message would corrupt its stream
 * anyway. Async receivers are sent to by a task on their own loop. */
int ss__io_broadcast_one(ss_request *r, const void *buf, size_t len,
                         double deadline)
{
    const char *p = buf;
    size_t off = 0;
    ssize_t n;
    int err;

    if (r->loop) {
        err = yield_sendall(r, buf, len, deadline, NULL);
        if (err == -ETIMEDOUT && r->fd >= 0)
            shutdown(r->fd, SHUT_RDWR);
        return err;
    }
    if (r->has_wlock && (err = lock_until(&r->wlock, deadline)) < 0)
        return err;     /* busy sending its own reply for too long */
    err = r->fd < 0 ? -EBADF : 0;
    while (!err && off < len) {
        n = send(r->fd, p + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            off += (size_t)n;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            err = ss__io_poll(r->fd, POLLOUT, deadline);
        else if (errno != EINTR)
            err = -errno;
    }
    if (err == -ETIMEDOUT)
        shutdown(r->fd, SHUT_RDWR);
    if (r->has_wlock)
        pthread_mutex_unlock(&r->wlock);
    return err;
}

/* ---- public waits, in every model ---------------------------------------- */

int ss_wait_fd(ss_request *r, int fd, short events, double timeout)
{
    double deadline;

    if (!r || fd < 0 || !(events & (POLLIN | POLLOUT)))
        return -EINVAL;
    events &= POLLIN | POLLOUT;
    deadline = timeout < 0 ? -1 : ss__now() + timeout;
    if (r->loop)
        return yield_wait_fd(r, fd, events, deadline);
    return block_wait(r, fd, events, deadline);
}

int ss_sleep(ss_request *r, double seconds)
{
    double deadline;
    int err;

    if (!r || seconds < 0 || seconds != seconds)
        return -EINVAL;
    deadline = ss__now() + seconds;
    err = r->loop ? yield_wait(r, -1, 0, deadline)
                  : block_wait(r, -1, 0, deadline);
    return err == -ETIMEDOUT || err == 0 ? 0 : err;
}
