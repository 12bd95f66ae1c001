/*
 * ref_epoll_udp_echo [--batch N] ADDRESS - the single-threaded epoll UDP
 * echo server, the reference of the UDP scenario.
 *
 * UDP, or a Unix datagram socket for a path. One non-blocking socket on a
 * level-triggered epoll instance; when it is readable, the datagrams
 * waiting are taken N at a time with recvmmsg() and answered with one
 * sendmmsg() (default N = 32; --batch 1 gives the plain recvfrom/sendto
 * loop). A batch shorter than N means the socket is empty. A reply the
 * socket cannot take (EAGAIN) is dropped, as UDP allows; the client counts
 * it as lost.
 */
#include "bench_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BATCH 64
#define MAX_DGRAM 65536

struct batch {
    struct mmsghdr msg[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    struct sockaddr_storage peer[MAX_BATCH];
    char data[MAX_BATCH][MAX_DGRAM];
};

static void batch_init(struct batch *b)
{
    for (int i = 0; i < MAX_BATCH; i++) {
        b->iov[i].iov_base = b->data[i];
        b->msg[i].msg_hdr.msg_iov = &b->iov[i];
        b->msg[i].msg_hdr.msg_iovlen = 1;
        b->msg[i].msg_hdr.msg_name = &b->peer[i];
    }
}

/* Reset the lengths that recvmmsg overwrote. */
static void batch_ready(struct batch *b, int n)
{
    for (int i = 0; i < n; i++) {
        b->iov[i].iov_len = MAX_DGRAM;
        b->msg[i].msg_hdr.msg_namelen = sizeof b->peer[i];
    }
}

/* Send the n received datagrams back; the lengths recvmmsg stored become
 * the lengths of the replies. */
static void reply(int fd, struct batch *b, int n)
{
    int done = 0;

    for (int i = 0; i < n; i++)
        b->iov[i].iov_len = b->msg[i].msg_len;
    while (done < n) {
        int r = sendmmsg(fd, b->msg + done, (unsigned)(n - done), 0);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != ECONNREFUSED)
                perror("sendmmsg");
            /* Drop this reply (the client sees a loss) and go on. */
            r = 1;
        }
        done += r;
    }
}

/* EPOLLIN: answer datagrams until the socket is empty. */
static int on_readable(int fd, struct batch *b, int batch)
{
    for (;;) {
        int n;

        batch_ready(b, batch);
        n = recvmmsg(fd, b->msg, (unsigned)batch, 0, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            perror("recvmmsg");
            return errno == ECONNREFUSED ? 0 : -1;
        }
        reply(fd, b, n);
        if (n < batch)
            return 0;
    }
}

static int serve(int fd, int batch)
{
    struct epoll_event ev = { .events = EPOLLIN };
    struct batch *b = malloc(sizeof *b);
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (b == NULL || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        perror("serve setup");
        free(b);
        if (ep >= 0)
            close(ep);
        return -1;
    }
    batch_init(b);
    for (;;) {
        int n = epoll_wait(ep, &ev, 1, -1);

        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        if (n == 1 && on_readable(fd, b, batch) < 0)
            break;
    }
    free(b);
    if (close(ep) < 0)
        perror("close");
    return -1;
}

int main(int argc, char **argv)
{
    int batch = 32, fd;

    if (argc == 4 && strcmp(argv[1], "--batch") == 0) {
        batch = atoi(argv[2]);
        argv += 2;
        argc -= 2;
    }
    if (argc != 2 || batch < 1 || batch > MAX_BATCH) {
        fprintf(stderr, "usage: %s [--batch 1-%d] ADDRESS\n", argv[0],
                MAX_BATCH);
        return 2;
    }
    fd = bench_listen(argv[1], SOCK_DGRAM, 1);
    if (fd < 0 || bench_announce(fd) < 0)
        return 1;
    return serve(fd, batch) < 0 ? 1 : 0;
}
