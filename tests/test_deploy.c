/*
 * Deployment: the PROXY protocol in every model, max_connections, the log
 * callback and the statistics. (Socket activation: test_activation.c; a
 * real HAProxy in front of two servers: test_haproxy.c.)
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef enum { SYNC, THREADING, POOL, FORKING, ASYNC, PREFORK, NMODELS } model;

static const char *model_name[NMODELS] = {"sync", "threading", "pool",
                                          "forking", "async", "prefork"};

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

static void use_model(ss_server *s, model m)
{
    int err = 0;

    switch (m) {
    case SYNC: break;
    case THREADING: err = ss_server_use_threading(s); break;
    case POOL: err = ss_server_use_thread_pool(s, 4, 8); break;
    case FORKING: err = ss_server_use_forking(s); break;
    case ASYNC: err = ss_server_use_async(s, NULL); break;
    case PREFORK: err = ss_server_use_prefork(s, 2); break;
    default: break;
    }
    expect_true(err == 0, "model %s: %s", model_name[m], ss_strerror(err));
}

static void say(int fd, const void *buf, size_t len)
{
    assert_int_equal(send_all_fd(fd, buf, len), 0);
}

static void say_str(int fd, const char *text)
{
    say(fd, text, strlen(text));
}

static void expect_line(int fd, const char *want)
{
    char line[512];
    ssize_t n = recv_line(fd, line, sizeof line);

    expect_true(n > 0 && strcmp(line, want) == 0, "got '%s' (%zd), expected "
                "'%s'", n > 0 ? line : "", n, want);
}

static void expect_closed(int fd)
{
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf, 0);

    expect_true(n == 0 || (n < 0 && errno == ECONNRESET),
                "the connection stayed open (%zd: %s)", n,
                n < 0 ? strerror(errno) : "data");
}

/* Nothing arrives within 100 ms: a correct server never fails this; a
 * broken one may slip through on a slow machine, never the reverse. */
static bool quiet_fd(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, 100) == 0;
}

/* ---- PROXY protocol ------------------------------------------------------- */

/* Tells the client who the server thinks it is, and who connected. */
static int whoami(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[256], who[SS_ADDRESS_STRLEN], peer[SS_ADDRESS_STRLEN];
    ssize_t n;

    (void)s;
    ss_address_format(c, who, sizeof who);
    ss_address_format(ss_request_peer_address(r), peer, sizeof peer);
    ss_printf(r, "client %s peer %s\n", who, peer);
    ss_flush(r);
    while ((n = ss_readline(r, line, sizeof line)) > 0)
        ss_sendall(r, line, (size_t)n);
    return n < 0 ? (int)n : 0;
}

static atomic_int proxy_errors, last_proxy_error;

static void note_error(ss_server *s, ss_request *r, const ss_address *c,
                       int err)
{
    (void)s, (void)r, (void)c;
    atomic_store(&last_proxy_error, err);
    atomic_fetch_add(&proxy_errors, 1);
}

static bool refuse_10(ss_server *s, ss_request *r, const ss_address *c)
{
    const struct sockaddr_in *sin = (const void *)&c->storage;

    (void)s, (void)r;
    return !(c->storage.ss_family == AF_INET &&
             (ntohl(sin->sin_addr.s_addr) >> 24) == 10);
}

static ss_server *proxy_server(model m, double proxy_timeout)
{
    ss_handler h = {.handle = whoami};
    ss_server_options o = {.proxy_protocol = SS_PROXY_REQUIRED,
                           .proxy_timeout = proxy_timeout,
                           .close_timeout = 1};
    ss_server_ops ov = {.handle_error = note_error,
                        .verify_request = refuse_10};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);

    expect_true(s != NULL, "%s", ss_last_error());
    assert_int_equal(ss_server_override(s, &ov), 0);
    use_model(s, m);
    atomic_store(&proxy_errors, 0);
    atomic_store(&last_proxy_error, 0);
    return s;
}

static size_t v2_header(unsigned char *h, unsigned char command,
                        unsigned char family, const void *addrs,
                        size_t addr_len)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

    memcpy(h, sig, 12);
    h[12] = (unsigned char)(0x20 | command);
    h[13] = family;
    h[14] = (unsigned char)(addr_len >> 8);
    h[15] = (unsigned char)addr_len;
    memcpy(h + 16, addrs, addr_len);
    return 16 + addr_len;
}

/* A local port of fd, to recognise the peer the server reports. */
static int local_port(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;

    getsockname(fd, (struct sockaddr *)&sin, &len);
    return ntohs(sin.sin_port);
}

static bool failed_once(void *arg)
{
    ss_server_stats st;

    return ss_server_get_stats(arg, &st) == 0 && st.failed >= 1;
}

/* The end of a client: a half-close first. The server runs in this
 * process, so a process it forks (a prefork worker started late, a forked
 * handler) holds copies of the client sockets open at that moment; only
 * the FIN of shutdown() then ends the server's side. Without it, both
 * prefork workers waited for ever on connections the test had closed. */
static void hang_up(int fd)
{
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void check_proxy_model(model m)
{
    ss_server *s = proxy_server(m, 2.0);
    served sv;
    char want[256], line[300];
    unsigned char v2[64], a4[12] = {192, 0, 2, 7, 198, 51, 100, 1,
                                    0x30, 0x39, 0x00, 0x50};
    int fd, i;
    size_t n;

    serve_in_thread(&sv, s, 0.05);

    /* v1, with the first request in the same write */
    fd = client_connect(ss_server_address(s));
    snprintf(line, sizeof line, "PROXY TCP4 203.0.113.9 192.0.2.1 40000 80"
             "\r\nhello\n");
    say(fd, line, strlen(line));
    snprintf(want, sizeof want, "client 203.0.113.9:40000 peer "
             "127.0.0.1:%d\n", local_port(fd));
    expect_line(fd, want);
    expect_line(fd, "hello\n");
    hang_up(fd);

    /* v2 over IPv4, one byte at a time */
    fd = client_connect(ss_server_address(s));
    n = v2_header(v2, 1, 0x11, a4, sizeof a4);
    for (i = 0; i < (int)n; i++)
        say(fd, v2 + i, 1);
    snprintf(want, sizeof want, "client 192.0.2.7:12345 peer 127.0.0.1:%d\n",
             local_port(fd));
    expect_line(fd, want);
    hang_up(fd);

    /* LOCAL (a health check) keeps the peer's address */
    fd = client_connect(ss_server_address(s));
    n = v2_header(v2, 0, 0x00, "", 0);
    say(fd, v2, n);
    snprintf(want, sizeof want, "client 127.0.0.1:%d peer 127.0.0.1:%d\n",
             local_port(fd), local_port(fd));
    expect_line(fd, want);
    hang_up(fd);

    /* UNKNOWN likewise */
    fd = client_connect(ss_server_address(s));
    say_str(fd, "PROXY UNKNOWN\r\n");
    snprintf(want, sizeof want, "client 127.0.0.1:%d peer 127.0.0.1:%d\n",
             local_port(fd), local_port(fd));
    expect_line(fd, want);
    hang_up(fd);

    /* verify_request sees the real client: 10/8 is refused */
    fd = client_connect(ss_server_address(s));
    snprintf(line, sizeof line, "PROXY TCP4 10.1.2.3 192.0.2.1 1 2\r\n");
    say(fd, line, strlen(line));
    expect_closed(fd);
    hang_up(fd);

    /* garbage: -EPROTO (in this process, or a child's: counted in the
     * shared statistics either way), closed, nothing handled */
    fd = client_connect(ss_server_address(s));
    say_str(fd, "GET / HTTP/1.0\r\n\r\n");
    expect_closed(fd);
    hang_up(fd);
    expect_true(wait_for(failed_once, s, WAIT_LIMIT), "%s: no error reported",
                model_name[m]);
    expect_true(m == FORKING || m == PREFORK ||
                atomic_load(&last_proxy_error) == -EPROTO, "%s: error %d, "
                "expected -EPROTO", model_name[m],
                atomic_load(&last_proxy_error));

    /* the server still serves */
    fd = client_connect(ss_server_address(s));
    say_str(fd, "PROXY TCP6 2001:db8::1 2001:db8::2 5 6\r\nok\n");
    snprintf(want, sizeof want, "client [2001:db8::1]:5 peer 127.0.0.1:%d\n",
             local_port(fd));
    expect_line(fd, want);
    expect_line(fd, "ok\n");
    hang_up(fd);
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_proxy_protocol_sync(void **state)
{
    (void)state;
    check_proxy_model(SYNC);
}

static void test_proxy_protocol_threading(void **state)
{
    (void)state;
    check_proxy_model(THREADING);
}

static void test_proxy_protocol_pool(void **state)
{
    (void)state;
    check_proxy_model(POOL);
}

static void test_proxy_protocol_forking(void **state)
{
    (void)state;
    check_proxy_model(FORKING);
}

static void test_proxy_protocol_async(void **state)
{
    (void)state;
    check_proxy_model(ASYNC);
}

static void test_proxy_protocol_prefork(void **state)
{
    (void)state;
    check_proxy_model(PREFORK);
}

static bool error_seen(void *arg)
{
    (void)arg;
    return atomic_load(&proxy_errors) > 0;
}

/* A client that never sends its header holds only its own request: the
 * others are served meanwhile, and it ends with -ETIMEDOUT. */
static void check_silent_client(model m)
{
    ss_server *s = proxy_server(m, 0.3);
    served sv;
    char want[128];
    int silent, other;

    serve_in_thread(&sv, s, 0.05);
    silent = client_connect(ss_server_address(s));
    other = client_connect(ss_server_address(s));
    say_str(other, "PROXY TCP4 192.0.2.5 192.0.2.1 7 8\r\n");
    snprintf(want, sizeof want, "client 192.0.2.5:7 peer 127.0.0.1:%d\n",
             local_port(other));
    expect_line(other, want);
    expect_true(wait_for(error_seen, NULL, WAIT_LIMIT), "%s: no timeout",
                model_name[m]);
    assert_int_equal(atomic_load(&last_proxy_error), -ETIMEDOUT);
    expect_closed(silent);
    close(silent);
    close(other);
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_a_silent_proxy_client_stalls_nobody(void **state)
{
    (void)state;
    check_silent_client(THREADING);
    check_silent_client(POOL);
    check_silent_client(ASYNC);
}

static void test_a_truncated_header_is_a_protocol_error(void **state)
{
    ss_server *s = proxy_server(THREADING, 2.0);
    served sv;
    int fd;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    say_str(fd, "PROXY TCP4 192.0.2.5");
    shutdown(fd, SHUT_WR);
    expect_closed(fd);
    expect_true(wait_for(error_seen, NULL, WAIT_LIMIT), "no error");
    assert_int_equal(atomic_load(&last_proxy_error), -EPROTO);
    close(fd);
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_proxy_protocol_is_for_stream_servers(void **state)
{
    ss_handler h = {.handle = whoami};
    ss_server_options o = {.proxy_protocol = SS_PROXY_REQUIRED};
    ss_server_options bad = {.proxy_protocol = 7};

    (void)state;
    assert_null(ss_udp_server_new("127.0.0.1:0", &h, &o));
    assert_int_equal(errno, EINVAL);
    expect_true(strstr(ss_last_error(), "proxy_protocol") != NULL, "%s",
                ss_last_error());
    assert_null(ss_tcp_server_new("127.0.0.1:0", &h, &bad));
    assert_int_equal(errno, EINVAL);
}

/* ---- max_connections -------------------------------------------------------- */

static atomic_int running_handlers, most_handlers;

static int hold_until_eof(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[64];
    int now = atomic_fetch_add(&running_handlers, 1) + 1, most;

    (void)c, (void)s;
    most = atomic_load(&most_handlers);
    while (now > most && !atomic_compare_exchange_weak(&most_handlers, &most,
                                                       now))
        ;
    ss_sendall(r, "in\n", 3);
    while (ss_readline(r, line, sizeof line) > 0)
        ;
    atomic_fetch_sub(&running_handlers, 1);
    return 0;
}

static void check_max_connections(model m)
{
    enum { LIMIT = 3, CLIENTS = 8 };
    ss_handler h = {.handle = hold_until_eof};
    ss_server_options o = {.max_connections = LIMIT, .close_timeout = 1};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    ss_server_stats st;
    served sv;
    int fd[CLIENTS], i;

    use_model(s, m);
    atomic_store(&running_handlers, 0);
    atomic_store(&most_handlers, 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < CLIENTS; i++)
        fd[i] = client_connect(ss_server_address(s));
    /* The first LIMIT are served; the others wait in the backlog,
     * connected, not refused. */
    for (i = 0; i < LIMIT; i++)
        expect_line(fd[i], "in\n");
    for (i = LIMIT; i < CLIENTS; i++)
        expect_true(fd[i] >= 0 && quiet_fd(fd[i]), "%s: client %d served "
                    "over the limit", model_name[m], i);
    /* As requests end, the next ones are taken. */
    for (i = 0; i < CLIENTS - LIMIT; i++) {
        close(fd[i]);
        expect_line(fd[i + LIMIT], "in\n");
    }
    for (i = CLIENTS - LIMIT; i < CLIENTS; i++)
        close(fd[i]);
    expect_true(atomic_load(&most_handlers) <= LIMIT, "%s: %d at once",
                model_name[m], atomic_load(&most_handlers));
    assert_int_equal(ss_server_get_stats(s, &st), 0);
    expect_true(st.accept_pauses >= 1 && st.peak_active <= LIMIT &&
                st.accepted == CLIENTS, "%s: %llu pauses, peak %u, %llu "
                "accepted", model_name[m], st.accept_pauses, st.peak_active,
                st.accepted);
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_max_connections_threading(void **state)
{
    (void)state;
    check_max_connections(THREADING);
}

static void test_max_connections_pool(void **state)
{
    (void)state;
    check_max_connections(POOL);
}

static void test_max_connections_async(void **state)
{
    (void)state;
    check_max_connections(ASYNC);
}

static void test_max_connections_async_two_loops(void **state)
{
    enum { LIMIT = 2, CLIENTS = 6 };
    ss_handler h = {.handle = hold_until_eof};
    ss_server_options o = {.max_connections = LIMIT};
    ss_async_options ao = {.loops = 2};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    served sv;
    int fd[CLIENTS], i;

    (void)state;
    assert_int_equal(ss_server_use_async(s, &ao), 0);
    atomic_store(&running_handlers, 0);
    atomic_store(&most_handlers, 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < CLIENTS; i++)
        fd[i] = client_connect(ss_server_address(s));
    for (i = 0; i < CLIENTS; i++) {
        char line[8];
        int j, served_now = 0;

        /* whichever LIMIT are in, one of them leaves */
        for (j = 0; j < CLIENTS; j++) {
            struct pollfd p = {.fd = fd[j], .events = POLLIN};

            if (fd[j] >= 0 && poll(&p, 1, j == 0 ? 200 : 0) == 1 &&
                recv_line(fd[j], line, sizeof line) == 3) {
                close(fd[j]);
                fd[j] = -1;
                served_now = 1;
                break;
            }
        }
        (void)served_now;
    }
    for (i = 0; i < CLIENTS; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    expect_true(atomic_load(&most_handlers) <= LIMIT, "%d at once",
                atomic_load(&most_handlers));
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- log ------------------------------------------------------------------ */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[8192];
static int log_lines;

static void collect(void *data, const char *line)
{
    (void)data;
    pthread_mutex_lock(&log_lock);
    expect_true(strchr(line, '\n') == NULL, "a line with a newline: '%s'",
                line);
    strncat(log_text, line, sizeof log_text - strlen(log_text) - 2);
    strcat(log_text, "|");
    log_lines++;
    pthread_mutex_unlock(&log_lock);
}

static int fail_handler(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    return -ENOTRECOVERABLE;
}

static bool log_has(void *needle)
{
    bool found;

    pthread_mutex_lock(&log_lock);
    found = strstr(log_text, needle) != NULL;
    pthread_mutex_unlock(&log_lock);
    return found;
}

static void run_failing(void *arg)
{
    ss_server *s = arg;
    served sv;
    int fd;

    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    expect_closed(fd);
    close(fd);
    expect_true(wait_for(log_has, "----------------------------------------|"
                         "Exception", WAIT_LIMIT), "log: %s", log_text);
    stop_serving(&sv);
}

static void test_log_gets_handle_errors_text_line_by_line(void **state)
{
    ss_handler h = {.handle = fail_handler};
    ss_server_options o = {.log = collect};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, &o);
    char *err;

    (void)state;
    log_text[0] = '\0';
    log_lines = 0;
    err = capture_stderr(run_failing, s);
    expect_true(err[0] == '\0', "stderr got: %s", err);
    expect_true(strstr(log_text, "Exception occurred during processing of "
                       "request from 127.0.0.1:") &&
                strstr(log_text, "handle: State not recoverable|"),
                "log: %s", log_text);
    assert_int_equal(log_lines, 4);
    free(err);
    ss_server_free(s);
}

static int say_pid(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)c, (void)s;
    return ss_printf(r, "%d\n", (int)getpid()) < 0 ? -EIO : 0;
}

static void test_log_gets_prefork_restarts(void **state)
{
    ss_handler h = {.handle = say_pid};
    ss_server_options o = {.log = collect};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    served sv;
    char line[32];
    int fd;

    (void)state;
    log_text[0] = '\0';
    assert_int_equal(ss_server_use_prefork(s, 1), 0);
    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    assert_true(recv_line(fd, line, sizeof line) > 0);
    close(fd);
    assert_int_equal(kill((pid_t)atoi(line), SIGKILL), 0);
    expect_true(wait_for(log_has, "restarting it", WAIT_LIMIT), "%s",
                log_text);
    stop_serving(&sv);
    ss_server_free(s);
}

static int busy(ss_request *r, const ss_address *c, ss_server *s)
{
    double end = now() + 0.2;

    (void)r, (void)c, (void)s;
    while (now() < end)
        ;
    return 0;
}

static void test_log_gets_slow_handler_lines(void **state)
{
    ss_handler h = {.handle = busy};
    ss_server_options o = {.log = collect};
    ss_async_options ao = {.slow_handler_warning = 0.05};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    served sv;
    int fd;

    (void)state;
    log_text[0] = '\0';
    assert_int_equal(ss_server_use_async(s, &ao), 0);
    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    expect_closed(fd);
    close(fd);
    expect_true(wait_for(log_has, "held its event loop", WAIT_LIMIT), "%s",
                log_text);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- statistics ---------------------------------------------------------- */

static int echo_once(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[64];
    ssize_t n;

    (void)c, (void)s;
    if ((n = ss_readline(r, line, sizeof line)) <= 0)
        return -EPROTO;
    if (strcmp(line, "fail\n") == 0)
        return -EIO;
    return ss_sendall(r, line, (size_t)n);
}

/* get_request fails with EMFILE on every other call, the first `budget`
 * times: accept failures that come and go. */
static atomic_int emfile_budget, get_calls;

static int intermittent_emfile(ss_server *s, ss_request **r)
{
    if (atomic_fetch_add(&get_calls, 1) % 2 == 0 &&
        atomic_fetch_sub(&emfile_budget, 1) > 0)
        return -EMFILE;
    return ss_server_base_ops(s)->get_request(s, r);
}

static int count_in_log(const char *needle)
{
    const char *p;
    int n = 0;

    pthread_mutex_lock(&log_lock);
    for (p = log_text; (p = strstr(p, needle)); p++)
        n++;
    pthread_mutex_unlock(&log_lock);
    return n;
}

static void echo_exchange(ss_server *s)
{
    char line[64];
    int fd = client_connect(ss_server_address(s));

    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, "hi\n", 3), 0);
    expect_true(recv_line(fd, line, sizeof line) == 3, "no echo");
    close(fd);
}

/* Failures that come and go within one pause write one line when it
 * begins, and one with their count when accepting has gone a quiet second
 * without failing; the clients are all served. */
static void test_accept_pauses_are_logged_once_with_a_count(void **state)
{
    ss_handler h = {.handle = echo_once};
    ss_server_options o = {.log = collect};
    ss_server_ops ov = {.get_request = intermittent_emfile};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    ss_server_stats st;
    served sv;
    int i;

    (void)state;
    log_text[0] = '\0';
    atomic_store(&emfile_budget, 4);
    atomic_store(&get_calls, 0);
    ss_server_override(s, &ov);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 6; i++)
        echo_exchange(s);
    expect_true(atomic_load(&emfile_budget) <= 0, "only %d failures made",
                4 - atomic_load(&emfile_budget));
    /* The quiet second that ends the pause, then one more request. */
    sleep_ms(1200);
    echo_exchange(s);
    expect_true(wait_for(log_has, "accepting again after 4 failures",
                         WAIT_LIMIT), "log: %s", log_text);
    assert_int_equal(count_in_log("pausing accepts"), 1);
    assert_int_equal(count_in_log("accepting again"), 1);
    assert_int_equal(ss_server_get_stats(s, &st), 0);
    assert_int_equal(st.accept_pauses, 1);
    assert_int_equal(st.accepted, 7);
    stop_serving(&sv);
    ss_server_free(s);
}

static void check_stats(model m)
{
    ss_handler h = {.handle = echo_once};
    ss_server_ops ov = {.handle_error = note_error};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    ss_server_stats st;
    served sv;
    int fd, i;

    use_model(s, m);
    assert_int_equal(ss_server_override(s, &ov), 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 5; i++) {
        fd = client_connect(ss_server_address(s));
        say(fd, "12345\n", 6);
        expect_line(fd, "12345\n");
        close(fd);
    }
    fd = client_connect(ss_server_address(s));
    say(fd, "fail\n", 5);
    expect_closed(fd);
    close(fd);
    /* the counts are made when requests end: wait for the last */
    for (i = 0; i < 2000; i++) {
        assert_int_equal(ss_server_get_stats(s, &st), 0);
        if (st.failed == 1 && st.active == 0 && st.bytes_received == 35)
            break;
        sleep_ms(5);
    }
    expect_true(st.accepted == 6 && st.refused == 0 && st.failed == 1 &&
                st.bytes_received == 35 && st.bytes_sent == 30 &&
                st.active == 0 && st.peak_active >= 1,
                "%s: accepted %llu refused %llu failed %llu in %llu out %llu "
                "active %u peak %u", model_name[m], st.accepted, st.refused,
                st.failed, st.bytes_received, st.bytes_sent, st.active,
                st.peak_active);
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_stats_count_every_model(void **state)
{
    int m;

    (void)state;
    for (m = 0; m < NMODELS; m++)
        check_stats((model)m);
}

static atomic_bool refusing;

static bool refuse_when_told(ss_server *s, ss_request *r, const ss_address *c)
{
    (void)s, (void)r, (void)c;
    return !atomic_load(&refusing);
}

static void test_stats_count_refusals_and_live_requests(void **state)
{
    ss_handler h = {.handle = hold_until_eof};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, NULL);
    ss_server_ops ov = {.verify_request = refuse_when_told};
    ss_server_stats st;
    served sv;
    int fd[3], i;

    (void)state;
    assert_int_equal(ss_server_get_stats(NULL, &st), -EINVAL);
    atomic_store(&refusing, false);
    assert_int_equal(ss_server_override(s, &ov), 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 3; i++) {
        fd[i] = client_connect(ss_server_address(s));
        expect_line(fd[i], "in\n");
    }
    assert_int_equal(ss_server_get_stats(s, &st), 0);
    assert_int_equal(st.active, 3);
    assert_int_equal(st.peak_active, 3);
    for (i = 0; i < 3; i++)
        close(fd[i]);
    for (i = 0; i < 2000; i++) {    /* their handlers end */
        assert_int_equal(ss_server_get_stats(s, &st), 0);
        if (st.active == 0)
            break;
        sleep_ms(5);
    }
    atomic_store(&refusing, true);
    fd[0] = client_connect(ss_server_address(s));
    expect_closed(fd[0]);
    close(fd[0]);
    for (i = 0; i < 2000; i++) {
        assert_int_equal(ss_server_get_stats(s, &st), 0);
        if (st.refused == 1 && st.active == 0)
            break;
        sleep_ms(5);
    }
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.peak_active, 3);
    stop_serving(&sv);
    ss_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_proxy_protocol_sync),
        TEST(test_proxy_protocol_threading),
        TEST(test_proxy_protocol_pool),
        TEST(test_proxy_protocol_forking),
        TEST(test_proxy_protocol_async),
        TEST(test_proxy_protocol_prefork),
        TEST(test_a_silent_proxy_client_stalls_nobody),
        TEST(test_a_truncated_header_is_a_protocol_error),
        TEST(test_proxy_protocol_is_for_stream_servers),
        TEST(test_max_connections_threading),
        TEST(test_max_connections_pool),
        TEST(test_max_connections_async),
        TEST(test_max_connections_async_two_loops),
        TEST(test_log_gets_handle_errors_text_line_by_line),
        TEST(test_log_gets_prefork_restarts),
        TEST(test_log_gets_slow_handler_lines),
        TEST(test_accept_pauses_are_logged_once_with_a_count),
        TEST(test_stats_count_every_model),
        TEST(test_stats_count_refusals_and_live_requests),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
