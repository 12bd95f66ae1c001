/*
 * The server object, the request pipeline and the serving loop: Python's
 * BaseServer.
 *
 * The loop sleeps in poll() on the server socket and a wake-up descriptor,
 * so ss_server_shutdown takes effect at once instead of after the poll
 * interval (CPython's gh-88932). Shutdown is a sticky flag consumed by the
 * serving loop, plus a condition variable that tells ss_server_shutdown the
 * loop has returned.
 */
#include "internal.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SS_PACKET_SIZE_DEFAULT 8192
#define SS_STACK_SIZE_DEFAULT  (256 * 1024)
#define SS_BATCH               64    /* requests taken per poll wake-up */
#define SS_BACKOFF_MIN         0.01  /* accept back-off after EMFILE, s */
#define SS_BACKOFF_MAX         0.25
#define SS_PAUSE_QUIET         1.0   /* a pause ends after this long
                                        without a failure, s */

/* ---- hooks ------------------------------------------------------------ */

static void merge_ops(ss_server_ops *dst, const ss_server_ops *src)
{
#define SS__MERGE(f) if (src->f) dst->f = src->f
    SS__MERGE(server_bind);
    SS__MERGE(server_activate);
    SS__MERGE(get_request);
    SS__MERGE(verify_request);
    SS__MERGE(process_request);
    SS__MERGE(finish_request);
    SS__MERGE(shutdown_request);
    SS__MERGE(close_request);
    SS__MERGE(handle_error);
    SS__MERGE(handle_timeout);
    SS__MERGE(service_actions);
    SS__MERGE(server_close);
#undef SS__MERGE
}

static void rebuild_ops(ss_server *s)
{
    s->inner = *s->type->ops;
    if (s->model)
        merge_ops(&s->inner, s->model->ops);
    s->base = s->inner;
    if (s->layer)
        merge_ops(&s->base, s->layer->ops);
    s->ops = s->base;
    merge_ops(&s->ops, &s->overrides);
}

int ss_server_override(ss_server *s, const ss_server_ops *overrides)
{
    if (!s || !overrides)
        return -EINVAL;
    merge_ops(&s->overrides, overrides);
    rebuild_ops(s);
    return 0;
}

const ss_server_ops *ss_server_base_ops(const ss_server *s)
{
    return s ? &s->base : NULL;
}

const ss_server_ops *ss_server_ops_current(const ss_server *s)
{
    return s ? &s->ops : NULL;
}

int ss__server_set_model(ss_server *s, const ss__model *model, void *state)
{
    if (s->model || atomic_load(&s->started))
        return -EBUSY;
    s->model = model;
    s->model_state = state;
    rebuild_ops(s);
    return 0;
}

int ss__server_set_layer(ss_server *s, const ss__model *layer, void *state)
{
    if (s->layer || atomic_load(&s->started))
        return -EBUSY;
    s->layer = layer;
    s->layer_state = state;
    rebuild_ops(s);
    return 0;
}

void ss__server_drop_layer(ss_server *s)
{
    s->layer = NULL;
    s->layer_state = NULL;
    rebuild_ops(s);
}

/* ---- construction ------------------------------------------------------- */

/* Create the server socket; for "all interfaces" fall back from a
 * dual-stack IPv6 socket to IPv4 where IPv6 is unavailable. */
static int open_socket(ss_server *s)
{
    int fd = ss__socket(s->address.storage.ss_family, s->type->socktype, true);
    struct stat st;

    if (fd == -EAFNOSUPPORT && ss__address_is_any6(&s->address)) {
        int port = ss_address_port(&s->address);
        struct sockaddr_in *sin = (struct sockaddr_in *)&s->address.storage;

        memset(&s->address, 0, sizeof s->address);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t)port);
        s->address.len = sizeof *sin;
        fd = ss__socket(AF_INET, s->type->socktype, true);
    }
    if (fd < 0) {
        char a[SS_ADDRESS_STRLEN];

        return ss__error(fd, "socket %s",
                         ss_address_format(&s->address, a, sizeof a));
    }
    atomic_store(&s->fd, fd);
    s->sock_ino = fstat(fd, &st) == 0 ? st.st_ino : 0;
    return 0;
}

/* Whether the server's descriptor still names the socket it opened. */
static bool still_own_socket(const ss_server *s)
{
    int fd = atomic_load(&s->fd);
    struct stat st;

    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
           (s->sock_ino == 0 || st.st_ino == s->sock_ino);
}

static int check_arguments(const ss__type *type, const char *func,
                           const char *address, const ss_handler *handler,
                           ss_address *out, ss__adoption *adoption)
{
    int err;

    if (!handler)
        return ss__error(-EINVAL, "%s: no handler", func);
    if (!handler->handle)
        return ss__error(-EINVAL, "%s: handler has no handle function", func);
    /* A request holds the state after its own fields: keep the sum (and
     * its rounding) far from overflowing. */
    if (handler->state_size > SIZE_MAX / 4)
        return ss__error(-EINVAL, "%s: handler state_size %zu is too large",
                         func, handler->state_size);
    if (!address || !*address)
        return ss__error(-EINVAL, "%s: address is %s", func,
                         address ? "empty" : "NULL");
    if (ss__activation_is_ref(address))     /* "fd:N", "systemd[:NAME]" */
        err = ss__activation_find(type, address, adoption, out);
    else
        err = type->unix_family ? ss__address_parse_unix(out, address)
                                : ss_address_parse(out, address);
    if (err < 0) {
        char why[512];

        snprintf(why, sizeof why, "%s", ss_last_error());
        ss__set_error("%s: %s", func, why);
        return err;
    }
    if (!type->unix_family && ss__address_is_unix(out))
        return ss__error(-EINVAL, "%s: '%s' is a Unix socket path; use the "
                         "unix server types for it", func, address);
    return 0;
}

static ss_server *server_alloc(const ss__type *type, const ss_handler *handler,
                               const ss_server_options *options)
{
    ss_server *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->type = type;
    s->handler = *handler;
    if (options)
        s->options = *options;
    s->timeout = s->options.timeout;
    s->max_packet_size = s->options.max_packet_size
                         ? s->options.max_packet_size : SS_PACKET_SIZE_DEFAULT;
    s->stack_size = s->options.thread_stack_size
                    ? s->options.thread_stack_size : SS_STACK_SIZE_DEFAULT;
    atomic_init(&s->fd, -1);
    s->wake.rfd = s->wake.wfd = -1;
    s->owner_pid = getpid();
    pthread_mutex_init(&s->lock, NULL);
    ss__cond_init_monotonic(&s->cond);
    pthread_mutex_init(&s->reg_lock, NULL);
    rebuild_ops(s);
    return s;
}

/* The options a constructor can refuse outright. */
static int check_options(const ss__type *type, const char *func,
                         const ss_server_options *o)
{
    if (!o)
        return 0;
    if (o->proxy_protocol != 0 && o->proxy_protocol != SS_PROXY_REQUIRED)
        return ss__error(-EINVAL, "%s: proxy_protocol %d (0 or "
                         "SS_PROXY_REQUIRED)", func, o->proxy_protocol);
    if (o->proxy_protocol && type->socktype != SOCK_STREAM)
        return ss__error(-EINVAL, "%s: proxy_protocol is for stream "
                         "servers: a datagram carries no header", func);
    if (!(o->proxy_timeout >= 0))
        return ss__error(-EINVAL, "%s: proxy_timeout %g is negative", func,
                         o->proxy_timeout);
    return 0;
}

ss_server *ss__server_new(const ss__type *type, const char *func,
                          const char *address, const ss_handler *handler,
                          const ss_server_options *options)
{
    ss__adoption adoption = {.fd = -1, .slot = -1};
    ss_address addr;
    ss_server *s;
    int err;

    ss__clear_error();
    if ((err = check_options(type, func, options)) < 0 ||
        (err = check_arguments(type, func, address, handler, &addr,
                               &adoption)) < 0) {
        errno = -err;
        return NULL;
    }
    if (!(s = server_alloc(type, handler, options))) {
        ss__activation_cancel(&adoption);
        ss__error(-ENOMEM, "%s", func);
        errno = ENOMEM;
        return NULL;
    }
    s->address = addr;
    if (adoption.fd >= 0)
        ss__activation_adopt(s, &adoption);
    if ((err = ss__stats_open(s)) < 0)
        ss__error(err, "%s: statistics", func);
    if (!err && (err = ss__wakeup_open(&s->wake)) < 0)
        ss__error(err, "%s: wake-up descriptor", func);
    if (!err && type->socktype == SOCK_DGRAM &&
        !(s->scratch = malloc(s->max_packet_size)))
        err = ss__error(-ENOMEM, "%s: receive buffer", func);
    if (!err && !s->adopted)
        err = open_socket(s);
    if (!err && !s->options.defer_bind) {
        err = ss_server_bind(s);
        if (!err)
            err = ss_server_activate(s);
    }
    if (!err && s->adopted)
        err = ss__activation_finish(s);     /* once nothing else can fail */
    if (err < 0) {
        char why[512];

        /* Closing must not overwrite the reason. */
        snprintf(why, sizeof why, "%s", ss_last_error());
        ss__activation_disown(s);   /* an inherited socket stays open */
        ss_server_free(s);
        ss__set_error("%s", why);
        errno = -err;
        return NULL;
    }
    /* A failure on the way that was recovered from (a stale Unix socket
     * file replaced, say) is not this call's outcome. */
    ss__clear_error();
    return s;
}

int ss_server_bind(ss_server *s)
{
    int err;

    if (!s || atomic_load(&s->closed) || s->bound)
        return -EINVAL;
    if ((err = s->ops.server_bind(s)) == 0)
        s->bound = true;
    return err;
}

int ss_server_activate(ss_server *s)
{
    int err;

    if (!s || atomic_load(&s->closed) || !s->bound || s->activated)
        return -EINVAL;
    if ((err = s->ops.server_activate(s)) == 0)
        s->activated = true;
    return err;
}

const ss_address *ss_server_address(const ss_server *s)
{
    return s ? &s->address : NULL;
}

int ss_server_fileno(const ss_server *s)
{
    return s ? atomic_load(&s->fd) : -1;
}

void *ss_server_data(const ss_server *s)
{
    return s ? s->options.data : NULL;
}

int ss_server_active_handlers(const ss_server *s)
{
    return s && s->model && s->model->active ? s->model->active(s) : 0;
}

static void arm_drain(ss_server *s);

void ss__close_and_wait(ss_server *s, void (*wait)(ss_server *s))
{
    bool datagram = s->type->socktype == SOCK_DGRAM;

    if (!datagram)
        s->type->ops->server_close(s);  /* stop listening first, as Python */
    else
        arm_drain(s);   /* no connection to cut: bound the replies */
    if (datagram || !s->options.no_block_on_close)
        wait(s);
    if (datagram)
        s->type->ops->server_close(s);
}

void ss_server_close(ss_server *s)
{
    if (!s || atomic_exchange(&s->closed, true))
        return;
    s->ops.server_close(s);
}

void ss_server_free(ss_server *s)
{
    if (!s)
        return;
    ss__signals_forget(s);
    ss_server_close(s);
    if (s->layer && s->layer->destroy)
        s->layer->destroy(s);
    if (s->model && s->model->destroy)
        s->model->destroy(s);
    /* A server_close override that did not chain to the base one left the
     * socket (and a Unix socket file) behind: free releases them, if the
     * descriptor is still this server's socket (an override that closed it
     * itself leaves a number that may name another file by now). */
    if (!still_own_socket(s))
        atomic_store(&s->fd, -1);   /* not ours to close any more */
    if (atomic_load(&s->fd) >= 0 || s->unix_path)
        s->type->ops->server_close(s);  /* the file: only if still ours */
    ss__wakeup_close(&s->wake);
    ss__request_spares_free(s);
    ss__stats_close(s);
    free(s->scratch);
    free(s->unix_path);
    pthread_mutex_destroy(&s->reg_lock);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- the pipeline ------------------------------------------------------- */

void ss__end_request(ss_server *s, ss_request *r)
{
    s->ops.shutdown_request(s, r);
    ss__request_unref(r);
}

void ss__report(ss_server *s, ss_request *r, int err)
{
    ss__stats_count(s, SS__STAT_FAILED);
    s->ops.handle_error(s, r, &r->client, err);
}

int ss__dispatch(ss_server *s, ss_request *r)
{
    int err;

    ss__stats_count(s, SS__STAT_ACCEPTED);
    /* Behind a PROXY protocol sender, verify_request must see the real
     * client, which only the header says: both wait for the request's own
     * context (late_start). */
    if (s->options.proxy_protocol && !r->datagram) {
        r->late_verify = true;
    } else if (!s->ops.verify_request(s, r, &r->client)) {
        ss__stats_count(s, SS__STAT_REFUSED);
        ss__end_request(s, r);
        return 0;
    }
    /* A synchronous handler holds serve_forever up: a shutdown bounds its
     * I/O (wait.c). So it does a datagram reply (close waits for those
     * and cannot cut them: no connection to shut down) and any handler of
     * a prefork worker (whose parent kills it close_timeout after asking
     * it to stop). Other handler threads and children are close's to
     * drain. */
    r->inline_drain = !s->model || r->datagram || s->drain_all;
    err = s->ops.process_request(s, r, &r->client);
    if (err == 0)
        return 0;   /* the request is ended, or owned by a thread/child */
    if (err != SS_ABORT && !atomic_load(&r->forced))
        ss__report(s, r, err);
    ss__end_request(s, r);
    return err == SS_ABORT ? SS_ABORT : 0;
}

/* The start of a request behind a PROXY protocol sender, in its own
 * context: the header, then verify_request with the client it names.
 * 0 to go on, 1 when verify_request refused it (nothing to report), or
 * the header's error (-EPROTO, -ETIMEDOUT) for handle_error. */
static int late_start(ss_server *s, ss_request *r)
{
    double t = s->options.proxy_timeout;
    int err;

    r->late_verify = false;
    if ((err = ss__request_read_proxy(r, t > 0 ? t : 5.0)) < 0) {
        r->what = "PROXY protocol header";
        return err;
    }
    if (!s->ops.verify_request(s, r, &r->client)) {
        ss__stats_count(s, SS__STAT_REFUSED);
        return 1;
    }
    return 0;
}

int ss__finish_and_report(ss_server *s, ss_request *r)
{
    int err = r->late_verify ? late_start(s, r) : 0;

    if (err == 1)
        return 0;       /* refused */
    if (err == 0)
        err = s->ops.finish_request(s, r, &r->client);
    if (err != 0 && err != SS_ABORT && !atomic_load(&r->forced))
        ss__report(s, r, err);
    return err;
}

int ss__run_request(ss_server *s, ss_request *r)
{
    int err = ss__finish_and_report(s, r);

    ss__end_request(s, r);
    return err;
}

bool ss__base_verify_request(ss_server *s, ss_request *r,
                             const ss_address *client)
{
    (void)s, (void)r, (void)client;
    return true;
}

int ss__base_process_request(ss_server *s, ss_request *r,
                             const ss_address *client)
{
    int late = r->late_verify ? late_start(s, r) : 0;
    int err = late == 0 ? s->ops.finish_request(s, r, client)
              : late == 1 ? 0 : late;

    if (err != 0)
        return err;     /* the caller reports it and ends the request */
    ss__end_request(s, r);
    return 0;
}

int ss__base_finish_request(ss_server *s, ss_request *r,
                            const ss_address *client)
{
    const ss_handler *h = &s->handler;
    int err, end_err;

    if (r->pending_error)
        return r->pending_error;
    r->what = "setup";
    if ((err = ss__request_begin(r)) < 0)
        return err;
    if (h->setup && (err = h->setup(r, client, s)) != 0)
        return err;
    r->what = "handle";
    err = h->handle(r, client, s);
    if (h->finish)
        h->finish(r, client, s);
    /* As Python's finish: a final flush error on a stream is ignored; a
     * datagram reply that cannot be sent is an error of its own. */
    end_err = ss__request_end_io(r);
    if (end_err < 0 && err == 0 && r->datagram) {
        r->what = "sendto";
        err = end_err;
    }
    return err;
}

void ss__print_error(ss_server *s, ss_request *r, const ss_address *client,
                     int err)
{
    static const char rule[] = "----------------------------------------";
    char a[SS_ADDRESS_STRLEN], why[64];

    if (err < 0)
        snprintf(why, sizeof why, "%s", ss_strerror(err));
    else
        snprintf(why, sizeof why, "returned %d", err);
    ss__log(s, "%s\nException occurred during processing of request from "
            "%s\n%s: %s\n%s", rule, ss_address_format(client, a, sizeof a),
            r && r->what ? r->what : "request", why, rule);
}

void ss__base_handle_error(ss_server *s, ss_request *r,
                           const ss_address *client, int err)
{
    ss__print_error(s, r, client, err);
}

void ss__base_nothing(ss_server *s)
{
    (void)s;
}

/* ---- shutdown ------------------------------------------------------------ */

bool ss__shutdown_requested(const ss_server *s)
{
    return atomic_load_explicit(&s->shutdown_request,
                                memory_order_acquire) != 0;
}

double ss__drain_left(const ss_server *s)
{
    int64_t end = atomic_load_explicit(&s->drain_deadline_ns,
                                       memory_order_relaxed);
    int64_t now;

    if (end == 0)
        return -1;
    now = ss__now_ns();
    return end > now ? (double)(end - now) / 1e9 : 0;
}

/* Start the drain: I/O of the requests it applies to (wait.c) ends with
 * -ESHUTDOWN close_timeout from now, unless a drain already runs.
 * Async-signal-safe. */
static void arm_drain(ss_server *s)
{
    if (s->options.close_timeout > 0) {
        long long none = 0;
        long long end = (long long)ss__now_ns() +
                        (long long)(s->options.close_timeout * 1e9);

        atomic_compare_exchange_strong(&s->drain_deadline_ns, &none, end);
    }
}

void ss_server_request_shutdown(ss_server *s)
{
    if (!s)
        return;
    atomic_store_explicit(&s->shutdown_request, 1, memory_order_release);
    arm_drain(s);
    ss__wakeup_signal(&s->wake);
}

void ss__drain_wait_for(ss_server *s, pthread_cond_t *cond,
                        pthread_mutex_t *lock, bool (*done)(void *),
                        void *arg, double seconds)
{
    struct timespec until;
    bool forced = seconds < 0;      /* nothing (more) to cut short */

    if (seconds > 0)
        ss__abstime(&until, CLOCK_MONOTONIC, seconds);
    while (!done(arg)) {
        if (forced) {
            pthread_cond_wait(cond, lock);
        } else if (seconds == 0 ||
                   pthread_cond_timedwait(cond, lock, &until) == ETIMEDOUT) {
            forced = true;
            pthread_mutex_unlock(lock);
            ss__registry_shutdown_all(s, SHUT_RDWR);
            pthread_mutex_lock(lock);
        }
    }
}

void ss__drain_wait(ss_server *s, pthread_cond_t *cond, pthread_mutex_t *lock,
                    bool (*done)(void *), void *arg)
{
    double t = s->options.close_timeout;

    ss__drain_wait_for(s, cond, lock, done, arg, t > 0 ? t : -1);
}

static bool not_serving(void *arg)
{
    return !((ss_server *)arg)->serving;
}

void ss_server_shutdown(ss_server *s)
{
    if (!s)
        return;
    ss_server_request_shutdown(s);
    pthread_mutex_lock(&s->lock);
    /* A synchronous handler blocked on an idle client is given
     * close_timeout, as close gives handler threads. */
    if (s->serving && !pthread_equal(s->serving_thread, pthread_self()))
        ss__drain_wait(s, &s->cond, &s->lock, not_serving, s);
    pthread_mutex_unlock(&s->lock);
}

int ss__begin_serving(ss_server *s)
{
    int err = 0;

    pthread_mutex_lock(&s->lock);
    if (s->serving)
        err = -EBUSY;
    else if (atomic_load(&s->closed) && ss__shutdown_requested(s))
        err = 1;    /* shut down, then closed, before serving began */
    else if (atomic_load(&s->closed) || atomic_load(&s->fd) < 0 || !s->bound)
        err = -EBADF;
    if (err == 1) {
        atomic_store(&s->shutdown_request, 0);  /* consumed, as at the end */
    } else if (err == 0) {
        s->serving = true;
        s->serving_thread = pthread_self();
        atomic_store(&s->started, true);
        /* A new serving period starts without a drain, unless a sticky
         * shutdown is about to end it at once. */
        if (!ss__shutdown_requested(s))
            atomic_store(&s->drain_deadline_ns, 0);
    }
    pthread_mutex_unlock(&s->lock);
    return err;
}

void ss__end_serving(ss_server *s)
{
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->shutdown_request, 0);
    ss__wakeup_drain(&s->wake);
    s->serving = false;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* ---- the serving loop ------------------------------------------------------ */

/* accept() ran out of descriptors or memory: stop polling the listener for a
 * while (doubling up to SS_BACKOFF_MAX) instead of spinning on it. A pause
 * lasts until accepting has gone SS_PAUSE_QUIET without a failure: it is
 * logged (and counted) once, and its end says how many failures it saw,
 * so that failures that come and go do not write a line each. */
void ss__backoff_failed(ss_server *s, ss__backoff *b, int err)
{
    char a[SS_ADDRESS_STRLEN];
    double now = ss__now();

    b->delay = b->delay == 0 ? SS_BACKOFF_MIN
               : b->delay * 2 > SS_BACKOFF_MAX ? SS_BACKOFF_MAX
               : b->delay * 2;
    b->resume = now + b->delay;
    b->last = now;
    if (b->failures++ > 0)
        return;
    ss__stats_count(s, SS__STAT_PAUSES);
    ss__log(s, "libsockserver: accept on %s: %s; pausing accepts until "
            "resources are free",
            ss_address_format(&s->address, a, sizeof a), ss_strerror(err));
}

void ss__backoff_succeeded(ss_server *s, ss__backoff *b)
{
    char a[SS_ADDRESS_STRLEN];

    b->delay = 0;
    if (ss__now() - b->last < SS_PAUSE_QUIET)
        return;
    ss__log(s, "libsockserver: accept on %s: accepting again after %u "
            "failure%s", ss_address_format(&s->address, a, sizeof a),
            b->failures, b->failures == 1 ? "" : "s");
    b->failures = 0;
}

static bool can_accept(ss_server *s)
{
    if (s->backoff.resume != 0) {
        if (ss__now() < s->backoff.resume)
            return false;
        s->backoff.resume = 0;
    }
    if (ss__admission_full(s))
        return false;
    return !s->model || !s->model->accepting || s->model->accepting(s);
}

ss__get_error ss__get_request_error(int err)
{
    switch (-err) {
    case EAGAIN:
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:         /* a firewall refused the connection */
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ENONET:
    case ENOPROTOOPT:
    case ECONNREFUSED:  /* an ICMP error queued on a datagram socket */
    case ETIMEDOUT:
        return SS__GET_RETRY;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
        return SS__GET_PAUSE;
    case EBADF:
    case EINVAL:
    case ENOTSOCK:
    case EOPNOTSUPP:
        return SS__GET_FATAL;
    default:
        return SS__GET_LOG;
    }
}

/* What get_request's error means for the loop: 0 to go on polling, or a
 * fatal error that ends serve_forever. */
static int get_request_failed(ss_server *s, int err)
{
    switch (ss__get_request_error(err)) {
    case SS__GET_PAUSE:
        ss__backoff_failed(s, &s->backoff, err);
        return 0;
    case SS__GET_FATAL:
        return err;
    case SS__GET_LOG:
        ss__log(s, "libsockserver: get_request: %s", ss_strerror(err));
        return 0;
    default:
        return 0;
    }
}

/* The server socket is readable: take up to SS_BATCH requests, as long as
 * no shutdown is requested and the model has room. Returns 0, SS_ABORT or
 * a fatal error. */
static int take_batch(ss_server *s)
{
    ss_request *r;
    int i, err;

    for (i = 0; i < SS_BATCH; i++) {
        if (i > 0 && (ss__shutdown_requested(s) || !can_accept(s)))
            break;
        if (!ss__admission_take(s))
            break;      /* max_connections: a request's end wakes us */
        if ((err = s->ops.get_request(s, &r)) < 0) {
            ss__admission_undo(s);
            return get_request_failed(s, err);
        }
        r->admitted = s->options.max_connections > 0;
        if (s->backoff.failures)
            ss__backoff_succeeded(s, &s->backoff);
        /* An abort leaves at once, as an exception out of Python's
         * _handle_request_noblock skips service_actions. */
        if ((err = ss__dispatch(s, r)) != 0)
            return err;
        s->ops.service_actions(s);
    }
    return 0;
}

static void batch_end(ss_server *s)
{
    if (s->model && s->model->batch_end)
        s->model->batch_end(s);
}

/* Take the batch, then let the model start on it (the pool wakes a worker
 * only now, so that the worker does not preempt the serving thread at
 * every request of a burst when they share a core). */
static int handle_ready(ss_server *s)
{
    int err = take_batch(s);

    batch_end(s);
    return err;
}

static int poll_timeout_ms(ss_server *s, double interval, bool listening)
{
    double until = ss__now() + interval;

    if (!listening && s->backoff.resume != 0 && s->backoff.resume < until)
        until = s->backoff.resume;
    return ss__ms_until(until);
}

int ss__serve_loop(ss_server *s, double poll_interval)
{
    double interval = poll_interval > 0 ? poll_interval : 0.5;
    int err;

    if ((err = ss__begin_serving(s)) != 0)
        return err < 0 ? err : 0;
    if (s->model && s->model->loop_begin)
        s->model->loop_begin(s);
    while (!ss__shutdown_requested(s)) {
        bool listening = can_accept(s);
        struct pollfd p[2] = {
            {.fd = s->wake.rfd, .events = POLLIN},
            {.fd = atomic_load(&s->fd), .events = POLLIN},
        };
        int n = poll(p, listening ? 2 : 1,
                     poll_timeout_ms(s, interval, listening));

        if (n < 0 && errno != EINTR) {
            err = -errno;
            break;
        }
        /* bpo-35017: a shutdown during poll() wins over a ready socket. */
        if (ss__shutdown_requested(s))
            break;
        if (n > 0 && p[0].revents)
            ss__wakeup_drain(&s->wake);
        if (n > 0 && listening && p[1].revents) {
            if ((err = handle_ready(s)) != 0)
                break;
        } else {
            s->ops.service_actions(s);
        }
    }
    if (s->model && s->model->loop_end)
        s->model->loop_end(s);
    ss__end_serving(s);
    return err;
}

int ss__model_serve(ss_server *s, double poll_interval)
{
    if (s->model && s->model->serve)
        return s->model->serve(s, poll_interval);
    return ss__serve_loop(s, poll_interval);
}

int ss_serve_forever(ss_server *s, double poll_interval)
{
    if (!s)
        return -EINVAL;
    if (s->layer && s->layer->serve)
        return s->layer->serve(s, poll_interval);   /* the workers' parent */
    return ss__model_serve(s, poll_interval);
}

/* The table, layer first, whose entry f is set: who owns
 * ss_server_run_once or ss_server_loop_fd. NULL: the library's own. */
#define SS__OWNER(s, f)                                                     \
    ((s)->layer && (s)->layer->f ? (s)->layer                               \
     : (s)->model && (s)->model->f ? (s)->model : NULL)

/* At max_connections: wait for a request's end (it signals the wake-up
 * descriptor) until `deadline` (< 0: none). 0, or -ETIMEDOUT. */
static int wait_for_place(ss_server *s, double deadline)
{
    struct pollfd p = {.fd = s->wake.rfd, .events = POLLIN};

    while (ss__admission_full(s)) {
        if (deadline >= 0 && ss__now() >= deadline)
            return -ETIMEDOUT;
        if (poll(&p, 1, deadline < 0 ? -1 : ss__ms_until(deadline)) > 0)
            ss__wakeup_drain(&s->wake);
    }
    return 0;
}

/* Wait at most `timeout` (< 0: no limit) for a request and handle it:
 * 1, 0 when none came, or a negative errno (get_request failed). */
static int handle_one(ss_server *s, double timeout)
{
    double deadline = timeout < 0 ? -1 : ss__now() + timeout;
    ss_request *r;
    int n, err;

    for (;;) {
        struct pollfd p = {.fd = atomic_load(&s->fd), .events = POLLIN};

        n = poll(&p, 1, deadline < 0 ? -1 : ss__ms_until(deadline));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n <= 0) {
            if (deadline >= 0 && ss__now() >= deadline)
                return 0;
            continue;   /* EINTR, or poll rounding: wait for the rest */
        }
        if (!ss__admission_take(s)) {
            if (wait_for_place(s, deadline) < 0)
                return 0;
            continue;
        }
        err = s->ops.get_request(s, &r);
        if (err < 0)
            ss__admission_undo(s);
        if (err == -EAGAIN || err == -EINTR || err == -ECONNABORTED) {
            if (timeout == 0)
                return 0;
            continue;   /* taken by another process, or gone */
        }
        if (err < 0)
            return err;
        r->admitted = s->options.max_connections > 0;
        err = ss__dispatch(s, r);
        batch_end(s);
        return err < 0 ? err : 1;
    }
}

static int check_open(ss_server *s)
{
    if (!s)
        return -EINVAL;
    if (atomic_load(&s->closed) || atomic_load(&s->fd) < 0 || !s->bound)
        return -EBADF;
    atomic_store(&s->started, true);
    return 0;
}

int ss_handle_request(ss_server *s)
{
    double t;
    int n;

    if ((n = check_open(s)) < 0)
        return n;
    t = s->timeout > 0 ? s->timeout : -1;
    n = s->model && s->model->run_once ? s->model->run_once(s, t)
                                       : handle_one(s, t);
    if (n == 0) {
        s->ops.handle_timeout(s);
        return -ETIMEDOUT;
    }
    return n < 0 ? n : 0;
}

int ss_server_run_once(ss_server *s, double timeout)
{
    int err;
    const ss__model *m;

    if ((err = check_open(s)) < 0)
        return err;
    if ((m = SS__OWNER(s, run_once)))
        return m->run_once(s, timeout);
    return handle_one(s, timeout);
}

int ss_server_loop_fd(const ss_server *s)
{
    const ss__model *m;

    if (!s)
        return -EINVAL;
    if ((m = SS__OWNER(s, loop_fd)))
        return m->loop_fd(s);
    return atomic_load(&s->fd) >= 0 ? atomic_load(&s->fd) : -EBADF;
}

/* ---- broadcast ---------------------------------------------------------- */

int ss_server_broadcast(ss_server *s, const void *buf, size_t len,
                        const ss_request *except)
{
    ss_request **list;
    double deadline;
    int i, n, reached = 0;

    if (!s || (!buf && len))
        return -EINVAL;
    if (!ss__same_process(s))
        return -ENOTSUP;
    if (s->type->socktype != SOCK_STREAM)
        return 0;
    if (s->model && s->model->broadcast)
        return s->model->broadcast(s, buf, len, except);
    if ((n = ss__registry_snapshot(s, except, &list)) < 0)
        return n;
    deadline = ss__broadcast_deadline(s);
    for (i = 0; i < n; i++) {
        if (ss__io_broadcast_one(list[i], buf, len, deadline) == 0)
            reached++;
        ss__request_unref(list[i]);
    }
    free(list);
    return reached;
}
