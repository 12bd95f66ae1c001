/*
 * ref_epoll_echo ADDRESS - the single-threaded epoll echo server: the
 * practical limit of one core, against which every other server in the
 * benchmark is compared.
 *
 * TCP or Unix stream (by the form of ADDRESS). One thread, non-blocking
 * sockets, level-triggered epoll. For each readable connection: read until
 * the socket is empty, writing back what each read returned. A short read
 * means the socket is empty (epoll(7) allows that test for stream sockets),
 * so the EAGAIN read that would only confirm it is skipped, as production
 * loops (nginx, redis) do; level triggering reports any byte that arrives
 * afterwards, so nothing is missed. When the peer does not take the whole
 * echo, the rest is kept, reading stops (back-pressure) and EPOLLOUT is
 * watched until it has gone.
 */
#include "bench_common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct conn {
    int fd;
    char *pending;      /* unsent echo bytes (allocated on first need) */
    size_t off, len;    /* pending[off, off + len) is still to send */
};

struct server {
    int ep;
    int listen_fd;
    int family;
    char buf[BENCH_BUFSZ]; /* one read buffer for all connections */
};

static int set_events(struct server *s, struct conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };

    return epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_free(struct conn *c)
{
    /* close() takes the descriptor out of the epoll set as well. */
    if (close(c->fd) < 0)
        perror("close");
    free(c->pending);
    free(c);
}

/* Keep what the peer did not take and wait for EPOLLOUT. 0 or -1. */
static int keep_pending(struct server *s, struct conn *c, const char *data,
                        size_t len)
{
    if (c->pending == NULL && (c->pending = malloc(BENCH_BUFSZ)) == NULL) {
        perror("malloc");
        return -1;
    }
    memcpy(c->pending, data, len);
    c->off = 0;
    c->len = len;
    return set_events(s, c, EPOLLOUT);
}

/* Send data now, or what fits and keep the rest. 0, or -1 to close. */
static int echo_out(struct server *s, struct conn *c, const char *data,
                    size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return keep_pending(s, c, data, len);
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* EPOLLIN: echo until the socket is empty. 0, or -1 to close (EOF too). */
static int on_readable(struct server *s, struct conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, s->buf, sizeof s->buf);

        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        if (echo_out(s, c, s->buf, (size_t)n) < 0)
            return -1;
        if (c->len > 0 || (size_t)n < sizeof s->buf)
            return 0; /* back-pressure, or the socket is empty */
    }
}

/* EPOLLOUT: send what is pending, then read again. 0, or -1 to close. */
static int on_writable(struct server *s, struct conn *c)
{
    while (c->len > 0) {
        ssize_t n = send(c->fd, c->pending + c->off, c->len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        c->off += (size_t)n;
        c->len -= (size_t)n;
    }
    if (set_events(s, c, EPOLLIN) < 0)
        return -1;
    return on_readable(s, c);
}

static void add_conn(struct server *s, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    struct epoll_event ev = { .events = EPOLLIN };

    if (c == NULL || bench_set_nodelay(fd, s->family) < 0) {
        perror(c == NULL ? "calloc" : "setsockopt TCP_NODELAY");
        free(c);
        close(fd);
        return;
    }
    c->fd = fd;
    ev.data.ptr = c;
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        perror("epoll_ctl");
        conn_free(c);
    }
}

/* Accept every pending connection. */
static void on_accept(struct server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            add_conn(s, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN)
            perror("accept4"); /* EMFILE: level triggering retries */
        return;
    }
}

static void on_event(struct server *s, struct epoll_event *ev)
{
    struct conn *c = ev->data.ptr;
    int r;

    if (c == NULL) {
        on_accept(s);
        return;
    }
    /* EPOLLERR / EPOLLHUP: the read or write reports what happened. */
    if (c->len == 0)
        r = on_readable(s, c);
    else if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        r = on_writable(s, c);
    else
        r = 0;
    if (r < 0)
        conn_free(c);
}

static int serve(struct server *s)
{
    struct epoll_event evs[MAX_EVENTS];
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };

    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->listen_fd, &lev) < 0) {
        perror("epoll_ctl");
        return -1;
    }
    for (;;) {
        int n = epoll_wait(s->ep, evs, MAX_EVENTS, -1);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return -1;
        }
        for (int i = 0; i < n; i++)
            on_event(s, &evs[i]);
    }
}

int main(int argc, char **argv)
{
    static struct server s;
    struct sockaddr_storage ss;
    socklen_t len;

    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
        return 2;
    }
    if (bench_raise_nofile(4096) < 0 ||
        bench_parse_addr(argv[1], &ss, &len) < 0)
        return 1;
    s.family = ss.ss_family;
    s.listen_fd = bench_listen(argv[1], SOCK_STREAM, 1);
    if (s.listen_fd < 0 || bench_announce(s.listen_fd) < 0)
        return 1;
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    if (s.ep < 0) {
        perror("epoll_create1");
        return 1;
    }
    return serve(&s) < 0 ? 1 : 0;
}
