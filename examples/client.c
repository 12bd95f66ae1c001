#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static char bound_path[108];

static int bind_unix_client(int fd)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    snprintf(bound_path, sizeof bound_path, "/tmp/ss-client-%d.sock",
             (int)getpid());
    unlink(bound_path);
    memcpy(sun.sun_path, bound_path, strlen(bound_path) + 1);
    return bind(fd, (struct sockaddr *)&sun, sizeof sun);
}

int client_open(const char *address, int type)
{
    struct timeval tv = {10, 0};
    ss_address a;
    int fd, err;

    if ((err = ss_address_parse(&a, address)) < 0) {
        fprintf(stderr, "%s\n", ss_last_error());
        return -1;
    }
    if ((fd = socket(a.storage.ss_family, type | SOCK_CLOEXEC, 0)) < 0) {
        perror("socket");
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (a.storage.ss_family == AF_UNIX && type == SOCK_DGRAM &&
        bind_unix_client(fd) < 0) {
        perror("bind client socket");
        close(fd);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&a.storage, a.len) < 0) {
        fprintf(stderr, "connect %s: %s\n", address, strerror(errno));
        client_close(fd);
        return -1;
    }
    return fd;
}

void client_close(int fd)
{
    close(fd);
    if (bound_path[0])
        unlink(bound_path);
}

bool client_next_line(const example_args *args, int i, char *buf, size_t size)
{
    if (args->count >= 0) {
        if (i >= args->count)
            return false;
        snprintf(buf, size, "hello %d\n", i + 1);
        return true;
    }
    return fgets(buf, (int)size, stdin) != NULL;
}

int client_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("send");
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int client_recv_exact(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "recv: %s\n", n == 0 ? "connection closed"
                    : errno == EAGAIN ? "no reply within 10 s" : strerror(errno));
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}
