#include "example.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

static void usage_exit(const char *usage, const char *why)
{
    if (why)
        fprintf(stderr, "%s\n", why);
    fprintf(stderr, "usage: %s\n", usage);
    exit(2);
}

static long number(const char *text, const char *usage)
{
    char *end;
    long v = strtol(text, &end, 10);

    if (*text == '\0' || *end != '\0' || v < 0)
        usage_exit(usage, "expected a non-negative number");
    return v;
}

static double seconds(const char *text, const char *usage)
{
    char *end;
    double v = strtod(text, &end);

    if (*text == '\0' || *end != '\0' || v < 0)
        usage_exit(usage, "expected a non-negative number of seconds");
    return v;
}

/* Whether `name` is one of the space-separated words of `accepted`
 * ("timeout" must not match "connect-timeout"). */
static bool accepts(const char *accepted, const char *name)
{
    size_t len = strlen(name);
    const char *p;

    for (p = strstr(accepted, name); p; p = strstr(p + 1, name))
        if ((p == accepted || p[-1] == ' ') && (p[len] == ' ' || !p[len]))
            return true;
    return false;
}

/* Operand number `n` (from 0): ADDRESS, then BACKEND when the program
 * takes one. */
static void operand(example_args *args, int n, const char *text,
                    bool backend, const char *usage)
{
    if (n == 0)
        args->address = text;
    else if (n == 1 && backend)
        args->backend = text;
    else
        usage_exit(usage, "too many operands");
}

void example_parse(int argc, char **argv, example_args *args,
                   const char *accepted, const char *usage)
{
    bool backend = accepts(accepted, "backend");
    int i, operands = 0;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;

        if (strcmp(a, "--model") == 0 && has_value &&
            accepts(accepted, "model"))
            args->model = argv[++i];
        else if (strcmp(a, "--workers") == 0 && has_value &&
                 accepts(accepted, "model"))
            args->workers = (unsigned)number(argv[++i], usage);
        else if (strcmp(a, "--root") == 0 && has_value &&
                 accepts(accepted, "root"))
            args->root = argv[++i];
        else if (strcmp(a, "--count") == 0 && has_value &&
                 accepts(accepted, "count"))
            args->count = (int)number(argv[++i], usage);
        else if (strcmp(a, "--max-size") == 0 && has_value &&
                 accepts(accepted, "max-size"))
            args->max_size = number(argv[++i], usage);
        else if (strcmp(a, "--timeout") == 0 && has_value &&
                 accepts(accepted, "timeout"))
            args->timeout = seconds(argv[++i], usage);
        else if (strcmp(a, "--connect-timeout") == 0 && has_value &&
                 accepts(accepted, "connect-timeout"))
            args->connect_timeout = seconds(argv[++i], usage);
        else if (strcmp(a, "--max-connections") == 0 && has_value &&
                 accepts(accepted, "max-connections"))
            args->max_connections = (unsigned)number(argv[++i], usage);
        else if (strcmp(a, "--proxy") == 0 && accepts(accepted, "proxy"))
            args->proxy = true;
        else if (strcmp(a, "--datagram") == 0 && accepts(accepted, "datagram"))
            args->datagram = true;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            usage_exit(usage, NULL);
        else if (a[0] == '-' && a[1] == '-')
            usage_exit(usage, "unknown option");
        else
            operand(args, operands++, a, backend, usage);
    }
    if (backend && operands != 2)
        usage_exit(usage, "expected two operands: ADDRESS BACKEND");
}

/* Async mode: --workers is the number of event loops. Each loop serves
 * thousands of connections; more than one only helps on several cores. */
static int use_async(ss_server *server, unsigned loops)
{
    ss_async_options o = {.loops = loops ? loops : 1};

    return ss_server_use_async(server, &o);
}

ss_server *example_apply_model(ss_server *server, const example_args *args)
{
    const char *m = args->model ? args->model : "threading";
    unsigned workers = args->workers;
    int err;

    if (strcmp(m, "sync") == 0)
        err = 0;
    else if (strcmp(m, "threading") == 0)
        err = ss_server_use_threading(server);
    else if (strcmp(m, "forking") == 0)
        err = ss_server_use_forking(server);
    else if (strcmp(m, "pool") == 0)
        err = ss_server_use_thread_pool(server, workers ? workers : 16, 64);
    else if (strcmp(m, "prefork") == 0)
        err = ss_server_use_prefork(server, workers ? workers : 2);
    else if (strcmp(m, "async") == 0)
        err = use_async(server, workers);
    else {
        fprintf(stderr, "--model %s: expected sync, threading, forking, pool, "
                "prefork or async\n", m);
        ss_server_free(server);
        return NULL;
    }
    if (err < 0) {
        fprintf(stderr, "--model %s: %s\n", m, ss_strerror(err));
        ss_server_free(server);
        return NULL;
    }
    return server;
}

ss_server_options example_options(void *data)
{
    ss_server_options o = {0};

    o.close_timeout = 2.0;  /* Ctrl-C: idle clients get 2 s, then go */
    o.data = data;
    return o;
}

ss_server_options example_server_options(const example_args *args,
                                         void *data)
{
    ss_server_options o = example_options(data);

    if (args->proxy)
        o.proxy_protocol = SS_PROXY_REQUIRED;
    o.max_connections = args->max_connections;
    return o;
}

static void log_to(FILE *stream, const char *line)
{
    char buf[4096];
    size_t len = strlen(line);

    if (len < sizeof buf) {
        memcpy(buf, line, len);
        buf[len++] = '\n';
        example_write_all(fileno(stream), buf, len);
    } else {        /* a longer line: two writes */
        example_write_all(fileno(stream), line, len);
        example_write_all(fileno(stream), "\n", 1);
    }
}

void example_log_stdout(void *data, const char *line)
{
    (void)data;
    fflush(stdout);     /* what printf buffered comes first */
    log_to(stdout, line);
}

void example_log_stderr(void *data, const char *line)
{
    (void)data;
    log_to(stderr, line);
}

int example_serve(ss_server *server)
{
    char a[SS_ADDRESS_STRLEN];
    int rc;

    printf("listening on %s\n",
           ss_address_format(ss_server_address(server), a, sizeof a));
    fflush(stdout);
    if ((rc = ss_server_shutdown_on_signals(server)) < 0) {
        fprintf(stderr, "signals: %s\n", ss_strerror(rc));
        ss_server_free(server);
        return 1;
    }
    rc = ss_serve_forever(server, 0.5);
    if (rc < 0)
        fprintf(stderr, "serve_forever: %s\n", ss_strerror(rc));
    ss_server_close(server);
    ss_server_shutdown_on_signals(NULL);
    ss_server_free(server);
    return rc < 0 ? 1 : 0;
}

int example_fail(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, ss_last_error());
    return 1;
}

int example_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

typedef struct blocking_call {
    int  (*fn)(void *arg);
    void  *arg;
    bool   ran;             /* set by fn's thread, read after it returned */
} blocking_call;

static int run_call(void *arg)
{
    blocking_call *c = arg;

    c->ran = true;
    return c->fn(c->arg);
}

int example_run_blocking(ss_request *r, int (*fn)(void *arg), void *arg)
{
    blocking_call c = {fn, arg, false};
    int rc = ss_run_blocking(r, run_call, &c);

    return c.ran ? rc : fn(arg);
}
