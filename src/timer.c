/*
 * Deadlines: a binary min-heap of timers. Handler timeouts, ss_sleep and
 * drains of a loop all live in one heap, whose first entry bounds the
 * loop's wait. Each timer knows its place, so moving or removing one (a
 * wait that ended before its deadline) is O(log n).
 */
#include "runtime.h"

#include <stdlib.h>

static void place(ss__timers *h, unsigned i, ss__timer *t)
{
    h->heap[i] = t;
    t->index = i;
}

static void sift_up(ss__timers *h, unsigned i)
{
    ss__timer *t = h->heap[i];

    while (i > 0) {
        unsigned parent = (i - 1) / 2;

        if (h->heap[parent]->when <= t->when)
            break;
        place(h, i, h->heap[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(ss__timers *h, unsigned i)
{
    ss__timer *t = h->heap[i];

    for (;;) {
        unsigned c = 2 * i + 1;

        if (c >= h->count)
            break;
        if (c + 1 < h->count && h->heap[c + 1]->when < h->heap[c]->when)
            c++;
        if (t->when <= h->heap[c]->when)
            break;
        place(h, i, h->heap[c]);
        i = c;
    }
    place(h, i, t);
}

int ss__timers_add(ss__timers *h, ss__timer *t, int64_t when)
{
    if (ss__timer_armed(t)) {
        int64_t old = t->when;

        t->when = when;
        if (when < old)
            sift_up(h, t->index);
        else
            sift_down(h, t->index);
        return 0;
    }
    if (h->count == h->cap) {
        unsigned cap = h->cap ? h->cap * 2 : 64;
        ss__timer **p = realloc(h->heap, cap * sizeof *p);

        if (!p)
            return -ENOMEM;
        h->heap = p;
        h->cap = cap;
    }
    t->when = when;
    place(h, h->count++, t);
    sift_up(h, t->index);
    return 0;
}

void ss__timers_remove(ss__timers *h, ss__timer *t)
{
    unsigned i = t->index;
    ss__timer *last;

    if (!ss__timer_armed(t))
        return;
    t->index = SS__TIMER_IDLE;
    last = h->heap[--h->count];
    if (i == h->count)
        return;
    place(h, i, last);
    if (i > 0 && h->heap[(i - 1) / 2]->when > last->when)
        sift_up(h, i);
    else
        sift_down(h, i);
}

void ss__timers_free(ss__timers *h)
{
    free(h->heap);
    h->heap = NULL;
    h->count = h->cap = 0;
}
