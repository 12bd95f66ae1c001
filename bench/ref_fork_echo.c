/*
 * ref_fork_echo ADDRESS - the hand-written fork-per-connection echo server,
 * what the library's forking model is measured against.
 *
 * TCP or Unix stream. The parent accepts (blocking) and forks a child per
 * connection; the child runs the plain blocking read/write loop and exits.
 * SIGCHLD is ignored, so the kernel reaps children at once (no zombies, no
 * waitpid in the accept loop). No limit on the number of children.
 */
#include "bench_common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

_Noreturn static void serve_child(int listen_fd, int fd)
{
    if (close(listen_fd) < 0)
        perror("close");
    _exit(bench_echo_blocking(fd) == 0 ? 0 : 1);
}

_Noreturn static void accept_loop(int listen_fd, int family)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        pid_t pid;

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
        pid = fork();
        if (pid == 0)
            serve_child(listen_fd, fd);
        if (pid < 0)
            perror("fork");
        if (close(fd) < 0) /* the child has its own copy */
            perror("close");
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
    if (signal(SIGCHLD, SIG_IGN) == SIG_ERR ||
        signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("signal");
        return 1;
    }
    fd = bench_listen(argv[1], SOCK_STREAM, 0);
    if (fd < 0 || bench_announce(fd) < 0)
        return 1;
    accept_loop(fd, ss.ss_family);
}
