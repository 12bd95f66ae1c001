/*
 * The threading mix-in: Python's ThreadingMixIn. Each request runs
 * finish_request + shutdown_request in a thread of its own, started with a
 * modest stack. Finished threads put themselves on a list that the serving
 * thread joins in process_request and service_actions, so the bookkeeping
 * never grows with the number of requests served (CPython bpo-37193), and
 * ss_server_close joins every running handler (bpo-31233) unless
 * no_block_on_close; close_timeout bounds that wait by shutting the
 * handlers' connections down so blocked reads return.
 */
#include "internal.h"

#include <limits.h>
#include <stdlib.h>

typedef struct handler_thread {
    pthread_t              tid;
    ss_server             *server;
    ss_request            *request;
    struct handler_thread *next;    /* on the finished list */
} handler_thread;

typedef struct threading {
    pthread_mutex_t  lock;
    pthread_cond_t   done;          /* a handler finished */
    int              live;          /* started, not yet finished */
    handler_thread  *finished;      /* to be joined */
    pthread_attr_t   attr;
} threading;

static threading *state(const ss_server *s)
{
    return s->model_state;
}

static void *handler_main(void *arg)
{
    handler_thread *h = arg;
    threading *t = state(h->server);

    ss__run_request(h->server, h->request);
    pthread_mutex_lock(&t->lock);
    t->live--;
    h->next = t->finished;
    t->finished = h;
    pthread_cond_broadcast(&t->done);
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* Join the threads that have finished. */
static void reap(threading *t)
{
    handler_thread *h, *next;

    pthread_mutex_lock(&t->lock);
    h = t->finished;
    t->finished = NULL;
    pthread_mutex_unlock(&t->lock);
    for (; h; h = next) {
        next = h->next;
        pthread_join(h->tid, NULL);
        free(h);
    }
}

static int threading_process_request(ss_server *s, ss_request *r,
                                     const ss_address *client)
{
    threading *t = state(s);
    handler_thread *h;
    int rc;

    (void)client;
    reap(t);
    if (!(h = malloc(sizeof *h))) {
        r->what = "threading: allocate";
        return -ENOMEM;
    }
    h->server = s;
    h->request = r;
    pthread_mutex_lock(&t->lock);
    t->live++;
    pthread_mutex_unlock(&t->lock);
    if ((rc = ss__thread_create(&h->tid, &t->attr, handler_main, h)) != 0) {
        pthread_mutex_lock(&t->lock);
        t->live--;
        pthread_mutex_unlock(&t->lock);
        free(h);
        r->what = "pthread_create";
        return -rc;     /* the caller reports it and ends the request */
    }
    return 0;
}

static void threading_service_actions(ss_server *s)
{
    reap(state(s));
    s->type->ops->service_actions(s);
}

static bool none_live(void *arg)
{
    return ((threading *)arg)->live == 0;
}

static void wait_for_handlers(ss_server *s)
{
    threading *t = state(s);

    pthread_mutex_lock(&t->lock);
    ss__drain_wait(s, &t->done, &t->lock, none_live, t);
    pthread_mutex_unlock(&t->lock);
    reap(t);
}

static void threading_server_close(ss_server *s)
{
    ss__close_and_wait(s, wait_for_handlers);
}


static int threading_active(const ss_server *s)
{
    threading *t = state(s);
    int n;

    pthread_mutex_lock(&t->lock);
    n = t->live;
    pthread_mutex_unlock(&t->lock);
    return n;
}

static void threading_free(threading *t)
{
    pthread_attr_destroy(&t->attr);
    pthread_cond_destroy(&t->done);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* Even with no_block_on_close, the server's memory cannot go while handler
 * threads still use it: they get close_timeout, then their connections
 * are shut down so that handlers waiting for idle clients return. */
static void threading_destroy(ss_server *s)
{
    threading *t = state(s);

    pthread_mutex_lock(&t->lock);
    ss__drain_wait_for(s, &t->done, &t->lock, none_live, t,
                       ss__free_timeout(s));
    pthread_mutex_unlock(&t->lock);
    reap(t);
    threading_free(t);
}

static const ss_server_ops threading_ops = {
    .process_request = threading_process_request,
    .service_actions = threading_service_actions,
    .server_close    = threading_server_close,
};

static const ss__model threading_model = {
    .name = "threading",
    .ops = &threading_ops,
    .active = threading_active,
    .destroy = threading_destroy,
    .same_process = true,
};

/* Thread attributes shared by the threading and pool models. */
int ss__thread_attr_init(pthread_attr_t *attr, size_t stack_size)
{
    int rc = pthread_attr_init(attr);

    if (rc != 0)
        return -rc;
    if (stack_size < (size_t)PTHREAD_STACK_MIN)
        stack_size = (size_t)PTHREAD_STACK_MIN;
    if ((rc = pthread_attr_setstacksize(attr, stack_size)) != 0) {
        pthread_attr_destroy(attr);
        return -rc;
    }
    return 0;
}

int ss_server_use_threading(ss_server *s)
{
    threading *t;
    int err;

    if (!s)
        return -EINVAL;
    if (!(t = calloc(1, sizeof *t)))
        return -ENOMEM;
    if ((err = ss__thread_attr_init(&t->attr, s->stack_size)) < 0) {
        free(t);
        return err;
    }
    pthread_mutex_init(&t->lock, NULL);
    ss__cond_init_monotonic(&t->done);
    if ((err = ss__server_set_model(s, &threading_model, t)) < 0)
        threading_free(t);
    return err;
}
