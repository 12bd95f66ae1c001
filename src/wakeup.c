/*
 * The wake-up descriptor the serving loop polls beside the server socket,
 * so that shutdown (and the pool's "the queue has room again") takes effect
 * at once instead of after the poll interval. An eventfd on Linux; a pipe
 * elsewhere.
 */
#include "internal.h"

#include <fcntl.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

int ss__wakeup_open(ss__wakeup *w)
{
#ifdef __linux__
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    if (fd < 0)
        return -errno;
    w->rfd = w->wfd = fd;
    return 0;
#else
    int p[2];

    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    w->rfd = p[0];
    w->wfd = p[1];
    return 0;
#endif
}

void ss__wakeup_signal(ss__wakeup *w)
{
    int saved = errno;   /* called from signal handlers */
#ifdef __linux__
    uint64_t one = 1;
    ssize_t n;

    do
        n = write(w->wfd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
#else
    char c = 0;
    ssize_t n;

    do
        n = write(w->wfd, &c, 1);
    while (n < 0 && errno == EINTR);
#endif
    /* EAGAIN means a wake-up is already pending: nothing is lost. */
    (void)n;
    errno = saved;
}

void ss__wakeup_drain(ss__wakeup *w)
{
    char buf[64];

    while (read(w->rfd, buf, sizeof buf) > 0 || errno == EINTR)
        ;
}

void ss__wakeup_close(ss__wakeup *w)
{
    if (w->rfd >= 0)
        ss__close(w->rfd);
    if (w->wfd >= 0 && w->wfd != w->rfd)
        ss__close(w->wfd);
    w->rfd = w->wfd = -1;
}
