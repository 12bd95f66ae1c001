/*
 * ref_event_echo ADDRESS - libevent's echo server, as libevent's book
 * writes it: an evconnlistener, a bufferevent per connection, and a read
 * callback that moves the input buffer to the output buffer. TCP (with
 * TCP_NODELAY) or a Unix socket by the form of ADDRESS.
 */
#include "bench_common.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int server_family;

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (evbuffer_add_buffer(bufferevent_get_output(bev),
                            bufferevent_get_input(bev)) < 0)
        bufferevent_free(bev);
}

static void on_event(struct bufferevent *bev, short events, void *arg)
{
    (void)arg;
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd,
                      struct sockaddr *sa, int len, void *arg)
{
    struct event_base *base = evconnlistener_get_base(listener);
    struct bufferevent *bev;

    (void)sa;
    (void)len;
    (void)arg;
    if (bench_set_nodelay(fd, server_family) < 0) {
        perror("setsockopt TCP_NODELAY");
        evutil_closesocket(fd);
        return;
    }
    bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        fprintf(stderr, "bufferevent_socket_new failed\n");
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    if (bufferevent_enable(bev, EV_READ | EV_WRITE) < 0)
        bufferevent_free(bev);
}

static void on_listen_error(struct evconnlistener *listener, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();

    (void)listener;
    (void)arg;
    /* EMFILE and the like: keep serving the connections we have. */
    fprintf(stderr, "accept: %s\n", evutil_socket_error_to_string(err));
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct event_base *base;
    struct evconnlistener *listener;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
        return 2;
    }
    if (bench_raise_nofile(4096) < 0 ||
        bench_parse_addr(argv[1], &ss, &len) < 0)
        return 1;
    /* The library writes with write()/writev(): a client that went away
     * would otherwise kill the server with SIGPIPE. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("signal");
        return 1;
    }
    server_family = ss.ss_family;
    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "event_base_new failed\n");
        return 1;
    }
    listener = evconnlistener_new_bind(
        base, on_accept, NULL,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        SOMAXCONN, (struct sockaddr *)&ss, (int)len);
    if (listener == NULL) {
        perror("listen");
        event_base_free(base);
        return 1;
    }
    evconnlistener_set_error_cb(listener, on_listen_error);
    rc = bench_announce(evconnlistener_get_fd(listener)) < 0 ||
         event_base_dispatch(base) < 0;
    evconnlistener_free(listener);
    event_base_free(base);
    return rc;
}
