/*
 * The poll backend of the loop: for systems without epoll, and selected on
 * Linux with -DSS_POLLER=poll so that CI runs it. Level-triggered: the set
 * is built before each wait from the loop's own descriptors and the
 * descriptors its parked tasks wait on, so nothing is registered and a
 * descriptor nobody waits on is not polled. A connection's task still
 * tries each call before it waits; it only wakes later than with epoll
 * when it waits after all.
 *
 * There is no single descriptor that stands for a poll set, so
 * ss_server_loop_fd is -ENOTSUP with this backend.
 */
#include "runtime.h"

#if !defined(__linux__) || defined(SS_FORCE_POLL)

#include <stdlib.h>

typedef struct slot {
    uint64_t key;
} slot;

int ss__poller_open(ss__loop *l)
{
    l->pfd = -1;
    l->timerfd = -1;
    l->nspecial = 0;
    l->pollset = NULL;
    l->pollcap = 0;
    return 0;
}

void ss__poller_close(ss__loop *l)
{
    free(l->pollset);
    l->pollset = NULL;
    l->pollcap = 0;
}

int ss__poller_add_special(ss__loop *l, int fd, uint64_t key, bool exclusive)
{
    (void)exclusive;    /* every loop polling it wakes; one accepts */
    if (l->nspecial == (int)(sizeof l->special / sizeof l->special[0]))
        return -ENOSPC;
    l->special[l->nspecial].fd = fd;
    l->special[l->nspecial].key = key;
    l->nspecial++;
    return 0;
}

void ss__poller_del_special(ss__loop *l, int fd)
{
    int i;

    for (i = 0; i < l->nspecial; i++)
        if (l->special[i].fd == fd) {
            l->special[i] = l->special[--l->nspecial];
            return;
        }
}

int ss__poller_watch(ss__loop *l, int fd, uint32_t gen)
{
    (void)l, (void)fd, (void)gen;   /* polled while a task waits on it */
    return 0;
}

int ss__poller_arm(ss__loop *l, int fd, uint32_t gen, short events)
{
    (void)l, (void)fd, (void)gen, (void)events;
    return 0;
}

/* Room for n pollfds and their keys. */
static int reserve(ss__loop *l, unsigned n)
{
    void *p;
    unsigned cap = l->pollcap ? l->pollcap : 64;

    if (n <= l->pollcap)
        return 0;
    while (cap < n)
        cap *= 2;
    if (!(p = malloc(cap * (sizeof(struct pollfd) + sizeof(slot)))))
        return -ENOMEM;
    free(l->pollset);
    l->pollset = p;
    l->pollcap = cap;
    return 0;
}

int ss__poller_wait(ss__loop *l, int timeout_ms)
{
    struct pollfd *p;
    slot *keys;
    unsigned n = 0, parked = 0;
    ss__task *t;
    int i, rc, out = 0;

    for (t = l->tasks; t; t = t->lnext)
        parked += t->parked && t->wait.fd >= 0;
    if ((rc = reserve(l, (unsigned)l->nspecial + parked)) < 0)
        return rc;
    p = l->pollset;
    keys = (slot *)(p + l->pollcap);
    for (i = 0; i < l->nspecial; i++, n++) {
        p[n] = (struct pollfd){.fd = l->special[i].fd, .events = POLLIN};
        keys[n].key = l->special[i].key;
    }
    for (t = l->tasks; t; t = t->lnext) {
        if (!t->parked || t->wait.fd < 0)
            continue;
        p[n] = (struct pollfd){.fd = t->wait.fd, .events = t->wait.events};
        keys[n++].key = ss__fd_key(t->wait.fd, t->wait.gen);
    }
    do
        rc = poll(p, n, timeout_ms);
    while (rc < 0 && errno == EINTR && timeout_ms == 0);
    if (rc < 0)
        return errno == EINTR ? 0 : -errno;
    for (i = 0; i < (int)n && out < SS__EVENTS_MAX; i++) {
        if (!p[i].revents)
            continue;
        /* POLLNVAL: the task's descriptor was closed; wake it to find
         * out. */
        l->events[out].key = keys[i].key;
        l->events[out].revents = (short)(p[i].revents & POLLNVAL
                                         ? POLLERR : p[i].revents);
        out++;
    }
    return out;
}

int ss__loop_fd(ss__loop *l)
{
    (void)l;
    return -ENOTSUP;
}

void ss__loop_arm_timerfd(ss__loop *l)
{
    (void)l;
}

void ss__loop_timerfd_fired(ss__loop *l)
{
    (void)l;
}

#endif
