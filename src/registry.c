/*
 * The registry of live requests: every request a stream server accepted and
 * has not yet closed. ss_server_close walks it to wake handlers blocked on
 * idle clients, ss_server_broadcast to reach every other client.
 *
 * A request leaves the registry before its descriptor is closed
 * (ss__request_close_fd), so a walker holding reg_lock only ever sees open
 * descriptors.
 */
#include "internal.h"

#include <assert.h>
#include <stdlib.h>

/* Requests of a model whose handlers run in other processes (forking) stay
 * out: they live in this process only until the fork, nothing here can
 * block on them, and the registry's pages are then not written between
 * forks (each such page costs a copy-on-write fault per fork). */
void ss__registry_add(ss_server *s, ss_request *r)
{
    if (s->model && !s->model->same_process)
        return;
    pthread_mutex_lock(&s->reg_lock);
    assert(!r->registered);
    r->reg_prev = NULL;
    r->reg_next = s->reg_head;
    if (s->reg_head)
        s->reg_head->reg_prev = r;
    s->reg_head = r;
    r->registered = true;
    s->reg_count++;
    pthread_mutex_unlock(&s->reg_lock);
}

/* Registration changes only in the thread that owns the request, so the
 * owner may test it without the lock, and an unregistered request (a
 * forking server's) costs no lock. */
void ss__registry_remove(ss_server *s, ss_request *r)
{
    if (!r->registered)
        return;
    pthread_mutex_lock(&s->reg_lock);
    if (r->registered) {
        if (r->reg_prev)
            r->reg_prev->reg_next = r->reg_next;
        else
            s->reg_head = r->reg_next;
        if (r->reg_next)
            r->reg_next->reg_prev = r->reg_prev;
        r->reg_prev = r->reg_next = NULL;
        r->registered = false;
        s->reg_count--;
    }
    pthread_mutex_unlock(&s->reg_lock);
}

int ss__registry_shutdown_all(ss_server *s, int how)
{
    ss_request *r;
    int n = 0;

    pthread_mutex_lock(&s->reg_lock);
    for (r = s->reg_head; r; r = r->reg_next) {
        atomic_store(&r->forced, true);
        if (r->fd >= 0 && shutdown(r->fd, how) == 0)
            n++;
    }
    pthread_mutex_unlock(&s->reg_lock);
    return n;
}

int ss__registry_snapshot(ss_server *s, const ss_request *except,
                          ss_request ***out)
{
    ss_request *r, **list;
    int n = 0;

    pthread_mutex_lock(&s->reg_lock);
    list = malloc(((size_t)s->reg_count + 1) * sizeof *list);
    if (!list) {
        pthread_mutex_unlock(&s->reg_lock);
        return -ENOMEM;
    }
    for (r = s->reg_head; r; r = r->reg_next) {
        if (r == except || r->datagram)
            continue;
        ss__request_ref(r);
        list[n++] = r;
    }
    pthread_mutex_unlock(&s->reg_lock);
    *out = list;
    return n;
}
