/*
 * What every example program shares: the command line
 *
 *   NAME [--model sync|threading|forking|pool|prefork|async] [--workers N]
 *        [options] [ADDRESS]
 *
 * the "listening on ADDRESS" line, and a clean stop on Ctrl-C or SIGTERM.
 */
#ifndef SS_EXAMPLE_H
#define SS_EXAMPLE_H

#include <sockserver.h>
#include <stdbool.h>

typedef struct example_args {
    const char *model;          /* "sync", "threading", ... */
    unsigned    workers;        /* pool threads, prefork processes or async
                                   loops */
    const char *address;
    const char *backend;        /* the second operand (tcp_proxy) */
    bool        datagram;       /* --datagram (Unix echo) */
    int         count;          /* --count N (clients) */
    const char *root;           /* --root DIR */
    long long   max_size;       /* --max-size BYTES */
    double      timeout;        /* --timeout SECONDS: handler I/O timeout */
    double      connect_timeout; /* --connect-timeout SECONDS (tcp_proxy) */
    bool        proxy;          /* --proxy: PROXY protocol headers required */
    unsigned    max_connections; /* --max-connections N (0: no limit) */
} example_args;

/* The models every example server takes, for its usage text, and what
 * --workers means for each. */
#define EXAMPLE_MODELS "sync|threading|forking|pool|prefork|async"
#define EXAMPLE_WORKERS_FORMS                                                \
    "--workers N: pool threads (16), prefork processes (2) or async event "  \
    "loops (1)"

/* The deployment options, for the usage texts: --proxy (stream servers)
 * and --max-connections (every server). */
#define EXAMPLE_PROXY_FORMS                                                  \
    "--proxy: every connection begins with a PROXY protocol header (v1 or "  \
    "v2, as HAProxy's\n  send-proxy sends); the client address is the one " \
    "it carries. Only behind a proxy you run."
#define EXAMPLE_MAX_CONNECTIONS_FORMS                                        \
    "--max-connections N: serve at most N connections at once; the next "    \
    "ones wait (0: no limit)"

/* The address forms every example server takes, for its usage text. */
#define EXAMPLE_ADDRESS_FORMS                                                \
    "ADDRESS: HOST:PORT, [IPV6]:PORT, :PORT (all interfaces), fd:N (an "     \
    "inherited socket),\n  systemd or systemd:NAME (systemd socket "         \
    "activation)"
#define EXAMPLE_PATH_FORMS                                                   \
    "PATH: a Unix socket path, @NAME (abstract), fd:N (an inherited "        \
    "socket),\n  systemd or systemd:NAME (systemd socket activation)"

/* Parse argv into args (defaults already filled in by the caller). Options
 * named in `accepted` ("model root datagram count max-size timeout
 * connect-timeout proxy max-connections") are allowed; --model also allows --workers. With
 * "backend" in `accepted` there are two operands, ADDRESS and BACKEND,
 * both required; otherwise one, ADDRESS, which may be left out.
 * Prints usage and exits 2 on a bad command line. */
void example_parse(int argc, char **argv, example_args *args,
                   const char *accepted, const char *usage);

/* Apply args->model to a server made by a synchronous constructor. On
 * failure prints why, frees the server and returns NULL. */
ss_server *example_apply_model(ss_server *server, const example_args *args);

/* Print "listening on ADDRESS" (flushed), shut down gracefully on SIGINT
 * and SIGTERM, serve, close, free. Returns the exit status. */
int example_serve(ss_server *server);

/* Defaults every example server uses: options with close_timeout. */
ss_server_options example_options(void *data);

/* Options from the command line: close_timeout as example_options, and
 * --proxy (proxy_protocol) and --max-connections (max_connections). */
ss_server_options example_server_options(const example_args *args,
                                         void *data);

/* Log callbacks (ss_server_options.log): write `line` and a newline to
 * stdout or stderr in one write, so that lines from threads and forked
 * children never mix. data is unused. */
void example_log_stdout(void *data, const char *line);
void example_log_stderr(void *data, const char *line);

/* Write all of buf to fd (a file), retrying after EINTR: 0 or -errno. */
int example_write_all(int fd, const void *buf, size_t len);

/* fn(arg) through ss_run_blocking: on another thread in async mode, so
 * that file work which may sleep does not stall the event loop; a plain
 * call in the other models. When no thread can take it (ss_run_blocking
 * fails without running fn), fn runs here all the same: the work must be
 * done (a temporary closed and removed, say), and a loop held up once is
 * better than a leak. Returns fn's result. */
int example_run_blocking(ss_request *r, int (*fn)(void *arg), void *arg);

/* Print ss_last_error() for a failed constructor and return 1. */
int example_fail(const char *what);

#endif
