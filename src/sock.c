/*
 * Platform socket calls: close-on-exec sockets and accept4. The rest of
 * the library never calls socket(2) or accept(2) itself.
 */
#include "internal.h"

#include <fcntl.h>
#include <unistd.h>

int ss__socket(int family, int type, bool nonblock)
{
    int fd = socket(family, type | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0),
                    0);

    return fd < 0 ? -errno : fd;
}

int ss__accept(int listen_fd, ss_address *peer, bool nonblock)
{
    int fd;

    do {
        peer->len = sizeof peer->storage;
        fd = accept4(listen_fd, (struct sockaddr *)&peer->storage, &peer->len,
                     SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0));
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

void ss__close(int fd)
{
    int saved = errno;

    /* On Linux the descriptor is released even when close reports EINTR,
     * so it must not be retried. Writing errno only when it changed spares
     * a forked child a copy-on-write fault. */
    if (close(fd) < 0 && errno != saved)
        errno = saved;
}
