/*
 * The thread pool: a fixed number of worker threads take requests from a
 * bounded queue. When the queue is full the serving loop stops polling the
 * server socket (libuv's accept-path back-pressure), so clients wait in the
 * kernel's backlog: the server never accepts a connection only to drop it.
 * Works for stream and datagram servers alike.
 *
 * Workers start with the first request, in the process that serves: a
 * prefork worker gets a pool of its own.
 *
 * While ss_serve_forever runs, the serving thread is SCHED_BATCH (when it
 * was SCHED_OTHER): a request's arrival wakes it without preempting a
 * worker in a handler. On a busy core the serving thread then takes the
 * requests that arrived meanwhile in one go, when the worker sleeps,
 * instead of preempting it at each one to queue it and wake yet another
 * worker. Workers started meanwhile go back to SCHED_OTHER.
 */
#include "internal.h"

#include <semaphore.h>
#include <stdlib.h>

typedef struct worker {
    pthread_t        thread;
    sem_t            wake;          /* posted by wake() */
    struct worker   *next_idle;
    ss_server       *server;
    bool             unbatch;       /* inherited SCHED_BATCH: drop it */
} worker;

/* Workers are woken one at a time, and only when no worker is already
 * awake and idle (about to look at the queue): a burst of requests wakes
 * one worker, which takes them in turn and wakes another only while work is
 * left and nobody else is awake to take it. Waking a sleeping thread per
 * request would cost context switches that dwarf a short request. Sleeping
 * workers form a stack, so the most recently busy (cache-warm) runs next. */
typedef struct pool {
    unsigned         workers;
    unsigned         limit;         /* queued requests at most */
    worker          *w;
    unsigned         started;
    pthread_attr_t   attr;
    pthread_mutex_t  lock;
    pthread_cond_t   nonfull;       /* the queue has room, or stopping */
    pthread_cond_t   progress;      /* a worker finished a request */
    ss_request      *head, *tail;
    atomic_uint      queued;        /* read without the lock by accepting() */
    worker          *idle;          /* sleeping workers */
    unsigned         awake_idle;    /* awake, not in a handler */
    unsigned         busy;          /* in a handler */
    bool             stopping;
    bool             start_logged;
    bool             batched;       /* the serving thread is SCHED_BATCH */
} pool;

static pool *state(const ss_server *s)
{
    return s->model_state;
}

/* Choose the most recently idle worker to wake, if any sleeps, and count
 * it awake. Lock held. The caller signals it with wake() once it has
 * released the lock: a worker woken under the lock on a shared core
 * preempts the waker, finds the lock taken and sleeps again on it, two
 * context switches and two futex calls for nothing. */
static worker *pick_one(pool *p)
{
    worker *w = p->idle;

    if (!w)
        return NULL;
    p->idle = w->next_idle;
    p->awake_idle++;
    return w;
}

/* A worker to wake for the queued work, if work is queued and no worker is
 * awake and idle to take it. Lock held. */
static worker *pick_for_queue(pool *p)
{
    return p->head && p->awake_idle == 0 ? pick_one(p) : NULL;
}

/* Post to a worker pick_one chose. A semaphore rather than a condition
 * variable: the woken worker does not take the queue lock back inside the
 * wait, which left glibc's mutex marked contended and cost a futex wake-up
 * at its next unlock. A post made before the worker waits is kept, so it
 * may follow the unlock; the semaphore lives as long as the pool, which
 * outlives every worker and the serving loop. */
static void wake(worker *w)
{
    if (w)
        sem_post(&w->wake);
}

/* Sleep until wake(), after pushing itself on the idle stack: the lock
 * is released for the wait and taken back after it. */
static void sleep_until_woken(pool *p, worker *w)
{
    pthread_mutex_unlock(&p->lock);
    while (sem_wait(&w->wake) != 0 && errno == EINTR)
        ;                               /* a signal handler ran */
    pthread_mutex_lock(&p->lock);
}

/* Take the head of the queue. Lock held. Returns whether the queue was
 * full, so the serving loop must be told it may accept again; *helper is
 * a worker to wake (after unlocking) when work is left and nobody else is
 * awake to take it. */
static bool dequeue(pool *p, ss_request **r, worker **helper)
{
    *r = p->head;
    p->head = (*r)->next;
    if (!p->head)
        p->tail = NULL;
    p->awake_idle--;
    p->busy++;
    *helper = pick_for_queue(p);
    return atomic_fetch_sub(&p->queued, 1) == p->limit;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    ss_server *s = w->server;
    pool *p = state(s);
    worker *helper;
    ss_request *r;

    if (w->unbatch)
        ss__sched_batch_end();
    pthread_mutex_lock(&p->lock);
    p->awake_idle++;
    for (;;) {
        if (p->head) {
            if (dequeue(p, &r, &helper)) {
                pthread_cond_signal(&p->nonfull);
                ss__wakeup_signal(&s->wake);    /* the loop may accept */
            }
            pthread_mutex_unlock(&p->lock);
            wake(helper);
            ss__run_request(s, r);
            pthread_mutex_lock(&p->lock);
            p->busy--;
            p->awake_idle++;
            pthread_cond_broadcast(&p->progress);
        } else if (p->stopping) {
            break;
        } else {
            p->awake_idle--;
            w->next_idle = p->idle;
            p->idle = w;
            sleep_until_woken(p, w);
        }
    }
    p->awake_idle--;
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Start the workers not yet running. Fewer than asked is logged and
 * tolerated; none at all fails the request. */
static int start_workers(ss_server *s, pool *p)
{
    int rc = 0;

    while (p->started < p->workers) {
        worker *w = &p->w[p->started];

        w->server = s;
        w->unbatch = p->batched;
        rc = ss__thread_create(&w->thread, &p->attr, worker_main, w);
        if (rc != 0)
            break;
        p->started++;
    }
    if (rc != 0 && p->started > 0 && !p->start_logged) {
        ss__log(s, "libsockserver: thread pool: started %u of %u workers: %s",
                p->started, p->workers, ss_strerror(rc));
        p->start_logged = true;
    }
    return p->started > 0 ? 0 : -rc;
}

static int pool_process_request(ss_server *s, ss_request *r,
                                const ss_address *client)
{
    pool *p = state(s);
    int err;

    (void)client;
    if (p->started < p->workers && (err = start_workers(s, p)) < 0) {
        r->what = "pthread_create";
        return err;
    }
    pthread_mutex_lock(&p->lock);
    /* The serving loop does not accept while the queue is full; this wait
     * only matters for ss_handle_request. */
    while (atomic_load(&p->queued) >= p->limit && !p->stopping)
        pthread_cond_wait(&p->nonfull, &p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        atomic_store(&r->forced, true);     /* not a handler error */
        return -ESHUTDOWN;
    }
    r->next = NULL;
    if (p->tail)
        p->tail->next = r;
    else
        p->head = r;
    p->tail = r;
    atomic_fetch_add(&p->queued, 1);
    pthread_mutex_unlock(&p->lock);
    return 0;   /* a worker is woken at the end of the batch */
}

/* The serving loop took what was ready: wake a worker for it unless one is
 * awake already. Waking at each enqueue let the worker preempt the serving
 * thread at every datagram of a burst when both share a core. */
static void pool_batch_end(ss_server *s)
{
    pool *p = state(s);
    worker *w;

    pthread_mutex_lock(&p->lock);
    w = pick_for_queue(p);
    pthread_mutex_unlock(&p->lock);
    wake(w);
}

/* ss_serve_forever starts in this thread, or ends: see the top of the file.
 * Only the serving loop's thread changes, and only while it serves. */
static void pool_loop_begin(ss_server *s)
{
    state(s)->batched = !s->options.keep_sched_policy &&
                        ss__sched_batch_begin();
}

static void pool_loop_end(ss_server *s)
{
    pool *p = state(s);

    if (p->batched)
        ss__sched_batch_end();
    p->batched = false;
}

static bool pool_accepting(ss_server *s)
{
    pool *p = state(s);

    return atomic_load_explicit(&p->queued, memory_order_relaxed) < p->limit;
}

static void stop(pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    while (p->idle)
        wake(pick_one(p));      /* under the lock: shutdown is not hot */
    pthread_cond_broadcast(&p->nonfull);
    pthread_mutex_unlock(&p->lock);
}

/* close_timeout passed: end the queued requests unserved (their clients
 * see the connection closed) and wake handlers blocked on idle clients. */
static void abandon(ss_server *s, pool *p)
{
    ss_request *r, *next;

    pthread_mutex_lock(&p->lock);
    r = p->head;
    p->head = p->tail = NULL;
    atomic_store(&p->queued, 0);
    pthread_mutex_unlock(&p->lock);
    for (; r; r = next) {
        next = r->next;
        ss__end_request(s, r);
    }
    ss__registry_shutdown_all(s, SHUT_RDWR);
}

static void wait_drained(ss_server *s, pool *p, double seconds)
{
    struct timespec until;
    bool late = false;

    ss__abstime(&until, CLOCK_MONOTONIC, seconds);
    pthread_mutex_lock(&p->lock);
    while ((p->head || p->busy) && !late)
        late = pthread_cond_timedwait(&p->progress, &p->lock, &until) ==
               ETIMEDOUT;
    late = p->head || p->busy;
    pthread_mutex_unlock(&p->lock);
    if (late)
        abandon(s, p);
}

static void join_workers(pool *p)
{
    while (p->started > 0)
        pthread_join(p->w[--p->started].thread, NULL);
}

/* Serve what is queued (or abandon it after close_timeout), then join. */
static void drain_and_join(ss_server *s)
{
    pool *p = state(s);

    if (s->options.close_timeout > 0)
        wait_drained(s, p, s->options.close_timeout);
    join_workers(p);
}

static void pool_server_close(ss_server *s)
{
    stop(state(s));
    ss__close_and_wait(s, drain_and_join);
}

static int pool_active(const ss_server *s)
{
    pool *p = state(s);
    int n;

    pthread_mutex_lock(&p->lock);
    n = (int)(p->busy + atomic_load(&p->queued));
    pthread_mutex_unlock(&p->lock);
    return n;
}

static void pool_free(pool *p)
{
    unsigned i;

    for (i = 0; i < p->workers; i++)
        sem_destroy(&p->w[i].wake);
    pthread_attr_destroy(&p->attr);
    pthread_cond_destroy(&p->progress);
    pthread_cond_destroy(&p->nonfull);
    pthread_mutex_destroy(&p->lock);
    free(p->w);
    free(p);
}

/* As threading_destroy: what is still queued or running gets
 * close_timeout, then is cut short, before the workers are joined. */
static void pool_destroy(ss_server *s)
{
    pool *p = state(s);

    stop(p);
    wait_drained(s, p, ss__free_timeout(s));
    join_workers(p);
    pool_free(p);
}

static const ss_server_ops pool_ops = {
    .process_request = pool_process_request,
    .server_close    = pool_server_close,
};

static const ss__model pool_model = {
    .name = "thread pool",
    .ops = &pool_ops,
    .active = pool_active,
    .accepting = pool_accepting,
    .batch_end = pool_batch_end,
    .loop_begin = pool_loop_begin,
    .loop_end = pool_loop_end,
    .destroy = pool_destroy,
    .same_process = true,
};

int ss_server_use_thread_pool(ss_server *s, unsigned workers,
                              unsigned queue_limit)
{
    pool *p;
    unsigned i;
    int err;

    if (!s || workers == 0)
        return -EINVAL;
    if (!(p = calloc(1, sizeof *p)) ||
        !(p->w = calloc(workers, sizeof *p->w))) {
        free(p);
        return -ENOMEM;
    }
    p->workers = workers;
    p->limit = queue_limit ? queue_limit : workers;
    if ((err = ss__thread_attr_init(&p->attr, s->stack_size)) < 0) {
        free(p->w);
        free(p);
        return err;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->nonfull, NULL);
    ss__cond_init_monotonic(&p->progress);
    for (i = 0; i < workers; i++)
        sem_init(&p->w[i].wake, 0, 0);
    atomic_init(&p->queued, 0);
    if ((err = ss__server_set_model(s, &pool_model, p)) < 0)
        pool_free(p);
    return err;
}
