/*
 * The one place request I/O waits.
 *
 * Connections are blocking sockets: a read that finds no data sleeps in the
 * kernel, so a ping-pong request costs one read and one write system call.
 * The handler timeout is applied to the socket (SO_RCVTIMEO/SO_SNDTIMEO),
 * and this file alone turns those into deadlines: after EINTR it shortens
 * the socket timeout to what is left, so a stream of signals cannot extend
 * a wait, and while a shutdown drains (close_timeout) it shortens it to the
 * end of the drain, after which I/O fails with -ESHUTDOWN.
 *
 * The planned async mode changes these functions alone: try the call on a
 * non-blocking socket, and on EAGAIN yield to the event loop instead of
 * sleeping.
 */
#include "internal.h"

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

ssize_t ss__io_recv(ss_request *r, void *buf, size_t len)
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

ssize_t ss__io_send(ss_request *r, const void *buf, size_t len,
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

int ss__io_wait_readable(ss_request *r, double timeout)
{
    double end = timeout < 0 ? -1 : ss__now() + timeout, drain, until;
    int err;

    for (;;) {
        drain = drain_left(r);
        until = end;
        if (drain >= 0 && (until < 0 || ss__now() + drain < until))
            until = ss__now() + drain;
        err = ss__io_poll(r->fd, POLLIN, until);
        if (err == 0)
            return 1;
        if (err != -ETIMEDOUT)
            return err;
        if (drain_left(r) == 0)
            return drained(r);
        if (end >= 0 && ss__now() >= end)
            return 0;
    }
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

/* Datagram replies go out through the server's own non-blocking socket:
 * when its send buffer is full, wait for room with poll. */
int ss__io_sendto(ss_request *r, const void *buf, size_t len)
{
    ss_address mapped;
    const ss_address *to = ss__address_for_socket(
        &r->client, r->server->address.storage.ss_family, &mapped);
    double start = 0, left, pause = 0;
    bool draining;
    ssize_t n;
    int err;

    for (;;) {
        n = sendto(r->fd, buf, len, MSG_NOSIGNAL,
                   (const struct sockaddr *)&to->storage, to->len);
        if (n >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        left = io_left(r, &start, &draining);
        if (left == 0)
            return draining ? drained(r) : -ETIMEDOUT;
        /* An unconnected Unix datagram socket polls writable even while
         * the receiver's queue is full: after a poll that said ready, wait
         * a while (1 ms, doubling up to 50 ms) instead of spinning. */
        if (pause > 0) {
            double nap = left >= 0 && left < pause ? left : pause;

            poll(NULL, 0, (int)(nap * 1000) + 1);
            pause = pause * 2 > 0.05 ? 0.05 : pause * 2;
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
