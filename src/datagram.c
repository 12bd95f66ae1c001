/*
 * Datagram servers: Python's UDPServer. One packet is one request; the
 * reply goes to the packet's sender through the server's own socket, which
 * the request therefore never closes.
 */
#include "internal.h"

#include <string.h>
#include <sys/socket.h>

int ss__udp_server_activate(ss_server *s)
{
    (void)s;    /* no listen() for datagrams */
    return 0;
}

int ss__udp_request(ss_server *s, const void *packet, size_t len,
                    ss_address *peer, bool truncated, ss_request **out)
{
    ss_request *r;

    /* A Unix client that did not bind has no name: the kernel writes
     * nothing, not even the family. Make it an unnamed peer of the
     * server's family rather than stack garbage. */
    if (peer->len < sizeof(sa_family_t)) {
        memset(&peer->storage, 0, sizeof peer->storage);
        peer->storage.ss_family = s->address.storage.ss_family;
    }
    /* A dual-stack server's IPv4 client, as an IPv4 address; the reply
     * to it goes out through the IPv6 socket all the same. */
    ss__address_unmap(peer);
    /* One extra byte so even an empty packet has a non-NULL buffer. */
    if (!(r = ss__request_new(s, atomic_load(&s->fd), len + 1)))
        return -ENOMEM;
    memcpy(r->rbuf, packet, len);
    r->rcap = r->rend = len;
    r->bytes_in = len;
    r->datagram = true;
    r->client = *peer;
    /* Python silently handles the first max_packet_size bytes as if they
     * were the whole datagram; report it instead. */
    if (truncated) {
        r->pending_error = -EMSGSIZE;
        r->what = "recvfrom: datagram longer than max_packet_size";
    }
    *out = r;
    return 0;
}

int ss__udp_get_request(ss_server *s, ss_request **out)
{
    int fd = atomic_load(&s->fd);
    struct iovec iov = {.iov_base = s->scratch, .iov_len = s->max_packet_size};
    ss_address peer;
    struct msghdr msg = {
        .msg_name = &peer.storage, .msg_namelen = sizeof peer.storage,
        .msg_iov = &iov, .msg_iovlen = 1,
    };
    ssize_t n;

    do
        n = recvmsg(fd, &msg, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    peer.len = msg.msg_namelen;
    return ss__udp_request(s, s->scratch, (size_t)n, &peer,
                           (msg.msg_flags & MSG_TRUNC) != 0, out);
}

void ss__udp_shutdown_request(ss_server *s, ss_request *r)
{
    s->ops.close_request(s, r);
}

void ss__udp_close_request(ss_server *s, ss_request *r)
{
    (void)s, (void)r;   /* the socket is the server's own */
}

static const ss_server_ops udp_ops = {
    .server_bind      = ss__tcp_server_bind,
    .server_activate  = ss__udp_server_activate,
    .get_request      = ss__udp_get_request,
    .verify_request   = ss__base_verify_request,
    .process_request  = ss__base_process_request,
    .finish_request   = ss__base_finish_request,
    .shutdown_request = ss__udp_shutdown_request,
    .close_request    = ss__udp_close_request,
    .handle_error     = ss__base_handle_error,
    .handle_timeout   = ss__base_nothing,
    .service_actions  = ss__base_nothing,
    .server_close     = ss__tcp_server_close,
};

const ss__type ss__udp_type = {
    .name = "udp_server", .socktype = SOCK_DGRAM, .ops = &udp_ops,
};
