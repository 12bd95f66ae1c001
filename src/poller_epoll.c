/*
 * The epoll backend of the loop (Linux).
 *
 * A connection is registered once, for both directions, edge-triggered:
 * its task tries each call first and waits only after EAGAIN, so a
 * ping-pong request costs one read, one write and a share of one
 * epoll_wait (no EPOLL_CTL_MOD per wait, no read that only says EAGAIN
 * after a short read told us the socket is drained). A descriptor the
 * loop does not own (ss_wait_fd) gets one-shot interest, re-armed per
 * wait, which stays right however the application uses it meanwhile. The
 * server socket is level-triggered, and EPOLLEXCLUSIVE when several loops
 * poll it, so a connection wakes one loop, not all.
 *
 * The poll event bits equal the epoll ones on Linux, which the
 * translation relies on.
 */
#include "runtime.h"

#if defined(__linux__) && !defined(SS_FORCE_POLL)

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

_Static_assert(EPOLLIN == POLLIN && EPOLLOUT == POLLOUT &&
               EPOLLERR == POLLERR && EPOLLHUP == POLLHUP,
               "epoll and poll event bits differ");

int ss__poller_open(ss__loop *l)
{
    l->pfd = epoll_create1(EPOLL_CLOEXEC);
    l->timerfd = -1;
    return l->pfd < 0 ? -errno : 0;
}

void ss__poller_close(ss__loop *l)
{
    if (l->timerfd >= 0)
        ss__close(l->timerfd);
    if (l->pfd >= 0)
        ss__close(l->pfd);
    l->pfd = l->timerfd = -1;
}

static int ctl(ss__loop *l, int op, int fd, uint32_t events, uint64_t key)
{
    struct epoll_event ev = {.events = events, .data.u64 = key};

    return epoll_ctl(l->pfd, op, fd, &ev) < 0 ? -errno : 0;
}

int ss__poller_add_special(ss__loop *l, int fd, uint64_t key, bool exclusive)
{
    return ctl(l, EPOLL_CTL_ADD, fd, EPOLLIN | (exclusive ? EPOLLEXCLUSIVE : 0),
               key);
}

void ss__poller_del_special(ss__loop *l, int fd)
{
    (void)ctl(l, EPOLL_CTL_DEL, fd, 0, 0);
}

int ss__poller_watch(ss__loop *l, int fd, uint32_t gen)
{
    uint32_t ev = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    int err = ctl(l, EPOLL_CTL_ADD, fd, ev, ss__fd_key(fd, gen));

    return err == -EEXIST ? ctl(l, EPOLL_CTL_MOD, fd, ev, ss__fd_key(fd, gen))
                          : err;
}

int ss__poller_arm(ss__loop *l, int fd, uint32_t gen, short events)
{
    uint32_t ev = (uint32_t)(events & (POLLIN | POLLOUT)) | EPOLLRDHUP |
                  EPOLLONESHOT;
    int err = ctl(l, EPOLL_CTL_MOD, fd, ev, ss__fd_key(fd, gen));

    return err == -ENOENT ? ctl(l, EPOLL_CTL_ADD, fd, ev, ss__fd_key(fd, gen))
                          : err;
}

int ss__poller_wait(ss__loop *l, int timeout_ms)
{
    struct epoll_event ev[SS__EVENTS_MAX];
    int n, i;

    do
        n = epoll_wait(l->pfd, ev, SS__EVENTS_MAX, timeout_ms);
    while (n < 0 && errno == EINTR && timeout_ms == 0);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (i = 0; i < n; i++) {
        uint32_t e = ev[i].events;

        l->events[i].key = ev[i].data.u64;
        /* The peer's FIN: a read now returns 0, which is readable. */
        l->events[i].revents = (short)((e & (EPOLLIN | EPOLLOUT | EPOLLERR |
                                             EPOLLHUP)) |
                                       (e & EPOLLRDHUP ? POLLIN | SS__POLL_EOF
                                                       : 0));
    }
    return n;
}

int ss__loop_fd(ss__loop *l)
{
    int fd, err;

    if (l->timerfd < 0) {
        fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (fd < 0)
            return -errno;
        if ((err = ss__poller_add_special(l, fd, SS__KEY_TIMER, false)) < 0) {
            ss__close(fd);
            return err;
        }
        l->timerfd = fd;
        l->timerfd_when = 0;
    }
    ss__loop_arm_timerfd(l);
    return l->pfd;
}

/* Only while a foreign loop polls pfd: the loop's own waits pass the
 * nearest deadline to epoll_wait instead. */
void ss__loop_arm_timerfd(ss__loop *l)
{
    ss__timer *first = ss__timers_first(&l->timers);
    int64_t when = first ? first->when : 0;
    struct itimerspec its = {{0, 0}, {0, 0}};

    if (l->timerfd < 0 || when == l->timerfd_when)
        return;
    if (when > 0) {
        its.it_value.tv_sec = when / 1000000000;
        its.it_value.tv_nsec = when % 1000000000;
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1;
    }
    if (timerfd_settime(l->timerfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        l->timerfd_when = when;
}

void ss__loop_timerfd_fired(ss__loop *l)
{
    uint64_t n;

    while (read(l->timerfd, &n, sizeof n) < 0 && errno == EINTR)
        ;
    l->timerfd_when = 0;    /* it fired: arm it again when needed */
}

#endif
