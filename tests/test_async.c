/*
 * Async mode: the same handlers as coroutines on event loops. Semantics
 * are the threading model's (pipeline, hooks, timeouts, drains, abort,
 * broadcast, every server type); what is new is shown by what happens: a
 * thousand connections on one loop thread, a silent client that delays
 * nobody, ss_run_blocking off the loop, the loop driven from a test's own
 * poll(), a stack overflow reported before the process dies. Every wait is
 * bounded; nothing asserts how fast anything ran.
 */
#include "helpers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

typedef ss_server *(*constructor)(const char *, const ss_handler *,
                                  const ss_server_options *);

static int fds_before, threads_before;

static int setup_counts(void **state)
{
    (void)state;
    fds_before = count_fds();
    threads_before = count_threads();
    return 0;
}

static int check_counts(void **state)
{
    int fds = settle_fds(fds_before), threads = settle_threads(threads_before);

    (void)state;
    reap_zombies();
    if (fds != fds_before || threads != threads_before) {
        print_error("leak: %d fds (%d before), %d threads (%d before)\n",
                    fds, fds_before, threads, threads_before);
        return -1;
    }
    return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup_counts, check_counts)

static ss_server *async_server(constructor make, const char *address,
                               const ss_handler *h, const ss_server_options *o,
                               const ss_async_options *ao)
{
    ss_server *s = make(address, h, o);
    int err;

    expect_true(s != NULL, "construct %s: %s", address, ss_last_error());
    err = ss_server_use_async(s, ao);
    expect_true(err == 0, "ss_server_use_async: %s", ss_strerror(err));
    return s;
}

static int echo_lines(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[512];
    ssize_t n;
    int err;

    (void)c, (void)s;
    while ((n = ss_readline(r, line, sizeof line)) > 0)
        if ((err = ss_sendall(r, line, (size_t)n)) < 0)
            return err;
    return (int)n;
}

static void say(int fd, const char *text)
{
    assert_int_equal(send_all_fd(fd, text, strlen(text)), 0);
}

static void expect_line(int fd, const char *want)
{
    char line[600];
    ssize_t n = recv_line(fd, line, sizeof line);

    expect_true(n > 0 && strcmp(line, want) == 0, "got '%s' (%zd), expected "
                "'%s'", n > 0 ? line : "", n, want);
}

/* Nothing arrives on fd within ms (a negative check, bounded). */
static bool quiet(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, ms) == 0;
}

/* ---- the API's contract ------------------------------------------------- */

static void test_use_async_checks_its_arguments(void **state)
{
    ss_handler h = {.handle = echo_lines};
    ss_async_options small = {.stack_size = 4096}, many = {.loops = 100000},
                     slow = {.slow_handler_warning = -1};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);

    (void)state;
    assert_int_equal(ss_server_use_async(NULL, NULL), -EINVAL);
    assert_int_equal(ss_server_use_async(s, &small), -EINVAL);
    assert_int_equal(ss_server_use_async(s, &many), -EINVAL);
    assert_int_equal(ss_server_use_async(s, &slow), -EINVAL);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    assert_int_equal(ss_server_use_async(s, NULL), -EBUSY);
    assert_int_equal(ss_server_use_threading(s), -EBUSY);
    assert_int_equal(ss_server_use_forking(s), -EBUSY);
    assert_int_equal(ss_server_use_prefork(s, 2), 0);
    ss_server_free(s);
}

static void test_async_does_not_compose_with_other_process_models(void **state)
{
    ss_handler h = {.handle = echo_lines};
    ss_server *f = ss_forking_tcp_server_new("127.0.0.1:0", &h, NULL);
    ss_server *t = ss_threading_tcp_server_new("127.0.0.1:0", &h, NULL);
    ss_server *p = ss_tcp_server_new("127.0.0.1:0", &h, NULL);

    (void)state;
    assert_int_equal(ss_server_use_async(f, NULL), -ENOTSUP);
    assert_int_equal(ss_server_use_async(t, NULL), -EBUSY);
    assert_int_equal(ss_server_use_thread_pool(p, 2, 2), 0);
    assert_int_equal(ss_server_use_async(p, NULL), -EBUSY);
    ss_server_free(f);
    ss_server_free(t);
    ss_server_free(p);
}

/* ---- every server type, one loop and two ---------------------------------- */

static void examine_type(constructor make, bool unix_family, bool datagram,
                         unsigned loops)
{
    const char *address = unix_family ? temp_path("async") : "127.0.0.1:0";
    ss_handler h = {.handle = echo_line_handle};
    ss_async_options ao = {.loops = loops};
    ss_server *s = async_server(make, address, &h, NULL, &ao);
    served sv;
    int i;

    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 3; i++) {
        if (datagram)
            dgram_examine(ss_server_address(s));
        else
            stream_examine(ss_server_address(s));
    }
    stop_serving(&sv);
    ss_server_free(s);
    if (unix_family) {
        struct stat st;

        expect_true(lstat(address, &st) < 0 && errno == ENOENT,
                    "the socket file %s is left after close", address);
    }
}

static void test_tcp_server(void **state)
{
    (void)state;
    examine_type(ss_tcp_server_new, false, false, 1);
    examine_type(ss_tcp_server_new, false, false, 2);
}

static void test_udp_server(void **state)
{
    (void)state;
    examine_type(ss_udp_server_new, false, true, 1);
    examine_type(ss_udp_server_new, false, true, 2);
}

static void test_unix_stream_server(void **state)
{
    (void)state;
    examine_type(ss_unix_stream_server_new, true, false, 1);
    examine_type(ss_unix_stream_server_new, true, false, 2);
}

static void test_unix_datagram_server(void **state)
{
    (void)state;
    examine_type(ss_unix_datagram_server_new, true, true, 1);
    examine_type(ss_unix_datagram_server_new, true, true, 2);
}

/* ---- the pipeline, as in the threading model --------------------------------- */

static char trace[512];
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;

static void note(const char *what)
{
    pthread_mutex_lock(&trace_lock);
    strncat(trace, what, sizeof trace - strlen(trace) - 1);
    strncat(trace, " ", sizeof trace - strlen(trace) - 1);
    pthread_mutex_unlock(&trace_lock);
}

typedef struct counter_state {
    int requests;   /* state is zeroed per request: always 1 after ++ */
} counter_state;

static bool v_verify(ss_server *s, ss_request *r, const ss_address *c)
{
    note("verify");
    return ss_server_base_ops(s)->verify_request(s, r, c);
}

static int v_process(ss_server *s, ss_request *r, const ss_address *c)
{
    note("process");
    return ss_server_base_ops(s)->process_request(s, r, c);
}

static int v_finish(ss_server *s, ss_request *r, const ss_address *c)
{
    note("finish_request");
    return ss_server_base_ops(s)->finish_request(s, r, c);
}

static void v_shutdown(ss_server *s, ss_request *r)
{
    note("shutdown");
    ss_server_base_ops(s)->shutdown_request(s, r);
}

static void v_close(ss_server *s, ss_request *r)
{
    note("close");
    ss_server_base_ops(s)->close_request(s, r);
}

static atomic_int error_seen;

static void v_error(ss_server *s, ss_request *r, const ss_address *c, int err)
{
    (void)s, (void)r, (void)c;
    atomic_store(&error_seen, err);
    note("error");
}

static int v_setup(ss_request *r, const ss_address *c, ss_server *s)
{
    counter_state *st = ss_request_state(r);

    (void)c, (void)s;
    note("setup");
    st->requests++;
    return 0;
}

static int v_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    counter_state *st = ss_request_state(r);
    char line[64];

    (void)c, (void)s;
    note("handle");
    if (ss_readline(r, line, sizeof line) <= 0)
        return -EPROTO;
    if (strcmp(line, "fail\n") == 0)
        return -ENOTRECOVERABLE;
    if (strcmp(line, "abort\n") == 0)
        return SS_ABORT;
    ss_printf(r, "state %d\n", st->requests);
    return 0;
}

static void v_finish_handler(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    note("finish");
}

static ss_server *pipeline_server(void)
{
    ss_handler h = {.handle = v_handle, .setup = v_setup,
                    .finish = v_finish_handler,
                    .state_size = sizeof(counter_state), .wbufsize = 1024};
    ss_server_ops ov = {
        .verify_request = v_verify, .process_request = v_process,
        .finish_request = v_finish, .shutdown_request = v_shutdown,
        .close_request = v_close, .handle_error = v_error,
    };
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                NULL);

    assert_int_equal(ss_server_override(s, &ov), 0);
    return s;
}

static bool trace_has(void *arg)
{
    bool found;

    pthread_mutex_lock(&trace_lock);
    found = strstr(trace, arg) != NULL;
    pthread_mutex_unlock(&trace_lock);
    return found;
}

static void one_exchange(ss_server *s, const char *line, const char *reply)
{
    int fd = client_connect(ss_server_address(s));

    expect_true(fd >= 0, "connect");
    say(fd, line);
    if (reply)
        expect_line(fd, reply);
    else
        expect_true(recv_line(fd, (char[64]){0}, 64) == 0,
                    "a reply to '%s'", line);
    close(fd);
    expect_true(wait_for(trace_has, "close", WAIT_LIMIT),
                "the request never closed: %s", trace);
}

static void test_pipeline_runs_every_hook_in_python_order(void **state)
{
    ss_server *s = pipeline_server();
    served sv;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    trace[0] = '\0';
    one_exchange(s, "hi\n", "state 1\n");
    assert_string_equal(trace, "verify process finish_request setup handle "
                        "finish shutdown close ");
    trace[0] = '\0';
    one_exchange(s, "again\n", "state 1\n");    /* fresh state */
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_a_failed_handler_goes_to_handle_error(void **state)
{
    ss_server *s = pipeline_server();
    served sv;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    trace[0] = '\0';
    one_exchange(s, "fail\n", NULL);
    assert_string_equal(trace, "verify process finish_request setup handle "
                        "finish error shutdown close ");
    assert_int_equal(atomic_load(&error_seen), -ENOTRECOVERABLE);
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_abort_ends_that_request_only(void **state)
{
    ss_server *s = pipeline_server();
    served sv;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    trace[0] = '\0';
    one_exchange(s, "abort\n", NULL);
    expect_true(strstr(trace, "error") == NULL, "abort reported: %s", trace);
    trace[0] = '\0';
    one_exchange(s, "still there?\n", "state 1\n");
    stop_serving(&sv);
    ss_server_free(s);
}

static bool refuse(ss_server *s, ss_request *r, const ss_address *c)
{
    (void)s, (void)r, (void)c;
    return false;
}

static void test_refused_requests_go_straight_to_shutdown(void **state)
{
    ss_server *s = pipeline_server();
    ss_server_ops ov = {.verify_request = refuse};
    served sv;

    (void)state;
    assert_int_equal(ss_server_override(s, &ov), 0);
    serve_in_thread(&sv, s, 0.05);
    trace[0] = '\0';
    one_exchange(s, "hi\n", NULL);
    assert_string_equal(trace, "shutdown close ");
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- concurrency on one thread ------------------------------------------- */

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void test_a_thousand_connections_on_one_loop_thread(void **state)
{
    enum { N = 1000 };
    ss_handler h = {.handle = echo_lines};
    ss_server *s;
    served sv;
    int *fd = calloc(N, sizeof *fd), i, threads, answered = 0;
    struct rlimit rl;

    (void)state;
    raise_nofile(4096);
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < 2 * N + 64) {
        print_message("skipped: RLIMIT_NOFILE %lu is below %d\n",
                      (unsigned long)rl.rlim_cur, 2 * N + 64);
        free(fd);
        skip();
    }
    s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL, NULL);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < N; i++) {
        fd[i] = client_connect(ss_server_address(s));
        expect_true(fd[i] >= 0, "connection %d: %s", i, strerror(errno));
        say(fd[i], "first\n");
    }
    /* Every connection is live at once, each with a handler parked in
     * ss_readline: answered in any order, by the one serving thread. */
    for (i = 0; i < N; i++) {
        char line[64], want[64];

        expect_line(fd[i], "first\n");
        snprintf(want, sizeof want, "second %d\n", i);
        say(fd[i], want);
        if (recv_line(fd[i], line, sizeof line) > 0 && !strcmp(line, want))
            answered++;
    }
    threads = count_threads();
    assert_int_equal(answered, N);
    expect_true(threads == threads_before + 1, "%d threads serve %d "
                "connections (%d before: one loop thread expected)", threads,
                N, threads_before);
    for (i = 0; i < N; i++)
        close(fd[i]);
    stop_serving(&sv);
    ss_server_free(s);
    free(fd);
}

static void test_a_silent_client_delays_nobody(void **state)
{
    ss_handler h = {.handle = echo_lines};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                NULL);
    served sv;
    int silent, other, i;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    silent = client_connect(ss_server_address(s));
    say(silent, "half a line, never finished");
    other = client_connect(ss_server_address(s));
    for (i = 0; i < 20; i++) {
        say(other, "ping\n");
        expect_line(other, "ping\n");
    }
    close(other);
    close(silent);
    stop_serving(&sv);
    ss_server_free(s);
}

/* Echoes its first line, then holds the loop without yielding (as a
 * careless handler would), so that what the client sends next, data and
 * its FIN, is reported by one event; then echoes to the end. */
static int echo_after_holding_the_loop(ss_request *r, const ss_address *c,
                                       ss_server *s)
{
    char line[64];
    ssize_t n;

    (void)c, (void)s;
    if ((n = ss_readline(r, line, sizeof line)) <= 0 ||
        ss_sendall(r, line, (size_t)n) < 0)
        return -EIO;
    sleep_ms(300);
    while ((n = ss_readline(r, line, sizeof line)) > 0)
        if (ss_sendall(r, line, (size_t)n) < 0)
            return -EIO;
    return (int)n;
}

/* A short read does not mean the socket is drained once the peer's FIN
 * came with the data: no edge follows it, and a handler that waited for
 * one would never see the end of its stream. */
static void test_data_and_fin_in_one_event_end_the_stream(void **state)
{
    ss_handler h = {.handle = echo_after_holding_the_loop};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                NULL);
    served sv;
    char rest[16];
    int fd;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    say(fd, "one\n");
    expect_line(fd, "one\n");
    say(fd, "two\n");
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    expect_line(fd, "two\n");
    /* The server closes (recv_line's own hang guard bounds the wait). */
    expect_true(recv_line(fd, rest, sizeof rest) == 0,
                "the handler never saw the end of the stream");
    close(fd);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- timeouts, drains, close ------------------------------------------------ */

static atomic_int handler_result;

static int record_recv(ss_request *r, const ss_address *c, ss_server *s)
{
    char buf[64];
    ssize_t n;

    (void)c, (void)s;
    n = ss_recv(r, buf, sizeof buf);
    atomic_store(&handler_result, n >= 0 ? 1 : (int)n);
    return 0;
}

static bool result_set(void *arg)
{
    (void)arg;
    return atomic_load(&handler_result) != 0;
}

static void test_handler_timeout_ends_a_wait_with_etimedout(void **state)
{
    ss_handler h = {.handle = record_recv, .timeout = 0.2};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                NULL);
    served sv;
    double t0;
    int fd;

    (void)state;
    atomic_store(&handler_result, 0);
    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    t0 = now();
    expect_true(wait_for(result_set, NULL, WAIT_LIMIT), "no timeout");
    assert_int_equal(atomic_load(&handler_result), -ETIMEDOUT);
    expect_true(now() - t0 >= 0.2, "timed out early");
    close(fd);
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_shutdown_returns_and_close_drains_idle_handlers(void **state)
{
    ss_handler h = {.handle = record_recv};
    ss_server_options o = {.close_timeout = 0.2};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, &o,
                                NULL);
    served sv;
    char buf[8];
    int fd, i;

    (void)state;
    atomic_store(&handler_result, 0);
    serve_in_thread(&sv, s, 10.0);     /* shutdown must not wait for this */
    fd = client_connect(ss_server_address(s));
    for (i = 0; i < 2000 && ss_server_active_handlers(s) < 1; i++)
        sleep_ms(5);
    assert_int_equal(ss_server_active_handlers(s), 1);
    stop_serving(&sv);
    expect_true(!result_set(NULL), "shutdown cut the idle handler short");
    ss_server_close(s);
    /* close waited close_timeout, then shut the connection down: the
     * handler's read ended (EOF), and the client sees the close. */
    assert_int_equal(atomic_load(&handler_result), 1);
    assert_int_equal(recv(fd, buf, sizeof buf, 0), 0);
    close(fd);
    ss_server_free(s);
}

static void test_free_drains_after_no_block_on_close(void **state)
{
    ss_handler h = {.handle = record_recv};
    ss_server_options o = {.close_timeout = 0.1, .no_block_on_close = true};
    ss_async_options ao = {.loops = 2};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, &o,
                                &ao);
    served sv;
    int fd[4], i;

    (void)state;
    atomic_store(&handler_result, 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 4; i++)
        fd[i] = client_connect(ss_server_address(s));
    say(fd[0], "x");
    expect_true(wait_for(result_set, NULL, WAIT_LIMIT), "not served");
    stop_serving(&sv);
    ss_server_close(s);     /* returns at once */
    ss_server_free(s);      /* drains the idle ones */
    for (i = 0; i < 4; i++)
        close(fd[i]);
}

/* A handler waiting on something else than its client: close's cut ends
 * that wait too. */
static atomic_int pipe_rfd = -1;

static int wait_on_pipe(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)c, (void)s;
    ss_sendall(r, "waiting\n", 8);
    atomic_store(&handler_result, ss_wait_fd(r, atomic_load(&pipe_rfd), POLLIN,
                                             -1));
    return 0;
}

static void test_close_cuts_waits_on_other_descriptors(void **state)
{
    ss_handler h = {.handle = wait_on_pipe};
    ss_server_options o = {.close_timeout = 0.1};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, &o,
                                NULL);
    served sv;
    int p[2], fd;

    (void)state;
    assert_int_equal(pipe(p), 0);
    atomic_store(&pipe_rfd, p[0]);
    atomic_store(&handler_result, 0);
    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    expect_line(fd, "waiting\n");
    stop_serving(&sv);
    ss_server_free(s);
    assert_int_equal(atomic_load(&handler_result), -ESHUTDOWN);
    close(fd);
    close(p[0]);
    close(p[1]);
}

/* ---- waits any model offers --------------------------------------------------- */

static int wait_then_sleep(ss_request *r, const ss_address *c, ss_server *s)
{
    char b;
    int rc;

    (void)c, (void)s;
    ss_sendall(r, "ready\n", 6);
    rc = ss_wait_fd(r, atomic_load(&pipe_rfd), POLLIN, WAIT_LIMIT);
    if (rc != 1)
        return ss_printf(r, "wait %d\n", rc), 0;
    if (read(atomic_load(&pipe_rfd), &b, 1) != 1)
        return -EIO;
    rc = ss_wait_fd(r, atomic_load(&pipe_rfd), POLLIN, 0.05);
    if (rc != 0)
        return ss_printf(r, "second wait %d\n", rc), 0;
    rc = ss_sleep(r, 0.05);
    ss_printf(r, "woke %c, slept %d\n", b, rc);
    return 0;
}

static void check_wait_fd_and_sleep(int model)
{
    ss_handler h = {.handle = wait_then_sleep};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;
    int p[2], fd, err = 0;

    assert_int_equal(pipe(p), 0);
    atomic_store(&pipe_rfd, p[0]);
    if (model == 1)
        err = ss_server_use_threading(s);
    else if (model == 2)
        err = ss_server_use_thread_pool(s, 2, 2);
    else if (model == 3)
        err = ss_server_use_async(s, NULL);
    assert_int_equal(err, 0);
    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    expect_line(fd, "ready\n");
    assert_int_equal(write(p[1], "!", 1), 1);
    expect_line(fd, "woke !, slept 0\n");
    close(fd);
    stop_serving(&sv);
    ss_server_free(s);
    close(p[0]);
    close(p[1]);
}

static void test_wait_fd_and_sleep_work_in_every_model(void **state)
{
    (void)state;
    check_wait_fd_and_sleep(0);
    check_wait_fd_and_sleep(1);
    check_wait_fd_and_sleep(2);
    check_wait_fd_and_sleep(3);
}

static void test_wait_fd_rejects_bad_arguments(void **state)
{
    (void)state;
    assert_int_equal(ss_wait_fd(NULL, 0, POLLIN, 0), -EINVAL);
    assert_int_equal(ss_sleep(NULL, 1), -EINVAL);
    assert_int_equal(ss_run_blocking(NULL, NULL, NULL), -EINVAL);
}

/* ---- ss_run_blocking ---------------------------------------------------------- */

static atomic_int release_blocking;

static int blocking_work(void *arg)
{
    double end = now() + WAIT_LIMIT;

    (void)arg;
    /* Holds its thread until the test says so: the loop must serve
     * others meanwhile. */
    while (!atomic_load(&release_blocking) && now() < end)
        sleep_ms(1);
    return 42;
}

static int blocking_or_echo(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[64];

    (void)c, (void)s;
    while (ss_readline(r, line, sizeof line) > 0) {
        if (strcmp(line, "block\n") == 0)
            ss_printf(r, "result %d\n", ss_run_blocking(r, blocking_work, NULL));
        else
            ss_sendall(r, line, strlen(line));
    }
    return 0;
}

static void test_run_blocking_leaves_the_loop_free(void **state)
{
    ss_handler h = {.handle = blocking_or_echo};
    ss_async_options ao = {.blocking_threads = 1};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                &ao);
    served sv;
    int a, b;

    (void)state;
    atomic_store(&release_blocking, 0);
    serve_in_thread(&sv, s, 0.05);
    a = client_connect(ss_server_address(s));
    b = client_connect(ss_server_address(s));
    say(a, "block\n");
    /* While a's call holds a blocking thread, b is served. */
    say(b, "echo\n");
    expect_line(b, "echo\n");
    expect_true(quiet(a, 50), "the blocking call returned early");
    atomic_store(&release_blocking, 1);
    expect_line(a, "result 42\n");
    close(a);
    close(b);
    stop_serving(&sv);
    ss_server_free(s);
}

static int run_directly(void *arg)
{
    *(pthread_t *)arg = pthread_self();
    return 7;
}

static int blocking_in_thread_model(ss_request *r, const ss_address *c,
                                    ss_server *s)
{
    pthread_t who;
    int rc = ss_run_blocking(r, run_directly, &who);

    (void)c, (void)s;
    ss_printf(r, "%d %s\n", rc, pthread_equal(who, pthread_self())
                                ? "here" : "elsewhere");
    return 0;
}

static void test_run_blocking_calls_directly_in_thread_models(void **state)
{
    ss_handler h = {.handle = blocking_in_thread_model};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;
    int fd;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    expect_line(fd, "7 here\n");
    close(fd);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- several loops ---------------------------------------------------------- */

/* A request stays on the loop that accepted it: its handler runs on one
 * thread from start to end. */
static int same_thread_echo(ss_request *r, const ss_address *c, ss_server *s)
{
    pthread_t me = pthread_self();
    char line[64];
    bool moved = false;

    (void)c, (void)s;
    while (ss_readline(r, line, sizeof line) > 0) {
        moved |= !pthread_equal(me, pthread_self());
        ss_printf(r, "%s\n", moved ? "moved" : "same");
    }
    return 0;
}

static void test_two_loops_keep_each_request_on_its_loop(void **state)
{
    enum { N = 64 };
    ss_handler h = {.handle = same_thread_echo};
    ss_async_options ao = {.loops = 2};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                &ao);
    served sv;
    int fd[N], i, round;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < N; i++)
        fd[i] = client_connect(ss_server_address(s));
    for (round = 0; round < 5; round++)
        for (i = 0; i < N; i++) {
            say(fd[i], "x\n");
            expect_line(fd[i], "same\n");
        }
    expect_true(count_threads() == threads_before + 2, "%d threads for two "
                "loops (%d before)", count_threads(), threads_before);
    for (i = 0; i < N; i++)
        close(fd[i]);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- broadcast ----------------------------------------------------------------- */

/* Connections on both of two loops: the first handler to start holds its
 * loop (spins, not yielding) until `hold_for` more handlers have started,
 * so the other loop accepts those. Each handler's thread is kept, in
 * start order. */
enum { SPLIT_MAX = 64 };

static struct {
    int               hold_for;
    atomic_int        started;
    atomic_uintptr_t  thread[SPLIT_MAX];
} split;

static void split_reset(int hold_for)
{
    int i;

    split.hold_for = hold_for;
    atomic_store(&split.started, 0);
    for (i = 0; i < SPLIT_MAX; i++)
        atomic_store(&split.thread[i], 0);
}

/* A handler's first call; returns its start order. */
static int split_loops(void)
{
    int me = atomic_fetch_add(&split.started, 1);
    double end = now() + WAIT_LIMIT;

    if (me < SPLIT_MAX)
        atomic_store(&split.thread[me], (uintptr_t)pthread_self());
    if (me == 0)
        while (atomic_load(&split.started) < 1 + split.hold_for &&
               now() < end)
            ;
    return me;
}

static bool split_started(void *arg)
{
    return atomic_load(&split.started) >= *(int *)arg;
}

/* The first client: connected, and its handler holding its loop, so the
 * clients connected next land on the other loop. */
static int split_first_client(ss_server *s)
{
    int fd = client_connect(ss_server_address(s)), one = 1;

    expect_true(wait_for(split_started, &one, WAIT_LIMIT),
                "the first handler never started");
    return fd;
}

/* How many of the first n handlers ran on the first one's thread. */
static int on_first_loop(int n)
{
    uintptr_t first = atomic_load(&split.thread[0]);
    int i, same = 0;

    for (i = 0; i < n && i < SPLIT_MAX; i++)
        same += atomic_load(&split.thread[i]) == first;
    return same;
}

static int chat(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[1100];
    ssize_t n;

    (void)c;
    while ((n = ss_readline(r, line, sizeof line)) > 0)
        ss_server_broadcast(s, line, (size_t)n, r);
    return 0;
}

static int chat_on_two_loops(ss_request *r, const ss_address *c,
                             ss_server *s)
{
    split_loops();
    return chat(r, c, s);
}

static void test_broadcast_reaches_every_other_client_across_loops(void **state)
{
    enum { N = 12 };
    ss_handler h = {.handle = chat_on_two_loops};
    ss_async_options ao = {.loops = 2};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                &ao);
    served sv;
    int fd[N], i, j, n = N;
    char msg[64];

    (void)state;
    split_reset(N / 2);
    serve_in_thread(&sv, s, 0.05);
    fd[0] = split_first_client(s);
    for (i = 1; i < N; i++)
        fd[i] = client_connect(ss_server_address(s));
    expect_true(wait_for(split_started, &n, WAIT_LIMIT), "%d of %d handlers "
                "started", atomic_load(&split.started), N);
    assert_int_equal(ss_server_active_handlers(s), N);
    expect_true(on_first_loop(N) <= N / 2, "%d of %d clients on one loop",
                on_first_loop(N), N);
    for (i = 0; i < N; i++) {
        snprintf(msg, sizeof msg, "from %d\n", i);
        say(fd[i], msg);
        for (j = 0; j < N; j++)
            if (j != i)
                expect_line(fd[j], msg);
        expect_true(quiet(fd[i], 20), "client %d heard itself", i);
    }
    for (i = 0; i < N; i++)
        close(fd[i]);
    stop_serving(&sv);
    ss_server_free(s);
}

/* A sender's broadcast lives on its coroutine stack; the receivers' loops
 * must be done with it when ss_server_broadcast returns. The sender holds
 * its loop while the receivers connect (split_loops), so they are on the
 * other loop; then a "storm K" line makes it broadcast K times, and after
 * each scribble over the stack the broadcast used and let its loop turn:
 * had a receiver's loop still held the finished broadcast (its notice to
 * the sender queued, or about to be), the sender's loop would run
 * garbage. Successive broadcasts alternate between two stack depths, so a
 * stale one is never quietly overwritten by the next. */
enum { STORM_RECEIVERS = 2 };

static __attribute__((noinline)) void scribble_and_yield(ss_request *r)
{
    volatile char junk[4096];
    size_t i;

    for (i = 0; i < sizeof junk; i++)
        junk[i] = (char)0xa5;
    ss_sleep(r, 0);
}

static __attribute__((noinline)) int broadcast_deeper(ss_server *s,
                                                      ss_request *r)
{
    volatile char pad[1024];

    pad[0] = 0;
    return ss_server_broadcast(s, "x\n", 2, r) + pad[0];
}

static int storm(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[64];
    long reached = 0;
    int i, k;

    (void)c;
    if (split_loops() > 0) {            /* a receiver: silent, then gone */
        while (ss_readline(r, line, sizeof line) > 0)
            ;
        return 0;
    }
    if (ss_readline(r, line, sizeof line) <= 0 ||
        sscanf(line, "storm %d", &k) != 1)
        return -1;
    for (i = 0; i < k; i++) {
        reached += i % 2 ? broadcast_deeper(s, r)
                         : ss_server_broadcast(s, "x\n", 2, r);
        scribble_and_yield(r);
    }
    ss_printf(r, "reached %ld\n", reached);
    while (ss_readline(r, line, sizeof line) > 0)
        ;
    return 0;
}

static const struct timeval storm_guard = {(time_t)(10 * WAIT_LIMIT), 0};

static void test_broadcast_storm_across_loops(void **state)
{
    enum { K = 2000 };      /* the old race failed 6 runs of 6 at this */
    ss_handler h = {.handle = storm, .timeout = WAIT_LIMIT * 10};
    ss_async_options ao = {.loops = 2};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                &ao);
    int rx[STORM_RECEIVERS], tx, i;
    char want[64], got[2 * K + 1];
    served sv;

    (void)state;
    split_reset(STORM_RECEIVERS);
    serve_in_thread(&sv, s, 0.05);
    tx = split_first_client(s);
    /* K cross-loop round trips: each can wait a scheduler tick on a busy
     * machine, so "reached" gets ten hang guards, not one */
    assert_int_equal(setsockopt(tx, SOL_SOCKET, SO_RCVTIMEO, &storm_guard,
                                sizeof storm_guard), 0);
    for (i = 0; i < STORM_RECEIVERS; i++)
        rx[i] = client_connect(ss_server_address(s));
    snprintf(want, sizeof want, "storm %d\n", K);
    say(tx, want);
    snprintf(want, sizeof want, "reached %d\n", K * STORM_RECEIVERS);
    expect_line(tx, want);
    expect_true(on_first_loop(1 + STORM_RECEIVERS) == 1, "receivers on the "
                "sender's loop: %d", on_first_loop(1 + STORM_RECEIVERS) - 1);
    for (i = 0; i < STORM_RECEIVERS; i++) {
        expect_true(recv_exact(rx[i], got, 2 * K) == 2 * K,
                    "receiver %d: fewer than %d bytes", i, 2 * K);
        got[2 * K] = '\0';
        expect_true(strspn(got, "x\n") == 2 * K && quiet(rx[i], 20),
                    "receiver %d heard something else", i);
    }
    for (i = 0; i < STORM_RECEIVERS; i++)
        close(rx[i]);
    close(tx);
    stop_serving(&sv);
    ss_server_free(s);
}

static atomic_int broadcast_reached;

static void *broadcast_from_thread(void *arg)
{
    atomic_store(&broadcast_reached,
                 ss_server_broadcast(arg, "news\n", 5, NULL));
    return NULL;
}

static void test_broadcast_from_another_thread(void **state)
{
    ss_handler h = {.handle = chat};
    ss_async_options ao = {.loops = 2};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                &ao);
    served sv;
    pthread_t t;
    int fd[3], i;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 3; i++)
        fd[i] = client_connect(ss_server_address(s));
    for (i = 0; i < 200 && ss_server_active_handlers(s) < 3; i++)
        sleep_ms(5);
    assert_int_equal(pthread_create(&t, NULL, broadcast_from_thread, s), 0);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&broadcast_reached), 3);
    for (i = 0; i < 3; i++) {
        expect_line(fd[i], "news\n");
        close(fd[i]);
    }
    stop_serving(&sv);
    ss_server_free(s);
}

/* A client whose small receive buffer fills early. */
static int stalled_client(const ss_address *a)
{
    int fd = socket(a->storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;

    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    expect_true(connect(fd, (const struct sockaddr *)&a->storage, a->len) == 0,
                "connect: %s", strerror(errno));
    return fd;
}

static void test_a_stalled_receiver_never_stalls_the_room(void **state)
{
    ss_handler h = {.handle = chat};   /* a receiver gets 1 s, then goes */
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                NULL);
    served sv;
    char line[1002], in[1100];
    int stalled, alice, bob, i, got = 0;
    bool dropped = false;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    stalled = stalled_client(ss_server_address(s));    /* never reads */
    alice = client_connect(ss_server_address(s));
    bob = client_connect(ss_server_address(s));
    for (i = 0; i < 200 && ss_server_active_handlers(s) < 3; i++)
        sleep_ms(5);
    memset(line, 'z', 1000);
    line[1000] = '\n';
    line[1001] = '\0';
    /* Until the stalled client's buffers are full and it is dropped (its
     * handler ends: its connection was shut down), bob gets every line. */
    for (i = 0; i < 40000 && !dropped; i++) {
        say(alice, line);
        if (recv_line(bob, in, sizeof in) > 0 && strcmp(in, line) == 0)
            got++;
        if (i % 100 == 99)
            dropped = ss_server_active_handlers(s) == 2;
    }
    expect_true(dropped, "the stalled client was never dropped");
    assert_int_equal(got, i);
    close(stalled);
    close(alice);
    close(bob);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- stacks ------------------------------------------------------------------- */

static int recurse(int depth, volatile char *sink)
{
    volatile char frame[1024];

    frame[0] = (char)depth;
    frame[sizeof frame - 1] = sink[0];
    return depth == 0 ? frame[0] : recurse(depth - 1, frame) + 1;
}

static atomic_int recursion_depth;

static int deep_handler(ss_request *r, const ss_address *c, ss_server *s)
{
    volatile char seed[1] = {0};
    int got = recurse(atomic_load(&recursion_depth), seed);

    (void)c, (void)s;
    ss_printf(r, "depth %d\n", got);
    return 0;
}

static void test_deep_stack_use_within_stack_size(void **state)
{
    ss_handler h = {.handle = deep_handler};
    ss_async_options ao = {.stack_size = 256 * 1024};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                &ao);
    served sv;
    int fd;

    (void)state;
    /* ~160 KiB of frames (ASan's redzones make them larger still) */
    atomic_store(&recursion_depth, 120);
    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    expect_line(fd, "depth 120\n");
    close(fd);
    stop_serving(&sv);
    ss_server_free(s);
}

/* The child runs a server whose handler recurses without end. */
static void overflow_child(int out)
{
    ss_handler h = {.handle = deep_handler};
    ss_async_options ao = {.stack_size = 32 * 1024};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char a[SS_ADDRESS_STRLEN];

    /* The test framework's SIGSEGV handler would carry on with the tests
     * in this child: the default is what a server has. */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    atomic_store(&recursion_depth, 1 << 20);
    if (!s || ss_server_use_async(s, &ao) < 0)
        _exit(3);
    ss_address_format(ss_server_address(s), a, sizeof a);
    if (write(out, a, strlen(a) + 1) < 0)
        _exit(4);
    ss_serve_forever(s, 0.5);
    _exit(5);
}

static void test_a_stack_overflow_names_the_request_before_dying(void **state)
{
    int addr_pipe[2], err_pipe[2], status, fd;
    char address[SS_ADDRESS_STRLEN] = {0}, text[8192] = {0};
    ss_address a;
    pid_t pid;
    ssize_t n;
    size_t got = 0;
    double end;

    (void)state;
    assert_int_equal(pipe(addr_pipe), 0);
    assert_int_equal(pipe(err_pipe), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(err_pipe[1], STDERR_FILENO);
        close(addr_pipe[0]);
        close(err_pipe[0]);
        overflow_child(addr_pipe[1]);
    }
    close(addr_pipe[1]);
    close(err_pipe[1]);
    n = read(addr_pipe[0], address, sizeof address - 1);
    expect_true(n > 0, "the child did not start its server");
    assert_int_equal(ss_address_parse(&a, address), 0);
    fd = client_connect(&a);
    expect_true(fd >= 0, "connect to the child");
    end = now() + 6 * WAIT_LIMIT;
    while (got < sizeof text - 1 && now() < end) {
        struct pollfd p = {.fd = err_pipe[0], .events = POLLIN};

        if (poll(&p, 1, 100) > 0) {
            n = read(err_pipe[0], text + got, sizeof text - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    while (waitpid(pid, &status, WNOHANG) == 0 && now() < end)
        sleep_ms(10);
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the child survived its overflow; it wrote:\n%s", text);
    }
    expect_true(strstr(text, "stack overflow in the handler of the request "
                             "from 127.0.0.1:") != NULL &&
                strstr(text, "32768") != NULL, "stderr:\n%s", text);
    expect_true(WIFSIGNALED(status) || WEXITSTATUS(status) != 0,
                "the child exited 0 after an overflow");
    close(fd);
    close(addr_pipe[0]);
    close(err_pipe[0]);
}

/* ---- driven from another loop ------------------------------------------------- */

static int echo_after_nap(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[64];
    ssize_t n;

    (void)c, (void)s;
    while ((n = ss_readline(r, line, sizeof line)) > 0) {
        /* A deadline only the loop's timers can end: the test's poll has
         * no timeout of its own for it. */
        if (ss_sleep(r, 0.02) < 0)
            return -ESHUTDOWN;
        ss_sendall(r, line, (size_t)n);
    }
    return 0;
}

static void test_driven_from_the_tests_own_poll_loop(void **state)
{
    enum { N = 8 };
    ss_handler h = {.handle = echo_after_nap};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                NULL);
    int lfd = ss_server_loop_fd(s), fd[N], i, answered = 0;
    double end = now() + 6 * WAIT_LIMIT;

    (void)state;
    if (lfd == -ENOTSUP) {
        print_message("skipped: this build's poll backend has no single "
                      "descriptor to watch\n");
        ss_server_free(s);
        skip();
    }
    expect_true(lfd >= 0, "loop fd: %s", ss_strerror(lfd));
    for (i = 0; i < N; i++) {
        fd[i] = client_connect(ss_server_address(s));
        fcntl(fd[i], F_SETFL, O_NONBLOCK);
        say(fd[i], "tick\n");
    }
    /* One poll() over the server's descriptor and the clients', no
     * timeout but the hang guard: the server's timers show on its
     * descriptor. */
    while (answered < N && now() < end) {
        struct pollfd p[N + 1];

        p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (i = 0; i < N; i++)
            p[i + 1] = (struct pollfd){.fd = fd[i], .events = POLLIN};
        if (poll(p, N + 1, (int)(WAIT_LIMIT * 1000)) <= 0)
            break;
        if (p[0].revents)
            assert_true(ss_server_run_once(s, 0) >= 0);
        for (i = 0; i < N; i++) {
            char buf[16];

            if (p[i + 1].revents && recv(fd[i], buf, sizeof buf, 0) == 5 &&
                memcmp(buf, "tick\n", 5) == 0)
                answered++;
        }
    }
    assert_int_equal(answered, N);
    for (i = 0; i < N; i++)
        close(fd[i]);
    ss_server_free(s);
}

static void test_run_once_and_loop_fd_need_a_single_loop(void **state)
{
    ss_handler h = {.handle = echo_lines};
    ss_async_options ao = {.loops = 2};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                &ao);

    (void)state;
    assert_int_equal(ss_server_run_once(s, 0), -EINVAL);
    assert_int_equal(ss_server_loop_fd(s), -EINVAL);
    ss_server_free(s);
}

static int timeouts_seen;

static void count_timeout(ss_server *s)
{
    (void)s;
    timeouts_seen++;
}

static void test_handle_request_is_run_once_with_the_server_timeout(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.timeout = 0.05};
    ss_server_ops ov = {.handle_timeout = count_timeout};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, &o,
                                NULL);
    int fd, i, rc;

    (void)state;
    assert_int_equal(ss_server_override(s, &ov), 0);
    timeouts_seen = 0;
    assert_int_equal(ss_handle_request(s), -ETIMEDOUT);
    assert_int_equal(timeouts_seen, 1);
    fd = client_connect(ss_server_address(s));
    say(fd, "one\n");
    /* accept, then the handler's read: a few turns */
    for (i = 0, rc = 0; i < 50 && quiet(fd, 0); i++)
        rc |= ss_handle_request(s) == 0 ? 0 : 0;
    (void)rc;
    expect_line(fd, "one\n");
    close(fd);
    ss_server_free(s);
}

/* ---- leaks -------------------------------------------------------------------- */

static int exchange_many(ss_server *s, int n)
{
    int i, answered = 0;

    for (i = 0; i < n; i++) {
        int fd = client_connect(ss_server_address(s));
        char line[32];

        if (fd < 0)
            continue;
        say(fd, "x\n");
        if (recv_line(fd, line, sizeof line) == 2)
            answered++;
        close(fd);
    }
    return answered;
}

static bool no_handlers(void *arg)
{
    return ss_server_active_handlers(arg) == 0;
}

static void test_no_descriptor_leaks_after_thousands_of_requests(void **state)
{
    ss_handler h = {.handle = echo_lines};
    ss_async_options ao = {.loops = 2};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                                &ao);
    served sv;
    int serving, after;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    assert_int_equal(exchange_many(s, 100), 100);
    expect_true(wait_for(no_handlers, s, WAIT_LIMIT), "handlers left");
    serving = count_fds();      /* the server's own, once */
    assert_int_equal(exchange_many(s, 3000), 3000);
    expect_true(wait_for(no_handlers, s, WAIT_LIMIT), "handlers left");
    after = settle_fds(serving);
    expect_true(after == serving, "%d descriptors open after 3,000 more "
                "requests, %d before them", after, serving);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- datagrams ------------------------------------------------------------------ */

static void test_a_burst_of_datagrams_is_answered(void **state)
{
    enum { N = 200 };
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = async_server(ss_udp_server_new, "127.0.0.1:0", &h, NULL,
                                NULL);
    served sv;
    int fd, i, got = 0;
    bool seen[N] = {false};

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    fd = client_dgram(ss_server_address(s), NULL, 0);
    for (i = 0; i < N; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "%d\n", i);
        const ss_address *a = ss_server_address(s);

        assert_int_equal(sendto(fd, msg, (size_t)n, 0,
                                (const struct sockaddr *)&a->storage, a->len),
                         n);
        if (i % 50 == 49)   /* within the socket buffers: nothing dropped */
            for (; got <= i; got++) {
                char buf[32];
                ssize_t m = recv(fd, buf, sizeof buf - 1, 0);
                int v;

                expect_true(m > 0, "reply %d: %s", got, strerror(errno));
                buf[m] = '\0';
                v = atoi(buf);
                expect_true(v >= 0 && v < N && !seen[v], "reply '%s'", buf);
                seen[v] = true;
            }
    }
    assert_int_equal(got, N);
    close(fd);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- prefork ------------------------------------------------------------------ */

static void test_prefork_workers_each_run_their_loops(void **state)
{
    ss_handler h = {.handle = echo_lines};
    ss_server_options o = {.close_timeout = 1};
    ss_async_options ao = {.loops = 2};
    ss_server *s = async_server(ss_tcp_server_new, "127.0.0.1:0", &h, &o,
                                &ao);
    served sv;
    int fd[20], i;

    (void)state;
    assert_int_equal(ss_server_use_prefork(s, 2), 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 20; i++) {
        fd[i] = client_connect(ss_server_address(s));
        say(fd[i], "hello\n");
    }
    for (i = 0; i < 20; i++) {
        expect_line(fd[i], "hello\n");
        close(fd[i]);
    }
    assert_int_equal(ss_server_broadcast(s, "x", 1, NULL), -ENOTSUP);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- reports --------------------------------------------------------------------- */

static int busy_handler(ss_request *r, const ss_address *c, ss_server *s)
{
    double end = now() + 0.3;
    volatile unsigned long spin = 0;

    (void)c, (void)s;
    while (now() < end)     /* holds the loop: no waiting */
        spin++;
    ss_sendall(r, "done\n", 5);
    return 0;
}

typedef struct busy_run {
    ss_server *s;
} busy_run;

static void run_busy(void *arg)
{
    busy_run *b = arg;
    served sv;
    int fd;

    serve_in_thread(&sv, b->s, 0.05);
    fd = client_connect(ss_server_address(b->s));
    expect_line(fd, "done\n");
    close(fd);
    stop_serving(&sv);
}

static void test_a_slow_handler_is_reported_once_with_its_client(void **state)
{
    ss_handler h = {.handle = busy_handler};
    ss_async_options ao = {.slow_handler_warning = 0.1};
    busy_run b = {async_server(ss_tcp_server_new, "127.0.0.1:0", &h, NULL,
                               &ao)};
    char *err = capture_stderr(run_busy, &b), *first;

    (void)state;
    first = strstr(err, "held its event loop");
    expect_true(first && strstr(err, "127.0.0.1:"), "stderr:\n%s", err);
    expect_true(first && !strstr(first + 1, "held its event loop"),
                "reported more than once:\n%s", err);
    free(err);
    ss_server_free(b.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_use_async_checks_its_arguments),
        TEST(test_async_does_not_compose_with_other_process_models),
        TEST(test_tcp_server),
        TEST(test_udp_server),
        TEST(test_unix_stream_server),
        TEST(test_unix_datagram_server),
        TEST(test_pipeline_runs_every_hook_in_python_order),
        TEST(test_a_failed_handler_goes_to_handle_error),
        TEST(test_abort_ends_that_request_only),
        TEST(test_refused_requests_go_straight_to_shutdown),
        TEST(test_a_thousand_connections_on_one_loop_thread),
        TEST(test_a_silent_client_delays_nobody),
        TEST(test_data_and_fin_in_one_event_end_the_stream),
        TEST(test_handler_timeout_ends_a_wait_with_etimedout),
        TEST(test_shutdown_returns_and_close_drains_idle_handlers),
        TEST(test_free_drains_after_no_block_on_close),
        TEST(test_close_cuts_waits_on_other_descriptors),
        TEST(test_wait_fd_and_sleep_work_in_every_model),
        TEST(test_wait_fd_rejects_bad_arguments),
        TEST(test_run_blocking_leaves_the_loop_free),
        TEST(test_run_blocking_calls_directly_in_thread_models),
        TEST(test_two_loops_keep_each_request_on_its_loop),
        TEST(test_broadcast_reaches_every_other_client_across_loops),
        TEST(test_broadcast_from_another_thread),
        TEST(test_broadcast_storm_across_loops),
        TEST(test_a_stalled_receiver_never_stalls_the_room),
        TEST(test_deep_stack_use_within_stack_size),
        TEST(test_a_stack_overflow_names_the_request_before_dying),
        TEST(test_driven_from_the_tests_own_poll_loop),
        TEST(test_run_once_and_loop_fd_need_a_single_loop),
        TEST(test_handle_request_is_run_once_with_the_server_timeout),
        TEST(test_no_descriptor_leaks_after_thousands_of_requests),
        TEST(test_a_burst_of_datagrams_is_answered),
        TEST(test_prefork_workers_each_run_their_loops),
        TEST(test_a_slow_handler_is_reported_once_with_its_client),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
