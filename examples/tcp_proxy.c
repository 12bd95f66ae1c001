/*
 * A TCP proxy: each connection accepted on LISTEN_ADDRESS is joined to a
 * new connection to BACKEND_ADDRESS, and bytes flow both ways until both
 * sides are done. It shows a handler that talks to another service with
 * nothing but the library's waits, in every model: in async mode
 * thousands of such connections share one thread.
 *
 *   tcp_proxy [--model sync|threading|forking|pool|prefork|async]
 *             [--workers N] [--connect-timeout SECONDS] [--proxy]
 *             [--max-connections N]
 *             LISTEN_ADDRESS BACKEND_ADDRESS
 *
 * LISTEN_ADDRESS is a TCP address, or a socket the process was given
 * (fd:N, systemd), as for the other servers. BACKEND_ADDRESS is read by
 * ss_address_parse: "127.0.0.1:8000", "[::1]:8000", a host name (resolved
 * once, at start) or a Unix socket path. --connect-timeout (10 s by
 * default, 0 = none) bounds the connection to the backend. The model is
 * threading by default; sync serves one connection at a time.
 *
 * For each client:
 * - Connect to the backend without blocking: connect() on a non-blocking
 *   socket, then ss_wait_fd(POLLOUT) until it is done and SO_ERROR for how
 *   it went. A backend that refuses, or gives no answer within the
 *   connect timeout, is reported by handle_error in one line naming it,
 *   "127.0.0.1:41000: cannot connect to the backend 127.0.0.1:8000:
 *   Connection refused", and the client's connection is closed.
 * - Forward both ways. ss_wait_fd takes one descriptor, so the handler
 *   waits on an epoll descriptor that holds both sockets (it is readable
 *   when one of them is ready), then takes what each side has sent without
 *   blocking: recv with MSG_DONTWAIT, since the client's socket is
 *   blocking in the thread models and non-blocking in async mode.
 * - Towards the backend, never wait for a send to finish: what the backend
 *   cannot take yet stays in a buffer, sent when it has room, and the
 *   backend is read meanwhile. A proxy that waited would deadlock with a
 *   backend that answers while it reads (an echo): blocked writing to the
 *   proxy, the backend stops reading, and the proxy's send never ends.
 *   Towards the client, ss_sendall waits until the client has taken it
 *   all; that lasts only while the client reads nothing, and a client that
 *   reads nothing while it sends would stall just the same talking to the
 *   backend directly.
 * - Pass a half-close on: when one side has sent everything (recv returns
 *   0), the other side's receiving end is told (shutdown(SHUT_WR)) once
 *   every byte has reached it, and the other direction goes on until it
 *   ends too. The connection ends when both directions have.
 * - A reset by either side (ECONNRESET, EPIPE) ends the connection
 *   cleanly, as does a shutdown of the server once close_timeout has
 *   passed; both are logged, not reported as errors.
 *
 * One line per connection goes to stdout when it ends:
 *   127.0.0.1:41000: closed, 12 bytes to 127.0.0.1:8000, 345 back
 *   127.0.0.1:41002: reset by the backend, 12 bytes to 127.0.0.1:8000, 0 back
 */
#include "example.h"

#include <assert.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define BUFFER_SIZE (16 * 1024)         /* per direction and connection */
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define RETRY_FIRST 0.001               /* a full Unix backend: first pause */
#define RETRY_MOST 0.1                  /* ... and the longest */

#define USAGE "tcp_proxy [--model " EXAMPLE_MODELS "] [--workers N] "        \
              "[--connect-timeout SECONDS]\n"                                \
              "          [--proxy] [--max-connections N] "                    \
              "LISTEN_ADDRESS BACKEND_ADDRESS\n"                             \
              EXAMPLE_WORKERS_FORMS "\n" EXAMPLE_PROXY_FORMS "\n"            \
              EXAMPLE_MAX_CONNECTIONS_FORMS "\n"                             \
              "LISTEN_ADDRESS: HOST:PORT, [IPV6]:PORT, :PORT, fd:N or "      \
              "systemd[:NAME], as for the\n  other servers\n"                \
              "BACKEND_ADDRESS: HOST:PORT, [IPV6]:PORT or a Unix socket "    \
              "path\n"                                                       \
              "--connect-timeout: 10 s by default, 0 = none"

enum { CLIENT, BACKEND };       /* the two sides */

typedef struct config {         /* shared by every handler, read only */
    ss_address backend;
    char       backend_name[SS_ADDRESS_STRLEN];
    double     connect_timeout; /* <= 0: none */
} config;

typedef struct relay {          /* one connection: ss_handler.state_size */
    ss_request   *request;
    const config *cfg;
    int           fd[2];        /* the client's (the library's) and the
                                   backend's socket, -1 when not open */
    int           ep;           /* epoll descriptor holding both, or -1 */
    uint32_t      watched[2];   /* the events ep has for each side */
    bool          client_eof;   /* the client has sent everything */
    bool          backend_shut; /* ... and the backend has been told */
    bool          backend_eof;  /* the backend has sent everything (and
                                   the client has been told) */
    const char   *reset_by;     /* "the client" or "the backend" */
    long long     up, down;     /* bytes to the backend, and back */
    size_t        pending_off;  /* up_buf[pending_off..pending_len): */
    size_t        pending_len;  /* from the client, not yet sent on */
    char          who[SS_ADDRESS_STRLEN];
    char          failure[320]; /* what went wrong, for handle_error */
    char          up_buf[BUFFER_SIZE];
    char          down_buf[BUFFER_SIZE];
} relay;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds until deadline (< 0: none), for ss_wait_fd: never negative,
 * which would mean no limit. */
static double left_until(double deadline)
{
    double left = deadline - now();

    return deadline < 0 ? -1 : left > 0 ? left : 0;
}

/* Record what went wrong for handle_error (see report) and return err. */
static int fail(relay *p, int err, const char *fmt, ...) SS__PRINTF(3, 4);
static int fail(relay *p, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->failure, sizeof p->failure, fmt, ap);
    va_end(ap);
    return err;
}

/* A failed receive or send on one side: a reset ends the connection (see
 * finish_log); anything else is an error for handle_error. */
static int side_failed(relay *p, int side, int err, const char *what)
{
    if (err == -ECONNRESET || err == -EPIPE) {
        p->reset_by = side == CLIENT ? "the client" : "the backend";
        return err;
    }
    return fail(p, err, "%s %s: %s", what,
                side == CLIENT ? "the client" : p->cfg->backend_name,
                ss_strerror(err));
}

/* ---- connecting to the backend ------------------------------------------ */

/* Start connecting fd: 0 when connected, 1 when under way, or -errno
 * (-EAGAIN: a Unix backend's queue is full). */
static int start_connect(int fd, const ss_address *a)
{
    if (connect(fd, (const struct sockaddr *)&a->storage, a->len) == 0)
        return 0;
    /* After EINTR the connection goes on in the background, as it does
     * after EINPROGRESS. */
    return errno == EINPROGRESS || errno == EINTR ? 1 : -errno;
}

/* Wait for a connection under way until deadline: 0, or -errno (-ETIMEDOUT,
 * -ECONNREFUSED, -ESHUTDOWN, ...). */
static int finish_connect(relay *p, double deadline)
{
    int fd = p->fd[BACKEND], err = 0;
    socklen_t len = sizeof err;
    int rc = ss_wait_fd(p->request, fd, POLLOUT, left_until(deadline));

    if (rc < 0)
        return rc;
    if (rc == 0)
        return -ETIMEDOUT;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

/* Connect, retrying while a Unix backend's queue is full: a non-blocking
 * connect to a Unix socket fails at once (EAGAIN) where a TCP one would be
 * left waiting in the backend's backlog. 0 or -errno. */
static int connect_in_time(relay *p, double deadline)
{
    double pause = RETRY_FIRST;
    int rc, err;

    while ((rc = start_connect(p->fd[BACKEND], &p->cfg->backend)) == -EAGAIN &&
           (deadline < 0 || now() + pause < deadline)) {
        if ((err = ss_sleep(p->request, pause)) < 0)
            return err;
        pause = pause * 2 < RETRY_MOST ? pause * 2 : RETRY_MOST;
    }
    if (rc == -EAGAIN)
        return -ETIMEDOUT;
    return rc == 1 ? finish_connect(p, deadline) : rc;
}

/* Forwarding sends what arrives as it arrives: Nagle's algorithm would
 * hold a small piece back until the one before it is acknowledged, and
 * add a delayed ACK's wait to every exchange. */
static void no_delay(int fd, int family)
{
    int on = 1;

    if (family == AF_INET || family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static int connect_backend(relay *p)
{
    const config *cfg = p->cfg;
    int family = cfg->backend.storage.ss_family, err;
    double deadline = cfg->connect_timeout > 0 ? now() + cfg->connect_timeout
                                               : -1;

    p->fd[BACKEND] = socket(family, SOCK_STREAM | SOCK_NONBLOCK |
                            SOCK_CLOEXEC, 0);
    if (p->fd[BACKEND] < 0)
        return fail(p, -errno, "cannot make a socket for the backend %s: %s",
                    cfg->backend_name, ss_strerror(errno));
    err = connect_in_time(p, deadline);
    if (err == -ESHUTDOWN)
        return err;         /* the server is stopping: nothing to report */
    if (err == -ETIMEDOUT)
        return fail(p, err, "cannot connect to the backend %s: no answer "
                    "within %g s", cfg->backend_name, cfg->connect_timeout);
    if (err < 0)
        return fail(p, err, "cannot connect to the backend %s: %s",
                    cfg->backend_name, ss_strerror(err));
    no_delay(p->fd[BACKEND], family);
    return 0;
}

/* ---- forwarding ---------------------------------------------------------- */

/* What fd holds now, without waiting: bytes (> 0), 0 at EOF, -EAGAIN when
 * there is nothing yet, or -errno. */
static ssize_t recv_now(int fd, char *buf, size_t len)
{
    ssize_t n;

    while ((n = recv(fd, buf, len, MSG_DONTWAIT)) < 0 && errno == EINTR)
        ;
    if (n >= 0)
        return n;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/* Give the backend what it can take of the pending bytes, without
 * waiting. 0 (some may still be pending) or -errno. */
static int send_pending(relay *p)
{
    while (p->pending_off < p->pending_len) {
        ssize_t n = send(p->fd[BACKEND], p->up_buf + p->pending_off,
                         p->pending_len - p->pending_off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;       /* the rest once it has room */
        if (n < 0)
            return side_failed(p, BACKEND, -errno, "sending to");
        p->pending_off += (size_t)n;
        p->up += n;
    }
    p->pending_off = p->pending_len = 0;
    return 0;
}

/* Client to backend: take what the client sent once the buffer is empty,
 * give the backend what it can take, and pass the client's EOF on once
 * every byte is out. 0 or -errno. */
static int pump_up(relay *p)
{
    int err;

    if (p->pending_len == 0 && !p->client_eof) {
        ssize_t n = recv_now(p->fd[CLIENT], p->up_buf, sizeof p->up_buf);

        if (n < 0 && n != -EAGAIN)
            return side_failed(p, CLIENT, (int)n, "receiving from");
        if (n == 0)
            p->client_eof = true;
        if (n > 0)
            p->pending_len = (size_t)n;
    }
    if ((err = send_pending(p)) < 0)
        return err;
    if (p->client_eof && p->pending_len == 0 && !p->backend_shut) {
        /* A backend already gone says so when it is next read. */
        (void)shutdown(p->fd[BACKEND], SHUT_WR);
        p->backend_shut = true;
    }
    return 0;
}

/* Backend to client: what the backend sent goes to the client whole, and
 * the backend's EOF is passed on. 0 or -errno. */
static int pump_down(relay *p)
{
    ssize_t n;
    int err;

    if (p->backend_eof)
        return 0;
    n = recv_now(p->fd[BACKEND], p->down_buf, sizeof p->down_buf);
    if (n == -EAGAIN)
        return 0;
    if (n < 0)
        return side_failed(p, BACKEND, (int)n, "receiving from");
    if (n == 0) {
        /* A client already gone says so when it is next read. */
        (void)shutdown(p->fd[CLIENT], SHUT_WR);
        p->backend_eof = true;
        return 0;
    }
    if ((err = ss_sendall(p->request, p->down_buf, (size_t)n)) < 0)
        return side_failed(p, CLIENT, err, "sending to");
    p->down += n;
    return 0;
}

/* Watch each side for what forwarding needs next: the client for input
 * while the buffer has room; the backend for input until its EOF, and for
 * room while bytes wait for it. A side with nothing to watch for is taken
 * out of ep, not left in with no events: epoll reports a hang-up even
 * then, and the wait would return at once, again and again. */
static int update_watch(relay *p)
{
    uint32_t want[2] = {
        !p->client_eof && p->pending_len == 0 ? EPOLLIN : 0,
        (p->backend_eof ? 0 : EPOLLIN) | (p->pending_len > 0 ? EPOLLOUT : 0),
    };
    int side;

    for (side = CLIENT; side <= BACKEND; side++) {
        struct epoll_event ev = {.events = want[side]};
        int op = !p->watched[side] ? EPOLL_CTL_ADD
                 : !want[side] ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;

        if (want[side] == p->watched[side])
            continue;
        if (epoll_ctl(p->ep, op, p->fd[side], &ev) < 0)
            return fail(p, -errno, "epoll_ctl: %s", ss_strerror(errno));
        p->watched[side] = want[side];
    }
    return 0;
}

/* Forward until both directions have ended. 0 or -errno. */
static int forward(relay *p)
{
    int err;

    p->ep = epoll_create1(EPOLL_CLOEXEC);
    if (p->ep < 0)
        return fail(p, -errno, "epoll_create1: %s", ss_strerror(errno));
    while (!(p->backend_shut && p->backend_eof)) {
        if ((err = update_watch(p)) < 0)
            return err;
        /* Something is always watched: with the client done and nothing
         * pending, the backend is, until its EOF ends the loop. */
        assert(p->watched[CLIENT] || p->watched[BACKEND]);
        err = ss_wait_fd(p->request, p->ep, POLLIN, -1);
        if (err < 0)
            return err;     /* -ESHUTDOWN: the server is stopping */
        if ((err = pump_up(p)) < 0 || (err = pump_down(p)) < 0)
            return err;
    }
    return 0;
}

/* ---- the connection ------------------------------------------------------ */

/* Log how the connection ended: done, reset by a side, or cut short by a
 * shutdown. Returns 0 for those, or err, an error for handle_error (a
 * backend that could not be reached, say). */
static int finish_log(const relay *p, int err)
{
    const char *how;
    char reset[32];

    if (err == 0) {
        how = "closed";
    } else if (err == -ESHUTDOWN) {
        how = "closed by the server's shutdown";
    } else if (p->reset_by) {
        snprintf(reset, sizeof reset, "reset by %s", p->reset_by);
        how = reset;
    } else {
        return err;
    }
    printf("%s: %s, %lld bytes to %s, %lld back\n", p->who, how, p->up,
           p->cfg->backend_name, p->down);
    fflush(stdout);
    return 0;
}

static int handle(ss_request *request, const ss_address *client,
                  ss_server *server)
{
    relay *p = ss_request_state(request);
    int err;

    p->request = request;
    p->cfg = ss_server_data(server);
    p->fd[CLIENT] = ss_request_fd(request);
    p->fd[BACKEND] = p->ep = -1;
    ss_address_format(client, p->who, sizeof p->who);
    err = connect_backend(p);
    if (err == 0)
        err = forward(p);
    if (p->ep >= 0)
        close(p->ep);
    if (p->fd[BACKEND] >= 0)
        close(p->fd[BACKEND]);
    return finish_log(p, err);
}

/* handle_error: one line naming the client and what failed, backend
 * included. A failure the handler did not describe (a handler thread that
 * could not start, say) gets the library's report. */
static void report(ss_server *server, ss_request *request,
                   const ss_address *client, int err)
{
    const relay *p = request ? ss_request_state(request) : NULL;

    if (p && p->failure[0]) {
        fprintf(stderr, "%s: %s\n", p->who, p->failure);
        return;
    }
    ss_server_base_ops(server)->handle_error(server, request, client, err);
}

int main(int argc, char **argv)
{
    example_args args = {.connect_timeout = DEFAULT_CONNECT_TIMEOUT};
    ss_handler handler = {
        .handle = handle,
        .state_size = sizeof(relay),
        .disable_nagle_algorithm = true,    /* see no_delay */
    };
    ss_server_options options;
    ss_server *server;
    config cfg;
    int err;

    example_parse(argc, argv, &args,
                  "model connect-timeout backend proxy max-connections", USAGE);
    if (ss_address_parse(&cfg.backend, args.backend) < 0) {
        fprintf(stderr, "tcp_proxy: backend: %s\n", ss_last_error());
        return 2;
    }
    ss_address_format(&cfg.backend, cfg.backend_name,
                      sizeof cfg.backend_name);
    cfg.connect_timeout = args.connect_timeout;
    options = example_server_options(&args, &cfg);
    if (!(server = ss_tcp_server_new(args.address, &handler, &options)))
        return example_fail("tcp_proxy");
    err = ss_server_override(server, &(ss_server_ops){.handle_error = report});
    if (err < 0) {
        fprintf(stderr, "tcp_proxy: %s\n", ss_strerror(err));
        ss_server_free(server);
        return 1;
    }
    if (!(server = example_apply_model(server, &args)))
        return 1;
    return example_serve(server);
}
