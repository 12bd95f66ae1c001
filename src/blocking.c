/*
 * ss_run_blocking's threads: a task hands a call to one of them and parks;
 * the thread runs it and posts the result back to the task's loop, which
 * meanwhile serves other requests. Threads start as calls need them, up to
 * the pool's size, and stay until the server is freed.
 *
 * A call cannot be interrupted (it may hold a lock, or be half-way through
 * a write): the task waits for it whatever happens, drains included.
 */
#include "runtime.h"

#include <stdlib.h>

typedef struct job {
    int        (*fn)(void *);
    void        *arg;
    int          result;
    ss__task    *task;
    ss__post     post;          /* back to the task's loop */
    struct job  *next;
} job;

struct ss__blocking {
    pthread_mutex_t lock;
    pthread_cond_t  work;
    job            *head, *tail;
    unsigned        max, started, idle, queued;
    pthread_t      *threads;
    bool            stopping;
};

ss__blocking *ss__blocking_new(unsigned threads)
{
    ss__blocking *b = calloc(1, sizeof *b);

    if (!b || !(b->threads = calloc(threads, sizeof *b->threads))) {
        free(b);
        return NULL;
    }
    b->max = threads;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->work, NULL);
    return b;
}

/* On the task's loop: the call is done. */
static void finished(ss__loop *l, ss__post *p)
{
    job *j = (job *)((char *)p - offsetof(job, post));

    (void)l;
    ss__task_wake(j->task, 0);
}

static void *worker(void *arg)
{
    ss__blocking *b = arg;
    job *j;

    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->head && !b->stopping)
            pthread_cond_wait(&b->work, &b->lock);
        if (!b->head)
            break;
        j = b->head;
        if (!(b->head = j->next))
            b->tail = NULL;
        b->queued--;
        b->idle--;
        pthread_mutex_unlock(&b->lock);
        j->result = j->fn(j->arg);
        j->post.fn = finished;
        ss__loop_post(j->task->loop, &j->post);
        pthread_mutex_lock(&b->lock);
        b->idle++;
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* Lock held. A thread for the call about to be queued, unless an idle
 * one is left for it. */
static int start_thread(ss__blocking *b)
{
    int rc;

    if (b->idle > b->queued || b->started == b->max)
        return b->started > 0 ? 0 : -EAGAIN;
    rc = ss__thread_create(&b->threads[b->started], NULL, worker, b);
    if (rc != 0)
        return b->started > 0 ? 0 : -rc;
    b->started++;
    b->idle++;
    return 0;
}

int ss__blocking_run(ss__blocking *b, ss__task *t, int (*fn)(void *),
                     void *arg)
{
    job j = {.fn = fn, .arg = arg, .task = t};
    int err;

    pthread_mutex_lock(&b->lock);
    if ((err = start_thread(b)) < 0) {
        pthread_mutex_unlock(&b->lock);
        return err == -EAGAIN || err == -ENOMEM ? -EAGAIN : err;
    }
    if (b->tail)
        b->tail->next = &j;
    else
        b->head = &j;
    b->tail = &j;
    b->queued++;
    pthread_cond_signal(&b->work);
    pthread_mutex_unlock(&b->lock);
    t->uncancellable = true;
    while (ss__task_park(t, NULL, -1, 0) != 0)
        ;       /* only the call's end wakes it with 0 */
    t->uncancellable = false;
    return j.result;
}

void ss__blocking_free(ss__blocking *b)
{
    unsigned i;

    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->lock);
    for (i = 0; i < b->started; i++)
        pthread_join(b->threads[i], NULL);
    pthread_cond_destroy(&b->work);
    pthread_mutex_destroy(&b->lock);
    free(b->threads);
    free(b);
}

void ss__blocking_forked(ss__blocking *b)
{
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->work, NULL);
    b->head = b->tail = NULL;
    b->started = b->idle = b->queued = 0;
    b->stopping = false;
}
