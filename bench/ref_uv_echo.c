/*
 * ref_uv_echo ADDRESS - libuv's echo server, as libuv's own examples write
 * it: one loop, uv_read_start with a per-connection buffer, the echo sent
 * with uv_try_write and, for what the socket does not take at once, a
 * uv_write (reading pauses until it completes, so the buffer stays valid).
 * TCP (with TCP_NODELAY) or a Unix socket (uv_pipe) by the form of ADDRESS.
 */
#include "bench_common.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

struct client {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_write_t req;
    uv_buf_t rest;
    char buf[BENCH_BUFSZ];
};

static union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} server;
static int server_is_tcp;

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    struct client *c = req->data;

    if (status < 0) {
        if (!uv_is_closing(&c->h.handle))
            uv_close(&c->h.handle, on_close);
        return;
    }
    if (uv_read_start(&c->h.stream, on_alloc, on_read) < 0)
        uv_close(&c->h.handle, on_close);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct client *c = s->data;
    uv_buf_t out;
    int w;

    if (n < 0) { /* UV_EOF or an error */
        uv_close(&c->h.handle, on_close);
        return;
    }
    if (n == 0)
        return;
    out = uv_buf_init(buf->base, (unsigned)n);
    w = uv_try_write(s, &out, 1);
    if (w == n)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        uv_close(&c->h.handle, on_close);
        return;
    }
    if (w < 0)
        w = 0;
    c->rest = uv_buf_init(buf->base + w, (unsigned)(n - w));
    c->req.data = c;
    if (uv_read_stop(s) < 0 ||
        uv_write(&c->req, s, &c->rest, 1, on_write) < 0)
        uv_close(&c->h.handle, on_close);
}

static void on_connection(uv_stream_t *srv, int status)
{
    struct client *c;
    int r;

    if (status < 0) {
        fprintf(stderr, "connection: %s\n", uv_strerror(status));
        return;
    }
    c = malloc(sizeof *c);
    if (c == NULL) {
        perror("malloc");
        return;
    }
    r = server_is_tcp ? uv_tcp_init(srv->loop, &c->h.tcp)
                      : uv_pipe_init(srv->loop, &c->h.pipe, 0);
    if (r < 0) {
        fprintf(stderr, "init: %s\n", uv_strerror(r));
        free(c);
        return;
    }
    c->h.handle.data = c;
    if ((r = uv_accept(srv, &c->h.stream)) < 0 ||
        (server_is_tcp && (r = uv_tcp_nodelay(&c->h.tcp, 1)) < 0) ||
        (r = uv_read_start(&c->h.stream, on_alloc, on_read)) < 0) {
        fprintf(stderr, "accept: %s\n", uv_strerror(r));
        uv_close(&c->h.handle, on_close);
    }
}

static int bind_server(uv_loop_t *loop, const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int r;

    if (bench_parse_addr(text, &ss, &len) < 0)
        return UV_EINVAL;
    server_is_tcp = ss.ss_family != AF_UNIX;
    if (server_is_tcp) {
        r = uv_tcp_init(loop, &server.tcp);
        return r < 0 ? r : uv_tcp_bind(&server.tcp, (struct sockaddr *)&ss, 0);
    }
    r = uv_pipe_init(loop, &server.pipe, 0);
    return r < 0 ? r : uv_pipe_bind(&server.pipe, text);
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    uv_os_fd_t fd;
    int r;

    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
        return 2;
    }
    if (bench_raise_nofile(4096) < 0)
        return 1;
    /* The library writes with write()/writev(): a client that went away
     * would otherwise kill the server with SIGPIPE. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("signal");
        return 1;
    }
    if ((r = bind_server(loop, argv[1])) < 0 ||
        (r = uv_listen(&server.stream, SOMAXCONN, on_connection)) < 0 ||
        (r = uv_fileno(&server.handle, &fd)) < 0) {
        fprintf(stderr, "listen %s: %s\n", argv[1], uv_strerror(r));
        return 1;
    }
    if (bench_announce(fd) < 0)
        return 1;
    r = uv_run(loop, UV_RUN_DEFAULT);
    return r < 0 ? 1 : 0;
}
