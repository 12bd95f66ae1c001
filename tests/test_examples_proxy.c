/*
 * tcp_proxy, run as a separate process in front of the other examples
 * (echo_tcp_server, echo_unix_server, http_server) and of backends the
 * test plays itself on a listening socket of its own: nc and curl through
 * it, a stream both ways larger than every buffer on the path, half-closes
 * in each direction, a backend that refuses or never answers, a stop with
 * a connection open, and 50 connections at once on one event loop. The
 * main cases run under every model.
 *
 * A backend the test plays needs no thread: the kernel holds what each
 * side sends, so the test can be client and backend in turn.
 */
#include "example_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *models[] = {"sync", "threading", "forking", "pool",
                               "prefork", "async"};

#define HELLO "hello through a proxy\n"

/* ---- the fixture: the processes and sockets a test may leave behind ------ */

typedef struct fixture {
    example backend, proxy;
    bool    backend_running, proxy_running;
    int     listener;       /* a backend the test plays, or -1 */
    char   *root;           /* http_server's --root, or NULL */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    f->listener = -1;
    *state = f;
    return 0;
}

static void kill_example(example *e, bool *running)
{
    if (*running) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, NULL, 0);
        unlink(e->log_path);
        *running = false;
    }
}

/* Also after a failed test: no process, socket or directory is left. */
static int teardown(void **state)
{
    fixture *f = *state;

    kill_example(&f->proxy, &f->proxy_running);
    kill_example(&f->backend, &f->backend_running);
    if (f->listener >= 0)
        close(f->listener);
    if (f->root) {
        remove_tree(f->root);
        free(f->root);
    }
    free(f);
    return 0;
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* ---- the programs ------------------------------------------------------- */

static void start_backend(fixture *f, const char *name,
                          const char *const *args)
{
    example_start(&f->backend, name, args);
    f->backend_running = true;
}

/* tcp_proxy --model MODEL [--connect-timeout SECONDS] 127.0.0.1:0 BACKEND */
static void start_proxy(fixture *f, const char *model, const char *backend,
                        const char *connect_timeout)
{
    const char *args[] = {"--model", model, "--connect-timeout",
                          connect_timeout ? connect_timeout : "10",
                          "127.0.0.1:0", backend, NULL};

    example_start(&f->proxy, "tcp_proxy", args);
    f->proxy_running = true;
}

/* Stop with SIGTERM (example_stop checks exit status 0: no sanitizer
 * report either) and return the log, to be freed. */
static char *stop(example *e, bool *running)
{
    *running = false;
    return example_stop(e, SIGTERM);
}

static char *stop_proxy(fixture *f)
{
    return stop(&f->proxy, &f->proxy_running);
}

static void stop_backend(fixture *f)
{
    free(stop(&f->backend, &f->backend_running));
}

typedef struct log_wait {
    const example *e;
    const char    *text;
    int            times;
} log_wait;

static int count_in(const char *log, const char *text)
{
    int n = 0;

    for (log = strstr(log, text); log; log = strstr(log + 1, text))
        n++;
    return n;
}

static bool logged(void *arg)
{
    const log_wait *w = arg;
    char *log = example_log(w->e);
    bool found = count_in(log, w->text) >= w->times;

    free(log);
    return found;
}

/* Wait (WAIT_LIMIT at most) until the log holds `text` `times` times. */
static void expect_logged(const example *e, const char *text, int times)
{
    log_wait w = {e, text, times};
    char *log;

    if (wait_for(logged, &w, WAIT_LIMIT))
        return;
    log = example_log(e);
    fail_msg("the log should hold '%s' %d times; it is:\n%s", text, times,
             log);
}

/* ---- clients ------------------------------------------------------------ */

/* "127.0.0.1:40000" -> host and port strings */
static void split(const char *address, char *host, size_t hsize, char *port,
                  size_t psize)
{
    const char *colon = strrchr(address, ':');

    snprintf(host, hsize, "%.*s", (int)(colon - address), address);
    snprintf(port, psize, "%s", colon + 1);
}

/* nc -N through the proxy: `input`, then a half-close; what comes back
 * until the proxy closes. `guard` seconds: a hang guard. */
static void expect_nc_within(const fixture *f, const char *input, size_t len,
                             const char *want, size_t want_len,
                             const char *model, double guard)
{
    char host[64], port[16], *out = NULL, *err = NULL;
    size_t out_len = 0;
    int rc;

    split(f->proxy.address, host, sizeof host, port, sizeof port);
    rc = run_command((const char *[]){"nc", "-N", host, port, NULL}, input,
                     len, &out, &out_len, &err, guard);
    expect_true(rc == 0 && out_len == want_len &&
                memcmp(out, want, want_len) == 0,
                "--model %s: nc exited %d with %zu bytes (stderr '%s'); "
                "expected %zu bytes, '%.40s'", model, rc, out_len, err,
                want_len, want);
    free(out);
    free(err);
}

static void expect_nc(const fixture *f, const char *input,
                      const char *want, const char *model)
{
    expect_nc_within(f, input, strlen(input), want, strlen(want), model,
                     WAIT_LIMIT);
}

static void need(const char *program)
{
    if (!have_program(program)) {
        print_message("%s is not installed: skipped\n", program);
        skip();
    }
}

static int connect_proxy(const fixture *f)
{
    int fd = connect_text(f->proxy.address);

    expect_true(fd >= 0, "cannot connect to the proxy at %s: %s",
                f->proxy.address, strerror(errno));
    return fd;
}

/* Everything until EOF (the client's receive timeout, WAIT_LIMIT, bounds
 * each wait), NUL-terminated into buf; false when the connection did not
 * end with EOF. */
static bool recv_to_eof(int fd, char *buf, size_t size)
{
    size_t n = 0;
    ssize_t r;

    while (n + 1 < size && (r = recv(fd, buf + n, size - 1 - n, 0)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return n + 1 < size && r == 0;
}

/* The proxy closed the connection: EOF, or a reset. Not the client's
 * receive timeout. */
static void expect_closed(int fd, const char *model)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, 0);

    expect_true(n == 0 || (n < 0 && errno == ECONNRESET),
                "--model %s: the proxy should have closed the connection: "
                "recv returned %zd (%s)", model, n,
                n < 0 ? strerror(errno) : "data");
}

/* ---- a backend the test plays ------------------------------------------- */

/* A TCP socket bound to 127.0.0.1:0, listening with `backlog` unless it is
 * negative (then a connection to it is refused); its address goes to
 * address. */
static int backend_socket(fixture *f, int backlog, char *address, size_t size)
{
    ss_address a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(ss_address_parse(&a, "127.0.0.1:0"), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a.storage, a.len), 0);
    a.len = sizeof a.storage;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a.storage, &a.len),
                     0);
    if (backlog >= 0)
        assert_int_equal(listen(fd, backlog), 0);
    ss_address_format(&a, address, size);
    f->listener = fd;
    return fd;
}

/* The connection the proxy made to the test's backend, with the clients'
 * 10 s timeouts. */
static int accept_backend(int listener, const char *model)
{
    struct pollfd p = {.fd = listener, .events = POLLIN};
    struct timeval tv = {(time_t)WAIT_LIMIT, 0};
    int fd;

    expect_true(poll(&p, 1, (int)(WAIT_LIMIT * 1000)) == 1,
                "--model %s: the proxy did not connect to the backend",
                model);
    fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv),
                     0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv),
                     0);
    return fd;
}

/* ---- through the proxy to the other examples ---------------------------- */

static void test_nc_through_the_proxy_to_the_echo_server(void **state)
{
    fixture *f = *state;
    size_t i;

    need("nc");
    start_backend(f, "echo_tcp_server", (const char *[]){"127.0.0.1:0", NULL});
    for (i = 0; i < sizeof models / sizeof *models; i++) {
        char *log, line[160];

        start_proxy(f, models[i], f->backend.address, NULL);
        expect_nc(f, "hello\nproxy\n", "HELLO\nPROXY\n", models[i]);
        log = stop_proxy(f);
        snprintf(line, sizeof line, ": closed, 12 bytes to %s, 12 back\n",
                 f->backend.address);
        expect_true(strstr(log, line) != NULL, "--model %s: the log should "
                    "say '%s':\n%s", models[i], line, log);
        free(log);
    }
    stop_backend(f);
}

/* The hang guard of a large stream through the proxy: at least ten times
 * what the ThreadSanitizer build takes on a busy 2-core machine. */
#define STREAM_GUARD 300.0

/* An echo backend in a thread of the test: it sends back what it reads,
 * as it reads it. No cmocka calls here: the test checks what came back. */
typedef struct echo_backend {
    int       listener;
    pthread_t thread;
} echo_backend;

static void *echo_main(void *arg)
{
    echo_backend *b = arg;
    struct pollfd p = {.fd = b->listener, .events = POLLIN};
    static char buf[65536];
    ssize_t n;
    int fd;

    if (poll(&p, 1, (int)(WAIT_LIMIT * 1000)) != 1 ||
        (fd = accept4(b->listener, NULL, NULL, SOCK_CLOEXEC)) < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO,
               &(struct timeval){(time_t)WAIT_LIMIT, 0},
               sizeof(struct timeval));
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0 &&
           send_all_fd(fd, buf, (size_t)n) == 0)
        ;
    close(fd);
    return NULL;
}

/* net.ipv4.tcp_rmem's or tcp_wmem's maximum: how far a socket buffer on
 * loopback may grow. */
static long buffer_max(const char *name)
{
    char path[64], *text;
    long most = 0;

    snprintf(path, sizeof path, "/proc/sys/net/ipv4/%s", name);
    text = read_file(path, NULL);
    if (!text || sscanf(text, "%*d %*d %ld", &most) != 1 || most <= 0)
        most = 8L << 20;
    free(text);
    return most;
}

/* A stream both ways larger than every buffer between the proxy and an
 * echo backend. A proxy that stopped reading the backend while it waited
 * to send to it would deadlock: the backend, blocked sending what it
 * echoed, stops reading, and the proxy's send never ends. Then nc never
 * gets its echo, and run_command's hang guard fails the test. The
 * backend's buffers are kept small so that the proxy's own decide the
 * size. */
static void test_a_large_stream_both_ways_does_not_deadlock(void **state)
{
    fixture *f = *state;
    const char *proxy_models[] = {"threading", "async"};
    size_t len = (size_t)(buffer_max("tcp_rmem") + buffer_max("tcp_wmem")) +
                 (1 << 20), i, j;
    char backend[SS_ADDRESS_STRLEN], *data = malloc(len);
    int small = 65536;

    need("nc");
    assert_non_null(data);
    for (j = 0; j < len; j++)
        data[j] = (char)('a' + j % 26);
    backend_socket(f, -1, backend, sizeof backend);
    assert_int_equal(setsockopt(f->listener, SOL_SOCKET, SO_RCVBUF, &small,
                                sizeof small), 0);
    assert_int_equal(setsockopt(f->listener, SOL_SOCKET, SO_SNDBUF, &small,
                                sizeof small), 0);
    assert_int_equal(listen(f->listener, 8), 0);
    for (i = 0; i < sizeof proxy_models / sizeof *proxy_models; i++) {
        echo_backend b = {.listener = f->listener};

        assert_int_equal(pthread_create(&b.thread, NULL, echo_main, &b), 0);
        start_proxy(f, proxy_models[i], backend, NULL);
        expect_nc_within(f, data, len, data, len, proxy_models[i],
                         STREAM_GUARD);
        free(stop_proxy(f));
        pthread_join(b.thread, NULL);
    }
    free(data);
}

static void test_curl_through_the_proxy_to_the_http_server(void **state)
{
    fixture *f = *state;
    char path[256];
    size_t i;
    int fd;

    need("curl");
    f->root = make_temp_dir("proxy-www");
    snprintf(path, sizeof path, "%s/hello.txt", f->root);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, HELLO, strlen(HELLO)), (int)strlen(HELLO));
    close(fd);
    start_backend(f, "http_server", (const char *[]){"--root", f->root,
                                                     "127.0.0.1:0", NULL});
    for (i = 0; i < sizeof models / sizeof *models; i++) {
        char url[160], *out = NULL, *err = NULL;
        int rc;

        start_proxy(f, models[i], f->backend.address, NULL);
        snprintf(url, sizeof url, "http://%s/hello.txt", f->proxy.address);
        /* --max-time: a hang guard, below run_command's WAIT_LIMIT */
        rc = run_command((const char *[]){"curl", "-sS", "--max-time", "8",
                                          url, NULL}, NULL, 0, &out, NULL,
                         &err, WAIT_LIMIT);
        expect_true(rc == 0 && strcmp(out, HELLO) == 0, "--model %s: curl "
                    "exited %d and printed '%s' (stderr '%s'); expected '%s'",
                    models[i], rc, out, err, HELLO);
        free(out);
        free(err);
        free(stop_proxy(f));
    }
    expect_logged(&f->backend, "\"GET /hello.txt HTTP/1.1\" 200",
                  (int)(sizeof models / sizeof *models));
    stop_backend(f);
}

static void test_a_unix_socket_backend(void **state)
{
    fixture *f = *state;
    const char *path = temp_path("proxy-backend");
    const char *proxy_models[] = {"threading", "async"};
    size_t i;

    need("nc");
    start_backend(f, "echo_unix_server", (const char *[]){path, NULL});
    for (i = 0; i < sizeof proxy_models / sizeof *proxy_models; i++) {
        start_proxy(f, proxy_models[i], path, NULL);
        expect_nc(f, "unix\n", "UNIX\n", proxy_models[i]);
        free(stop_proxy(f));
    }
    stop_backend(f);
}

/* ---- half-closes -------------------------------------------------------- */

/* The client sends and shuts down its side; the backend sees EOF only
 * then, answers after it, and the answer still reaches the client. */
static void test_a_half_close_from_the_client_passes_through(void **state)
{
    fixture *f = *state;
    char backend[SS_ADDRESS_STRLEN], got[256];
    size_t i;

    backend_socket(f, 8, backend, sizeof backend);
    for (i = 0; i < sizeof models / sizeof *models; i++) {
        int client, server;

        start_proxy(f, models[i], backend, NULL);
        client = connect_proxy(f);
        assert_int_equal(send_all_fd(client, "12345", 5), 0);
        assert_int_equal(shutdown(client, SHUT_WR), 0);
        server = accept_backend(f->listener, models[i]);
        expect_true(recv_to_eof(server, got, sizeof got) &&
                    strcmp(got, "12345") == 0, "--model %s: the backend "
                    "should get the 5 bytes, then EOF; it got '%s'",
                    models[i], got);
        assert_int_equal(send_all_fd(server, "got 5 bytes\n", 12), 0);
        close(server);
        expect_true(recv_to_eof(client, got, sizeof got) &&
                    strcmp(got, "got 5 bytes\n") == 0, "--model %s: the "
                    "answer sent after EOF should reach the client, then "
                    "EOF; it got '%s'", models[i], got);
        close(client);
        free(stop_proxy(f));
    }
}

/* The backend says its piece and shuts down its side; the client sees EOF
 * and can still send, and the backend reads it all. */
static void test_a_half_close_from_the_backend_passes_through(void **state)
{
    fixture *f = *state;
    char backend[SS_ADDRESS_STRLEN], got[256];
    size_t i;

    backend_socket(f, 8, backend, sizeof backend);
    for (i = 0; i < sizeof models / sizeof *models; i++) {
        int client, server;

        start_proxy(f, models[i], backend, NULL);
        client = connect_proxy(f);
        server = accept_backend(f->listener, models[i]);
        assert_int_equal(send_all_fd(server, "welcome\n", 8), 0);
        assert_int_equal(shutdown(server, SHUT_WR), 0);
        expect_true(recv_to_eof(client, got, sizeof got) &&
                    strcmp(got, "welcome\n") == 0, "--model %s: the client "
                    "should get the welcome, then EOF; it got '%s'",
                    models[i], got);
        assert_int_equal(send_all_fd(client, "still here\n", 11), 0);
        assert_int_equal(shutdown(client, SHUT_WR), 0);
        expect_true(recv_to_eof(server, got, sizeof got) &&
                    strcmp(got, "still here\n") == 0, "--model %s: the "
                    "backend should get what the client sent after the "
                    "backend's EOF; it got '%s'", models[i], got);
        close(server);
        expect_closed(client, models[i]);
        close(client);
        free(stop_proxy(f));
    }
}

/* ---- backends that fail ------------------------------------------------- */

/* Nothing listens on the backend's port: the client's connection is
 * closed, the log names the backend and why, and the proxy still serves:
 * once the backend listens, the next client gets through. */
static void test_a_backend_that_refuses_is_logged_and_the_proxy_goes_on(
    void **state)
{
    fixture *f = *state;
    char backend[SS_ADDRESS_STRLEN], line[SS_ADDRESS_STRLEN + 64], got[64];
    size_t i;

    for (i = 0; i < sizeof models / sizeof *models; i++) {
        int client, server;

        backend_socket(f, -1, backend, sizeof backend);    /* not listening */
        start_proxy(f, models[i], backend, NULL);
        client = connect_proxy(f);
        expect_closed(client, models[i]);
        close(client);
        snprintf(line, sizeof line, ": cannot connect to the backend %s: "
                 "Connection refused\n", backend);
        expect_logged(&f->proxy, line, 1);
        assert_int_equal(listen(f->listener, 8), 0);
        client = connect_proxy(f);
        assert_int_equal(send_all_fd(client, "ping\n", 5), 0);
        server = accept_backend(f->listener, models[i]);
        expect_true(recv_line(server, got, sizeof got) == 5 &&
                    strcmp(got, "ping\n") == 0, "--model %s: the backend "
                    "should get ping, it got '%s'", models[i], got);
        assert_int_equal(send_all_fd(server, "pong\n", 5), 0);
        close(server);
        expect_true(recv_to_eof(client, got, sizeof got) &&
                    strcmp(got, "pong\n") == 0, "--model %s: the client "
                    "should get pong, then EOF; it got '%s'", models[i], got);
        close(client);
        free(stop_proxy(f));
        close(f->listener);
        f->listener = -1;
    }
}

/* A backend whose listen queue is full drops the proxy's SYN: the connect
 * timeout ends the wait, and the log says so. */
static void test_a_backend_that_never_answers_times_out(void **state)
{
    fixture *f = *state;
    const char *proxy_models[] = {"threading", "async"};
    char backend[SS_ADDRESS_STRLEN], line[SS_ADDRESS_STRLEN + 64];
    ss_address a;
    size_t i;
    int filler;

    /* Backlog 0 holds one connection; a SYN beyond it is dropped. */
    backend_socket(f, 0, backend, sizeof backend);
    assert_int_equal(ss_address_parse(&a, backend), 0);
    filler = client_connect(&a);
    assert_true(filler >= 0);
    for (i = 0; i < sizeof proxy_models / sizeof *proxy_models; i++) {
        int client;

        start_proxy(f, proxy_models[i], backend, "1");
        client = connect_proxy(f);
        expect_closed(client, proxy_models[i]);
        close(client);
        snprintf(line, sizeof line, ": cannot connect to the backend %s: no "
                 "answer within 1 s\n", backend);
        expect_logged(&f->proxy, line, 1);
        free(stop_proxy(f));
    }
    close(filler);
}

/* ---- load and stopping -------------------------------------------------- */

#define CLIENTS 50

/* 50 clients connected at once, each waiting for its answer before any
 * closes: one event loop must serve them side by side. */
static void test_fifty_connections_at_once_on_one_event_loop(void **state)
{
    fixture *f = *state;
    const char *args[] = {"--model", "async", "--workers", "1",
                          "127.0.0.1:0", NULL, NULL};
    int fds[CLIENTS], i;
    char *log;

    start_backend(f, "echo_tcp_server", (const char *[]){"127.0.0.1:0", NULL});
    args[5] = f->backend.address;
    example_start(&f->proxy, "tcp_proxy", args);
    f->proxy_running = true;
    for (i = 0; i < CLIENTS; i++) {
        char line[32];

        fds[i] = connect_proxy(f);
        snprintf(line, sizeof line, "client %d\n", i);
        assert_int_equal(send_all_fd(fds[i], line, strlen(line)), 0);
    }
    for (i = 0; i < CLIENTS; i++) {
        char want[32], got[32] = "";

        snprintf(want, sizeof want, "CLIENT %d\n", i);
        expect_true(recv_line(fds[i], got, sizeof got) > 0 &&
                    strcmp(got, want) == 0, "client %d should get '%s', it "
                    "got '%s'", i, want, got);
    }
    for (i = 0; i < CLIENTS; i++)
        close(fds[i]);
    expect_logged(&f->proxy, ": closed, ", CLIENTS);
    log = stop_proxy(f);
    expect_true(count_in(log, ": closed, ") == CLIENTS, "%d connections "
                "should have closed:\n%s", CLIENTS, log);
    free(log);
    stop_backend(f);
}

/* SIGTERM with a client connected and idle: the proxy exits 0
 * (example_stop checks; close_timeout ends the idle relay) and the
 * client's connection ends. */
static void test_stops_cleanly_with_a_connection_open(void **state)
{
    fixture *f = *state;
    size_t i;

    start_backend(f, "echo_tcp_server", (const char *[]){"127.0.0.1:0", NULL});
    for (i = 0; i < sizeof models / sizeof *models; i++) {
        char got[32];
        int client;

        start_proxy(f, models[i], f->backend.address, NULL);
        client = connect_proxy(f);
        assert_int_equal(send_all_fd(client, "idle\n", 5), 0);
        expect_true(recv_line(client, got, sizeof got) == 5,
                    "--model %s: an echo through the proxy", models[i]);
        free(stop_proxy(f));
        expect_closed(client, models[i]);
        close(client);
    }
    stop_backend(f);
}

static void test_bad_command_lines_are_refused(void **state)
{
    char *err = NULL;
    int rc;

    (void)state;
    rc = run_command((const char *[]){example_bin("tcp_proxy"),
                                      "127.0.0.1:0", NULL}, NULL, 0, NULL,
                     NULL, &err, WAIT_LIMIT);
    expect_true(rc == 2 && strstr(err, "BACKEND_ADDRESS"), "one operand: "
                "exit %d, stderr '%s'", rc, err);
    free(err);
    rc = run_command((const char *[]){example_bin("tcp_proxy"),
                                      "127.0.0.1:0", "127.0.0.1:99999", NULL},
                     NULL, 0, NULL, NULL, &err, WAIT_LIMIT);
    expect_true(rc == 2 && strstr(err, "99999"), "a bad backend: exit %d, "
                "stderr '%s'", rc, err);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_nc_through_the_proxy_to_the_echo_server),
        TEST(test_a_large_stream_both_ways_does_not_deadlock),
        TEST(test_curl_through_the_proxy_to_the_http_server),
        TEST(test_a_unix_socket_backend),
        TEST(test_a_half_close_from_the_client_passes_through),
        TEST(test_a_half_close_from_the_backend_passes_through),
        TEST(test_a_backend_that_refuses_is_logged_and_the_proxy_goes_on),
        TEST(test_a_backend_that_never_answers_times_out),
        TEST(test_fifty_connections_at_once_on_one_event_loop),
        TEST(test_stops_cleanly_with_a_connection_open),
        TEST(test_bad_command_lines_are_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
