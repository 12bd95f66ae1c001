/*
 * The server: Python's pipeline and hook order, the serving loop and
 * shutdown, handle_request timeouts, accept back-off, addresses, Unix
 * sockets, handler options and bad input. Every test checks that no
 * descriptor leaked.
 */
#include "helpers.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>


/* ---- the pipeline, recorded -------------------------------------------- */

static char trace[1024];

static void note(const char *what)
{
    if (trace[0])
        strcat(trace, " ");
    strcat(trace, what);
}

static int rec_get_request(ss_server *s, ss_request **r)
{
    int err = ss_server_base_ops(s)->get_request(s, r);

    if (err == 0)
        note("get_request");
    return err;
}

static bool verdict = true;

static bool rec_verify(ss_server *s, ss_request *r, const ss_address *c)
{
    (void)s, (void)r, (void)c;
    note("verify_request");
    return verdict;
}

static int rec_process(ss_server *s, ss_request *r, const ss_address *c)
{
    note("process_request");
    return ss_server_base_ops(s)->process_request(s, r, c);
}

static int rec_finish(ss_server *s, ss_request *r, const ss_address *c)
{
    int err;

    note("finish_request(");
    err = ss_server_base_ops(s)->finish_request(s, r, c);
    note(")");
    return err;
}

static void rec_shutdown(ss_server *s, ss_request *r)
{
    note("shutdown_request");
    ss_server_base_ops(s)->shutdown_request(s, r);
}

static void rec_close(ss_server *s, ss_request *r)
{
    note("close_request");
    ss_server_base_ops(s)->close_request(s, r);
}

static int last_err;

static void rec_error(ss_server *s, ss_request *r, const ss_address *c, int err)
{
    (void)s, (void)r, (void)c;
    last_err = err;
    note("handle_error");
}

static int handle_status, setup_status;

static int rec_setup(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    note("setup");
    return setup_status;
}

static int rec_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    note("handle");
    return handle_status;
}

static void rec_handler_finish(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    note("finish");
}

static const ss_server_ops recording = {
    .get_request = rec_get_request,
    .verify_request = rec_verify,
    .process_request = rec_process,
    .finish_request = rec_finish,
    .shutdown_request = rec_shutdown,
    .close_request = rec_close,
    .handle_error = rec_error,
};

/* One request through a recording synchronous TCP server. */
static int traced_request(int handle_rc, int setup_rc, bool verify)
{
    ss_handler h = {.handle = rec_handle, .setup = rec_setup,
                    .finish = rec_handler_finish};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    int fd, rc;

    assert_non_null(s);
    ss_server_override(s, &recording);
    trace[0] = '\0';
    handle_status = handle_rc;
    setup_status = setup_rc;
    verdict = verify;
    last_err = 0;
    fd = client_connect(ss_server_address(s));
    rc = ss_handle_request(s);
    close(fd);
    ss_server_free(s);
    return rc;
}

static void test_hook_order_of_a_handled_request(void **state)
{
    (void)state;
    assert_int_equal(traced_request(0, 0, true), 0);
    assert_string_equal(trace, "get_request verify_request process_request "
                        "finish_request( setup handle finish ) "
                        "shutdown_request close_request");
}

static void test_handler_error_reaches_handle_error_then_one_shutdown(void **state)
{
    (void)state;
    assert_int_equal(traced_request(-EPROTO, 0, true), 0);
    assert_int_equal(last_err, -EPROTO);
    assert_string_equal(trace, "get_request verify_request process_request "
                        "finish_request( setup handle finish ) "
                        "handle_error shutdown_request close_request");
}

static void test_setup_failure_skips_handle_and_finish(void **state)
{
    (void)state;
    assert_int_equal(traced_request(0, -EACCES, true), 0);
    assert_int_equal(last_err, -EACCES);
    assert_string_equal(trace, "get_request verify_request process_request "
                        "finish_request( setup ) handle_error "
                        "shutdown_request close_request");
}

static void test_refused_request_goes_straight_to_shutdown(void **state)
{
    (void)state;
    assert_int_equal(traced_request(0, 0, false), 0);
    assert_string_equal(trace, "get_request verify_request shutdown_request "
                        "close_request");
}

static void test_abort_is_not_handled_and_propagates(void **state)
{
    (void)state;
    assert_int_equal(traced_request(SS_ABORT, 0, true), SS_ABORT);
    assert_string_equal(trace, "get_request verify_request process_request "
                        "finish_request( setup handle finish ) "
                        "shutdown_request close_request");
}

static int fail_process(ss_server *s, ss_request *r, const ss_address *c)
{
    (void)s, (void)r, (void)c;
    note("process_request");
    return -EAGAIN;     /* as a failed pthread_create or fork would */
}

static void test_process_request_failure_is_reported_and_ended_once(void **state)
{
    ss_handler h = {.handle = rec_handle};
    ss_server_ops ov = {.process_request = fail_process};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    int fd;

    (void)state;
    ss_server_override(s, &recording);
    ss_server_override(s, &ov);
    trace[0] = '\0';
    verdict = true;
    fd = client_connect(ss_server_address(s));
    assert_int_equal(ss_handle_request(s), 0);
    assert_string_equal(trace, "get_request verify_request process_request "
                        "handle_error shutdown_request close_request");
    assert_int_equal(last_err, -EAGAIN);
    close(fd);
    ss_server_free(s);
}

static atomic_int service_calls;

static void count_service(ss_server *s)
{
    (void)s;
    atomic_fetch_add(&service_calls, 1);
}

/* SS_ABORT leaves serve_forever at once, as an exception escaping
 * Python's _handle_request_noblock: service_actions does not run after
 * it. */
static void test_serve_forever_returns_abort_from_a_sync_handler(void **state)
{
    ss_handler h = {.handle = rec_handle};
    ss_server_ops ov = {.service_actions = count_service};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    int fd;

    (void)state;
    ss_server_override(s, &ov);
    atomic_store(&service_calls, 0);
    handle_status = SS_ABORT;
    fd = client_connect(ss_server_address(s));
    assert_int_equal(ss_serve_forever(s, 3600.0), SS_ABORT);
    assert_int_equal(atomic_load(&service_calls), 0);
    close(fd);
    ss_server_free(s);
    handle_status = 0;
}

/* ---- the default handle_error -------------------------------------------- */

static int fail_with_eio(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    return -EIO;
}

/* The default handle_error writes to stderr. A stderr whose reader has
 * gone (`server 2>&1 | head -1`) must not kill the server with SIGPIPE:
 * no function of the library raises it. Run in a child, SIGPIPE at its
 * default action, stderr a pipe nobody reads. */
static void test_handle_error_into_a_broken_pipe_raises_no_sigpipe(void **state)
{
    int p[2], status;
    pid_t pid, rc;
    double t0;

    (void)state;
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        ss_handler h = {.handle = fail_with_eio};
        ss_server *s;
        sigset_t pending;
        int fd, rc;

        sigemptyset(&dfl.sa_mask);
        sigaction(SIGPIPE, &dfl, NULL);
        dup2(p[1], STDERR_FILENO);
        if (!(s = ss_tcp_server_new("127.0.0.1:0", &h, NULL)))
            _exit(2);
        fd = client_connect(ss_server_address(s));
        rc = ss_handle_request(s);
        close(fd);
        ss_server_free(s);
        sigpending(&pending);
        _exit(rc != 0 ? 3 : sigismember(&pending, SIGPIPE) ? 4 : 0);
    }
    close(p[1]);
    for (rc = 0, t0 = now(); rc == 0 && now() - t0 < WAIT_LIMIT;
         sleep_ms(rc == 0 ? 10 : 0))
        rc = waitpid(pid, &status, WNOHANG);
    if (rc == 0) {      /* stuck: do not leave it behind */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the server process did not finish in %.0f s", WAIT_LIMIT);
    }
    assert_int_equal(rc, pid);
    expect_true(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "the server process %s %d", WIFSIGNALED(status) ?
                "was killed by signal" : "exited with", WIFSIGNALED(status) ?
                WTERMSIG(status) : WEXITSTATUS(status));
}

static int reset_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    return -ECONNRESET;
}

static void one_request(void *arg)
{
    ss_server *s = arg;
    int fd = client_connect(ss_server_address(s));

    assert_int_equal(ss_handle_request(s), 0);
    close(fd);
}

static void test_default_handle_error_prints_pythons_block(void **state)
{
    ss_handler h = {.handle = reset_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char *out;

    (void)state;
    out = capture_stderr(one_request, s);
    ss_server_free(s);
    expect_true(strncmp(out, "----------------------------------------\n"
                        "Exception occurred during processing of request "
                        "from 127.0.0.1:", 95) == 0, "got:\n%s", out);
    expect_true(strstr(out, "\nhandle: Connection reset by peer\n"
                       "----------------------------------------\n"),
                "got:\n%s", out);
    free(out);
}

/* ---- serve_forever and shutdown ------------------------------------------ */

/* A hang guard's way out for a server waiting in poll() or in
 * handle_request: a client connects (and hangs up). */
static int waking_client = -1;

static void wake_with_a_client(void *address)
{
    waking_client = client_connect(address);
    if (waking_client >= 0)
        shutdown(waking_client, SHUT_WR);
}

static bool woken_by_the_guard(hang_guard *g)
{
    bool fired = guard_end(g);

    if (waking_client >= 0)
        close(waking_client);
    waking_client = -1;
    return fired;
}

static void test_shutdown_is_prompt_whatever_the_poll_interval(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    hang_guard g;
    served sv;

    (void)state;
    serve_in_thread(&sv, s, 3600.0);
    sleep_ms(50);   /* let it sleep in poll() */
    /* Python would wait for the poll interval: an hour here. Only a
     * connection would wake such a loop: the hang guard makes one after
     * WAIT_LIMIT, and the test fails. */
    guard_start(&g, WAIT_LIMIT, wake_with_a_client,
                (void *)ss_server_address(s));
    stop_serving(&sv);
    expect_true(!woken_by_the_guard(&g), "shutdown waited for the poll "
                "interval, until a connection woke the loop");
    ss_server_free(s);
}

static atomic_int actions;

static void count_actions(ss_server *s)
{
    (void)s;
    atomic_fetch_add(&actions, 1);
}

static bool n_actions(void *arg)
{
    return atomic_load(&actions) >= *(int *)arg;
}

static void test_service_actions_runs_every_poll_interval(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_ops ov = {.service_actions = count_actions};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;

    (void)state;
    ss_server_override(s, &ov);
    atomic_store(&actions, 0);
    serve_in_thread(&sv, s, 0.01);
    expect_true(wait_for(n_actions, &(int){5}, WAIT_LIMIT),
                "service_actions ran %d times", atomic_load(&actions));
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_service_actions_runs_after_each_request(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_ops ov = {.service_actions = count_actions};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;
    int i;

    (void)state;
    ss_server_override(s, &ov);
    serve_in_thread(&sv, s, 3600.0);
    sleep_ms(20);
    atomic_store(&actions, 0);
    for (i = 0; i < 3; i++)
        stream_examine(ss_server_address(s));
    /* the poll interval is an hour: only requests can run it */
    expect_true(wait_for(n_actions, &(int){3}, WAIT_LIMIT),
                "service_actions ran %d times for 3 requests",
                atomic_load(&actions));
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_shutdown_request_is_sticky(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;

    (void)state;
    ss_server_request_shutdown(s);
    /* made before serve_forever: it returns at once, consuming it */
    assert_int_equal(ss_serve_forever(s, 3600.0), 0);
    /* the next serve_forever serves */
    serve_in_thread(&sv, s, 3600.0);
    stream_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
}

/* Python's usual teardown, when the serving thread has not reached
 * serve_forever yet: shutdown (sticky), close, then serve_forever runs.
 * It returns 0, the shutdown consumed; a later one reports the closed
 * server. */
static void test_shutdown_then_close_before_serving_returns_zero(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);

    (void)state;
    ss_server_shutdown(s);
    ss_server_close(s);
    assert_int_equal(ss_serve_forever(s, 3600.0), 0);
    assert_int_equal(ss_serve_forever(s, 3600.0), -EBADF);
    ss_server_free(s);
}

static void test_shutdown_of_a_server_not_serving_returns_at_once(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);

    (void)state;
    ss_server_shutdown(s);  /* Python would block forever */
    assert_int_equal(ss_serve_forever(s, 3600.0), 0);
    ss_server_free(s);
}

static int shutdown_from_handler(ss_request *r, const ss_address *c,
                                 ss_server *s)
{
    (void)c;
    ss_server_shutdown(s);  /* only asks: no deadlock */
    return ss_write(r, "bye\n", 4) == 4 ? 0 : -EIO;
}

static void test_shutdown_from_the_serving_thread_only_asks(void **state)
{
    ss_handler h = {.handle = shutdown_from_handler};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;
    char line[16];
    int fd;

    (void)state;
    serve_in_thread(&sv, s, 3600.0);
    fd = client_connect(ss_server_address(s));
    assert_int_equal(recv_line(fd, line, sizeof line), 4);
    close(fd);
    assert_int_equal(pthread_join(sv.thread, NULL), 0);
    assert_int_equal(sv.rc, 0);
    ss_server_free(s);
}

static ss_server *signal_target;

static void on_sigusr2(int sig)
{
    (void)sig;
    ss_server_request_shutdown(signal_target);
}

static void test_request_shutdown_from_a_signal_handler(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    struct sigaction sa = {.sa_handler = on_sigusr2}, old;
    served sv;

    (void)state;
    signal_target = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, &old);
    serve_in_thread(&sv, signal_target, 3600.0);
    sleep_ms(20);
    pthread_kill(sv.thread, SIGUSR2);
    assert_int_equal(pthread_join(sv.thread, NULL), 0);
    assert_int_equal(sv.rc, 0);
    sigaction(SIGUSR2, &old, NULL);
    ss_server_free(signal_target);
}

static void own_int_handler(int sig)
{
    (void)sig;
}

/* Freeing the server that SIGINT and SIGTERM shut down gives the signals
 * back their former handlers: a signal after the free must not reach a
 * freed server. Freeing another server leaves them alone. */
static void test_free_gives_the_signals_back(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    struct sigaction mine = {.sa_handler = own_int_handler}, old_int,
                     old_term, now_int, now_term;
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    ss_server *other = ss_tcp_server_new("127.0.0.1:0", &h, NULL);

    (void)state;
    sigemptyset(&mine.sa_mask);
    sigaction(SIGINT, &mine, &old_int);
    sigaction(SIGTERM, NULL, &old_term);
    assert_int_equal(ss_server_shutdown_on_signals(s), 0);
    sigaction(SIGINT, NULL, &now_int);
    assert_true(now_int.sa_handler != own_int_handler);
    ss_server_free(other);
    sigaction(SIGINT, NULL, &now_int);
    assert_true(now_int.sa_handler != own_int_handler);
    ss_server_free(s);
    sigaction(SIGINT, NULL, &now_int);
    sigaction(SIGTERM, NULL, &now_term);
    assert_true(now_int.sa_handler == own_int_handler);
    assert_true(now_term.sa_handler == old_term.sa_handler);
    sigaction(SIGINT, &old_int, NULL);
}

static void test_serving_twice_at_once_is_ebusy(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;

    (void)state;
    serve_in_thread(&sv, s, 3600.0);
    stream_examine(ss_server_address(s));   /* it is serving now */
    assert_int_equal(ss_serve_forever(s, 1.0), -EBUSY);
    stop_serving(&sv);
    ss_server_close(s);
    assert_int_equal(ss_serve_forever(s, 1.0), -EBADF);
    ss_server_free(s);
}

/* ---- handle_request timeout ------------------------------------------- */

static int timeouts;

static void count_timeout(ss_server *s)
{
    (void)s;
    timeouts++;
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void check_timeout(bool with_signals)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.timeout = 0.3};
    ss_server_ops ov = {.handle_timeout = count_timeout};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    struct itimerval every = {{0, 20000}, {0, 20000}}, off = {{0, 0}, {0, 0}};
    double t0, took;
    hang_guard g;
    bool woken;
    int rc;

    ss_server_override(s, &ov);
    timeouts = 0;
    alarms = 0;
    if (with_signals) {
        sigemptyset(&sa.sa_mask);   /* no SA_RESTART: poll sees EINTR */
        sigaction(SIGALRM, &sa, &old);
        setitimer(ITIMER_REAL, &every, NULL);
    }
    /* Without a client, only the timeout ends the wait: -ETIMEDOUT and
     * one handle_timeout say that it did. Should it never fire, the hang
     * guard connects a client after WAIT_LIMIT, and the request it
     * handles fails the test. */
    guard_start(&g, WAIT_LIMIT, wake_with_a_client,
                (void *)ss_server_address(s));
    t0 = now();
    rc = ss_handle_request(s);
    took = now() - t0;
    woken = woken_by_the_guard(&g);
    expect_true(rc == -ETIMEDOUT && !woken, "handle_request returned %d "
                "(%s)%s", rc, ss_strerror(rc), woken ? ", after the hang "
                "guard's client arrived" : "");
    if (with_signals) {
        setitimer(ITIMER_REAL, &off, NULL);
        sigaction(SIGALRM, &old, NULL);
        expect_true(alarms >= 3, "only %d signals arrived", (int)alarms);
    }
    assert_int_equal(timeouts, 1);
    expect_true(took >= 0.3, "returned after %.3f s, before the timeout", took);
    ss_server_free(s);
}

static void test_handle_request_times_out_and_calls_handle_timeout(void **state)
{
    (void)state;
    check_timeout(false);
}

static void test_handle_request_timeout_holds_across_eintr(void **state)
{
    (void)state;
    check_timeout(true);
}

/* ---- accept errors ----------------------------------------------------- */

static atomic_int aborted_once;

static int abort_first(ss_server *s, ss_request **r)
{
    if (atomic_fetch_add(&aborted_once, 1) == 0)
        return -ECONNABORTED;
    return ss_server_base_ops(s)->get_request(s, r);
}

static void test_econnaborted_is_ignored(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_ops ov = {.get_request = abort_first};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;

    (void)state;
    ss_server_override(s, &ov);
    atomic_store(&aborted_once, 0);
    serve_in_thread(&sv, s, 0.01);
    stream_examine(ss_server_address(s));
    assert_true(atomic_load(&aborted_once) >= 2);
    stop_serving(&sv);
    ss_server_free(s);
}

static atomic_int failed_accepts;

static int count_emfile(ss_server *s, ss_request **r)
{
    int err = ss_server_base_ops(s)->get_request(s, r);

    if (err == -EMFILE)
        atomic_fetch_add(&failed_accepts, 1);
    return err;
}

static bool accept_failed(void *arg)
{
    (void)arg;
    return atomic_load(&failed_accepts) > 0;
}

/* Out of descriptors, the server retries accept after a back-off of at
 * least 10 ms (doubling up to 250 ms), not in a loop: counted, the
 * failed accepts of a window of half a second are at most one per 10 ms
 * of it (a loop makes thousands, even on a busy machine, where a slower
 * server only makes fewer). */
static bool fds_back_to(void *base)
{
    return count_fds() == *(int *)base;
}

static void test_emfile_backs_off_and_resumes(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_ops ov = {.get_request = count_emfile};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    struct rlimit old, low;
    int fillers[64], nfill = 0, fd, i, tries = -1, base;
    bool failed;
    char line[64];
    served sv;
    double t0, window = 0;

    (void)state;
    ss_server_override(s, &ov);
    atomic_store(&failed_accepts, 0);
    serve_in_thread(&sv, s, 0.05);
    base = count_fds();
    /* One request served and finished first, so the server holds no
     * descriptor of it when the process runs out. */
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, TEST_STR, strlen(TEST_STR)), 0);
    assert_int_equal(recv_line(fd, line, sizeof line), (ssize_t)strlen(TEST_STR));
    close(fd);
    assert_true(wait_for(fds_back_to, &base, WAIT_LIMIT));
    /* Run the process out of descriptors but one, which the client takes:
     * nothing is left for accept. */
    getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = (rlim_t)base + 8;
    setrlimit(RLIMIT_NOFILE, &low);
    while (nfill < 64 && (fillers[nfill] = dup(0)) >= 0)
        nfill++;
    close(fillers[--nfill]);
    fd = client_connect(ss_server_address(s));
    failed = fd >= 0 && send_all_fd(fd, TEST_STR, strlen(TEST_STR)) == 0 &&
             wait_for(accept_failed, NULL, WAIT_LIMIT);
    if (failed) {
        tries = atomic_load(&failed_accepts);
        t0 = now();
        sleep_ms(500);
        tries = atomic_load(&failed_accepts) - tries;
        window = now() - t0;
    }
    /* Descriptors free again (before any assertion can fail): the waiting
     * client is served. */
    for (i = 0; i < nfill; i++)
        close(fillers[i]);
    setrlimit(RLIMIT_NOFILE, &old);
    expect_true(failed, "accept should have failed for lack of descriptors "
                "(client %d: %s)", fd, strerror(errno));
    expect_true(tries <= 1 + (int)(window / 0.01), "the serving thread "
                "spun: %d failed accepts in %.3f s", tries, window);
    assert_int_equal(recv_line(fd, line, sizeof line), (ssize_t)strlen(TEST_STR));
    assert_string_equal(line, TEST_STR);
    close(fd);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- addresses ------------------------------------------------------------ */

static bool have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

static void serve_and_examine(const char *address, const char *expect_prefix)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new(address, &h, NULL);
    char text[SS_ADDRESS_STRLEN];
    served sv;

    expect_true(s != NULL, "%s: %s", address, ss_last_error());
    ss_address_format(ss_server_address(s), text, sizeof text);
    expect_true(strncmp(text, expect_prefix, strlen(expect_prefix)) == 0,
                "bound to %s, expected %s...", text, expect_prefix);
    assert_true(ss_address_port(ss_server_address(s)) > 0);
    serve_in_thread(&sv, s, 0.05);
    stream_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_port_zero_gives_the_real_port(void **state)
{
    (void)state;
    serve_and_examine("127.0.0.1:0", "127.0.0.1:");
}

static void test_host_name_address(void **state)
{
    (void)state;
    serve_and_examine("localhost:0", "127.0.0.1:");
}

static void test_ipv6_loopback(void **state)
{
    (void)state;
    if (!have_ipv6())
        skip();
    serve_and_examine("[::1]:0", "[::1]:");
}

static void test_all_interfaces_serve_ipv4_and_ipv6(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new(":0", &h, NULL);
    ss_address v4, v6;
    char text[64];
    served sv;
    int port;

    (void)state;
    assert_non_null(s);
    port = ss_address_port(ss_server_address(s));
    serve_in_thread(&sv, s, 0.05);
    snprintf(text, sizeof text, "127.0.0.1:%d", port);
    assert_int_equal(ss_address_parse(&v4, text), 0);
    stream_examine(&v4);
    if (have_ipv6()) {
        snprintf(text, sizeof text, "[::1]:%d", port);
        assert_int_equal(ss_address_parse(&v6, text), 0);
        stream_examine(&v6);
        ss_address_format(ss_server_address(s), text, sizeof text);
        expect_true(strncmp(text, "[::]:", 5) == 0, "one dual-stack socket, "
                    "bound to %s", text);
    }
    stop_serving(&sv);
    ss_server_free(s);
}

static char client_seen[64];

static int echo_noting_client(ss_request *r, const ss_address *c, ss_server *s)
{
    ss_address_format(c, client_seen, sizeof client_seen);
    return echo_line_handle(r, c, s);
}

/* An all-interfaces server sees an IPv4 client as an IPv4 address, as
 * Python's ('', port) server does, though its socket is dual-stack; and the
 * datagram reply to that address still arrives. */
static void test_all_interfaces_report_ipv4_clients_as_ipv4(void **state)
{
    ss_handler h = {.handle = echo_noting_client};
    ss_server *s;
    ss_address v4;
    char text[64];
    served sv;
    int udp;

    (void)state;
    for (udp = 0; udp < 2; udp++) {
        s = udp ? ss_udp_server_new(":0", &h, NULL)
                : ss_tcp_server_new(":0", &h, NULL);
        assert_non_null(s);
        snprintf(text, sizeof text, "127.0.0.1:%d",
                 ss_address_port(ss_server_address(s)));
        assert_int_equal(ss_address_parse(&v4, text), 0);
        client_seen[0] = '\0';
        serve_in_thread(&sv, s, 0.05);
        if (udp)
            dgram_examine(&v4);
        else
            stream_examine(&v4);
        stop_serving(&sv);
        expect_true(strncmp(client_seen, "127.0.0.1:", 10) == 0,
                    "%s server saw its IPv4 client as %s", udp ? "UDP" : "TCP",
                    client_seen);
        ss_server_free(s);
    }
}

/* ---- Unix sockets ---------------------------------------------------------- */

/* A socket file as a crashed server leaves it: bound, then closed. */
static void leave_stale_socket(const char *path, int type)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, type, 0);

    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd);
    assert_int_equal(access(path, F_OK), 0);
}

static void test_stale_unix_socket_file_is_replaced(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    const char *path = temp_path("stale");
    ss_server *s;

    (void)state;
    leave_stale_socket(path, SOCK_STREAM);
    s = ss_unix_stream_server_new(path, &h, NULL);
    expect_true(s != NULL, "%s", ss_last_error());
    /* the bind that failed on the way is not the outcome */
    assert_string_equal(ss_last_error(), "");
    ss_server_free(s);
    leave_stale_socket(path, SOCK_DGRAM);
    s = ss_unix_datagram_server_new(path, &h, NULL);
    expect_true(s != NULL, "%s", ss_last_error());
    assert_string_equal(ss_last_error(), "");
    ss_server_free(s);
    assert_int_not_equal(access(path, F_OK), 0);
}

static atomic_int overridden_closes;

static void close_without_base(ss_server *s)
{
    (void)s;
    atomic_fetch_add(&overridden_closes, 1);
}

/* A server_close override that does not call the base one: ss_server_free
 * still releases the socket and removes the socket file (the fd count is
 * checked by the test's teardown). */
static void test_free_releases_what_an_overridden_close_left(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_ops ov = {.server_close = close_without_base};
    const char *path = temp_path("ovclose");
    ss_server *s = ss_unix_stream_server_new(path, &h, NULL);

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_override(s, &ov), 0);
    atomic_store(&overridden_closes, 0);
    ss_server_close(s);
    assert_int_equal(atomic_load(&overridden_closes), 1);
    assert_int_equal(access(path, F_OK), 0);    /* the override kept it */
    ss_server_free(s);
    assert_int_equal(atomic_load(&overridden_closes), 1);
    assert_int_not_equal(access(path, F_OK), 0);
}

static void close_fd_only(ss_server *s)
{
    close(ss_server_fileno(s));     /* and not the base hook */
}

/* An override that closed the socket itself leaves a stale number, which
 * may name another file by the time of free: free must not close it, but
 * still removes the socket file the server created. */
static void test_free_leaves_a_reused_descriptor_alone(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_ops ov = {.server_close = close_fd_only};
    const char *path = temp_path("reused");
    ss_server *s = ss_unix_stream_server_new(path, &h, NULL);
    int stale, other;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_override(s, &ov), 0);
    stale = ss_server_fileno(s);
    ss_server_close(s);
    other = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(other >= 0);
    if (other != stale) {       /* make the stale number name it */
        assert_int_equal(dup3(other, stale, O_CLOEXEC), stale);
        close(other);
        other = stale;
    }
    ss_server_free(s);
    assert_true(fcntl(other, F_GETFD) >= 0);
    close(other);
    assert_int_not_equal(access(path, F_OK), 0);
}

static void test_live_unix_server_path_is_eaddrinuse(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    const char *path = temp_path("live");
    ss_server *s = ss_unix_stream_server_new(path, &h, NULL);
    ss_server *d = ss_unix_datagram_server_new(temp_path("lived"), &h, NULL);
    char dpath[SS_ADDRESS_STRLEN];
    served sv;

    (void)state;
    assert_non_null(s);
    assert_non_null(d);
    errno = 0;
    assert_null(ss_unix_stream_server_new(path, &h, NULL));
    assert_int_equal(errno, EADDRINUSE);
    expect_true(strstr(ss_last_error(), path) != NULL, "%s", ss_last_error());
    ss_address_format(ss_server_address(d), dpath, sizeof dpath);
    errno = 0;
    assert_null(ss_unix_datagram_server_new(dpath, &h, NULL));
    assert_int_equal(errno, EADDRINUSE);
    /* The live server's file is untouched and still served. */
    serve_in_thread(&sv, s, 0.05);
    stream_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
    ss_server_free(d);
}

static void test_close_removes_only_its_own_socket_file(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    const char *path = temp_path("own");
    ss_server *s = ss_unix_stream_server_new(path, &h, NULL);
    FILE *f;

    (void)state;
    assert_non_null(s);
    assert_int_equal(access(path, F_OK), 0);
    ss_server_close(s);
    assert_int_not_equal(access(path, F_OK), 0);
    ss_server_free(s);
    /* A file put in its place by someone else stays. */
    s = ss_unix_stream_server_new(path, &h, NULL);
    assert_non_null(s);
    unlink(path);
    f = fopen(path, "w");
    fclose(f);
    ss_server_free(s);
    assert_int_equal(access(path, F_OK), 0);
    unlink(path);
}

static void test_regular_file_at_the_path_is_not_removed(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    const char *path = temp_path("file");
    FILE *f = fopen(path, "w");

    (void)state;
    fputs("data", f);
    fclose(f);
    errno = 0;
    assert_null(ss_unix_stream_server_new(path, &h, NULL));
    assert_int_equal(errno, EADDRINUSE);
    expect_true(strstr(ss_last_error(), "not a socket"), "%s", ss_last_error());
    assert_int_equal(access(path, F_OK), 0);
    unlink(path);
}

/* ---- handler options --------------------------------------------------------- */

static int nodelay_seen = -1;

static int report_nodelay(ss_request *r, const ss_address *c, ss_server *s)
{
    socklen_t len = sizeof nodelay_seen;

    (void)c, (void)s;
    return getsockopt(ss_request_fd(r), IPPROTO_TCP, TCP_NODELAY,
                      &nodelay_seen, &len) < 0 ? -errno : 0;
}

static void test_disable_nagle_algorithm_sets_tcp_nodelay(void **state)
{
    ss_handler h = {.handle = report_nodelay};
    ss_server *s;
    int on;

    (void)state;
    for (on = 0; on <= 1; on++) {
        h.disable_nagle_algorithm = on;
        s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
        nodelay_seen = -1;
        one_request(s);
        assert_int_equal(nodelay_seen != 0, on);
        ss_server_free(s);
    }
}

static ssize_t timeout_result;

static int read_with_timeout(ss_request *r, const ss_address *c, ss_server *s)
{
    char buf[8];

    (void)c, (void)s;
    timeout_result = ss_recv(r, buf, sizeof buf);
    return 0;
}

static void test_handler_timeout_makes_blocking_io_return_etimedout(void **state)
{
    ss_handler h = {.handle = read_with_timeout, .timeout = 0.2};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    double t0 = now();

    (void)state;
    one_request(s);     /* the client sends nothing */
    assert_int_equal(timeout_result, -ETIMEDOUT);
    expect_true(now() - t0 >= 0.2, "timed out after %.3f s", now() - t0);
    ss_server_free(s);
}

typedef struct counter_state {
    int    calls;
    char   seen_zero;
    double pad[4];
} counter_state;

static int use_state(ss_request *r, const ss_address *c, ss_server *s)
{
    counter_state *st = ss_request_state(r);

    (void)c, (void)s;
    if (!st)
        return -EFAULT;
    st->seen_zero = st->calls == 0 && st->pad[3] == 0;
    st->calls++;
    return ss_write(r, st->seen_zero ? "zero\n" : "dirty\n",
                    st->seen_zero ? 5 : 6) < 0 ? -EIO : 0;
}

static void test_per_request_state_is_fresh_and_zeroed(void **state)
{
    ss_handler h = {.handle = use_state, .state_size = sizeof(counter_state)};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char line[16];
    int i, fd;

    (void)state;
    for (i = 0; i < 3; i++) {
        fd = client_connect(ss_server_address(s));
        assert_int_equal(ss_handle_request(s), 0);
        recv_line(fd, line, sizeof line);
        assert_string_equal(line, "zero\n");
        close(fd);
    }
    ss_server_free(s);
}

static int request_cloexec = -1;

static int report_cloexec(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)c, (void)s;
    request_cloexec = fcntl(ss_request_fd(r), F_GETFD) & FD_CLOEXEC;
    return 0;
}

static void test_server_and_request_sockets_are_close_on_exec(void **state)
{
    ss_handler h = {.handle = report_cloexec};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    ss_server *u = ss_unix_datagram_server_new(temp_path("cx"), &h, NULL);

    (void)state;
    assert_true(fcntl(ss_server_fileno(s), F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(ss_server_fileno(u), F_GETFD) & FD_CLOEXEC);
    one_request(s);
    assert_int_equal(request_cloexec, FD_CLOEXEC);
    ss_server_free(s);
    ss_server_free(u);
}

/* ---- bad input ------------------------------------------------------------ */

static void expect_construction_fails(ss_server *s, int err, const char *mention)
{
    expect_true(s == NULL, "construction should fail");
    expect_true(errno == err, "errno %d (%s), expected %d (%s)", errno,
                strerror(errno), err, strerror(err));
    expect_true(strstr(ss_last_error(), mention) != NULL,
                "the message '%s' should name '%s'", ss_last_error(), mention);
}

static void test_bad_constructions_fail_with_a_clear_error(void **state)
{
    ss_handler h = {.handle = echo_line_handle}, none = {0};
    ss_handler huge = {.handle = echo_line_handle, .state_size = SIZE_MAX};
    char longpath[300];
    ss_server *busy;
    char taken[64];

    (void)state;
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    busy = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    ss_address_format(ss_server_address(busy), taken, sizeof taken);

    expect_construction_fails(ss_tcp_server_new(NULL, &h, NULL), EINVAL,
                              "address");
    expect_construction_fails(ss_tcp_server_new("", &h, NULL), EINVAL,
                              "empty");
    expect_construction_fails(ss_tcp_server_new("127.0.0.1:0", NULL, NULL),
                              EINVAL, "handler");
    expect_construction_fails(ss_udp_server_new("127.0.0.1:0", &none, NULL),
                              EINVAL, "handle");
    expect_construction_fails(ss_tcp_server_new("127.0.0.1:0", &huge, NULL),
                              EINVAL, "state_size");
    expect_construction_fails(ss_tcp_server_new("127.0.0.1:70000", &h, NULL),
                              EINVAL, "70000");
    expect_construction_fails(ss_tcp_server_new("127.0.0.1:abc", &h, NULL),
                              EINVAL, "abc");
    expect_construction_fails(ss_tcp_server_new("nowhere.invalid:80", &h, NULL),
                              ENXIO, "nowhere.invalid");
    expect_construction_fails(ss_tcp_server_new(taken, &h, NULL), EADDRINUSE,
                              taken);
    expect_construction_fails(ss_unix_stream_server_new(longpath, &h, NULL),
                              ENAMETOOLONG, "Unix socket path");
    expect_construction_fails(ss_tcp_server_new("/tmp/x.sock", &h, NULL),
                              EINVAL, "/tmp/x.sock");
    expect_construction_fails(ss_forking_udp_server_new("1.2.3.4:0", &h, NULL),
                              EADDRNOTAVAIL, "bind 1.2.3.4:0");
    ss_server_free(busy);
}

static void test_a_thousand_failing_constructions_leak_nothing(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *busy = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    ss_server *ubusy = ss_unix_stream_server_new(temp_path("leak"), &h, NULL);
    char taken[64], utaken[SS_ADDRESS_STRLEN];
    int fds = count_fds(), i;

    (void)state;
    ss_address_format(ss_server_address(busy), taken, sizeof taken);
    ss_address_format(ss_server_address(ubusy), utaken, sizeof utaken);
    for (i = 0; i < 1024; i++) {
        assert_null(ss_tcp_server_new(taken, &h, NULL));
        assert_null(ss_threading_tcp_server_new(taken, &h, NULL));
        assert_null(ss_unix_stream_server_new(utaken, &h, NULL));
        assert_null(ss_udp_server_new("127.0.0.1:99999", &h, NULL));
    }
    assert_int_equal(count_fds(), fds);
    ss_server_free(busy);
    ss_server_free(ubusy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FD_TEST(test_hook_order_of_a_handled_request),
        FD_TEST(test_handler_error_reaches_handle_error_then_one_shutdown),
        FD_TEST(test_setup_failure_skips_handle_and_finish),
        FD_TEST(test_refused_request_goes_straight_to_shutdown),
        FD_TEST(test_abort_is_not_handled_and_propagates),
        FD_TEST(test_process_request_failure_is_reported_and_ended_once),
        FD_TEST(test_serve_forever_returns_abort_from_a_sync_handler),
        FD_TEST(test_default_handle_error_prints_pythons_block),
        FD_TEST(test_handle_error_into_a_broken_pipe_raises_no_sigpipe),
        FD_TEST(test_shutdown_is_prompt_whatever_the_poll_interval),
        FD_TEST(test_service_actions_runs_every_poll_interval),
        FD_TEST(test_service_actions_runs_after_each_request),
        FD_TEST(test_shutdown_request_is_sticky),
        FD_TEST(test_shutdown_then_close_before_serving_returns_zero),
        FD_TEST(test_shutdown_of_a_server_not_serving_returns_at_once),
        FD_TEST(test_shutdown_from_the_serving_thread_only_asks),
        FD_TEST(test_request_shutdown_from_a_signal_handler),
        FD_TEST(test_free_gives_the_signals_back),
        FD_TEST(test_serving_twice_at_once_is_ebusy),
        FD_TEST(test_handle_request_times_out_and_calls_handle_timeout),
        FD_TEST(test_handle_request_timeout_holds_across_eintr),
        FD_TEST(test_econnaborted_is_ignored),
        FD_TEST(test_emfile_backs_off_and_resumes),
        FD_TEST(test_port_zero_gives_the_real_port),
        FD_TEST(test_host_name_address),
        FD_TEST(test_ipv6_loopback),
        FD_TEST(test_all_interfaces_serve_ipv4_and_ipv6),
        FD_TEST(test_all_interfaces_report_ipv4_clients_as_ipv4),
        FD_TEST(test_stale_unix_socket_file_is_replaced),
        FD_TEST(test_free_releases_what_an_overridden_close_left),
        FD_TEST(test_free_leaves_a_reused_descriptor_alone),
        FD_TEST(test_live_unix_server_path_is_eaddrinuse),
        FD_TEST(test_close_removes_only_its_own_socket_file),
        FD_TEST(test_regular_file_at_the_path_is_not_removed),
        FD_TEST(test_disable_nagle_algorithm_sets_tcp_nodelay),
        FD_TEST(test_handler_timeout_makes_blocking_io_return_etimedout),
        FD_TEST(test_per_request_state_is_fresh_and_zeroed),
        FD_TEST(test_server_and_request_sockets_are_close_on_exec),
        FD_TEST(test_bad_constructions_fail_with_a_clear_error),
        FD_TEST(test_a_thousand_failing_constructions_leak_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
