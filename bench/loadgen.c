/*
 * loadgen - the load generator of libsockserver's benchmark.
 *
 *   loadgen tcp|unix  [-c CONNS] [-s SIZE] [-d SEC] [-w SEC] [-n REQS]
 *                     [-S SEC] [-t MS] ADDRESS
 *   loadgen connrate  [-c K] [-s SIZE] [-d SEC] [-w SEC] [-t MS] ADDRESS
 *   loadgen udp       [-c K] [-s SIZE] [-d SEC] [-w SEC] [-n REQS] [-t MS]
 *                     ADDRESS
 *
 * Defaults: -c 1, -s 64, -d 5, -w 1, -S 10; -t (a request's time limit)
 * none for ping-pong, 5000 ms for connrate, 200 ms for udp. ADDRESS is
 * HOST:PORT, [V6]:PORT or a Unix socket path (unix; connrate and udp take
 * either).
 *
 * tcp, unix  CONNS connections, each sends SIZE bytes and waits for the whole
 *            echo before it sends the next request (ping-pong).
 * connrate   K connections at a time, each: connect, send SIZE bytes, wait
 *            for the whole echo, close. A request is one such cycle.
 * udp        K sockets, ping-pong with one SIZE-byte datagram each; a reply
 *            not back within the timeout counts as lost and the next request
 *            goes out.
 *
 * One process, one thread, non-blocking sockets on one level-triggered
 * epoll instance: the load generator needs exactly one core, which bench/run
 * gives it (the server gets the other).
 *
 * A run: connect; for ping-pong, each connection sends one request and
 * waits until every connection has had its echo (or -S seconds passed: a
 * server that never answers some connections must not hang the run, they
 * show as idle=), so a server that accepts slowly under load is not judged
 * on fewer connections than asked for; warm up for -w seconds; then measure
 * for -d seconds. Only requests completed inside the measured window
 * count; latency is from just before a request's first byte is sent to the
 * arrival of its last echoed byte (for connrate: from socket() to the last
 * echoed byte). With -n the run has no warm-up and no time limit: exactly
 * REQS requests are begun, and the run ends when each of them has been
 * answered, has timed out (udp: a lost datagram counts in timeouts=, and
 * the request sent again in its place is one of the REQS) or has lost its
 * connection. bench/run counts the server's syscalls per request with it,
 * bench/instructions the server's instructions per request.
 *
 * Every echoed byte is compared with what was sent; each request carries
 * different bytes (a window into a pseudo-random pattern) so a server that
 * mixes up requests or connections is caught, not only one that corrupts
 * bytes.
 *
 * Output: one line of key=value pairs on stdout, e.g.
 *   mode=tcp conns=50 size=64 duration=5.000 requests=1250000 rps=250000.0
 *   mbps=16.00 p50_us=190.0 p99_us=300.0 p999_us=500.0 max_us=2100.0
 *   errors=0 mismatches=0 timeouts=0 late=0 idle=0 cpu=0.95
 * rps: requests completed per second of the window; mbps: echoed payload in
 * 10^6 bytes per second (one direction); errors: failed connects, resets,
 * early EOFs and other I/O errors, over the whole run; mismatches: echoed
 * bytes that differ from the bytes sent (a missing or extra byte of a
 * datagram counts too); timeouts: requests not answered within -t (udp: lost
 * datagrams); late: udp replies that arrived after their request was
 * declared lost; idle: ping-pong connections that completed no request in
 * the window; cpu: the load generator's own CPU use in the window (1.00 = its
 * core was saturated, so a faster server could not have shown it). Exit
 * status 0 when the run completed (whatever it counted), 1 when it could
 * not start, 2 on a usage error.
 */
#include "bench_common.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- latency histogram ------------------------------------------------- */

/* Log-linear buckets (as HdrHistogram): exact below 128 ns, then 128
 * buckets per power of two, so any value is within 0.8 % of its bucket. */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_BITS 40 /* 2^40 ns, 18 minutes: longer values are clamped */
#define HIST_BUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t max;
    uint64_t bucket[HIST_BUCKETS];
};

static unsigned hist_index(uint64_t v)
{
    unsigned msb, shift;

    if (v >= (UINT64_C(1) << HIST_MAX_BITS))
        v = (UINT64_C(1) << HIST_MAX_BITS) - 1;
    if (v < HIST_SUB)
        return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The middle of bucket idx, in ns. */
static double hist_value(unsigned idx)
{
    unsigned shift;
    uint64_t low;

    if (idx < HIST_SUB)
        return idx;
    shift = idx / HIST_SUB - 1;
    low = (uint64_t)(idx % HIST_SUB + HIST_SUB) << shift;
    return (double)low + (double)(UINT64_C(1) << shift) / 2.0;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->bucket[hist_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

/* The value at quantile q (0 < q <= 1), in ns; 0 for an empty histogram. */
static double hist_quantile(const struct hist *h, double q)
{
    uint64_t rank = (uint64_t)ceil(q * (double)h->count), seen = 0;

    if (h->count == 0)
        return 0;
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank)
            return hist_value(i);
    }
    return (double)h->max;
}

/* ---- configuration ----------------------------------------------------- */

enum mode { MODE_TCP, MODE_UNIX, MODE_CONNRATE, MODE_UDP };

static const char *const mode_names[] = { "tcp", "unix", "connrate", "udp" };

struct config {
    enum mode mode;
    const char *address;
    int conns;           /* -c: connections, or K at a time */
    size_t size;         /* -s: bytes per request */
    double duration;     /* -d: measured seconds */
    double warmup;       /* -w: seconds before measuring */
    uint64_t requests;   /* -n: exactly this many requests, no warm-up */
    double timeout;      /* -t: seconds a request may take; 0 = no limit */
    double setup_limit;  /* -S: seconds to wait for every first echo */
};

/* ---- run state --------------------------------------------------------- */

/* PH_DRAIN: the window is over; the stream connections are shut down for
 * writing and read until the server's EOF, so every server sees a clean
 * end of stream instead of a reset from a close with unread data. */
enum phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

enum conn_state {
    CS_CLOSED,     /* no socket (connrate between cycles, or failed) */
    CS_CONNECTING, /* connect() in progress: waiting for EPOLLOUT */
    CS_OPEN        /* connected: a request in flight or none (count mode) */
};

struct conn {
    int fd;
    unsigned id;
    enum conn_state state;
    uint32_t events;         /* what epoll watches for fd, 0 = not added */
    bool busy;               /* a request is in flight */
    bool ready;              /* completed at least one request */
    size_t sent, rcvd;       /* bytes of the current request */
    const unsigned char *expect; /* the bytes of the current request */
    unsigned char *dgram;    /* udp: the datagram (seq header + pattern) */
    uint64_t seq;            /* requests begun on this connection */
    uint64_t t_start;        /* ns, when the current request began */
    uint64_t completed;      /* requests completed in the window */
};

struct stats {
    uint64_t requests, bytes, errors, mismatches, timeouts, late;
    struct hist lat;
};

#define PATTERN_SPAN 4093u /* prime: request windows start at offsets < it */
#define UDP_HDR 8          /* udp datagrams start with their 64-bit seq */
#define MAX_EVENTS 256
#define SRC_ADDRS 32       /* connrate: local addresses 127.0.0.1..32 */

struct loadgen {
    struct config cfg;
    int ep;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct conn *conns;
    unsigned char *pattern;  /* cfg.size + PATTERN_SPAN pseudo-random bytes */
    unsigned char *scratch;  /* receive buffer */
    size_t scratch_len;
    enum phase phase;
    uint64_t t_setup_end, t_warm_end, t_measure_start, t_measure_end;
    uint64_t t_drain_end;
    double cpu_start, cpu_end; /* own CPU seconds at the window's ends */
    uint64_t next_scan;      /* ns, next timeout scan */
    uint64_t started;        /* requests begun (for -n) */
    unsigned ready, dead;    /* ping-pong connections ready / failed */
    unsigned src_next;       /* connrate: next local address */
    bool rotate_src;         /* connrate over IPv4 loopback */
    char first_error[160];
    struct stats st;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU seconds (user + system) this process has used. */
static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static uint64_t sec_to_ns(double s)
{
    return (uint64_t)(s * 1e9);
}

static bool stream_mode(const struct loadgen *lg)
{
    return lg->cfg.mode == MODE_TCP || lg->cfg.mode == MODE_UNIX;
}

/* ---- errors ------------------------------------------------------------ */

/* Count an error; the first one is kept for a note on stderr. */
static void count_error(struct loadgen *lg, const char *what, int err)
{
    lg->st.errors++;
    if (lg->first_error[0] == '\0')
        snprintf(lg->first_error, sizeof lg->first_error, "%s: %s", what,
                 err ? strerror(err) : "unexpected EOF");
}

/* ---- epoll and sockets ------------------------------------------------- */

static int watch(struct loadgen *lg, struct conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };

    if (c->events == events)
        return 0;
    if (epoll_ctl(lg->ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd,
                  &ev) < 0)
        return -1;
    c->events = events;
    return 0;
}

/* close() also removes fd from the epoll set: it is never dup'ed. */
static void conn_close(struct loadgen *lg, struct conn *c)
{
    if (c->fd >= 0 && close(c->fd) < 0 && lg->first_error[0] == '\0')
        snprintf(lg->first_error, sizeof lg->first_error, "close: %s",
                 strerror(errno));
    c->fd = -1;
    c->events = 0;
    c->busy = false;
    c->state = CS_CLOSED;
}

/* connrate: spread connections over 127.0.0.1-127.0.0.32. A client that
 * closes first keeps its port in TIME_WAIT, and one local address has only
 * ~28,000 ephemeral ports: reused no sooner than a second later
 * (tcp_tw_reuse), they would cap the rate near 28,000 connections/s. */
static int bind_source(struct loadgen *lg, int fd)
{
    struct sockaddr_in src = { .sin_family = AF_INET };
    int one = 1;

    src.sin_addr.s_addr = htonl(0x7f000001u + lg->src_next);
    lg->src_next = (lg->src_next + 1) % SRC_ADDRS;
    /* Let connect() pick the port, knowing the destination too. */
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                   sizeof one) < 0)
        return -1;
    return bind(fd, (struct sockaddr *)&src, sizeof src);
}

/* Is `ss` an IPv4 loopback address (127.0.0.0/8)? */
static bool is_loopback4(const struct sockaddr_storage *ss)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

    return ss->ss_family == AF_INET &&
           (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
}

/* Set a socket up for a datagram client: a Unix one must have a name for
 * the server to reply to, so it is auto-bound to an abstract one. */
static int bind_datagram_client(const struct loadgen *lg, int fd)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };

    if (lg->addr.ss_family != AF_UNIX)
        return 0;
    return bind(fd, (struct sockaddr *)&sun, sizeof(sa_family_t));
}

/* Open c's socket and start connecting. 0, or -1 after counting an error. */
static int conn_open(struct loadgen *lg, struct conn *c)
{
    bool dgram = lg->cfg.mode == MODE_UDP;
    int fd = socket(lg->addr.ss_family,
                    (dgram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK |
                        SOCK_CLOEXEC, 0);

    if (fd < 0) {
        count_error(lg, "socket", errno);
        return -1;
    }
    c->fd = fd;
    if ((!dgram && bench_set_nodelay(fd, lg->addr.ss_family) < 0) ||
        (lg->rotate_src && bind_source(lg, fd) < 0) ||
        (dgram && bind_datagram_client(lg, fd) < 0)) {
        count_error(lg, "socket setup", errno);
        conn_close(lg, c);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&lg->addr, lg->addrlen) == 0) {
        c->state = CS_OPEN;
        return 0;
    }
    if (errno != EINPROGRESS) {
        count_error(lg, "connect", errno);
        conn_close(lg, c);
        return -1;
    }
    c->state = CS_CONNECTING;
    if (watch(lg, c, EPOLLOUT) < 0) {
        count_error(lg, "epoll_ctl", errno);
        conn_close(lg, c);
        return -1;
    }
    return 0;
}

/* EPOLLOUT on a connecting socket: did the connect succeed? */
static int connect_result(struct loadgen *lg, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        count_error(lg, "connect", err);
        return -1;
    }
    c->state = CS_OPEN;
    return 0;
}

/* ---- requests ---------------------------------------------------------- */

/* The window of the pattern that request `seq` of connection `id` sends:
 * neighbouring requests and connections get different bytes. */
static const unsigned char *pattern_for(const struct loadgen *lg,
                                        const struct conn *c)
{
    uint64_t off = (c->seq * 2654435761u + (uint64_t)c->id * 40503u) %
                   PATTERN_SPAN;

    return lg->pattern + off;
}

/* Count the bytes of got[0..n) that differ from want[0..n). */
static uint64_t count_differences(const unsigned char *want,
                                  const unsigned char *got, size_t n)
{
    uint64_t diff = 0;

    if (memcmp(want, got, n) == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        diff += want[i] != got[i];
    return diff;
}

static bool may_begin(const struct loadgen *lg)
{
    if (lg->phase >= PH_DRAIN)
        return false;
    return lg->cfg.requests == 0 || lg->started < lg->cfg.requests;
}

/* Send the unsent part of c's request; watch EPOLLOUT while the socket is
 * full. 0, or -1 with errno set. */
static int stream_push(struct loadgen *lg, struct conn *c)
{
    size_t size = lg->cfg.size;

    while (c->sent < size) {
        ssize_t n = send(c->fd, c->expect + c->sent, size - c->sent,
                         MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return watch(lg, c, EPOLLIN | EPOLLOUT);
            return -1;
        }
        c->sent += (size_t)n;
    }
    return watch(lg, c, EPOLLIN);
}

static int udp_send(struct loadgen *lg, struct conn *c)
{
    ssize_t n;

    memcpy(c->dgram, c->expect, lg->cfg.size);
    memcpy(c->dgram, &c->seq, UDP_HDR);
    do {
        n = send(c->fd, c->dgram, lg->cfg.size, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    c->sent = lg->cfg.size;
    return watch(lg, c, EPOLLIN);
}

/* Begin the next request on the open connection c, at time `now`.
 * 0, or -1 with errno set. */
static int request_begin(struct loadgen *lg, struct conn *c, uint64_t now)
{
    c->seq++;
    c->expect = pattern_for(lg, c);
    c->sent = c->rcvd = 0;
    c->t_start = now;
    c->busy = true;
    lg->started++;
    if (lg->cfg.mode == MODE_UDP)
        return udp_send(lg, c);
    return stream_push(lg, c);
}

#define DRAIN_NS 1000000000u /* at most 1 s for the servers' EOFs */

/* The measured window ends at `now` (or has ended at its planned time):
 * start draining the connections. */
static void end_window(struct loadgen *lg, uint64_t now)
{
    if (lg->phase < PH_MEASURE)
        lg->t_measure_start = now; /* never measured: an empty window */
    if (lg->phase < PH_MEASURE || lg->cfg.requests != 0 ||
        now < lg->t_measure_end)
        lg->t_measure_end = now;
    lg->cpu_end = cpu_seconds();
    lg->phase = PH_DRAIN;
    lg->t_drain_end = now + DRAIN_NS;
    for (int i = 0; i < lg->cfg.conns; i++) {
        struct conn *c = &lg->conns[i];

        c->busy = false;
        if (c->state == CS_OPEN && lg->cfg.mode != MODE_UDP &&
            shutdown(c->fd, SHUT_WR) == 0)
            continue;
        conn_close(lg, c); /* udp, still connecting, or already reset */
    }
}

/* PH_DRAIN: discard what arrives until EOF or an error, then close. */
static void drain_read(struct loadgen *lg, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, lg->scratch, lg->scratch_len, 0);

        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        conn_close(lg, c);
        return;
    }
}

static bool all_closed(const struct loadgen *lg)
{
    for (int i = 0; i < lg->cfg.conns; i++)
        if (lg->conns[i].fd >= 0)
            return false;
    return true;
}

/* A request of c is complete at `now`: count it. */
static void request_done(struct loadgen *lg, struct conn *c, uint64_t now)
{
    c->busy = false;
    if (!c->ready) {
        c->ready = true;
        lg->ready++;
    }
    /* A request completed after the window's planned end is not counted,
     * even when the loop has not yet noticed that the window is over. */
    if (lg->phase != PH_MEASURE ||
        (lg->cfg.requests == 0 && now > lg->t_measure_end))
        return;
    lg->st.requests++;
    lg->st.bytes += lg->cfg.size;
    hist_add(&lg->st.lat, now - c->t_start);
    c->completed++;
    if (lg->cfg.requests != 0 && lg->st.requests >= lg->cfg.requests)
        end_window(lg, now);
}

/* Read what has arrived of c's echo. Returns 1 when the echo is complete,
 * 0 when more is to come, -1 on an error or EOF (errno 0 for EOF). */
static int stream_read(struct loadgen *lg, struct conn *c)
{
    size_t size = lg->cfg.size;

    if (c->busy && c->rcvd == size) /* the echo outran our send */
        return c->sent == size ? 1 : 0;
    for (;;) {
        /* Between requests nothing may arrive: read it as surplus. */
        size_t want = c->busy ? size - c->rcvd : lg->scratch_len;
        ssize_t n = recv(c->fd, lg->scratch, want, 0);

        if (n > 0) {
            if (!c->busy) {
                lg->st.mismatches += (uint64_t)n;
                continue;
            }
            lg->st.mismatches +=
                count_differences(c->expect + c->rcvd, lg->scratch, (size_t)n);
            c->rcvd += (size_t)n;
            if (c->rcvd == size)
                return c->sent == size ? 1 : 0;
            /* A short read emptied the socket (epoll(7)); saves a recv()
             * that would only say EAGAIN. */
            if ((size_t)n < want)
                return 0;
            continue;
        }
        if (n == 0) {
            errno = 0;
            return -1;
        }
        if (errno == EINTR)
            continue;
        return errno == EAGAIN ? 0 : -1;
    }
}

/* ---- per-mode event handling ------------------------------------------- */

/* Drop a failed stream connection (already counted). A ping-pong
 * connection stays dead; a connrate slot is reopened by the next timeout
 * scan, not here, so a server that refuses everything cannot recurse. */
static void conn_drop(struct loadgen *lg, struct conn *c)
{
    conn_close(lg, c);
    if (lg->cfg.mode != MODE_CONNRATE)
        lg->dead++;
}

static void stream_fail(struct loadgen *lg, struct conn *c, const char *what)
{
    count_error(lg, what, errno);
    conn_drop(lg, c);
}

/* connrate: open slot c's next connection; its cycle starts now. */
static void connrate_open(struct loadgen *lg, struct conn *c)
{
    uint64_t now = now_ns();

    c->t_start = now;
    if (!may_begin(lg) || conn_open(lg, c) < 0)
        return;
    if (c->state == CS_OPEN && request_begin(lg, c, now) < 0)
        stream_fail(lg, c, "send");
}

static void stream_event(struct loadgen *lg, struct conn *c, uint32_t events)
{
    uint64_t now;
    int r;

    if (c->state == CS_CONNECTING) {
        if (connect_result(lg, c) < 0) {
            conn_drop(lg, c);
            return;
        }
        /* connrate times the whole cycle, from socket() on. */
        if (request_begin(lg, c, lg->cfg.mode == MODE_CONNRATE ? c->t_start
                                                               : now_ns()) < 0)
            stream_fail(lg, c, "send");
        return;
    }
    if ((events & EPOLLOUT) && c->busy && c->sent < lg->cfg.size &&
        stream_push(lg, c) < 0) {
        stream_fail(lg, c, "send");
        return;
    }
    r = stream_read(lg, c);
    if (r < 0) {
        stream_fail(lg, c, errno ? "recv" : "recv (EOF)");
        return;
    }
    if (r == 0)
        return;
    now = now_ns();
    request_done(lg, c, now);
    if (lg->cfg.mode == MODE_CONNRATE) {
        conn_close(lg, c);
        connrate_open(lg, c);
    } else if (lg->phase != PH_SETUP && may_begin(lg) &&
               request_begin(lg, c, now) < 0) {
        stream_fail(lg, c, "send");
    }
}

/* Check one received datagram against c's request; 1 if it completes it. */
static int udp_check(struct loadgen *lg, struct conn *c, size_t n)
{
    size_t size = lg->cfg.size;
    uint64_t seq;

    if (n < UDP_HDR) {
        lg->st.mismatches += size > n ? size - n : n - size;
        return 0;
    }
    memcpy(&seq, lg->scratch, UDP_HDR);
    if (!c->busy || seq != c->seq) {
        lg->st.late++;
        return 0;
    }
    if (n != size)
        lg->st.mismatches += n > size ? n - size : size - n;
    lg->st.mismatches += count_differences(c->expect + UDP_HDR,
                                           lg->scratch + UDP_HDR,
                                           (n < size ? n : size) - UDP_HDR);
    return 1;
}

static void udp_event(struct loadgen *lg, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, lg->scratch, lg->scratch_len, 0);
        uint64_t now;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            /* ECONNREFUSED: nothing listens (an ICMP error); the request
             * is retried when its timeout expires. */
            count_error(lg, "recv", errno);
            return;
        }
        if (udp_check(lg, c, (size_t)n) == 0)
            continue;
        now = now_ns();
        request_done(lg, c, now);
        if (c->fd < 0)
            return; /* -n: that was the last request; end_window closed c */
        if (may_begin(lg) && request_begin(lg, c, now) < 0)
            count_error(lg, "send", errno);
    }
}

/* Requests older than the timeout: a lost datagram is re-sent as a new
 * request; a stalled stream connection is counted and dropped. Failed
 * connrate slots get their next connection here. */
static void scan_timeouts(struct loadgen *lg, uint64_t now)
{
    uint64_t limit = sec_to_ns(lg->cfg.timeout);

    for (int i = 0; i < lg->cfg.conns; i++) {
        struct conn *c = &lg->conns[i];

        if (c->state == CS_CLOSED && lg->cfg.mode == MODE_CONNRATE) {
            connrate_open(lg, c);
            continue;
        }
        if (!(c->busy || c->state == CS_CONNECTING) ||
            now - c->t_start < limit)
            continue;
        lg->st.timeouts++;
        if (lg->cfg.mode != MODE_UDP)
            conn_drop(lg, c);
        else if (!may_begin(lg))
            c->busy = false; /* -n: every request is out; give this one up */
        else if (request_begin(lg, c, now) < 0)
            count_error(lg, "send", errno);
    }
}

/* A quarter of the timeout, at most 50 ms: a lost request is noticed at
 * most 25 % late, 1,000 connections are not scanned too often, and a
 * failed connrate slot waits at most 50 ms for its next connection. */
static uint64_t scan_period(const struct loadgen *lg)
{
    uint64_t q = sec_to_ns(lg->cfg.timeout) / 4;

    return q < 50000000u ? q : 50000000u;
}

/* ---- phases ------------------------------------------------------------ */

static void enter_warmup(struct loadgen *lg, uint64_t now)
{
    lg->phase = PH_WARMUP;
    lg->t_warm_end = now + sec_to_ns(lg->cfg.warmup);
    lg->t_measure_end = lg->t_warm_end + sec_to_ns(lg->cfg.duration);
}

/* Set-up is over: the ping-pong connections that had their first echo and
 * have been waiting since start their second request. */
static void release_setup(struct loadgen *lg, uint64_t now)
{
    enter_warmup(lg, now);
    for (int i = 0; i < lg->cfg.conns; i++) {
        struct conn *c = &lg->conns[i];

        if (c->state == CS_OPEN && !c->busy && request_begin(lg, c, now) < 0)
            stream_fail(lg, c, "send");
    }
}

/* -n: have all REQS requests been begun, and is none still in flight
 * (each answered, timed out or gone with its connection)? Then the run is
 * over, even when fewer than REQS were answered. Scans the connections
 * only once the last request is out. */
static bool count_exhausted(const struct loadgen *lg)
{
    if (lg->cfg.requests == 0 || lg->started < lg->cfg.requests)
        return false;
    for (int i = 0; i < lg->cfg.conns; i++)
        if (lg->conns[i].busy || lg->conns[i].state == CS_CONNECTING)
            return false;
    return true;
}

/* Move through setup -> warm-up -> measure -> done as time passes. */
static void advance_phase(struct loadgen *lg, uint64_t now)
{
    if (lg->phase == PH_SETUP &&
        (lg->ready + lg->dead >= (unsigned)lg->cfg.conns ||
         now >= lg->t_setup_end))
        release_setup(lg, now);
    if (lg->phase == PH_WARMUP && now >= lg->t_warm_end) {
        lg->phase = PH_MEASURE;
        lg->t_measure_start = now;
        lg->cpu_start = cpu_seconds();
    }
    if (lg->phase == PH_MEASURE && lg->cfg.requests == 0 &&
        now >= lg->t_measure_end)
        end_window(lg, now);
    if (lg->phase == PH_MEASURE && count_exhausted(lg))
        end_window(lg, now);
    if (lg->phase < PH_DRAIN && stream_mode(lg) &&
        lg->dead >= (unsigned)lg->cfg.conns)
        end_window(lg, now); /* every ping-pong connection failed */
    if (lg->phase == PH_DRAIN && (now >= lg->t_drain_end || all_closed(lg)))
        lg->phase = PH_DONE;
}

/* Milliseconds epoll_wait may sleep: until the next phase change or scan. */
static int wait_ms(const struct loadgen *lg, uint64_t now)
{
    uint64_t until = UINT64_MAX;

    if (lg->phase == PH_SETUP)
        until = lg->t_setup_end;
    else if (lg->phase == PH_WARMUP)
        until = lg->t_warm_end;
    else if (lg->phase == PH_DRAIN)
        return (int)((lg->t_drain_end - now + 999999) / 1000000);
    else if (lg->cfg.requests == 0)
        until = lg->t_measure_end;
    if (lg->cfg.timeout > 0 && lg->next_scan < until)
        until = lg->next_scan;
    if (until == UINT64_MAX)
        return -1;
    if (until <= now)
        return 0;
    return (int)((until - now + 999999) / 1000000);
}

/* ---- set-up and the loop ----------------------------------------------- */

static void fill_pattern(unsigned char *p, size_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift64: fast, fixed, varied */

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)(x >> 24);
    }
}

static int loadgen_init(struct loadgen *lg)
{
    const struct config *cfg = &lg->cfg;
    uint64_t now = now_ns();

    if (bench_parse_addr(cfg->address, &lg->addr, &lg->addrlen) < 0)
        return -1;
    /* tcp and unix name the family; connrate and udp take either. */
    if ((cfg->mode == MODE_UNIX && lg->addr.ss_family != AF_UNIX) ||
        (cfg->mode == MODE_TCP && lg->addr.ss_family == AF_UNIX)) {
        fprintf(stderr, "loadgen: mode %s does not fit address %s\n",
                mode_names[cfg->mode], cfg->address);
        return -1;
    }
    /* The connections, stdio, epoll and a margin. */
    if (bench_raise_nofile((rlim_t)cfg->conns + 64) < 0)
        return -1;
    lg->rotate_src = cfg->mode == MODE_CONNRATE && is_loopback4(&lg->addr);
    lg->scratch_len = cfg->mode == MODE_UDP ? 65536 : cfg->size;
    lg->pattern = malloc(cfg->size + PATTERN_SPAN);
    lg->scratch = malloc(lg->scratch_len);
    lg->conns = calloc((size_t)cfg->conns, sizeof *lg->conns);
    if (lg->pattern == NULL || lg->scratch == NULL || lg->conns == NULL) {
        perror("loadgen: malloc");
        return -1;
    }
    fill_pattern(lg->pattern, cfg->size + PATTERN_SPAN);
    for (int i = 0; i < cfg->conns; i++) {
        lg->conns[i].fd = -1;
        lg->conns[i].id = (unsigned)i;
    }
    lg->ep = epoll_create1(EPOLL_CLOEXEC);
    if (lg->ep < 0) {
        perror("loadgen: epoll_create1");
        return -1;
    }
    lg->t_setup_end = now + sec_to_ns(cfg->setup_limit);
    lg->next_scan = now;
    if (cfg->requests != 0)
        lg->phase = PH_MEASURE;
    else if (stream_mode(lg))
        lg->phase = PH_SETUP;
    else
        enter_warmup(lg, now);
    lg->t_measure_start = now;
    lg->cpu_start = cpu_seconds();
    return 0;
}

/* Open every connection and send the first requests. */
static int loadgen_start(struct loadgen *lg)
{
    for (int i = 0; i < lg->cfg.conns; i++) {
        struct conn *c = &lg->conns[i];

        if (lg->cfg.mode == MODE_UDP &&
            (c->dgram = malloc(lg->cfg.size)) == NULL) {
            perror("loadgen: malloc");
            return -1;
        }
        c->t_start = now_ns();
        if (conn_open(lg, c) < 0) {
            if (lg->cfg.mode != MODE_CONNRATE)
                lg->dead++;
            continue;
        }
        if (c->state != CS_OPEN || !may_begin(lg) ||
            request_begin(lg, c, c->t_start) == 0)
            continue;
        if (lg->cfg.mode == MODE_UDP)
            count_error(lg, "send", errno); /* retried after the timeout */
        else
            stream_fail(lg, c, "send");
    }
    return 0;
}

static void dispatch(struct loadgen *lg, struct conn *c, uint32_t events)
{
    if (c->fd < 0)
        return; /* closed by an earlier event of this batch */
    if (lg->phase == PH_DRAIN)
        drain_read(lg, c);
    else if (lg->cfg.mode == MODE_UDP)
        udp_event(lg, c);
    else
        stream_event(lg, c, events);
}

static int loadgen_loop(struct loadgen *lg)
{
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = now_ns();

    while (lg->phase != PH_DONE) {
        int n = epoll_wait(lg->ep, evs, MAX_EVENTS, wait_ms(lg, now));

        if (n < 0 && errno != EINTR) {
            perror("loadgen: epoll_wait");
            return -1;
        }
        for (int i = 0; i < n; i++)
            dispatch(lg, evs[i].data.ptr, evs[i].events);
        now = now_ns();
        advance_phase(lg, now);
        if (lg->cfg.timeout > 0 && lg->phase < PH_DRAIN &&
            now >= lg->next_scan) {
            scan_timeouts(lg, now);
            lg->next_scan = now + scan_period(lg);
        }
    }
    return 0;
}

static void loadgen_report(const struct loadgen *lg)
{
    const struct stats *st = &lg->st;
    double secs = (double)(lg->t_measure_end - lg->t_measure_start) / 1e9;
    unsigned idle = 0;

    if (stream_mode(lg))
        for (int i = 0; i < lg->cfg.conns; i++)
            idle += lg->conns[i].completed == 0;
    if (secs <= 0)
        secs = 1e-9;
    printf("mode=%s conns=%d size=%zu duration=%.3f requests=%llu "
           "rps=%.1f mbps=%.2f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
           "max_us=%.1f errors=%llu mismatches=%llu timeouts=%llu late=%llu "
           "idle=%u cpu=%.2f\n",
           mode_names[lg->cfg.mode], lg->cfg.conns, lg->cfg.size, secs,
           (unsigned long long)st->requests, (double)st->requests / secs,
           (double)st->bytes / secs / 1e6,
           hist_quantile(&st->lat, 0.50) / 1e3,
           hist_quantile(&st->lat, 0.99) / 1e3,
           hist_quantile(&st->lat, 0.999) / 1e3, (double)st->lat.max / 1e3,
           (unsigned long long)st->errors, (unsigned long long)st->mismatches,
           (unsigned long long)st->timeouts, (unsigned long long)st->late,
           idle, (lg->cpu_end - lg->cpu_start) / secs);
    fflush(stdout);
    if (lg->first_error[0] != '\0')
        fprintf(stderr, "loadgen: first error: %s\n", lg->first_error);
}

static void loadgen_free(struct loadgen *lg)
{
    if (lg->conns != NULL)
        for (int i = 0; i < lg->cfg.conns; i++) {
            conn_close(lg, &lg->conns[i]);
            free(lg->conns[i].dgram);
        }
    if (lg->ep >= 0 && close(lg->ep) < 0)
        perror("loadgen: close");
    free(lg->conns);
    free(lg->pattern);
    free(lg->scratch);
}

/* ---- command line ------------------------------------------------------ */

static void usage(void)
{
    fputs("usage: loadgen tcp|unix|connrate|udp [-c CONNS] [-s SIZE] "
          "[-d SECONDS] [-w SECONDS] [-n REQUESTS] [-t TIMEOUT_MS] "
          "[-S SETUP_SECONDS] ADDRESS\n",
          stderr);
}

static int parse_number(const char *text, double min, double max, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(*out >= min) ||
        !(*out <= max)) {
        fprintf(stderr, "loadgen: bad number '%s' (%g..%g)\n", text, min, max);
        return -1;
    }
    return 0;
}

static int parse_mode(const char *text, enum mode *mode)
{
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
        if (strcmp(text, mode_names[i]) == 0) {
            *mode = (enum mode)i;
            return 0;
        }
    return -1;
}

static int parse_option(struct config *cfg, int opt, const char *arg)
{
    double v;

    switch (opt) {
    case 'c':
        if (parse_number(arg, 1, 100000, &v) < 0)
            return -1;
        cfg->conns = (int)v;
        return 0;
    case 's':
        if (parse_number(arg, 1, 16 << 20, &v) < 0)
            return -1;
        cfg->size = (size_t)v;
        return 0;
    case 'd':
        return parse_number(arg, 0.001, 86400, &cfg->duration);
    case 'w':
        return parse_number(arg, 0, 86400, &cfg->warmup);
    case 'S':
        return parse_number(arg, 0, 86400, &cfg->setup_limit);
    case 'n':
        if (parse_number(arg, 1, 1e15, &v) < 0)
            return -1;
        cfg->requests = (uint64_t)v;
        return 0;
    case 't':
        if (parse_number(arg, 0, 86400e3, &v) < 0)
            return -1;
        cfg->timeout = v / 1e3;
        return 0;
    default:
        return -1;
    }
}

static int parse_args(struct config *cfg, int argc, char **argv)
{
    int opt;

    if (argc < 2 || parse_mode(argv[1], &cfg->mode) < 0)
        return -1;
    cfg->conns = 1;
    cfg->size = 64;
    cfg->duration = 5;
    cfg->warmup = 1;
    cfg->setup_limit = 10;
    /* A lost datagram costs its socket the timeout, so keep it short;
     * a connection cycle that takes 5 s has failed. */
    cfg->timeout = cfg->mode == MODE_UDP ? 0.2
                   : cfg->mode == MODE_CONNRATE ? 5.0 : 0;
    optind = 2;
    while ((opt = getopt(argc, argv, "c:s:d:w:n:t:S:")) != -1)
        if (parse_option(cfg, opt, optarg) < 0)
            return -1;
    if (optind != argc - 1)
        return -1;
    cfg->address = argv[optind];
    if (cfg->mode == MODE_UDP && (cfg->size < UDP_HDR || cfg->size > 65507)) {
        fprintf(stderr, "loadgen: udp needs a size of %d..65507 bytes\n",
                UDP_HDR);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct loadgen lg; /* static: the histogram is 35 KiB */
    int rc = 1;

    lg.ep = -1;
    if (parse_args(&lg.cfg, argc, argv) < 0) {
        usage();
        return 2;
    }
    /* send() uses MSG_NOSIGNAL; this covers anything else. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        perror("loadgen: signal");
    if (loadgen_init(&lg) == 0 && loadgen_start(&lg) == 0 &&
        loadgen_loop(&lg) == 0) {
        loadgen_report(&lg);
        rc = 0;
    }
    loadgen_free(&lg);
    return rc;
}
