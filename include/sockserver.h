/*
 * libsockserver - an embeddable server framework for C, a port of Python's
 * socketserver.
 *
 * Copyright (c) 2026 the libsockserver authors. MIT licensed; see LICENSE.
 *
 * This header is the reference manual. Read the conventions first:
 *
 * - Functions returning int return 0 (or a count) on success and a negative
 *   errno value on failure, as libuv does. They never return -1 with errno.
 *   ss_strerror() turns such a value into text.
 * - Constructors return NULL on failure, set errno (positive) and leave a
 *   message for ss_last_error() naming the operation and the input, e.g.
 *   "bind 127.0.0.1:8080: Address already in use".
 * - No function raises SIGPIPE, and every system call interrupted by a signal
 *   (EINTR) is retried internally, deadlines included.
 * - "From any thread" means the call may come from any thread, concurrently
 *   with the serving thread. Everything else must be called from one thread
 *   at a time: the thread that owns the server (or, for functions taking an
 *   ss_request, the thread running that request's handler).
 * - Every descriptor the library creates, or adopts ("fd:N", "systemd"),
 *   is close-on-exec.
 *
 * The request pipeline is Python's:
 *
 *   get_request -> verify_request -> process_request -> finish_request
 *   (setup, handle, finish) -> shutdown_request -> close_request
 *
 * and shutdown_request runs exactly once for every request get_request
 * produced, on every path: refused by verify_request, failed setup, failed
 * handle, failed process_request.
 */
#ifndef SOCKSERVER_H
#define SOCKSERVER_H

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The one export macro: the shared library is built with hidden visibility,
 * so exactly the declarations marked SS_EXTERN are its ABI. */
#if defined(__GNUC__) || defined(__clang__)
#define SS_EXTERN __attribute__((visibility("default")))
#else
#define SS_EXTERN
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SS__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SS__PRINTF(f, a)
#endif

#define SS_VERSION_MAJOR 0
#define SS_VERSION_MINOR 1
#define SS_VERSION_PATCH 0

/* ---- errors and version ---------------------------------------------- */

/* What a handler returns to stop like Python's SystemExit: the error is not
 * passed to handle_error, shutdown_request still runs, and the status
 * propagates: ss_handle_request and ss_serve_forever return SS_ABORT (the
 * synchronous server stops serving), a handler thread simply ends, a forked
 * child exits with status 1. */
#define SS_ABORT (-ECANCELED)

/* Text for a negative errno value (a positive one is accepted too). The
 * pointer stays valid until the next call in the same thread. Any thread. */
SS_EXTERN const char *ss_strerror(int err);

/* The message left by the last failing constructor or parser called in this
 * thread, "" when none. Thread-local; valid until the next library call in
 * the same thread. Any thread. */
SS_EXTERN const char *ss_last_error(void);

/* "MAJOR.MINOR.PATCH", a static string. Any thread. */
SS_EXTERN const char *ss_version(void);

/* ---- addresses ------------------------------------------------------- */

typedef struct ss_address {
    struct sockaddr_storage storage;
    socklen_t len;
} ss_address;

#define SS_ADDRESS_STRLEN 128   /* enough for any formatted address */

/* Parse an address written as
 *   "127.0.0.1:8080", "[::1]:8080"     numeric IPv4 or bracketed IPv6
 *   "localhost:8080"                   a host name, resolved now; an IPv4
 *                                      result is preferred, as Python's
 *                                      AF_INET servers do
 *   ":8080", "*:8080"                  all interfaces: "[::]:8080", which
 *                                      the servers bind dual-stack (IPv4
 *                                      clients too, whose addresses the
 *                                      handlers see as IPv4 ones, as with
 *                                      Python's ('', port)) and fall back
 *                                      to 0.0.0.0 where IPv6 is unavailable
 *   "/tmp/x.sock", "./x.sock"          a Unix socket path
 *   "unix:NAME"                        a Unix socket path NAME (any form)
 *   "@NAME", "unix:@NAME"              a Linux abstract socket name
 * Port 0 asks the kernel for a free port when the address is bound.
 * "fd:N", "systemd" and "systemd:NAME" name a socket the process was
 * given, not an address: only the server constructors take them (see
 * there), and this function refuses them with -EINVAL.
 * Returns 0, or -EINVAL (NULL or empty text, bad syntax, port not a number
 * or out of range 0-65535, a form that names a socket), -ENAMETOOLONG
 * (path longer than sun_path), -ENXIO (host name not found), -EAGAIN
 * (resolver temporarily failing). On failure ss_last_error() says what was
 * wrong. Any thread. */
SS_EXTERN int ss_address_parse(ss_address *out, const char *text);

/* Write `a` as "127.0.0.1:8080", "[::1]:8080", "/path" or "@name" into buf
 * (SS_ADDRESS_STRLEN bytes are always enough; a shorter buffer truncates)
 * and return buf. An unnamed Unix peer (a client that did not bind) is
 * written "(unnamed)". Any thread. */
SS_EXTERN const char *ss_address_format(const ss_address *a, char *buf,
                                        size_t size);

/* The port of an IPv4/IPv6 address, or -1 for a Unix address. */
SS_EXTERN int ss_address_port(const ss_address *a);

/* ---- handlers (BaseRequestHandler / StreamRequestHandler) ------------ */

typedef struct ss_server ss_server;
typedef struct ss_request ss_request;

/* A handler callback. `request` and `client_address` live from setup to
 * finish (the request is freed after shutdown_request); `server` outlives
 * every request it produced. Return 0, or non-zero for an error: a negative
 * errno value is best, as the default handle_error prints its text. */
typedef int (*ss_handle_fn)(ss_request *request,
                            const ss_address *client_address,
                            ss_server *server);

typedef struct ss_handler {
    ss_handle_fn handle;        /* required; a non-zero return is passed as
                                   `err` to the handle_error hook (SS_ABORT
                                   excepted, see above) */
    ss_handle_fn setup;         /* optional; non-zero return skips handle and
                                   finish and goes to handle_error */
    void (*finish)(ss_request *request, const ss_address *client_address,
                   ss_server *server);   /* optional; runs whenever setup
                                            succeeded, even when handle failed */
    size_t state_size;          /* bytes of zeroed per-request state, see
                                   ss_request_state() */
    double timeout;             /* seconds for each blocking I/O on the
                                   request; 0 = none
                                   (StreamRequestHandler.timeout). On expiry
                                   the I/O call returns -ETIMEDOUT. A whole
                                   ss_sendall, ss_write or ss_flush is one
                                   call, as Python's sendall: partial sends
                                   share the one timeout. */
    bool   disable_nagle_algorithm; /* set TCP_NODELAY on TCP connections */
    size_t rbufsize;            /* read buffer of ss_readline/ss_read;
                                   0 = 8192 */
    size_t wbufsize;            /* 0 = unbuffered: every ss_write is sent at
                                   once; otherwise ss_write collects up to
                                   wbufsize bytes, sent when full, by
                                   ss_flush, and after finish */
} ss_handler;

/* ---- servers ---------------------------------------------------------- */

typedef struct ss_server_options {   /* zero-initialised = defaults */
    int    request_queue_size;  /* listen backlog; 0 = SOMAXCONN (as Python
                                   3.15) */
    int    reuse_address;       /* SO_REUSEADDR: 0 = on for TCP (a restarted
                                   server can rebind at once), off otherwise;
                                   >0 on; <0 off */
    bool   reuse_port;          /* SO_REUSEPORT; TCP/UDP only (ignored for
                                   Unix sockets), as Python 3.14 */
    bool   defer_bind;          /* bind_and_activate=False: call
                                   ss_server_bind + ss_server_activate
                                   yourself (after ss_server_override, say) */
    double timeout;             /* ss_handle_request timeout, seconds;
                                   0 = none (forking servers: 300, as
                                   Python's ForkingMixIn) */
    size_t max_packet_size;     /* datagram servers; 0 = 8192. A longer
                                   datagram is reported to handle_error as
                                   -EMSGSIZE, not handled. */
    int    max_children;        /* forking; 0 = 40; a hard limit */
    bool   no_block_on_close;   /* threading/forking/pool: close does not
                                   wait for running handlers (threaded
                                   datagram handlers are still waited for:
                                   they reply through the server socket;
                                   ss_server_free waits for threads, see
                                   there) */
    double close_timeout;       /* how long close waits for running handlers
                                   before it shuts their connections down so
                                   blocked I/O returns (threading, pool, sync
                                   drain; a datagram reply still blocked
                                   fails with -ESHUTDOWN) or sends SIGTERM,
                                   then SIGKILL (forking, prefork); 0 = wait
                                   as long as they run (Python) */
    void  *data;                /* returned by ss_server_data() */
    /* Additions beyond API.md (keep zero for the defaults): */
    size_t thread_stack_size;   /* threading and pool handler threads;
                                   0 = 256 KiB (at least PTHREAD_STACK_MIN) */
    bool   keep_sched_policy;   /* pool: leave the serving thread's
                                   scheduling policy alone while it serves
                                   (see ss_server_use_thread_pool) */
    /* Deployment (API.md): */
    int    proxy_protocol;      /* 0 off; SS_PROXY_REQUIRED: every stream
                                   connection begins with a PROXY protocol
                                   header, v1 or v2 (HAProxy's), detected by
                                   its first bytes; client addresses are the
                                   ones it carries (ss_request_peer_address
                                   keeps the proxy's); a LOCAL or UNKNOWN
                                   header keeps the peer's. Enable only
                                   behind a proxy you run: anyone who can
                                   connect can claim any address. */
    double proxy_timeout;       /* seconds to receive the header; 0 = 5 */
    unsigned max_connections;   /* live stream requests at once in this
                                   process (threading, pool, async, sync);
                                   0 = no limit; at the limit the server
                                   stops accepting (clients wait in the
                                   backlog, none is refused) until one
                                   ends */
    void (*log)(void *data, const char *line);  /* every line the library
                                   would write to stderr (handle_error's
                                   default text, accept pauses, prefork
                                   restarts, slow handlers) goes here
                                   instead, one call per line, without its
                                   newline, from whichever thread or
                                   process wrote it; data = options.data.
                                   (A stack overflow's last line goes to
                                   stderr: it is written from a signal
                                   handler.) */
} ss_server_options;

/* options.proxy_protocol: every stream connection must begin with a PROXY
 * protocol header. A datagram server with it fails to construct (EINVAL).
 * The header is read in the request's own context (its handler thread,
 * child or coroutine), never by the accepting loop, within proxy_timeout;
 * verify_request then runs there too, after the header, so that it sees
 * the real client (in the synchronous model a silent client therefore
 * holds the server for up to proxy_timeout). A malformed, truncated or
 * late header (a v1 line must end in CRLF): handle_error(-EPROTO or
 * -ETIMEDOUT), the connection closed, nothing handled. Bytes that follow
 * the header are the handler's. The header's bytes are not request I/O
 * (not in bytes_received). */
#define SS_PROXY_REQUIRED 1

/* Server types x concurrency: twelve constructors. `address` is parsed as by
 * ss_address_parse (for the Unix types any other text is a path, "unix:"
 * prefix optional: write "./systemd" or "unix:fd:3" for files of those
 * names), or names a socket the process was given:
 *   "fd:N"          the inherited descriptor N
 *   "systemd"       the first socket passed by systemd socket activation
 *                   (LISTEN_PID, LISTEN_FDS; they start at descriptor 3)
 *                   that fits the type and no server took yet
 *   "systemd:NAME"  the first such socket named NAME in LISTEN_FDNAMES
 *                   (colon-separated; a socket it gives no name is named
 *                   "unknown", as in systemd)
 * Such a socket must fit the type: its family (IPv4 or IPv6 for TCP and
 * UDP, AF_UNIX for the Unix types) and SOCK_STREAM or SOCK_DGRAM; a stream
 * socket must be listening or bound (then the constructor calls listen(),
 * with request_queue_size); a datagram socket bound and not connected. It
 * is never bound again (reuse_address and reuse_port do not apply), a
 * listener keeps its backlog, ss_server_address() is its own address, and
 * defer_bind works as for any server: ss_server_bind succeeds without
 * binding, ss_server_activate listens if it is not listening yet. Once
 * the constructor succeeds the server owns the descriptor: it is made
 * non-blocking and close-on-exec, ss_server_close / ss_server_free close
 * it, and a Unix socket file it names is never removed (it is not this
 * server's). When the constructor fails, the descriptor is the caller's
 * still, open and with its flags as they were.
 * The systemd variables are read once per process, the first time a
 * constructor is given "systemd..." (or "fd:N": a socket taken that way is
 * not handed out as "systemd" too), under a lock (several threads may
 * construct at once) and remembered, so that several servers (a TCP and a
 * UDP one from one .socket unit, say) each take theirs; a socket taken is
 * not handed out again, even after its server is freed. Variables for this
 * process (LISTEN_PID is getpid()) are then removed from the environment, so
 * children never see them; those of another process are left alone (and are
 * looked at again next time), and so are this process's when reading them
 * runs out of memory (ENOMEM: the next constructor reads them again). A
 * process forked after they were read has a process id of its own: it finds
 * no sockets passed to it (the variables are gone), and one forked before
 * they were read finds LISTEN_PID naming its parent.
 * Removing the variables races with getenv in other threads, as
 * sd_listen_fds(1) does: construct before starting threads that read the
 * environment. Sockets passed but not taken are left as they are.
 *
 * `handler` is copied; it must have a handle function. `options` may be
 * NULL and is copied. Unless options->defer_bind, the socket is bound and
 * activated (listen for stream types) before the constructor returns.
 *
 * Returns the server, to be released with ss_server_free(); or NULL with
 * errno set and ss_last_error() naming the operation and input:
 *   EINVAL        NULL or empty address, NULL handler, no handle function,
 *                 bad port, an address of the wrong kind for the type;
 *                 "fd:N" with N not a number, or a descriptor that is not
 *                 a socket ("fd:7 is a pipe, not a socket") or does not
 *                 fit ("fd:7 is a UDP socket; the tcp server needs a
 *                 SOCK_STREAM socket"; a connected socket; one bound to
 *                 no address); "systemd" with no variables, LISTEN_PID not
 *                 this process ("systemd: LISTEN_PID is not this
 *                 process"), LISTEN_FDS 0 or not a number, no free socket
 *                 that fits, a NAME not in LISTEN_FDNAMES ("systemd:web:
 *                 no such name in LISTEN_FDNAMES") or taken already
 *   EBADF         "fd:N" where N is not an open descriptor
 *   ENAMETOOLONG  Unix path longer than sun_path
 *   ENXIO         unknown host name
 *   EADDRINUSE    port in use, or a live server on the Unix path
 *   EACCES, EADDRNOTAVAIL, EMFILE, ENOMEM, ...  from the system
 * A failed construction leaves no descriptor or memory behind (and an
 * inherited descriptor open, as it was, and free for another server). */
SS_EXTERN ss_server *ss_tcp_server_new(const char *address,
                                       const ss_handler *handler,
                                       const ss_server_options *options);
SS_EXTERN ss_server *ss_udp_server_new(const char *address,
                                       const ss_handler *handler,
                                       const ss_server_options *options);
SS_EXTERN ss_server *ss_unix_stream_server_new(const char *address,
                                               const ss_handler *handler,
                                               const ss_server_options *options);
SS_EXTERN ss_server *ss_unix_datagram_server_new(const char *address,
                                                 const ss_handler *handler,
                                                 const ss_server_options *options);
SS_EXTERN ss_server *ss_threading_tcp_server_new(const char *address,
                                                 const ss_handler *handler,
                                                 const ss_server_options *options);
SS_EXTERN ss_server *ss_threading_udp_server_new(const char *address,
                                                 const ss_handler *handler,
                                                 const ss_server_options *options);
SS_EXTERN ss_server *ss_threading_unix_stream_server_new(const char *address,
                                                         const ss_handler *handler,
                                                         const ss_server_options *options);
SS_EXTERN ss_server *ss_threading_unix_datagram_server_new(const char *address,
                                                           const ss_handler *handler,
                                                           const ss_server_options *options);
SS_EXTERN ss_server *ss_forking_tcp_server_new(const char *address,
                                               const ss_handler *handler,
                                               const ss_server_options *options);
SS_EXTERN ss_server *ss_forking_udp_server_new(const char *address,
                                               const ss_handler *handler,
                                               const ss_server_options *options);
SS_EXTERN ss_server *ss_forking_unix_stream_server_new(const char *address,
                                                       const ss_handler *handler,
                                                       const ss_server_options *options);
SS_EXTERN ss_server *ss_forking_unix_datagram_server_new(const char *address,
                                                         const ss_handler *handler,
                                                         const ss_server_options *options);

/* Mix-ins: applied to any server before it serves (before the first
 * ss_serve_forever or ss_handle_request), from the thread that owns it. A
 * server has at most one process model (threading, forking, thread pool,
 * or async mode: ss_server_use_async below); prefork composes with sync,
 * threading, the pool or async mode. A mix-in
 * replaces some hooks (process_request, server_close and, per model,
 * service_actions and handle_timeout); overrides made with
 * ss_server_override stay on top of it. All return 0, or -EINVAL (NULL
 * server, zero workers), -EBUSY (already served, or a process model is
 * already set: async mode counts as one), -ENOTSUP (forking with prefork,
 * either way round), -ENOMEM.
 *
 * Threading (Python's ThreadingMixIn): a thread per request, started with
 *   options.thread_stack_size; finished threads are joined as they finish;
 *   close joins the running ones (see close_timeout). A failed
 *   pthread_create ends that request through handle_error.
 * Forking (Python's ForkingMixIn): a child process per request, which
 *   exits 0 or 1 and never returns to the serving loop; max_children is a
 *   hard limit (at it, the server waits for one of its children to exit
 *   before it forks again); service_actions and handle_timeout reap
 *   finished children (under load at most every 20 ms), only the server's
 *   own, by pid; the default handle_request timeout becomes 300 s, as
 *   Python's. The parent only accepts, verifies and forks: a request is
 *   handed to its child at once, so a shutdown's drain has nothing of
 *   the parent's to cut short (a verify_request hook must not block on
 *   the client). A process forked from the server's (a daemon) serves
 *   with children of its own and leaves those of the other alone.
 * Thread pool: `workers` threads (started with the first request, in the
 *   process that serves) take requests from a queue of at most
 *   `queue_limit` (0 = workers); while it is full the server does not
 *   accept, so clients wait in the kernel's backlog. Stream and datagram
 *   servers alike. Close serves what is queued, or after close_timeout
 *   closes it unserved. While ss_serve_forever runs, its thread (in
 *   prefork, each worker process's) is SCHED_BATCH on Linux if it was
 *   SCHED_OTHER: a request's arrival then wakes it without preempting a
 *   busy handler, and it takes what arrived in one go once the core is
 *   free. So the hooks that run in that thread (get_request,
 *   verify_request, service_actions, handle_timeout) run SCHED_BATCH, and
 *   threads or processes they create inherit it. Workers it starts reset
 *   themselves to SCHED_OTHER; ss_serve_forever puts the thread back to
 *   SCHED_OTHER when it returns, unless its policy was changed meanwhile.
 *   A thread of any other policy (real-time, idle, batch) is left alone,
 *   as is every thread with options.keep_sched_policy.
 * Prefork: ss_serve_forever starts `workers` child processes that each run
 *   the serving loop (with the server's process model) on the shared
 *   listening socket, restarts any that dies (with a back-off when it dies
 *   young, and a line on stderr), and on shutdown stops them all before
 *   it returns: SIGTERM, then SIGKILL a quarter second after close_timeout
 *   (a worker's own drain ends its requests at close_timeout). A worker
 *   that gets SIGTERM finishes its requests, closes and exits 0. So does
 *   a worker whose supervisor dies without stopping it (killed, crashed;
 *   on Linux, where the kernel sends the worker SIGTERM then): no orphan
 *   goes on serving the port unsupervised. */
SS_EXTERN int ss_server_use_threading(ss_server *server);
SS_EXTERN int ss_server_use_forking(ss_server *server);
SS_EXTERN int ss_server_use_thread_pool(ss_server *server, unsigned workers,
                                        unsigned queue_limit);
SS_EXTERN int ss_server_use_prefork(ss_server *server, unsigned workers);

/* ---- async mode --------------------------------------------------------- */

typedef struct ss_async_options {     /* zero-initialised = defaults */
    unsigned loops;                   /* event-loop threads; 0 = 1 */
    size_t   stack_size;              /* stack per request coroutine, rounded
                                         up to pages; 0 = 64 KiB; at least
                                         16 KiB; a guard page lies below */
    unsigned blocking_threads;        /* threads for ss_run_blocking;
                                         0 = 4 */
    double   slow_handler_warning;    /* log one line when a handler runs
                                         this many seconds without waiting
                                         (it stalls its loop); 0 = off */
} ss_async_options;

/* Serve every request as a coroutine on an event loop (epoll on Linux,
 * poll elsewhere): the same handle() code, one thread for thousands of
 * connections. Request I/O (ss_recv, ss_read, ss_readline, ss_sendall,
 * ss_write, ss_printf, ss_flush, ss_wait_readable, ss_wait_fd, ss_sleep)
 * switches to another request instead of blocking the thread; everything
 * else a handler calls runs on the loop's thread, so a handler must not
 * block in other ways: no sleep(), no blocking read() of a file or pipe,
 * no lock held long by another thread, no long computation (see
 * slow_handler_warning). Run such work with ss_run_blocking. Request
 * sockets are non-blocking in this mode; wait on them with ss_wait_fd.
 *
 * Stream and datagram servers alike; composes with prefork (each worker
 * process runs its own loops), not with another process model. The
 * pipeline and its hooks are unchanged: get_request and verify_request run
 * on the loop (they must not block), process_request starts the
 * request's coroutine, which runs finish_request (setup, handle, finish)
 * and shutdown_request. A handler returning SS_ABORT ends its request, as
 * in a threading handler. A datagram server receives in batches (recvmmsg
 * where available), one coroutine per datagram.
 *
 * Loops: ss_serve_forever drives the first loop in the calling thread and
 * starts loops - 1 threads for the others; every loop polls the listening
 * socket (a connection wakes one of them) and keeps the requests it
 * accepted. A shutdown stops them all from accepting; serve_forever
 * returns at once. Requests still running are served by their loops'
 * threads, and the first loop's by whichever thread calls ss_server_close
 * (or ss_server_free), which drains them as close does for handler
 * threads: close_timeout, then their connections are shut down and
 * every wait of theirs returns -ESHUTDOWN (a call in ss_run_blocking is
 * waited for: it cannot be interrupted). With no_block_on_close, close
 * returns at once and ss_server_free drains them.
 *
 * Each coroutine has stack_size bytes of stack (pages are used as they are
 * touched) above a guard page; a handler that overflows it kills the
 * process with SIGSEGV after one line on stderr naming the request and
 * stack_size (a frame larger than a page may jump the guard: compile
 * handlers with -fstack-clash-protection). For this the library installs
 * a SIGSEGV and SIGBUS handler (faults that are not a coroutine's go to the
 * handler installed before it) and gives each loop thread an alternate
 * signal stack unless it has one.
 *
 * Returns 0, or -EINVAL (NULL server, bad options), -EBUSY (already served,
 * or a process model is set), -ENOTSUP (forking), -ENOMEM. From the thread
 * that owns the server, before it serves. options NULL = defaults. */
SS_EXTERN int ss_server_use_async(ss_server *server,
                                  const ss_async_options *options);

/* Driving a server from another event loop (GLib, libuv, your own epoll),
 * any model. A descriptor that polls readable whenever the server has work,
 * deadlines included (async: the loop's epoll descriptor, with a timerfd
 * for its deadlines; other models: the server socket). Call
 * ss_server_run_once when it is readable. -EINVAL with loops > 1,
 * -ENOTSUP with the poll backend, -EBADF after close. */
SS_EXTERN int ss_server_loop_fd(const ss_server *server);

/* Wait at most `timeout` seconds (0: not at all, < 0: no limit) for work,
 * then do all that is ready (accept and start requests, resume handlers
 * whose I/O is ready, fire deadlines) and return the count of things done
 * (>= 0), SS_ABORT or -errno: -EINVAL with loops > 1 or a prefork server,
 * -EBADF when closed. Other models: at most one request, as
 * ss_handle_request with this timeout (1 when one was handled, 0 when none
 * came; handle_timeout is not called). From the thread that owns the
 * server. */
SS_EXTERN int ss_server_run_once(ss_server *server, double timeout);

/* Send buf to every other live stream request of this process (all of them
 * when except is NULL): the connections accepted and not yet closed. Safe
 * from any thread, including a handler (not from a signal handler). Each
 * receiver gets the whole buffer or, when it cannot take it within the
 * handler timeout (1 s when the handler has none), nothing more: its
 * connection is shut down so a stalled client never stalls the others. The
 * wait is bounded by that timeout in all, not per receiver.
 * Returns the number of requests reached (0 for a datagram server, which
 * has no connections), -ENOTSUP for forking and prefork servers (their
 * handlers live in other processes), -EINVAL for a NULL server or buffer,
 * -ENOMEM. */
SS_EXTERN int ss_server_broadcast(ss_server *server, const void *buf,
                                  size_t len, const ss_request *except);

/* Only with defer_bind: run the server_bind / server_activate hooks, from
 * the owning thread. Return 0 or a negative errno (ss_last_error() says
 * more); -EINVAL when the server is already bound / active, not yet bound
 * (activate) or closed. On an inherited socket ("fd:N", "systemd") the
 * base server_bind binds nothing (the socket is bound already) and only
 * records its address; server_activate listens only if it is not
 * listening yet. */
SS_EXTERN int ss_server_bind(ss_server *server);
SS_EXTERN int ss_server_activate(ss_server *server);

/* The server's address: after bind, the real one (port 0 resolved). Lives as
 * long as the server. Any thread. */
SS_EXTERN const ss_address *ss_server_address(const ss_server *server);
/* The listening / receiving socket, or -1 after close. Any thread. */
SS_EXTERN int ss_server_fileno(const ss_server *server);
/* options->data. Any thread. */
SS_EXTERN void *ss_server_data(const ss_server *server);
/* Handler threads or child processes currently tracked (Python's _threads /
 * active_children): 0 for a synchronous server, and in a forking server's
 * child (it has no children of its own). Any thread. */
SS_EXTERN int ss_server_active_handlers(const ss_server *server);

/* Serve until shutdown. The loop sleeps in poll() on the server socket and a
 * wake-up descriptor; service_actions runs after every request and at least
 * every poll_interval seconds (0 = 0.5). Accept failures for lack of
 * descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) pause accepting
 * with a back-off instead of spinning; ECONNABORTED is ignored.
 * Returns 0 after a shutdown, SS_ABORT when a synchronous handler returned
 * it (at once: service_actions does not run after it), -EBUSY when the
 * server is already serving, -EBADF when it is closed or not bound, or
 * another negative errno. A shutdown requested before serve_forever began
 * wins over a close that followed it: 0 (the request is consumed). */
SS_EXTERN int ss_serve_forever(ss_server *server, double poll_interval);

/* Handle one request, waiting at most options.timeout on a monotonic clock
 * (across EINTR): 0 when a request was handled, -ETIMEDOUT after calling
 * handle_timeout, SS_ABORT as above, or a negative errno (get_request
 * failed). Does not call service_actions. */
SS_EXTERN int ss_handle_request(ss_server *server);

/* From any thread: make serve_forever return, promptly (not after the poll
 * interval), and wait until it has. The request is sticky, as in Python:
 * made before serve_forever starts, that serve_forever returns at once. When
 * the server is not serving, it returns at once instead of blocking; from
 * inside the serving thread (a synchronous handler, a hook) it only asks and
 * returns. A request being handled synchronously is finished first: its
 * I/O gets close_timeout (when set), then returns -ESHUTDOWN. So does a
 * datagram reply blocked in a handler thread (nothing else can cut it
 * short), and any handler of a prefork worker. Stream handler threads and
 * children are left alone: close drains them. */
SS_EXTERN void ss_server_shutdown(ss_server *server);

/* Async-signal-safe, any thread: ask serve_forever to return; does not
 * wait. */
SS_EXTERN void ss_server_request_shutdown(ss_server *server);

/* Make SIGINT and SIGTERM shut `server` down gracefully: their handler calls
 * ss_server_request_shutdown, serve_forever returns, and the caller's
 * ss_server_close drains (close_timeout bounds the wait). A synchronous
 * handler blocked in I/O on the serving thread is given close_timeout to
 * finish, then its I/O returns -ESHUTDOWN. A second signal ends the process
 * at once (the default action). One server per process: a later call
 * replaces the server; NULL restores the previous dispositions. Returns 0 or
 * a negative errno from sigaction. */
SS_EXTERN int ss_server_shutdown_on_signals(ss_server *server);

/* The server_close hook, once: stop listening (the socket is closed, a Unix
 * socket file this server created is removed), then wait for handler
 * threads or children (unless no_block_on_close; close_timeout bounds the
 * wait). A datagram server with handler threads waits for them first, then
 * closes: their replies go out through its socket. Idempotent. Call it
 * after serve_forever has returned (ss_server_shutdown does not wait for a
 * serve_forever that has not begun yet: join a serving thread before
 * ss_server_free). */
SS_EXTERN void ss_server_close(ss_server *server);

/* Close if needed and release the server; NULL is fine. Handler threads
 * still running (after a close with no_block_on_close) use the server's
 * memory, so free waits for them: close_timeout at most (none when 0),
 * then it shuts their connections down so that handlers waiting for idle
 * clients return (a reply still being sent is cut short), and waits for
 * them to. Forked children are not waited for. If an overridden
 * server_close did not chain to the base one and left the server's socket
 * open, free releases it and its Unix socket file. */
SS_EXTERN void ss_server_free(ss_server *server);

/* ---- statistics -------------------------------------------------------- */

typedef struct ss_server_stats {
    unsigned long long accepted;      /* requests get_request produced */
    unsigned long long refused;       /* verify_request said no */
    unsigned long long failed;        /* handle_error calls, overridden or
                                         not */
    unsigned long long bytes_received, bytes_sent;   /* request I/O */
    unsigned long long accept_pauses; /* each time accepting stopped: an
                                         EMFILE back-off or max_connections
                                         reached */
    unsigned active;                  /* live requests now */
    unsigned peak_active;
} ss_server_stats;

/* A snapshot, from any thread: 0, or -EINVAL. Counting costs one update
 * per request, not per I/O call. Forking: what the children count is
 * counted too (the counters are shared memory), and active is the number
 * of children. Prefork: the parent's snapshot is the sum over its live
 * and past workers, current while they serve. */
SS_EXTERN int ss_server_get_stats(const ss_server *server,
                                  ss_server_stats *out);

/* ---- overridable hooks (the vtable) ---------------------------------- */

typedef struct ss_server_ops {
    int  (*server_bind)(ss_server *);        /* bind the socket, record the
                                                real address */
    int  (*server_activate)(ss_server *);    /* listen (stream types) */
    int  (*get_request)(ss_server *, ss_request **request);
                                             /* accept / receive one request:
                                                0 and *request, or -errno
                                                (-EAGAIN: nothing ready) */
    bool (*verify_request)(ss_server *, ss_request *,
                           const ss_address *client_address);
                                             /* false: straight to
                                                shutdown_request */
    int  (*process_request)(ss_server *, ss_request *,
                            const ss_address *client_address);
                                             /* run finish_request then
                                                shutdown_request (or hand the
                                                request to a thread/child that
                                                does); a non-zero return means
                                                the request was not ended: the
                                                caller calls handle_error and
                                                shutdown_request */
    int  (*finish_request)(ss_server *, ss_request *,
                           const ss_address *client_address);
                                             /* setup, handle, finish, flush */
    void (*shutdown_request)(ss_server *, ss_request *);
                                             /* stream: shutdown(SHUT_WR),
                                                then close_request */
    void (*close_request)(ss_server *, ss_request *);
                                             /* stream: close the connection;
                                                datagram: nothing */
    void (*handle_error)(ss_server *, ss_request *,
                         const ss_address *client_address, int err);
    void (*handle_timeout)(ss_server *);
    void (*service_actions)(ss_server *);
    void (*server_close)(ss_server *);
} ss_server_ops;

/* Replace the hooks whose members are non-NULL, for this server only; later
 * calls add to earlier ones. Returns 0 or -EINVAL. The request passed to a
 * hook is owned by the library: after shutdown_request returns it is freed
 * (its connection closed if the hooks left it open). */
SS_EXTERN int ss_server_override(ss_server *server,
                                 const ss_server_ops *overrides);

/* The hooks as the type and mix-in define them, before any override: what
 * an override calls for "super". Lives as long as the server. */
SS_EXTERN const ss_server_ops *ss_server_base_ops(const ss_server *server);

/* The hooks in effect (type, mix-in, overrides): what a hook calls for
 * Python's self.close_request(request) and the like. */
SS_EXTERN const ss_server_ops *ss_server_ops_current(const ss_server *server);

/* ---- inside a handler ------------------------------------------------- */

/* The connection (stream) or the server's socket (datagram); -1 once the
 * request has been closed. */
SS_EXTERN int               ss_request_fd(const ss_request *request);
SS_EXTERN const ss_address *ss_request_client_address(const ss_request *request);
/* The proxy's own address (the TCP peer) when the request came through
 * the PROXY protocol, else the same as ss_request_client_address. */
SS_EXTERN const ss_address *ss_request_peer_address(const ss_request *request);
SS_EXTERN ss_server        *ss_request_server(const ss_request *request);
/* handler->state_size zeroed bytes, aligned for any type; NULL when
 * state_size is 0. Lives as long as the request. */
SS_EXTERN void             *ss_request_state(ss_request *request);

/* Receive up to len bytes: buffered bytes first (after ss_readline), then
 * one receive. >0 bytes, 0 at EOF, -ETIMEDOUT on the handler timeout, or
 * -errno (-ECONNRESET, ...). Datagram requests read the packet. */
SS_EXTERN ssize_t ss_recv(ss_request *r, void *buf, size_t len);

/* Send every byte, across partial writes and signals (buffered ss_write
 * bytes go first). 0 or -errno: -EPIPE / -ECONNRESET when the client went
 * away, -ETIMEDOUT. Datagram requests: buf is sent at once as one reply
 * datagram. */
SS_EXTERN int ss_sendall(ss_request *r, const void *buf, size_t len);

/* rfile: buffered reads; mixing with ss_recv is allowed (buffered bytes
 * first). After an error (a timeout, say) the stream position is
 * unspecified, as with Python's file objects.
 *
 * ss_readline reads up to and including '\n' and NUL-terminates (size must
 * be at least 2); a longer line returns size-1 bytes, the rest next call; a
 * last line without '\n' is returned as is; then 0 at EOF. Returns the
 * number of bytes stored (without the NUL) or -errno. */
SS_EXTERN ssize_t ss_readline(ss_request *r, char *buf, size_t size);
/* Exactly len bytes, short only at EOF; or -errno. */
SS_EXTERN ssize_t ss_read(ss_request *r, void *buf, size_t len);

/* Wait until the request has something to read: bytes buffered by
 * ss_readline/ss_read, data on the connection, or the client's EOF. At
 * most `timeout` seconds (< 0: no limit; a shutdown drain still ends it).
 * Returns 1 when readable, 0 after the timeout, or -errno (-ESHUTDOWN when
 * a drain ends). A datagram request is readable while unread packet bytes
 * remain and never waits. Lets a handler tell a client that is waiting for
 * an answer from one that is already sending its next request. */
SS_EXTERN int ss_wait_readable(ss_request *r, double timeout);

/* wfile. Unbuffered (wbufsize 0): send everything now and return len.
 * Buffered: collect, sending when the buffer fills. Returns len (>= 0) or
 * -errno. Datagram requests: append to the reply, sent after finish. */
SS_EXTERN int ss_write(ss_request *r, const void *buf, size_t len);
/* ss_write of a formatted string; returns its length or -errno. */
SS_EXTERN int ss_printf(ss_request *r, const char *fmt, ...) SS__PRINTF(2, 3);
SS_EXTERN int ss_vprintf(ss_request *r, const char *fmt, va_list ap)
    SS__PRINTF(2, 0);
/* Send what ss_write buffered: 0 or -errno. Done after finish too, where an
 * error is ignored as in Python. Datagram requests: nothing (the reply goes
 * after finish). */
SS_EXTERN int ss_flush(ss_request *r);

/* Wait until fd is ready for `events` (POLLIN, POLLOUT or both), at most
 * `timeout` seconds (< 0: no limit). Returns 1 when ready (or in error or
 * hung up: the next call on it says which), 0 when the timeout passed, or
 * -errno: -ESHUTDOWN once a shutdown's drain ends (see close_timeout),
 * -EINVAL for a bad descriptor or events. Any model: async mode yields the
 * coroutine meanwhile, the others block the handler's thread (and still
 * return -ESHUTDOWN when close cuts the request short). fd may be the
 * request's own connection or any descriptor the handler uses (a backend
 * connection, a pipe). */
SS_EXTERN int ss_wait_fd(ss_request *r, int fd, short events, double timeout);

/* Sleep `seconds`: 0, or -ESHUTDOWN when a shutdown's drain (or close
 * cutting the request short) ended it early; -EINVAL for a negative time.
 * Async mode: the coroutine sleeps, not the thread. */
SS_EXTERN int ss_sleep(ss_request *r, double seconds);

/* Run fn(arg) where blocking is harmless and return its result: async
 * mode runs it on one of blocking_threads threads while the coroutine
 * waits and the loop serves other requests; the other models call it
 * directly. fn must not call the library's request functions. It cannot
 * be interrupted: a drain waits for it. Returns fn's result, or -ENOMEM,
 * -EAGAIN (no blocking thread could be started). */
SS_EXTERN int ss_run_blocking(ss_request *r, int (*fn)(void *arg), void *arg);

/* Datagram servers: the received packet, valid during the request; NULL
 * (and *len 0) for a stream request. ss_read/ss_readline/ss_recv read from
 * it; ss_write collects a reply that is sent to the client after finish
 * (even when handle failed, as Python), unless nothing was written: unlike
 * Python, no empty datagram is sent. */
SS_EXTERN const void *ss_request_packet(const ss_request *r, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* SOCKSERVER_H */
