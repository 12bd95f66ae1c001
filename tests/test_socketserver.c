/*
 * CPython's Lib/test/test_socketserver.py, ported case by case.
 *
 * SocketServerTest: stream_examine / dgram_examine three times per server,
 * test_shutdown, test_close_immediately, test_tcpserver_bind_leak,
 * test_context_manager (fileno -1 after close); ErrorHandlerTest;
 * SocketWriterTest; MiscTestCase (verify_request false, threads reaped).
 * test_all is the "exports" ctest (tests/check_exports.cmake).
 */
#include "helpers.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef ss_server *(*constructor)(const char *, const ss_handler *,
                                  const ss_server_options *);


/* ---- SocketServerTest ---------------------------------------------------- */

static int handler_errors;

/* CPython's MyServer.handle_error re-raises: a handler error fails the
 * test instead of being printed. */
static void failing_handle_error(ss_server *s, ss_request *r,
                                 const ss_address *c, int err)
{
    (void)s, (void)r, (void)c;
    fprintf(stderr, "handler error: %s\n", ss_strerror(err));
    handler_errors++;
}

static ss_server *make_server(constructor make, const char *address)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_ops ov = {.handle_error = failing_handle_error};
    ss_server *s = make(address, &h, NULL);
    ss_address sock;

    expect_true(s != NULL, "construct %s: %s", address, ss_last_error());
    assert_int_equal(ss_server_override(s, &ov), 0);
    /* server.server_address == server.socket.getsockname() */
    sock.len = sizeof sock.storage;
    assert_int_equal(getsockname(ss_server_fileno(s),
                                 (struct sockaddr *)&sock.storage, &sock.len), 0);
    assert_int_equal(sock.len, ss_server_address(s)->len);
    assert_memory_equal(&sock.storage, &ss_server_address(s)->storage, sock.len);
    return s;
}

static void run_server(constructor make, bool unix_family,
                       void (*examine)(const ss_address *))
{
    const char *address = unix_family ? temp_path("srv") : "127.0.0.1:0";
    int fds = count_fds(), threads = count_threads(), i;
    ss_server *s;
    served sv;

    handler_errors = 0;
    s = make_server(make, address);
    serve_in_thread(&sv, s, 0.01);
    for (i = 0; i < 3; i++)
        examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_close(s);
    assert_int_equal(ss_server_fileno(s), -1);
    /* Forking servers waited for every child (bpo-31151). */
    assert_int_equal(ss_server_active_handlers(s), 0);
    ss_server_free(s);
    assert_int_equal(handler_errors, 0);
    if (unix_family)
        expect_true(access(address, F_OK) != 0,
                    "close removes the socket file %s", address);
    assert_int_equal(settle_fds(fds), fds);
    /* no handler threads left (children: active_handlers above; the
     * foreign child of the forking tests must stay unreaped) */
    assert_int_equal(settle_threads(threads), threads);
}

static void test_TCPServer(void **state)
{
    (void)state;
    run_server(ss_tcp_server_new, false, stream_examine);
}

static void test_UnixStreamServer(void **state)
{
    (void)state;
    run_server(ss_unix_stream_server_new, true, stream_examine);
}

static void test_UDPServer(void **state)
{
    (void)state;
    run_server(ss_udp_server_new, false, dgram_examine);
}

static void test_UnixDatagramServer(void **state)
{
    (void)state;
    run_server(ss_unix_datagram_server_new, true, dgram_examine);
}

static void test_ThreadingTCPServer(void **state)
{
    (void)state;
    run_server(ss_threading_tcp_server_new, false, stream_examine);
}

static void test_ThreadingUnixStreamServer(void **state)
{
    (void)state;
    run_server(ss_threading_unix_stream_server_new, true, stream_examine);
}

static void test_ThreadingUDPServer(void **state)
{
    (void)state;
    run_server(ss_threading_udp_server_new, false, dgram_examine);
}

static void test_ThreadingUnixDatagramServer(void **state)
{
    (void)state;
    run_server(ss_threading_unix_datagram_server_new, true, dgram_examine);
}

/* simple_subprocess: a child of the test that exits with 72 must still be
 * waitable by the test once the forking server has run and closed. */
static pid_t foreign_child_start(void)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(72);
    return pid;
}

static void foreign_child_check(pid_t pid)
{
    int status = 0;

    expect_true(waitpid(pid, &status, 0) == pid,
                "the server reaped a child it did not fork");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 72);
}

static void run_forking(constructor make, bool unix_family,
                        void (*examine)(const ss_address *), bool foreign)
{
    pid_t pid = foreign ? foreign_child_start() : 0;

    run_server(make, unix_family, examine);
    if (foreign)
        foreign_child_check(pid);
}

static void test_ForkingTCPServer(void **state)
{
    (void)state;
    run_forking(ss_forking_tcp_server_new, false, stream_examine, true);
}

static void test_ForkingUnixStreamServer(void **state)
{
    (void)state;
    run_forking(ss_forking_unix_stream_server_new, true, stream_examine, true);
}

static void test_ForkingUDPServer(void **state)
{
    (void)state;
    run_forking(ss_forking_udp_server_new, false, dgram_examine, true);
}

static void test_ForkingUnixDatagramServer(void **state)
{
    (void)state;
    run_forking(ss_forking_unix_datagram_server_new, true, dgram_examine,
                false);
}

/* Issue #2302: shutdown() always makes the other thread leave
 * serve_forever, even when called before the loop started. */
static void test_shutdown(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    served sv[20];
    int fds = count_fds(), i;

    (void)state;
    for (i = 0; i < 20; i++) {
        ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);

        assert_non_null(s);
        serve_in_thread(&sv[i], s, 0.01);
        ss_server_shutdown(s);      /* immediately */
    }
    for (i = 0; i < 20; i++) {
        assert_int_equal(pthread_join(sv[i].thread, NULL), 0);
        assert_int_equal(sv[i].rc, 0);
        ss_server_close(sv[i].server);
        ss_server_free(sv[i].server);
    }
    assert_int_equal(settle_fds(fds), fds);
}

static int never_called(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    fail_msg("the handler of a server closed at once ran");
    return 0;
}

static void test_close_immediately(void **state)
{
    ss_handler h = {.handle = never_called};
    int fds = count_fds(), threads = count_threads();
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, NULL);

    (void)state;
    assert_non_null(s);
    ss_server_close(s);
    ss_server_free(s);
    assert_int_equal(settle_fds(fds), fds);
    assert_int_equal(settle_threads(threads), threads);
}

/* Issue #22435: a failing bind must not leak the socket. */
static void test_tcpserver_bind_leak(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    int fds = count_fds(), i;

    (void)state;
    for (i = 0; i < 1024; i++) {
        errno = 0;
        assert_null(ss_tcp_server_new("127.0.0.1:-1", &h, NULL));
        assert_int_equal(errno, EINVAL);
    }
    assert_int_equal(count_fds(), fds);
}

static void test_context_manager(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);

    (void)state;
    assert_non_null(s);
    assert_true(ss_server_fileno(s) >= 0);
    ss_server_close(s);
    assert_int_equal(ss_server_fileno(s), -1);
    ss_server_close(s);     /* idempotent */
    assert_int_equal(ss_server_fileno(s), -1);
    ss_server_free(s);
}

/* ---- ErrorHandlerTest ------------------------------------------------------ */

static char error_log[256];

static int bad_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c;
    strcat(error_log, "Handler called\n");
    return *(int *)ss_server_data(s);   /* the "exception" */
}

static void log_handle_error(ss_server *s, ss_request *r, const ss_address *c,
                             int err)
{
    (void)s, (void)r, (void)c, (void)err;
    strcat(error_log, "Error handled\n");
}

/* BaseErrorTestServer: connect and close at once, handle_request, close. */
static int error_test_server(int exception)
{
    ss_handler h = {.handle = bad_handle};
    ss_server_options o = {.data = &exception};
    ss_server_ops ov = {.handle_error = log_handle_error};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    int fd, rc;

    assert_non_null(s);
    ss_server_override(s, &ov);
    error_log[0] = '\0';
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    close(fd);
    rc = ss_handle_request(s);
    ss_server_close(s);
    ss_server_free(s);
    return rc;
}

static void test_sync_handled(void **state)
{
    (void)state;
    assert_int_equal(error_test_server(-EINVAL), 0);
    assert_string_equal(error_log, "Handler called\nError handled\n");
}

/* SystemExit is SS_ABORT: not handled, and it propagates. */
static void test_sync_not_handled(void **state)
{
    (void)state;
    assert_int_equal(error_test_server(SS_ABORT), SS_ABORT);
    assert_string_equal(error_log, "Handler called\n");
}

/* ---- SocketWriterTest ---------------------------------------------------- */

static int basics_fd = -2;

static int record_fd_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)c, (void)s;
    basics_fd = ss_request_fd(r);
    /* Unbuffered wfile: the write goes out whole, at once. */
    return ss_write(r, "x", 1) == 1 ? 0 : -EIO;
}

static void test_basics(void **state)
{
    ss_handler h = {.handle = record_fd_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char c = 0;
    int fd;

    (void)state;
    assert_non_null(s);
    fd = client_connect(ss_server_address(s));
    assert_int_equal(ss_handle_request(s), 0);
    assert_true(basics_fd >= 0);
    assert_int_equal(recv(fd, &c, 1, 0), 1);
    assert_int_equal(c, 'x');
    close(fd);
    ss_server_free(s);
}

#define SOCK_MAX_SIZE (16 * 1024 * 1024 + 1)

static struct {
    int          sent1, sent2;
    char         received[64];
    pthread_t    main_thread;
    atomic_int   interrupted;
    char         response1[64];
    ssize_t      received2;
    const ss_address *address;
} wt;

static void on_sigusr1(int sig)
{
    (void)sig;
    atomic_store(&wt.interrupted, 1);
}

static int writer_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    static char zeros[SOCK_MAX_SIZE];
    ssize_t n;

    (void)c, (void)s;
    wt.sent1 = ss_write(r, "write data\n", 11);
    n = ss_readline(r, wt.received, sizeof wt.received);
    if (n < 0)
        return (int)n;
    wt.sent2 = ss_write(r, zeros, SOCK_MAX_SIZE);
    return 0;
}

static void *writer_client(void *arg)
{
    static char buf[1 << 16];
    ssize_t n, total = 0;
    int fd = client_connect(wt.address);
    double end;

    (void)arg;
    if (fd < 0)
        return NULL;
    recv_line(fd, wt.response1, sizeof wt.response1);
    send_all_fd(fd, "client response\n", 16);
    recv_exact(fd, buf, 100);
    /* Signal the server thread, blocked in send, until it noticed (or a
     * hang guard of WAIT_LIMIT passed: the test then fails). */
    for (end = now() + WAIT_LIMIT;
         !atomic_load(&wt.interrupted) && now() < end; sleep_ms(10))
        pthread_kill(wt.main_thread, SIGUSR1);
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        total += n;
    wt.received2 = total;
    close(fd);
    return NULL;
}

static void test_write(void **state)
{
    ss_handler h = {.handle = writer_handle};
    struct sigaction sa = {.sa_handler = on_sigusr1}, old;
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    pthread_t client;

    (void)state;
    assert_non_null(s);
    sigemptyset(&sa.sa_mask);   /* no SA_RESTART: send sees EINTR */
    sigaction(SIGUSR1, &sa, &old);
    memset(&wt, 0, sizeof wt);
    wt.main_thread = pthread_self();
    wt.address = ss_server_address(s);
    pthread_create(&client, NULL, writer_client, NULL);
    assert_int_equal(ss_handle_request(s), 0);
    pthread_join(client, NULL);
    sigaction(SIGUSR1, &old, NULL);
    ss_server_free(s);
    assert_int_equal(wt.sent1, 11);
    assert_string_equal(wt.response1, "write data\n");
    assert_string_equal(wt.received, "client response\n");
    assert_int_equal(wt.sent2, SOCK_MAX_SIZE);
    assert_int_equal(wt.received2, SOCK_MAX_SIZE - 100);
    assert_true(atomic_load(&wt.interrupted));
}

/* ---- MiscTestCase ---------------------------------------------------------- */

static int shutdown_called;

static bool refuse(ss_server *s, ss_request *r, const ss_address *c)
{
    (void)s, (void)r, (void)c;
    return false;
}

static void counting_shutdown_request(ss_server *s, ss_request *r)
{
    shutdown_called++;
    ss_server_base_ops(s)->shutdown_request(s, r);
}

/* Issue #26309 */
static void test_shutdown_request_called_if_verify_request_false(void **state)
{
    ss_handler h = {.handle = never_called};
    ss_server_ops ov = {.verify_request = refuse,
                        .shutdown_request = counting_shutdown_request};
    int fds = count_fds(), fd;
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);

    (void)state;
    assert_non_null(s);
    ss_server_override(s, &ov);
    shutdown_called = 0;
    fd = client_connect(ss_server_address(s));
    close(fd);
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(shutdown_called, 1);
    ss_server_free(s);
    assert_int_equal(settle_fds(fds), fds);
}

static int do_nothing(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    return 0;   /* StreamRequestHandler.handle */
}

/* bpo-37193: finished handler threads do not pile up. */
static void test_threads_reaped(void **state)
{
    ss_handler h = {.handle = do_nothing};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, NULL);
    int i, threads = count_threads();

    (void)state;
    assert_non_null(s);
    for (i = 0; i < 10; i++) {
        int fd = client_connect(ss_server_address(s));
        char c;

        assert_int_equal(ss_handle_request(s), 0);
        /* EOF: the handler thread has ended the request. */
        assert_int_equal(recv(fd, &c, 1, 0), 0);
        close(fd);
    }
    assert_true(ss_server_active_handlers(s) < 10);
    ss_server_close(s);
    assert_int_equal(ss_server_active_handlers(s), 0);
    ss_server_free(s);
    assert_int_equal(settle_threads(threads), threads);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FD_TEST(test_TCPServer),
        FD_TEST(test_UnixStreamServer),
        FD_TEST(test_UDPServer),
        FD_TEST(test_UnixDatagramServer),
        FD_TEST(test_ThreadingTCPServer),
        FD_TEST(test_ThreadingUnixStreamServer),
        FD_TEST(test_ThreadingUDPServer),
        FD_TEST(test_ThreadingUnixDatagramServer),
        FD_TEST(test_ForkingTCPServer),
        FD_TEST(test_ForkingUnixStreamServer),
        FD_TEST(test_ForkingUDPServer),
        FD_TEST(test_ForkingUnixDatagramServer),
        FD_TEST(test_shutdown),
        FD_TEST(test_close_immediately),
        FD_TEST(test_tcpserver_bind_leak),
        FD_TEST(test_context_manager),
        FD_TEST(test_sync_handled),
        FD_TEST(test_sync_not_handled),
        FD_TEST(test_basics),
        FD_TEST(test_write),
        FD_TEST(test_shutdown_request_called_if_verify_request_false),
        FD_TEST(test_threads_reaped),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
