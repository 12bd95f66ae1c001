/*
 * Internal declarations shared by the library's files. Nothing here is part
 * of the ABI: the shared library is built with hidden visibility and only
 * SS_EXTERN declarations of sockserver.h are exported.
 *
 * Layering, bottom to top (a file includes nothing above it):
 *   error.c, wakeup.c, sock.c, proc.c,    errors, wake-up fd, platform calls
 *   sched.c
 *   coro.c, switch_*.S, stack.c, timer.c  the async runtime: coroutines,
 *   poller_*.c, loop.c                    stacks, deadlines, event loop
 *                                         (runtime.h)
 *   address.c, registry.c, wait.c         addresses, live requests, the one
 *                                         place request I/O waits
 *   request.c                             rfile / wfile / recv / send
 *   server.c                              the pipeline and serving loop
 *   activation.c                          inherited sockets the
 *                                         constructors adopt (fd:N,
 *                                         systemd); address.c asks it only
 *                                         whether a text names one
 *   stream.c, datagram.c, unix.c          the server types
 *   threading.c, forking.c, pool.c,       the concurrency models
 *   async.c, blocking.c, prefork.c,       and the public constructors
 *   signals.c, servers.c
 */
#ifndef SS_INTERNAL_H
#define SS_INTERNAL_H

#include "sockserver.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* ---- sanitizers ----------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define SS__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SS__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SS__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SS__TSAN 1
#endif
#endif
#ifndef SS__ASAN
#define SS__ASAN 0
#endif
#ifndef SS__TSAN
#define SS__TSAN 0
#endif

/* ---- errors (error.c) -------------------------------------------------- */

/* Forget the thread's last error message. */
void ss__clear_error(void);
/* Set the thread's last error message. */
void ss__set_error(const char *fmt, ...) SS__PRINTF(1, 2);
/* Set "<formatted>: <strerror(err)>" as the last error and return err
 * (a negative errno). */
int ss__error(int err, const char *fmt, ...) SS__PRINTF(2, 3);
/* A line (or lines) of the library's: to options.log, one call per line,
 * when the server has one; else to stderr in a single write(2) so lines
 * from several threads or processes do not interleave. s may be NULL. */
void ss__log(const ss_server *s, const char *fmt, ...) SS__PRINTF(2, 3);

/* An absolute time `seconds` from now on `clock`, for timed waits. */
void ss__abstime(struct timespec *ts, clockid_t clock, double seconds);
/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
int ss__cond_init_monotonic(pthread_cond_t *cond);
/* Monotonic clock, in seconds and in nanoseconds. */
double  ss__now(void);
int64_t ss__now_ns(void);
/* Milliseconds until `deadline` (a ss__now() value) for poll(2), rounded up
 * so poll never returns before the deadline; 0 once it has passed. */
int ss__ms_until(double deadline);

/* ---- wake-up descriptor (wakeup.c) -------------------------------------- */

typedef struct ss__wakeup {
    int rfd;    /* polled for POLLIN */
    int wfd;    /* written by ss__wakeup_signal; == rfd for an eventfd */
} ss__wakeup;

int  ss__wakeup_open(ss__wakeup *w);
void ss__wakeup_signal(ss__wakeup *w);    /* async-signal-safe */
void ss__wakeup_drain(ss__wakeup *w);
void ss__wakeup_close(ss__wakeup *w);

/* n rounded up to a multiple of `to`; the caller keeps n far from SIZE_MAX. */
static inline size_t ss__round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* ---- platform socket calls (sock.c) ------------------------------------- */

/* socket(2), close-on-exec, with SOCK_NONBLOCK when nonblock. -errno. */
int ss__socket(int family, int type, bool nonblock);
/* accept(2) a close-on-exec connection from a listener, non-blocking when
 * nonblock. -errno. */
int ss__accept(int listen_fd, ss_address *peer, bool nonblock);
/* close(2) that keeps errno. */
void ss__close(int fd);

/* ---- child processes and the library's threads (proc.c) ----------------- */

/* A descriptor that polls readable when `pid` exits (pidfd), or -errno
 * (-ENOSYS on kernels without pidfd_open). */
int ss__pidfd_open(pid_t pid);
/* In a child: be sent `sig` when the parent thread that forked it exits
 * (Linux's PR_SET_PDEATHSIG; elsewhere nothing is sent). True when the
 * parent, whose pid was `parent` before the fork, is already gone. */
bool ss__die_with_parent(pid_t parent, int sig);
/* Zeroed memory that a forked child sees as zeros again (*wiped true): fork
 * neither copies it nor write-protects the parent's pages, so the parent's
 * writes there after a fork cost no copy-on-write fault. Where the kernel
 * cannot do that, ordinary memory (*wiped false). NULL on ENOMEM. */
void *ss__map_parent_only(size_t size, bool *wiped);
void  ss__unmap_parent_only(void *p, size_t size);
/* pthread_create for the library's own threads (pool workers, handler
 * threads, loops, blocking-call workers). In the ThreadSanitizer build, in
 * a child the library forked (ss__forked), they start with the
 * asynchronous signals blocked; see proc.c. Elsewhere it is pthread_create
 * itself. */
#if SS__TSAN
/* The asynchronous signals: all but the faults a thread's own instruction
 * raises (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS), which kill the
 * process if they arrive blocked. */
void ss__async_signals(sigset_t *set);
void ss__forked(void);
int ss__thread_create(pthread_t *thread, const pthread_attr_t *attr,
                      void *(*fn)(void *), void *arg);
#else
static inline void ss__forked(void) {}
#define ss__thread_create pthread_create
#endif

/* ---- scheduling (sched.c) ---------------------------------------------- */

/* The calling thread stops preempting others when it wakes (SCHED_BATCH),
 * if its policy is the default one (SCHED_OTHER). True when it changed. */
bool ss__sched_batch_begin(void);
/* Undo ss__sched_batch_begin (call only after it returned true), or put a
 * thread that inherited SCHED_BATCH from it back to SCHED_OTHER; a policy
 * changed meanwhile (no longer SCHED_BATCH) is left alone. */
void ss__sched_batch_end(void);

/* ---- addresses (address.c) ---------------------------------------------- */

/* Parse `text` as a Unix socket path, whatever it looks like ("unix:"
 * prefix optional). */
int  ss__address_parse_unix(ss_address *out, const char *text);
bool ss__address_is_unix(const ss_address *a);
/* True for the IPv6 wildcard "::" (bound dual-stack). */
bool ss__address_is_any6(const ss_address *a);
/* An IPv4-mapped IPv6 peer ([::ffff:a.b.c.d]:port, how a dual-stack socket
 * sees an IPv4 client) becomes the IPv4 address it stands for; any other
 * address is left as it is. */
void ss__address_unmap(ss_address *a);
/* The address to reach `a` through a socket of `family`: `a` itself, or,
 * for an IPv4 `a` and an IPv6 socket, its IPv4-mapped form in *tmp (Linux
 * takes either; other IPv6 stacks want the mapped one). */
const ss_address *ss__address_for_socket(const ss_address *a, int family,
                                         ss_address *tmp);

/* ---- inherited sockets (activation.c) ----------------------------------- */

/* A socket named by "fd:N", "systemd" or "systemd:NAME" that fits a server
 * type, found but not yet taken over. */
typedef struct ss__adoption {
    int fd;                 /* -1: none */
    int fd_flags;           /* F_GETFD, F_GETFL as the caller left them, */
    int fl_flags;           /* put back when construction fails */
    int slot;               /* the systemd socket reserved for it, or -1 */
} ss__adoption;

/* Does `text` name a socket ("fd:N", "systemd", "systemd:NAME") rather
 * than an address? */
bool ss__activation_is_ref(const char *text);

struct ss__type;
/* Find the socket `text` names for a server of `type` and check that it
 * fits (family, type, listening or bound and unconnected), changing
 * nothing; a systemd socket is reserved. 0 with *out and *address (the
 * socket's own), or -EINVAL, -EBADF, ... with the message. */
int  ss__activation_find(const struct ss__type *type, const char *text,
                         ss__adoption *out, ss_address *address);
/* Give back what ss__activation_find reserved (nothing was adopted). */
void ss__activation_cancel(ss__adoption *a);

/* The server takes the socket over (server.c, before anything can fail). */
void ss__activation_adopt(ss_server *s, const ss__adoption *a);
/* server_bind of an adopted socket: no bind(2), the real address only. */
int  ss__activation_bind(ss_server *s);
/* server_activate of an adopted socket: listening already? */
bool ss__activation_listening(const ss_server *s);
/* The last step of a construction: non-blocking and close-on-exec, like
 * the library's own server sockets. 0 or -errno (flags given back). */
int  ss__activation_finish(ss_server *s);
/* A construction failed: the descriptor is the caller's again, open, with
 * its flags as they were; the reservation is given back. No-op for a
 * server that adopted nothing. */
void ss__activation_disown(ss_server *s);

/* ---- accept pauses (server.c) ------------------------------------------- */

/* The back-off of a serving loop whose get_request ran out of descriptors
 * or memory (a thread model's loop, each async loop). */
typedef struct ss__backoff {
    double   delay;         /* current pause, s; 0 after a success */
    double   resume;        /* ss__now() when to accept again; 0: now */
    double   last;          /* the latest failure */
    unsigned failures;      /* in this pause; 0 when not paused */
} ss__backoff;

/* ---- server types, models ----------------------------------------------- */

typedef struct ss__type {
    const char          *name;      /* "tcp_server", for messages */
    int                  socktype;  /* SOCK_STREAM or SOCK_DGRAM */
    bool                 unix_family;
    const ss_server_ops *ops;
} ss__type;

extern const ss__type ss__tcp_type;
extern const ss__type ss__udp_type;
extern const ss__type ss__unix_stream_type;
extern const ss__type ss__unix_datagram_type;

typedef struct ss__model {
    const char          *name;      /* "threading", for messages */
    const ss_server_ops *ops;       /* the entries the mix-in replaces */
    int  (*active)(const ss_server *s);     /* handlers tracked */
    bool (*accepting)(ss_server *s);        /* may the loop take a request
                                               now? NULL = always */
    void (*batch_end)(ss_server *s);        /* the loop took what was ready
                                               and is about to sleep: start
                                               the work queued. NULL = none */
    void (*loop_begin)(ss_server *s);       /* ss_serve_forever starts (or */
    void (*loop_end)(ss_server *s);         /* ends) in this thread. NULL =
                                               nothing to do */
    void (*destroy)(ss_server *s);          /* free model_state */
    /* Request memory (request.c). alloc: `size` zeroed bytes, or NULL for
     * calloc's; release: true when `mem` is the model's own and it keeps
     * it, false to have it freed (calloc'ed). NULL = none. */
    void *(*request_alloc)(ss_server *s, size_t size);
    bool  (*request_release)(ss_server *s, void *mem);
    bool same_process;              /* handlers run in this process, so
                                       ss_server_broadcast can reach them */
    bool nonblocking;               /* connections are accepted
                                       non-blocking (async) */
    /* A request was allocated (in the thread that accepted it). NULL =
     * nothing to do. */
    void (*request_init)(ss_server *s, ss_request *r);
    /* Models that own the serving loop (async): ss_serve_forever,
     * ss_server_run_once, ss_server_loop_fd, ss_server_broadcast. NULL =
     * the library's own (server.c). */
    int  (*serve)(ss_server *s, double poll_interval);
    int  (*run_once)(ss_server *s, double timeout);
    int  (*loop_fd)(const ss_server *s);
    int  (*broadcast)(ss_server *s, const void *buf, size_t len,
                      const ss_request *except);
    /* In a prefork worker, just forked: drop what belongs to the parent
     * process (threads do not survive fork). NULL = nothing. */
    void (*forked)(ss_server *s);
} ss__model;

/* Thread attributes with the given stack size (threading and pool). */
int ss__thread_attr_init(pthread_attr_t *attr, size_t stack_size);

/* Install `model` with its state; -EBUSY if serving or a model is set. */
int ss__server_set_model(ss_server *s, const ss__model *model, void *state);
/* A process layer over the model (prefork): its hooks go over the model's
 * (s->inner is what they call next), its serve, run_once and loop_fd
 * replace the model's; -EBUSY if serving or a layer is set. In a process
 * that becomes one of the layer's workers, drop it: the copy of the server
 * there is a server of the inner model. */
int  ss__server_set_layer(ss_server *s, const ss__model *layer, void *state);
void ss__server_drop_layer(ss_server *s);

/* ---- the request ------------------------------------------------------- */

struct ss__loop;
struct ss__task;

struct ss_request {
    ss_server      *server;
    int             fd;             /* connection, or the server socket for
                                       datagrams; -1 once closed */
    bool            datagram;
    bool            owns_fd;        /* stream: close_request closes fd */
    bool            inline_drain;   /* a shutdown's drain (close_timeout)
                                       bounds its I/O: see ss__dispatch */
    atomic_int      refs;           /* the pipeline's, plus broadcasts' */
    pthread_mutex_t wlock;          /* serialises sends with broadcasts and
                                       protects fd against closing; only
                                       for stream requests of thread
                                       models (has_wlock) */
    bool            has_wlock;
    bool            counted;        /* in the server's active count */
    bool            admitted;       /* holds a max_connections place */
    bool            late_verify;    /* PROXY protocol: header, then
                                       verify_request, in its own context */
    bool            proxied;        /* client came from a PROXY header;
                                       peer is the proxy */
    ss_address      peer;
    unsigned long long bytes_in, bytes_out;  /* request I/O, given to the
                                       server's statistics at the end */
    bool            spare;          /* a datagram request kept for reuse
                                       (request.c) */

    /* async mode: the loop that owns the request (its I/O yields instead
     * of blocking; fd is non-blocking), the task running its handler */
    struct ss__loop *loop;
    struct ss__task *task;
    bool            watched;        /* fd registered with the poller */
    bool            wbusy;          /* a send is part-way: others wait */
    struct ss__lockwait *wwaiters;  /* tasks waiting for wbusy to clear */
    ss_address      client;

    /* registry of live requests (registry.c), under server->reg_lock */
    ss_request     *reg_prev, *reg_next;
    bool            registered;

    /* the model's queue (pool.c) */
    ss_request     *next;

    /* rfile: bytes [rpos, rend) of rbuf are buffered. For a datagram rbuf
     * is the packet itself and never refills. */
    char           *rbuf;
    size_t          rcap, rpos, rend;
    bool            rbuf_owned;
    /* wfile: stream write buffer, or the datagram reply */
    char           *wbuf;
    size_t          wcap, wlen;

    /* timeouts applied to the socket (wait.c) */
    double          timeout;        /* handler timeout, 0 = none */
    bool            timeo_dirty;    /* SO_RCVTIMEO/SO_SNDTIMEO differ from
                                       timeout (after EINTR or a drain) */

    atomic_bool     forced;         /* the server cut it short during a
                                       shutdown: its error is not reported */

    /* what failed, for handle_error: "handle", "setup", "fork", ... */
    const char     *what;
    int             pending_error;  /* set by get_request: finish_request
                                       reports it instead of handling */

    void           *state;          /* handler state_size bytes */
    max_align_t     data[];         /* state, then the packet */
};

/* Allocate a request with `extra` bytes after the state (for a packet).
 * NULL on ENOMEM. refs = 1. */
ss_request *ss__request_new(ss_server *s, int fd, size_t extra);
/* Release the datagram requests kept for reuse (ss_server_free). */
void ss__request_spares_free(ss_server *s);
/* Bytes a request with `extra` bytes after its state takes. */
size_t ss__request_size(const ss_server *s, size_t extra);
void ss__request_ref(ss_request *r);
/* Drop a reference; the last one closes what is still open and frees. */
void ss__request_unref(ss_request *r);
/* Close the connection: unregister, then close fd under wlock. Idempotent. */
void ss__request_close_fd(ss_request *r);
/* PROXY protocol: read the header (waiting `timeout` s at most) into the
 * read buffer, leave what follows it there for the handler, and make the
 * client address the one it carries. 0, -EPROTO or -ETIMEDOUT. */
int  ss__request_read_proxy(ss_request *r, double timeout);
/* Before setup: apply the handler timeout and TCP_NODELAY. */
int  ss__request_begin(ss_request *r);
/* After finish: flush the stream buffer, or send the datagram reply. */
int  ss__request_end_io(ss_request *r);

/* ---- the one wait point (wait.c) ---------------------------------------- */

/* One call's sending (ss_sendall, ss_write, ss_flush): one handler timeout
 * in all, as for Python's sendall, however many partial sends and buffers
 * it takes. Zero-initialised per call. */
typedef struct ss__sending {
    double start;   /* when the call first sent (ss__now); 0 = not yet */
    bool   more;    /* something was sent already: only the rest is left */
} ss__sending;

/* Receive into buf, waiting as the handler timeout and a drain allow: >0,
 * 0 at EOF, or -errno (-ETIMEDOUT, -ESHUTDOWN). */
ssize_t ss__io_recv(ss_request *r, void *buf, size_t len);
/* Wait until the connection is readable, `timeout` seconds at most (< 0:
 * no limit) or until a drain ends: 1, 0 on timeout, or -errno. */
int     ss__io_wait_readable(ss_request *r, double timeout);
/* Send every byte of buf on a stream request, as part of the call x: 0 or
 * -errno. Sends to one connection never interleave (broadcasts). */
int     ss__io_sendall(ss_request *r, const void *buf, size_t len,
                       ss__sending *x);
/* Send buf as one datagram to the request's client: 0 or -errno. */
int     ss__io_sendto(ss_request *r, const void *buf, size_t len);
/* ss_server_broadcast's send to one receiver: all of buf before
 * `deadline` (ss__now), or its connection is shut down. 0 or -errno. */
int     ss__io_broadcast_one(ss_request *r, const void *buf, size_t len,
                             double deadline);
/* Set SO_RCVTIMEO and SO_SNDTIMEO (seconds <= 0: none); 0 or -errno with
 * errno set. */
int     ss__io_set_timeout(int fd, double seconds);
/* Wait until fd is ready for `events` or the monotonic `deadline` (<0 = no
 * deadline) passes: 0 ready, -ETIMEDOUT, or -errno. Blocks the thread. */
int     ss__io_poll(int fd, short events, double deadline);

/* ---- registry of live requests (registry.c) ----------------------------- */

void ss__registry_add(ss_server *s, ss_request *r);
void ss__registry_remove(ss_server *s, ss_request *r);
/* shutdown(2) every live connection with `how`, marking each as forced;
 * returns how many. */
int  ss__registry_shutdown_all(ss_server *s, int how);
/* References to every live stream request but `except`; *out is malloc'ed,
 * the caller unrefs each and frees the array. Returns the count or -ENOMEM. */
int  ss__registry_snapshot(ss_server *s, const ss_request *except,
                           ss_request ***out);

/* ---- the server -------------------------------------------------------- */

struct ss_server {
    ss_server_ops        ops;           /* in effect: base + overrides */
    ss_server_ops        base;          /* type, then model */
    ss_server_ops        overrides;     /* the user's; NULL entries = none */
    const ss__type      *type;
    const ss__model     *model;         /* NULL = synchronous */
    void                *model_state;
    ss_server_ops        inner;         /* type, then model: what a layer's
                                           hooks call next */
    const ss__model     *layer;         /* a process layer over the model
                                           (prefork); NULL = none */
    void                *layer_state;
    bool                 drain_all;     /* every request's I/O is bounded
                                           by a shutdown's drain (a prefork
                                           worker: its parent kills it) */

    ss_handler           handler;
    ss_server_options    options;
    double               timeout;       /* effective handle_request timeout */
    size_t               max_packet_size;
    size_t               stack_size;

    atomic_int           fd;            /* listening/receiving socket */
    ss_address           address;       /* after bind: the real one */
    bool                 bound, activated;
    atomic_bool          closed;

    /* an inherited socket ("fd:N", "systemd"): never bound, never
     * unlinked; given back when construction fails */
    bool                 adopted;
    ss__adoption         adoption;

    /* a Unix socket file this server created, removed by server_close */
    char                *unix_path;
    dev_t                unix_dev;
    ino_t                unix_ino;
    pid_t                owner_pid;     /* only the creating process unlinks */
    ino_t                sock_ino;      /* the server socket's, see
                                           ss_server_free */

    /* serving and shutdown */
    ss__wakeup           wake;
    atomic_int           shutdown_request;  /* sticky until serve_forever
                                               consumes it */
    atomic_llong         drain_deadline_ns; /* when a shutdown with a
                                               close_timeout began; 0 none */
    pthread_mutex_t      lock;
    pthread_cond_t       cond;          /* signalled when serving ends */
    bool                 serving;       /* under lock */
    pthread_t            serving_thread;
    atomic_bool          started;       /* served or handled once: mix-ins
                                           may no longer be applied */

    /* accept back-off after EMFILE and the like */
    ss__backoff          backoff;

    /* live requests */
    pthread_mutex_t      reg_lock;
    ss_request          *reg_head;
    int                  reg_count;

    char                *scratch;       /* datagram receive buffer */
#define SS__SPARES 4
    _Atomic(ss_request *) spares[SS__SPARES];   /* finished datagram
                                                   requests, for reuse */

    /* statistics and max_connections (stats.c) */
    struct ss__stats    *stats;         /* shared memory */
    atomic_uint         *worker_slot;   /* a prefork worker's live count */
    atomic_uint          admitted;      /* places of max_connections taken */
    atomic_bool          at_limit;      /* accepting stopped for want of
                                           one: counted as a pause once */
};

/* ---- statistics and max_connections (stats.c) ------------------------------ */

typedef enum ss__stat {
    SS__STAT_ACCEPTED, SS__STAT_REFUSED, SS__STAT_FAILED, SS__STAT_PAUSES
} ss__stat;

/* The counters, in memory that forked processes share: 0 or -ENOMEM. */
int  ss__stats_open(ss_server *s);
void ss__stats_close(ss_server *s);
/* Room for a live count per prefork worker; in worker `index`, count its
 * requests there too; when a worker died, take its live ones off. */
int  ss__stats_prefork(ss_server *s, unsigned workers);
void ss__stats_worker(ss_server *s, unsigned index);
void ss__stats_worker_died(ss_server *s, unsigned index);
void ss__stats_count(ss_server *s, ss__stat which);
/* A request begins (live) and ends (its bytes, its place given back). */
void ss__stats_request_begin(ss_server *s, ss_request *r);
void ss__stats_request_end(ss_server *s, ss_request *r);
/* max_connections: take a place before accepting a stream request (false
 * at the limit: accepting stops, counted as a pause), give it back when
 * get_request produced nothing, or when the request ends (which wakes the
 * serving loop if it stopped). Without a limit they cost a branch. */
bool ss__admission_take(ss_server *s);
void ss__admission_undo(ss_server *s);
void ss__admission_end(ss_server *s);
/* At the limit (the serving loop stops polling the listener; counted as a
 * pause once)? */
bool ss__admission_full(ss_server *s);
/* Peak active: at least `now`. */
void ss__stats_peak(ss_server *s, unsigned now);

/* The pipeline (server.c). */
/* verify, process, and on failure handle_error + shutdown_request: Python's
 * _handle_request_noblock after get_request. Returns 0 or SS_ABORT. */
int  ss__dispatch(ss_server *s, ss_request *r);
/* shutdown_request, then drop the pipeline's reference. */
void ss__end_request(ss_server *s, ss_request *r);
/* finish_request, then handle_error when it failed (not for SS_ABORT or a
 * request the server cut short). Returns the status (0, SS_ABORT, error). */
int  ss__finish_and_report(ss_server *s, ss_request *r);
/* ss__finish_and_report + ss__end_request: what a handler thread runs. */
int  ss__run_request(ss_server *s, ss_request *r);
/* Accepting failed for want of resources: pause it (the first failure of
 * a pause logs a line and counts a pause). After a request was accepted:
 * a pause that has seen no failure for a while ends, with a line saying
 * how many it saw (call only while b->failures). */
void ss__backoff_failed(ss_server *s, ss__backoff *b, int err);
void ss__backoff_succeeded(ss_server *s, ss__backoff *b);
/* Call the handle_error hook, counting it. */
void ss__report(ss_server *s, ss_request *r, int err);
/* Default handle_error text to stderr. */
void ss__print_error(ss_server *s, ss_request *r, const ss_address *client,
                     int err);
/* Wait on cond (lock held) until done(arg). After close_timeout, shut the
 * live connections down once so handlers blocked on idle clients return,
 * then wait for the rest. Without a close_timeout, simply wait. */
void ss__drain_wait(ss_server *s, pthread_cond_t *cond, pthread_mutex_t *lock,
                    bool (*done)(void *), void *arg);
/* The same with the cut after `seconds`: at once when 0, never when < 0.
 * ss_server_free's wait (a model's destroy), which cannot wait for ever. */
void ss__drain_wait_for(ss_server *s, pthread_cond_t *cond,
                        pthread_mutex_t *lock, bool (*done)(void *),
                        void *arg, double seconds);
/* How long ss_server_free gives handlers still running: close_timeout,
 * or none (their connections are shut down at once) when it is 0. */
static inline double ss__free_timeout(const ss_server *s)
{
    return s->options.close_timeout > 0 ? s->options.close_timeout : 0;
}
/* A model's server_close: close the server socket, then wait(s) for the
 * handlers unless no_block_on_close. A datagram server's handlers reply
 * through its socket, so there the wait comes first, always. */
void ss__close_and_wait(ss_server *s, void (*wait)(ss_server *s));
/* Mark the server as serving in this thread: 0, or -EBUSY, -EBADF; or 1
 * when a shutdown requested before serving began was followed by close:
 * the request is consumed and there is nothing to serve (serve_forever
 * returns 0). And undo it, consuming the shutdown request and waking
 * ss_server_shutdown callers. */
int  ss__begin_serving(ss_server *s);
void ss__end_serving(ss_server *s);
/* What a failed get_request means for a serving loop: try again at the
 * next readiness, pause accepting for a while (out of descriptors or
 * memory), stop serving, or log it and go on. */
typedef enum ss__get_error {
    SS__GET_RETRY, SS__GET_PAUSE, SS__GET_FATAL, SS__GET_LOG
} ss__get_error;
ss__get_error ss__get_request_error(int err);
/* The serving loop proper (prefork workers run it too). */
int  ss__serve_loop(ss_server *s, double poll_interval);
/* The loop of the server's model: its own (async) or ss__serve_loop. */
int  ss__model_serve(ss_server *s, double poll_interval);
/* When a broadcast gives up on a receiver: the handler timeout from now,
 * 1 s when there is none. */
static inline double ss__broadcast_deadline(const ss_server *s)
{
    return ss__now() + (s->handler.timeout > 0 ? s->handler.timeout : 1.0);
}
/* Shared base hooks. */
int  ss__base_process_request(ss_server *s, ss_request *r,
                              const ss_address *client);
int  ss__base_finish_request(ss_server *s, ss_request *r,
                             const ss_address *client);
bool ss__base_verify_request(ss_server *s, ss_request *r,
                             const ss_address *client);
void ss__base_handle_error(ss_server *s, ss_request *r,
                           const ss_address *client, int err);
void ss__base_nothing(ss_server *s);
/* True once a shutdown was requested and not yet consumed. */
bool ss__shutdown_requested(const ss_server *s);
/* Seconds left for running handlers after a shutdown with a close_timeout:
 * < 0 when there is no drain, 0 once it is over. */
double ss__drain_left(const ss_server *s);

/* Stream type hooks that datagram and Unix servers reuse (stream.c). */
int  ss__tcp_server_bind(ss_server *s);
int  ss__tcp_server_activate(ss_server *s);
int  ss__tcp_get_request(ss_server *s, ss_request **out);
void ss__tcp_shutdown_request(ss_server *s, ss_request *r);
void ss__tcp_close_request(ss_server *s, ss_request *r);
void ss__tcp_server_close(ss_server *s);
/* Datagram type hooks the Unix datagram server reuses (datagram.c). */
int  ss__udp_server_activate(ss_server *s);
int  ss__udp_get_request(ss_server *s, ss_request **out);
/* The request for a received datagram (peer as recvmsg filled it in):
 * 0 or -ENOMEM. */
int  ss__udp_request(ss_server *s, const void *packet, size_t len,
                     ss_address *peer, bool truncated, ss_request **out);
void ss__udp_shutdown_request(ss_server *s, ss_request *r);
void ss__udp_close_request(ss_server *s, ss_request *r);
/* Close the server socket (no unlink). */
void ss__server_close_socket(ss_server *s);


/* Signals (signals.c). */
/* In a prefork worker: SIGTERM asks the worker's loop to shut down; SIGINT
 * is left to the parent when it handles it. */
int  ss__signals_in_worker(ss_server *s);
/* The server is being freed: if SIGINT and SIGTERM shut it down, they no
 * longer do (the handlers from before ss_server_shutdown_on_signals). */
void ss__signals_forget(ss_server *s);

/* Whether every handler runs in this process (ss_server_broadcast). */
static inline bool ss__same_process(const ss_server *s)
{
    return (!s->model || s->model->same_process) &&
           (!s->layer || s->layer->same_process);
}

/* Constructors' common part (server.c). */
ss_server *ss__server_new(const ss__type *type, const char *func,
                          const char *address, const ss_handler *handler,
                          const ss_server_options *options);

static inline const char *ss__type_name(const ss_server *s)
{
    return s->type->name;
}

#endif /* SS_INTERNAL_H */
