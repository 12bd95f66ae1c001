/*
 * Stream servers: Python's TCPServer. The datagram and Unix servers reuse
 * its bind and close, as Python's UDPServer and UnixStreamServer inherit
 * them.
 */
#include "internal.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int set_option(ss_server *s, int level, int name, int value,
                      const char *what)
{
    char a[SS_ADDRESS_STRLEN];

    if (setsockopt(atomic_load(&s->fd), level, name, &value, sizeof value) < 0)
        return ss__error(-errno, "setsockopt %s on %s", what,
                         ss_address_format(&s->address, a, sizeof a));
    return 0;
}

/* SO_REUSEADDR: on by default for TCP, so a restarted server rebinds at
 * once; off by default otherwise. SO_REUSEPORT only for IP sockets (Linux
 * 6.12.9 refuses it on others, CPython gh-128916). A wildcard IPv6 address
 * is bound dual-stack. */
static int set_bind_options(ss_server *s)
{
    int family = s->address.storage.ss_family;
    bool inet = family == AF_INET || family == AF_INET6;
    int reuse = s->options.reuse_address;
    int err = 0;

    if (reuse == 0)
        reuse = inet && s->type->socktype == SOCK_STREAM ? 1 : -1;
    if (reuse > 0)
        err = set_option(s, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
#ifdef SO_REUSEPORT
    if (!err && s->options.reuse_port && inet)
        err = set_option(s, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
#endif
    if (!err && ss__address_is_any6(&s->address))
        /* Best effort: where the system forbids dual-stack sockets the
         * server still serves IPv6. */
        (void)set_option(s, IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY");
    return err;
}

/* A Unix socket file that bind(2) just made, when the bind fails after
 * all: no server will remove it otherwise. */
static void remove_bound_file(const ss_server *s)
{
    const struct sockaddr_un *sun =
        (const struct sockaddr_un *)&s->address.storage;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    char path[sizeof sun->sun_path + 1];

    if (sun->sun_family != AF_UNIX || s->address.len <= off ||
        sun->sun_path[0] == '\0')
        return;     /* not a file: abstract, or no name */
    memcpy(path, sun->sun_path, s->address.len - off);
    path[s->address.len - off] = '\0';
    (void)unlink(path);
}

int ss__tcp_server_bind(ss_server *s)
{
    char a[SS_ADDRESS_STRLEN];
    ss_address real;
    int fd = atomic_load(&s->fd), err;

    if (s->adopted)
        return ss__activation_bind(s);  /* inherited: bound already */
    if ((err = set_bind_options(s)) < 0)
        return err;
    if (bind(fd, (struct sockaddr *)&s->address.storage, s->address.len) < 0)
        return ss__error(-errno, "bind %s",
                         ss_address_format(&s->address, a, sizeof a));
    real.len = sizeof real.storage;
    if (getsockname(fd, (struct sockaddr *)&real.storage, &real.len) < 0) {
        err = ss__error(-errno, "getsockname %s",
                        ss_address_format(&s->address, a, sizeof a));
        remove_bound_file(s);
        return err;
    }
    s->address = real;
    return 0;
}

int ss__tcp_server_activate(ss_server *s)
{
    char a[SS_ADDRESS_STRLEN];
    int backlog = s->options.request_queue_size;

    if (backlog <= 0)
        backlog = SOMAXCONN;
    if (s->adopted && ss__activation_listening(s))
        return 0;   /* an inherited listener keeps its backlog */
    if (listen(atomic_load(&s->fd), backlog) < 0)
        return ss__error(-errno, "listen %s",
                         ss_address_format(&s->address, a, sizeof a));
    return 0;
}

void ss__server_close_socket(ss_server *s)
{
    int fd = atomic_exchange(&s->fd, -1);

    if (fd >= 0)
        ss__close(fd);
}

void ss__tcp_server_close(ss_server *s)
{
    ss__server_close_socket(s);
}

int ss__tcp_get_request(ss_server *s, ss_request **out)
{
    ss_address peer;
    ss_request *r;
    int fd = ss__accept(atomic_load(&s->fd), &peer,
                        s->model && s->model->nonblocking);

    if (fd < 0)
        return fd;
    if (!(r = ss__request_new(s, fd, 0))) {
        ss__close(fd);
        return -ENOMEM;
    }
    r->owns_fd = true;
    ss__address_unmap(&peer);   /* a dual-stack server's IPv4 client */
    r->client = peer;
    ss__registry_add(s, r);
    *out = r;
    return 0;
}

/* "explicitly shutdown. socket.close() merely releases the socket and
 * waits for GC" (CPython): SHUT_WR sends the FIN at once, even when a
 * forked child still holds a copy of the descriptor. */
void ss__tcp_shutdown_request(ss_server *s, ss_request *r)
{
    if (r->fd >= 0)
        (void)shutdown(r->fd, SHUT_WR);   /* ENOTCONN is fine */
    s->ops.close_request(s, r);
}

void ss__tcp_close_request(ss_server *s, ss_request *r)
{
    (void)s;
    ss__request_close_fd(r);
}

static const ss_server_ops tcp_ops = {
    .server_bind      = ss__tcp_server_bind,
    .server_activate  = ss__tcp_server_activate,
    .get_request      = ss__tcp_get_request,
    .verify_request   = ss__base_verify_request,
    .process_request  = ss__base_process_request,
    .finish_request   = ss__base_finish_request,
    .shutdown_request = ss__tcp_shutdown_request,
    .close_request    = ss__tcp_close_request,
    .handle_error     = ss__base_handle_error,
    .handle_timeout   = ss__base_nothing,
    .service_actions  = ss__base_nothing,
    .server_close     = ss__tcp_server_close,
};

const ss__type ss__tcp_type = {
    .name = "tcp_server", .socktype = SOCK_STREAM, .ops = &tcp_ops,
};
