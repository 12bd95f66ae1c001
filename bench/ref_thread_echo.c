/*
 * ref_thread_echo ADDRESS - the hand-written thread-per-connection echo
 * server: what a C programmer writes without a framework, and what the
 * library's threading model is measured against.
 *
 * TCP or Unix stream. The main thread accepts (blocking); each connection
 * gets a detached thread running a plain blocking read/write loop. Thread
 * stacks are 64 KiB (the default would reserve 8 MiB of address space per
 * thread): 1,000 connections then cost 64 MiB of address space, of which
 * only the touched pages (the 16 KiB buffer and a few frames) are resident.
 */
#include "bench_common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STACK_SIZE (64 * 1024)

static void *serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;

    /* EOF or an error (a reset, say) ends the connection either way. */
    (void)bench_echo_blocking(fd);
    if (close(fd) < 0)
        perror("close");
    return NULL;
}

static void start_thread(const pthread_attr_t *attr, int fd)
{
    pthread_t tid;
    int err = pthread_create(&tid, attr, serve_conn, (void *)(intptr_t)fd);

    if (err != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(err));
        close(fd);
    }
}

static int accept_loop(int listen_fd, int family)
{
    pthread_attr_t attr;
    int err;

    if ((err = pthread_attr_init(&attr)) != 0 ||
        (err = pthread_attr_setstacksize(&attr, STACK_SIZE)) != 0 ||
        (err = pthread_attr_setdetachstate(&attr,
                                           PTHREAD_CREATE_DETACHED)) != 0) {
        fprintf(stderr, "pthread_attr: %s\n", strerror(err));
        return -1;
    }
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED)
                perror("accept4");
            if (errno == EMFILE || errno == ENFILE)
                usleep(10000); /* let connections end before retrying */
            continue;
        }
        if (bench_set_nodelay(fd, family) < 0) {
            perror("setsockopt TCP_NODELAY");
            close(fd);
            continue;
        }
        start_thread(&attr, fd);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
        return 2;
    }
    if (bench_raise_nofile(4096) < 0 ||
        bench_parse_addr(argv[1], &ss, &len) < 0)
        return 1;
    /* Writes use MSG_NOSIGNAL; a client gone away must not kill us. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("signal");
        return 1;
    }
    fd = bench_listen(argv[1], SOCK_STREAM, 0);
    if (fd < 0 || bench_announce(fd) < 0)
        return 1;
    return accept_loop(fd, ss.ss_family) < 0 ? 1 : 0;
}
