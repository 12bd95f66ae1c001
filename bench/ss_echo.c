/*
 * ss_echo - libsockserver's echo server for the benchmark, written against
 * include/sockserver.h exactly as a user would write it.
 *
 *   ss_echo --model sync|threading|forking|pool|prefork|async
 *           [--workers N] [--prefork-model sync|threading|pool|async]
 *           [--proto tcp|udp|unix] [--stack-size BYTES]
 *           ADDRESS
 *
 * Stream requests: handle() loops ss_recv into a buffer and ss_sendall's it
 * back until EOF. Datagram requests: handle() sends the packet back.
 *
 * The model is a mix-in on a plain server:
 *   sync       none: one request at a time
 *   threading  ss_server_use_threading: a thread per request
 *   forking    ss_server_use_forking: a child per request; max_children is
 *              raised from 40 to 4096, so 1,000 ping-pong connections are
 *              all served at once, as by the fork-per-connection reference,
 *              which has no limit (Python's ForkingTCPServer in bench/ gets
 *              the same)
 *   pool       ss_server_use_thread_pool(workers, 4096): --workers threads,
 *              default 64, the first power of two above the 50 connections
 *              of the concurrent scenarios (a stream handler holds its
 *              worker for the connection's life); up to 4,096 connections
 *              wait in the queue
 *   async      ss_server_use_async: coroutines on --workers event loops,
 *              default 1; or --prefork-model async in each prefork worker;
 *              --stack-size sets ss_async_options.stack_size (default 0:
 *              the library's 64 KiB; at least 16 KiB, and the handler's
 *              16 KiB buffer lives on that stack)
 *   prefork    ss_server_use_prefork(workers): --workers processes, default
 *              2, each serving synchronously; add --prefork-model threading
 *              or pool to compose prefork with that model in each worker
 *
 * Prints "listening on ADDRESS" first; SIGINT and SIGTERM stop it cleanly.
 */
#include "sockserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define BUFSZ 16384          /* as every echo server of bench/ */
#define POOL_WORKERS 64
#define POOL_QUEUE 4096
#define PREFORK_WORKERS 2
#define MAX_CHILDREN 4096
#define NOFILE 4096          /* 1,000 connections and a margin */

enum model { SYNC, THREADING, FORKING, POOL, PREFORK, ASYNC, NMODELS };
enum proto { TCP, UDP, UNIX };

static const char *const model_names[NMODELS] = {
    "sync", "threading", "forking", "pool", "prefork", "async"
};

struct args {
    enum model model;
    enum model prefork_model; /* SYNC, THREADING or POOL */
    enum proto proto;
    unsigned workers;         /* 0 = the model's default */
    size_t stack_size;        /* async: 0 = the library's default */
    const char *address;
};

static int echo_stream(ss_request *r, const ss_address *client,
                       ss_server *server)
{
    char buf[BUFSZ];

    (void)client;
    (void)server;
    for (;;) {
        ssize_t n = ss_recv(r, buf, sizeof buf);
        int rc;

        if (n <= 0)
            return (int)n; /* 0 at EOF, else -errno for handle_error */
        rc = ss_sendall(r, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
}

static int echo_datagram(ss_request *r, const ss_address *client,
                         ss_server *server)
{
    size_t len;
    const void *packet = ss_request_packet(r, &len);

    (void)client;
    (void)server;
    return ss_sendall(r, packet, len);
}

static int parse_model(const char *text, enum model *out)
{
    for (int i = 0; i < NMODELS; i++)
        if (strcmp(text, model_names[i]) == 0) {
            *out = (enum model)i;
            return 0;
        }
    return -1;
}

static int parse_proto(const char *text, enum proto *out)
{
    if (strcmp(text, "tcp") == 0)
        *out = TCP;
    else if (strcmp(text, "udp") == 0)
        *out = UDP;
    else if (strcmp(text, "unix") == 0)
        *out = UNIX;
    else
        return -1;
    return 0;
}

static int parse_option(struct args *a, const char *opt, const char *val,
                        int *have_model)
{
    if (strcmp(opt, "--model") == 0) {
        *have_model = 1;
        return parse_model(val, &a->model);
    }
    if (strcmp(opt, "--prefork-model") == 0)
        return parse_model(val, &a->prefork_model);
    if (strcmp(opt, "--proto") == 0)
        return parse_proto(val, &a->proto);
    if (strcmp(opt, "--workers") == 0) {
        int n = atoi(val);

        a->workers = (unsigned)n;
        return n > 0 ? 0 : -1;
    }
    if (strcmp(opt, "--stack-size") == 0) {
        long n = atol(val);

        a->stack_size = (size_t)n;
        return n > 0 ? 0 : -1;
    }
    return -1;
}

/* Options come in "--name value" pairs; the address is the last word. */
static int parse_args(struct args *a, int argc, char **argv)
{
    int have_model = 0, i;

    a->proto = TCP;
    a->prefork_model = SYNC;
    for (i = 1; i + 1 < argc; i += 2)
        if (parse_option(a, argv[i], argv[i + 1], &have_model) < 0)
            return -1;
    if (i != argc - 1 || !have_model)
        return -1;
    a->address = argv[i];
    return a->prefork_model == SYNC || a->prefork_model == THREADING ||
                   a->prefork_model == POOL || a->prefork_model == ASYNC
               ? 0 : -1;
}

static ss_server *new_server(const struct args *a)
{
    ss_handler handler = {
        .handle = a->proto == UDP ? echo_datagram : echo_stream,
        .disable_nagle_algorithm = a->proto == TCP,
    };
    ss_server_options options = {
        .max_children = MAX_CHILDREN,
        /* Stopping must not wait on a client that never hangs up. */
        .close_timeout = 2.0,
    };

    switch (a->proto) {
    case UDP:
        return ss_udp_server_new(a->address, &handler, &options);
    case UNIX:
        return ss_unix_stream_server_new(a->address, &handler, &options);
    default:
        return ss_tcp_server_new(a->address, &handler, &options);
    }
}

/* Apply `model` (not prefork) to server. 0 or a negative errno. */
static int use_model(ss_server *server, enum model model, unsigned workers,
                     size_t stack_size)
{
    switch (model) {
    case THREADING:
        return ss_server_use_threading(server);
    case FORKING:
        return ss_server_use_forking(server);
    case POOL:
        return ss_server_use_thread_pool(server,
                                         workers ? workers : POOL_WORKERS,
                                         POOL_QUEUE);
    case ASYNC: {
        ss_async_options o = {.loops = workers, .stack_size = stack_size};

        return ss_server_use_async(server, &o);
    }
    default:
        return 0;
    }
}

static int apply_model(ss_server *server, const struct args *a)
{
    int rc;

    if (a->model != PREFORK)
        return use_model(server, a->model, a->workers, a->stack_size);
    /* The pool inside each prefork worker keeps its default size. */
    rc = use_model(server, a->prefork_model, 0, a->stack_size);
    if (rc < 0)
        return rc;
    return ss_server_use_prefork(server,
                                 a->workers ? a->workers : PREFORK_WORKERS);
}

/* 1,000 connections need more descriptors than the usual 1,024. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= NOFILE)
        return;
    rl.rlim_cur = rl.rlim_max < NOFILE ? rl.rlim_max : NOFILE;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        perror("setrlimit RLIMIT_NOFILE");
}

static int announce(const ss_server *server)
{
    char buf[SS_ADDRESS_STRLEN];

    ss_address_format(ss_server_address(server), buf, sizeof buf);
    if (printf("listening on %s\n", buf) < 0 || fflush(stdout) != 0) {
        perror("stdout");
        return -1;
    }
    return 0;
}

/* Set the server up and serve until SIGINT or SIGTERM: 0 or -errno. */
static int run(ss_server *server, const struct args *a)
{
    int rc = apply_model(server, a);

    if (rc == 0)
        rc = ss_server_shutdown_on_signals(server);
    if (rc == 0 && announce(server) < 0)
        rc = -EIO;
    if (rc == 0)
        rc = ss_serve_forever(server, 0);
    return rc;
}

int main(int argc, char **argv)
{
    struct args a = { 0 };
    ss_server *server;
    int rc;

    if (parse_args(&a, argc, argv) < 0) {
        fprintf(stderr, "usage: %s --model sync|threading|forking|pool|prefork|"
                        "async [--workers N] [--prefork-model sync|threading|"
                        "pool|async] "
                        "[--proto tcp|udp|unix] [--stack-size BYTES] "
                        "ADDRESS\n", argv[0]);
        return 2;
    }
    raise_nofile();
    server = new_server(&a);
    if (server == NULL) {
        fprintf(stderr, "ss_echo: %s\n", ss_last_error());
        return 1;
    }
    rc = run(server, &a);
    if (rc < 0)
        fprintf(stderr, "ss_echo: %s\n", ss_strerror(rc));
    ss_server_close(server);
    ss_server_free(server);
    return rc < 0 ? 1 : 0;
}
