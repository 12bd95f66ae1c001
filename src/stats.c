/*
 * Statistics (ss_server_get_stats) and the connection limit
 * (options.max_connections).
 *
 * The counters are one update per request, never per I/O call: a request
 * adds up its own bytes as plain fields, and gives them to the server when
 * it is freed. They live in shared anonymous memory, so that what a forked
 * child or a prefork worker counts is the parent's count too, current
 * while they serve. A prefork worker also keeps its own number of live
 * requests in a slot of its own: if it dies, the parent takes them off the
 * total.
 */
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

struct ss__stats {
    atomic_ullong accepted, refused, failed, bytes_in, bytes_out, pauses;
    atomic_uint   active, peak;
    unsigned      slots;            /* prefork workers */
    atomic_uint   worker_active[];  /* live requests of each worker */
};

static size_t stats_size(unsigned slots)
{
    return sizeof(struct ss__stats) + slots * sizeof(atomic_uint);
}

static struct ss__stats *map_stats(unsigned slots)
{
    struct ss__stats *st = mmap(NULL, stats_size(slots),
                                PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (st == MAP_FAILED)
        return NULL;
    st->slots = slots;      /* the rest is zero, as mmap gives it */
    return st;
}

int ss__stats_open(ss_server *s)
{
    return (s->stats = map_stats(0)) ? 0 : -ENOMEM;
}

void ss__stats_close(ss_server *s)
{
    if (s->stats)
        (void)munmap(s->stats, stats_size(s->stats->slots));
    s->stats = NULL;
}

int ss__stats_prefork(ss_server *s, unsigned workers)
{
    struct ss__stats *st = map_stats(workers);

    if (!st)
        return -ENOMEM;
    ss__stats_close(s);     /* nothing has been counted before serving */
    s->stats = st;
    return 0;
}

void ss__stats_worker(ss_server *s, unsigned index)
{
    s->worker_slot = index < s->stats->slots
                     ? &s->stats->worker_active[index] : NULL;
}

void ss__stats_worker_died(ss_server *s, unsigned index)
{
    unsigned n;

    if (index >= s->stats->slots)
        return;
    n = atomic_exchange(&s->stats->worker_active[index], 0);
    atomic_fetch_sub(&s->stats->active, n);
}

/* The request's requests: forking's live in its children (active is the
 * number of children then), every other model's here. */
static bool counts_active(const ss_server *s)
{
    return !s->model || s->model->same_process;
}

void ss__stats_peak(ss_server *s, unsigned now)
{
    unsigned peak = atomic_load_explicit(&s->stats->peak,
                                         memory_order_relaxed);

    while (now > peak &&
           !atomic_compare_exchange_weak(&s->stats->peak, &peak, now))
        ;
}

void ss__stats_request_begin(ss_server *s, ss_request *r)
{
    struct ss__stats *st = s->stats;
    unsigned now;

    if (!counts_active(s))
        return;
    r->counted = true;
    now = atomic_fetch_add_explicit(&st->active, 1, memory_order_relaxed) + 1;
    if (s->worker_slot)
        atomic_fetch_add_explicit(s->worker_slot, 1, memory_order_relaxed);
    ss__stats_peak(s, now);
}

void ss__stats_request_end(ss_server *s, ss_request *r)
{
    struct ss__stats *st = s->stats;

    if (r->bytes_in)
        atomic_fetch_add_explicit(&st->bytes_in, r->bytes_in,
                                  memory_order_relaxed);
    if (r->bytes_out)
        atomic_fetch_add_explicit(&st->bytes_out, r->bytes_out,
                                  memory_order_relaxed);
    if (r->counted) {
        atomic_fetch_sub_explicit(&st->active, 1, memory_order_relaxed);
        if (s->worker_slot)
            atomic_fetch_sub_explicit(s->worker_slot, 1,
                                      memory_order_relaxed);
    }
    if (r->admitted)
        ss__admission_end(s);
}

void ss__stats_count(ss_server *s, ss__stat which)
{
    atomic_ullong *c = which == SS__STAT_ACCEPTED ? &s->stats->accepted
                       : which == SS__STAT_REFUSED ? &s->stats->refused
                       : which == SS__STAT_FAILED ? &s->stats->failed
                       : &s->stats->pauses;

    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

int ss_server_get_stats(const ss_server *s, ss_server_stats *out)
{
    const struct ss__stats *st;

    if (!s || !out || !(st = s->stats))
        return -EINVAL;
    out->accepted = atomic_load(&st->accepted);
    out->refused = atomic_load(&st->refused);
    out->failed = atomic_load(&st->failed);
    out->bytes_received = atomic_load(&st->bytes_in);
    out->bytes_sent = atomic_load(&st->bytes_out);
    out->accept_pauses = atomic_load(&st->pauses);
    if (counts_active(s)) {
        out->active = atomic_load(&st->active);
        out->peak_active = atomic_load(&st->peak);
    } else {
        out->active = (unsigned)ss_server_active_handlers(s);
        out->peak_active = atomic_load(&st->peak);
        if (out->active > out->peak_active)
            out->peak_active = out->active;
    }
    return 0;
}

/* ---- max_connections ---------------------------------------------------- */

static bool limited(const ss_server *s)
{
    return s->options.max_connections > 0 &&
           s->type->socktype == SOCK_STREAM;
}

/* A place is taken: a pause for want of one, if any, is over. */
static void admitted(ss_server *s)
{
    if (atomic_load_explicit(&s->at_limit, memory_order_relaxed))
        atomic_store(&s->at_limit, false);
}

/* No place: accepting stops, counted once per stop. */
static void at_limit(ss_server *s)
{
    if (!atomic_exchange(&s->at_limit, true))
        ss__stats_count(s, SS__STAT_PAUSES);
}

bool ss__admission_take(ss_server *s)
{
    if (!limited(s))
        return true;
    if (atomic_fetch_add(&s->admitted, 1) < s->options.max_connections) {
        admitted(s);
        return true;
    }
    atomic_fetch_sub(&s->admitted, 1);
    at_limit(s);
    return false;
}

void ss__admission_undo(ss_server *s)
{
    if (limited(s))
        atomic_fetch_sub(&s->admitted, 1);
}

/* A place is free again. Accepting may have stopped for want of one: wake
 * the serving loop (async: loop 0 tells every loop) to look. At or over
 * the limit, not only at it: a failed take holds one more for a moment. */
void ss__admission_end(ss_server *s)
{
    if (atomic_fetch_sub(&s->admitted, 1) >= s->options.max_connections)
        ss__wakeup_signal(&s->wake);
}

bool ss__admission_full(ss_server *s)
{
    if (!limited(s) ||
        atomic_load(&s->admitted) < s->options.max_connections)
        return false;
    at_limit(s);
    return true;
}
