/*
 * The edges of the API: arguments refused with -EINVAL and the message
 * ss_last_error() leaves, address forms and their errors, formatting of
 * unusual addresses, options refused at construction, calls out of order
 * (bind twice, activate before bind, a model set twice), NULL everywhere
 * the header allows it, and the request calls' own argument checks, made
 * from inside a handler. After every test: no descriptor, thread or child
 * is left.
 */
#include "helpers.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/netlink.h>
#include <sys/wait.h>
#include <unistd.h>

static int fds_before, threads_before;

static int setup_counts(void **state)
{
    (void)state;
    fds_before = count_fds();
    threads_before = count_threads();
    return 0;
}

static bool no_children(void)
{
    return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static int check_counts(void **state)
{
    int fds = settle_fds(fds_before), threads = settle_threads(threads_before);

    (void)state;
    if (fds != fds_before || threads != threads_before || !no_children()) {
        print_error("leak: %d fds (%d before), %d threads (%d before), "
                    "children left: %s\n", fds, fds_before, threads,
                    threads_before, no_children() ? "no" : "yes");
        reap_zombies();
        return -1;
    }
    return 0;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup_counts, check_counts)

/* Drive server s from this thread while cond holds, each turn waiting for
 * work; a hang guard ends it. */
#define DRIVE_WHILE(s, cond)                                                \
    do {                                                                    \
        double end_ = now() + 3 * WAIT_LIMIT;                               \
                                                                            \
        while ((cond) && now() < end_)                                      \
            assert_true(ss_server_run_once((s), WAIT_LIMIT) >= 0);         \
        expect_true(!(cond), "still %s after the hang guard", #cond);       \
    } while (0)

/* rc is -err and ss_last_error() contains `what`. */
#define expect_error(rc, err, what)                                         \
    do {                                                                    \
        int rc_ = (rc);                                                     \
        expect_true(rc_ == -(err), "%s: %d (%s), expected %d; "             \
                    "ss_last_error: %s", #rc, rc_, ss_strerror(rc_),        \
                    -(err), ss_last_error());                               \
        expect_true(strstr(ss_last_error(), (what)) != NULL,                \
                    "ss_last_error() '%s' should name '%s'",                \
                    ss_last_error(), (what));                               \
    } while (0)

/* ---- addresses ------------------------------------------------------------ */

static void test_address_parse_refusals_say_what_was_wrong(void **state)
{
    ss_address a;
    char longhost[300], longv6[100];

    (void)state;
    expect_error(ss_address_parse(NULL, "127.0.0.1:0"), EINVAL, "no output");
    expect_error(ss_address_parse(&a, NULL), EINVAL, "empty");
    expect_error(ss_address_parse(&a, ""), EINVAL, "empty");
    expect_error(ss_address_parse(&a, "unix:"), EINVAL,
                 "empty Unix socket path");
    expect_error(ss_address_parse(&a, "@"), EINVAL, "empty Unix socket path");
    expect_error(ss_address_parse(&a, "fd:3"), EINVAL, "names a socket");
    expect_error(ss_address_parse(&a, "nocolon"), EINVAL, "HOST:PORT");
    expect_error(ss_address_parse(&a, "[::1]"), EINVAL, "[IPV6]:PORT");
    expect_error(ss_address_parse(&a, "[::1]80"), EINVAL, "[IPV6]:PORT");
    expect_error(ss_address_parse(&a, "[::1:80"), EINVAL, "[IPV6]:PORT");
    expect_error(ss_address_parse(&a, "[1.2.3.4]:80"), EINVAL,
                 "'1.2.3.4' is not an IPv6 address");
    memset(longv6, '1', sizeof longv6);
    longv6[0] = '[';
    memcpy(longv6 + sizeof longv6 - 5, "]:80", 5);
    expect_error(ss_address_parse(&a, longv6), EINVAL, "not an IPv6 address");
    expect_error(ss_address_parse(&a, "[::1]:http"), EINVAL,
                 "port 'http' is not a number");
    expect_error(ss_address_parse(&a, "[::1]:"), EINVAL, "missing port");
    expect_error(ss_address_parse(&a, "127.0.0.1:"), EINVAL, "missing port");
    expect_error(ss_address_parse(&a, "127.0.0.1: 80"), EINVAL,
                 "is not a number");
    expect_error(ss_address_parse(&a, "127.0.0.1:80x"), EINVAL,
                 "is not a number");
    expect_error(ss_address_parse(&a, "127.0.0.1:-1"), EINVAL,
                 "out of range 0-65535");
    expect_error(ss_address_parse(&a, "127.0.0.1:65536"), EINVAL,
                 "out of range 0-65535");
    expect_error(ss_address_parse(&a, "127.0.0.1:99999999999999999999999"),
                 EINVAL, "out of range 0-65535");
    memset(longhost, 'h', sizeof longhost);
    memcpy(longhost + sizeof longhost - 4, ":80", 4);
    expect_error(ss_address_parse(&a, longhost), EINVAL, "host name too long");
    /* A success clears the message. */
    assert_int_equal(ss_address_parse(&a, "127.0.0.1:65535"), 0);
    assert_string_equal(ss_last_error(), "");
    assert_int_equal(ss_address_port(&a), 65535);
}

static void test_ipv6_scope_by_interface_name_or_number(void **state)
{
    ss_address a;
    char buf[SS_ADDRESS_STRLEN], want[64];
    unsigned lo = if_nametoindex("lo");

    (void)state;
    assert_int_equal(ss_address_parse(&a, "[fe80::1%7]:80"), 0);
    assert_int_equal(((struct sockaddr_in6 *)&a.storage)->sin6_scope_id, 7);
    assert_string_equal(ss_address_format(&a, buf, sizeof buf),
                        "[fe80::1%7]:80");
    assert_int_equal(ss_address_port(&a), 80);
    if (lo == 0)
        return;     /* no loopback interface by that name */
    assert_int_equal(ss_address_parse(&a, "[fe80::1%lo]:443"), 0);
    assert_int_equal(((struct sockaddr_in6 *)&a.storage)->sin6_scope_id, lo);
    snprintf(want, sizeof want, "[fe80::1%%%u]:443", lo);
    assert_string_equal(ss_address_format(&a, buf, sizeof buf), want);
}

static void test_format_of_unusual_addresses(void **state)
{
    ss_address a, u;
    struct sockaddr_un *sun = (struct sockaddr_un *)&u.storage;
    char buf[SS_ADDRESS_STRLEN], small[8] = "keep";

    (void)state;
    assert_string_equal(ss_address_format(NULL, buf, sizeof buf), "(null)");
    assert_null(ss_address_format(&a, NULL, 10));
    /* size 0: the buffer is returned untouched */
    assert_ptr_equal(ss_address_format(&a, small, 0), small);
    assert_string_equal(small, "keep");
    /* a shorter buffer truncates */
    assert_int_equal(ss_address_parse(&a, "127.0.0.1:8080"), 0);
    assert_string_equal(ss_address_format(&a, small, sizeof small), "127.0.0");
    memset(&a, 0, sizeof a);
    a.storage.ss_family = AF_APPLETALK;
    a.len = sizeof a.storage;
    snprintf(small, sizeof small, "%d", AF_APPLETALK);
    ss_address_format(&a, buf, sizeof buf);
    expect_true(strstr(buf, "address family") && strstr(buf, small),
                "got '%s'", buf);
    assert_int_equal(ss_address_port(NULL), -1);
    assert_int_equal(ss_address_port(&a), -1);
    /* A Unix path that fills sun_path with no NUL, and a length that
     * claims more than sun_path holds: at most sun_path's bytes. */
    memset(&u, 0, sizeof u);
    sun->sun_family = AF_UNIX;
    memset(sun->sun_path, 'p', sizeof sun->sun_path);
    sun->sun_path[0] = '/';
    u.len = sizeof u.storage;
    ss_address_format(&u, buf, sizeof buf);
    assert_int_equal(strlen(buf), sizeof sun->sun_path);
    assert_int_equal(ss_address_port(&u), -1);
    /* abstract and unnamed */
    assert_int_equal(ss_address_parse(&u, "unix:@edge"), 0);
    assert_string_equal(ss_address_format(&u, buf, sizeof buf), "@edge");
    u.len = offsetof(struct sockaddr_un, sun_path);
    assert_string_equal(ss_address_format(&u, buf, sizeof buf), "(unnamed)");
}

static void test_strerror_and_version(void **state)
{
    char v[32];

    (void)state;
    assert_string_equal(ss_strerror(-EINVAL), strerror(EINVAL));
    assert_string_equal(ss_strerror(EINVAL), strerror(EINVAL));
    snprintf(v, sizeof v, "%d.%d.%d", SS_VERSION_MAJOR, SS_VERSION_MINOR,
             SS_VERSION_PATCH);
    assert_string_equal(ss_version(), v);
}

/* ---- construction --------------------------------------------------------- */

static void test_options_refused_at_construction(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {0};

    (void)state;
    o.proxy_protocol = 2;
    assert_null(ss_tcp_server_new("127.0.0.1:0", &h, &o));
    assert_int_equal(errno, EINVAL);
    expect_true(strstr(ss_last_error(), "proxy_protocol 2"), "%s",
                ss_last_error());
    o.proxy_protocol = SS_PROXY_REQUIRED;
    assert_null(ss_udp_server_new("127.0.0.1:0", &h, &o));
    assert_int_equal(errno, EINVAL);
    expect_true(strstr(ss_last_error(), "udp_server_new: proxy_protocol is "
                       "for stream servers"), "%s", ss_last_error());
    o.proxy_timeout = -1;
    assert_null(ss_tcp_server_new("127.0.0.1:0", &h, &o));
    assert_int_equal(errno, EINVAL);
    expect_true(strstr(ss_last_error(), "proxy_timeout -1 is negative"), "%s",
                ss_last_error());
    o.proxy_timeout = 0.0 / 0.0;
    assert_null(ss_tcp_server_new("127.0.0.1:0", &h, &o));
    assert_int_equal(errno, EINVAL);
}

static void test_null_server_everywhere(void **state)
{
    ss_server_stats st;
    ss_server_ops ops = {0};

    (void)state;
    assert_int_equal(ss_server_override(NULL, &ops), -EINVAL);
    assert_null(ss_server_base_ops(NULL));
    assert_null(ss_server_ops_current(NULL));
    assert_int_equal(ss_serve_forever(NULL, 0.1), -EINVAL);
    assert_int_equal(ss_handle_request(NULL), -EINVAL);
    assert_int_equal(ss_server_run_once(NULL, 0), -EINVAL);
    assert_int_equal(ss_server_loop_fd(NULL), -EINVAL);
    assert_int_equal(ss_server_broadcast(NULL, "x", 1, NULL), -EINVAL);
    assert_int_equal(ss_server_bind(NULL), -EINVAL);
    assert_int_equal(ss_server_activate(NULL), -EINVAL);
    assert_int_equal(ss_server_get_stats(NULL, &st), -EINVAL);
    assert_int_equal(ss_server_use_threading(NULL), -EINVAL);
    assert_int_equal(ss_server_use_forking(NULL), -EINVAL);
    assert_int_equal(ss_server_use_thread_pool(NULL, 2, 2), -EINVAL);
    assert_int_equal(ss_server_use_prefork(NULL, 2), -EINVAL);
    assert_int_equal(ss_server_use_async(NULL, NULL), -EINVAL);
    assert_null(ss_server_address(NULL));
    assert_int_equal(ss_server_fileno(NULL), -1);
    assert_null(ss_server_data(NULL));
    assert_int_equal(ss_server_active_handlers(NULL), 0);
    ss_server_shutdown(NULL);
    ss_server_request_shutdown(NULL);
    ss_server_close(NULL);
    ss_server_free(NULL);
    assert_null(ss_request_client_address(NULL));
    assert_null(ss_request_peer_address(NULL));
    assert_null(ss_request_server(NULL));
    assert_null(ss_request_state(NULL));
    assert_int_equal(ss_request_fd(NULL), -1);
    assert_int_equal(ss_recv(NULL, NULL, 0), -EINVAL);
    assert_int_equal(ss_read(NULL, NULL, 0), -EINVAL);
    assert_int_equal(ss_readline(NULL, NULL, 0), -EINVAL);
    assert_int_equal(ss_sendall(NULL, NULL, 0), -EINVAL);
    assert_int_equal(ss_write(NULL, NULL, 0), -EINVAL);
    assert_int_equal(ss_printf(NULL, "x"), -EINVAL);
    assert_int_equal(ss_flush(NULL), -EINVAL);
    assert_int_equal(ss_wait_readable(NULL, 0), -EINVAL);
    assert_int_equal(ss_wait_fd(NULL, 0, POLLIN, 0), -EINVAL);
    assert_int_equal(ss_sleep(NULL, 0), -EINVAL);
}

static void test_server_calls_out_of_order(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.defer_bind = true};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_override(s, NULL), -EINVAL);
    assert_int_equal(ss_server_get_stats(s, NULL), -EINVAL);
    /* not bound yet: neither activate nor serve */
    assert_int_equal(ss_server_activate(s), -EINVAL);
    assert_int_equal(ss_handle_request(s), -EBADF);
    assert_int_equal(ss_server_bind(s), 0);
    assert_int_equal(ss_server_bind(s), -EINVAL);
    assert_int_equal(ss_server_activate(s), 0);
    assert_int_equal(ss_server_activate(s), -EINVAL);
    /* a model, then another: busy */
    assert_int_equal(ss_server_use_threading(s), 0);
    assert_int_equal(ss_server_use_threading(s), -EBUSY);
    assert_int_equal(ss_server_use_forking(s), -EBUSY);
    assert_int_equal(ss_server_use_thread_pool(s, 2, 2), -EBUSY);
    assert_int_equal(ss_server_use_prefork(s, 2), 0);
    assert_int_equal(ss_server_use_prefork(s, 2), -EBUSY);
    assert_non_null(ss_server_ops_current(s));
    assert_non_null(ss_server_ops_current(s)->handle_error);
    assert_int_equal(ss_server_broadcast(s, NULL, 1, NULL), -EINVAL);
    ss_server_close(s);
    assert_int_equal(ss_server_fileno(s), -1);
    assert_int_equal(ss_server_bind(s), -EINVAL);
    assert_int_equal(ss_handle_request(s), -EBADF);
    assert_int_equal(ss_server_run_once(s, 0), -EBADF);
    assert_int_equal(ss_serve_forever(s, 0.1), -EBADF);
    ss_server_free(s);
}

static void test_sync_loop_fd_and_run_once(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char buf[64];
    int fd;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_loop_fd(s), ss_server_fileno(s));
    /* nothing pending: 0 at once, and no handle_timeout */
    assert_int_equal(ss_server_run_once(s, 0), 0);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, "once\n", 5), 0);
    assert_int_equal(ss_server_run_once(s, WAIT_LIMIT), 1);
    assert_int_equal(recv_line(fd, buf, sizeof buf), 5);
    assert_string_equal(buf, "once\n");
    close(fd);
    ss_server_close(s);
    assert_int_equal(ss_server_loop_fd(s), -EBADF);
    ss_server_free(s);
}

/* get_request that says "nothing ready" once, as when another process
 * took the connection. */
static int eagain_left;

static int eagain_once(ss_server *s, ss_request **r)
{
    if (eagain_left > 0) {
        eagain_left--;
        return -EAGAIN;
    }
    return ss_server_base_ops(s)->get_request(s, r);
}

static void test_run_once_after_a_connection_taken_elsewhere(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char buf[64];
    int fd;

    (void)state;
    assert_non_null(s);
    ss_server_override(s, &(ss_server_ops){.get_request = eagain_once});
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, "again\n", 6), 0);
    /* With no time to wait, "nothing ready" is "none came". */
    eagain_left = 1;
    assert_int_equal(ss_server_run_once(s, 0), 0);
    /* With time, the loop waits on and takes the connection. */
    eagain_left = 1;
    assert_int_equal(ss_server_run_once(s, WAIT_LIMIT), 1);
    assert_int_equal(eagain_left, 0);
    assert_int_equal(recv_line(fd, buf, sizeof buf), 6);
    close(fd);
    ss_server_free(s);
}

static void test_datagram_broadcast_reaches_nobody(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_udp_server_new("127.0.0.1:0", &h, NULL);

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_broadcast(s, "x", 1, NULL), 0);
    ss_server_free(s);
}

/* ---- inside a handler ----------------------------------------------------- */

typedef struct checks {
    ssize_t readline_short, readline_null, recv_null, recv_zero, read_null;
    int write_null, sendall_null, printf_null, sleep_negative, sleep_nan;
    int wait_fd_bad, wait_fd_events, wait_readable_buffered;
    int printf_long;
    bool zero_ok;
    const void *packet;
    size_t packet_len;
    void *state;
    bool server_matches, client_matches, peer_matches;
    int fd;
    char line[64];
} checks;

static checks seen;
static char long_text[3000];

static int vprintf_null(ss_request *r, ...)
{
    const char *no_format = NULL;
    va_list ap;
    int rc;

    va_start(ap, r);
    rc = ss_vprintf(r, no_format, ap);
    va_end(ap);
    return rc;
}

static int checking_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char buf[8];

    seen.zero_ok = ss_sendall(r, NULL, 0) == 0 && ss_write(r, NULL, 0) == 0 &&
                   ss_recv(r, NULL, 0) == 0 && ss_read(r, NULL, 0) == 0 &&
                   ss_request_packet(r, NULL) == NULL;
    seen.readline_short = ss_readline(r, buf, 1);
    seen.readline_null = ss_readline(r, NULL, sizeof buf);
    seen.recv_null = ss_recv(r, NULL, 3);
    seen.recv_zero = ss_recv(r, buf, 0);
    seen.read_null = ss_read(r, NULL, 3);
    seen.write_null = ss_write(r, NULL, 3);
    seen.sendall_null = ss_sendall(r, NULL, 3);
    seen.printf_null = vprintf_null(r);
    seen.sleep_negative = ss_sleep(r, -1);
    seen.sleep_nan = ss_sleep(r, 0.0 / 0.0);
    seen.wait_fd_bad = ss_wait_fd(r, -1, POLLIN, 0);
    seen.wait_fd_events = ss_wait_fd(r, ss_request_fd(r), 0, 0);
    seen.packet = ss_request_packet(r, &seen.packet_len);
    seen.state = ss_request_state(r);
    seen.server_matches = ss_request_server(r) == s;
    seen.client_matches = ss_request_client_address(r) == c;
    seen.peer_matches = ss_request_peer_address(r) == c ||
        memcmp(ss_request_peer_address(r), c, sizeof *c) == 0;
    seen.fd = ss_request_fd(r);
    /* the request's line: buffered after a readline of its first byte */
    if (ss_readline(r, seen.line, 2) != 1)
        return -EIO;
    seen.wait_readable_buffered = ss_wait_readable(r, 0);
    if (ss_readline(r, seen.line + 1, sizeof seen.line - 1) <= 0)
        return -EIO;
    seen.printf_long = ss_printf(r, "%s\n", long_text);
    return 0;
}

static void test_request_calls_refuse_bad_arguments(void **state)
{
    ss_handler h = {.handle = checking_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char *reply = calloc(1, sizeof long_text + 2);
    int fd;

    (void)state;
    assert_non_null(s);
    assert_non_null(reply);
    memset(long_text, 'L', sizeof long_text - 1);
    memset(&seen, 0, sizeof seen);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, "checks\n", 7), 0);
    assert_int_equal(ss_handle_request(s), 0);
    assert_true(seen.zero_ok);
    assert_int_equal(seen.readline_short, -EINVAL);
    assert_int_equal(seen.readline_null, -EINVAL);
    assert_int_equal(seen.recv_null, -EINVAL);
    assert_int_equal(seen.recv_zero, 0);
    assert_int_equal(seen.read_null, -EINVAL);
    assert_int_equal(seen.write_null, -EINVAL);
    assert_int_equal(seen.sendall_null, -EINVAL);
    assert_int_equal(seen.printf_null, -EINVAL);
    assert_int_equal(seen.sleep_negative, -EINVAL);
    assert_int_equal(seen.sleep_nan, -EINVAL);
    assert_int_equal(seen.wait_fd_bad, -EINVAL);
    assert_int_equal(seen.wait_fd_events, -EINVAL);
    assert_int_equal(seen.wait_readable_buffered, 1);
    assert_null(seen.packet);
    assert_int_equal(seen.packet_len, 0);
    assert_null(seen.state);
    assert_true(seen.server_matches);
    assert_true(seen.client_matches);
    assert_true(seen.peer_matches);
    assert_true(seen.fd >= 0);
    assert_string_equal(seen.line, "checks\n");
    /* A formatted write longer than ss_vprintf's own buffer. */
    assert_int_equal(seen.printf_long, (int)sizeof long_text);
    assert_int_equal(recv_exact(fd, reply, sizeof long_text),
                     (ssize_t)sizeof long_text);
    assert_int_equal(strspn(reply, "L"), sizeof long_text - 1);
    assert_int_equal(reply[sizeof long_text - 1], '\n');
    free(reply);
    close(fd);
    ss_server_free(s);
}

/* ---- get_request failures -------------------------------------------------- */

static atomic_int failures_left, failure;

static int failing_get_request(ss_server *s, ss_request **r)
{
    if (failures_left > 0) {
        failures_left--;
        return failure;
    }
    return ss_server_base_ops(s)->get_request(s, r);
}

static char logged[2048];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_line(void *data, const char *line)
{
    (void)data;
    pthread_mutex_lock(&log_lock);
    if (strlen(logged) + strlen(line) + 2 < sizeof logged) {
        strcat(logged, line);
        strcat(logged, "\n");
    }
    pthread_mutex_unlock(&log_lock);
}

static bool logged_contains(void *what)
{
    bool yes;

    pthread_mutex_lock(&log_lock);
    yes = strstr(logged, what) != NULL;
    pthread_mutex_unlock(&log_lock);
    return yes;
}

/* An unexpected accept error is one log line, and serving goes on. */
static void test_unexpected_get_request_error_is_logged_and_serving_goes_on(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    /* with a limit: a failed accept gives its place back */
    ss_server_options o = {.log = log_line, .max_connections = 1};
    bool async_mode;

    (void)state;
    for (async_mode = false; ; async_mode = true) {
        ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
        served sv;

        assert_non_null(s);
        if (async_mode)
            assert_int_equal(ss_server_use_async(s, NULL), 0);
        ss_server_override(s, &(ss_server_ops){.get_request =
                                               failing_get_request});
        logged[0] = '\0';
        failure = -EIO;
        failures_left = 1;
        serve_in_thread(&sv, s, 0.05);
        stream_examine(ss_server_address(s));
        stop_serving(&sv);
        assert_int_equal(failures_left, 0);
        expect_true(logged_contains("libsockserver: get_request: "
                                    "Input/output error"),
                    "%s: log: %s", async_mode ? "async" : "sync", logged);
        ss_server_free(s);
        if (async_mode)
            break;
    }
}

/* True when serve_forever's thread ended by itself within `seconds`;
 * otherwise the server is shut down (a hang guard) and the thread joined
 * all the same. */
static bool ended_within(served *sv, double seconds)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)seconds;
    if (pthread_timedjoin_np(sv->thread, NULL, &until) == 0)
        return true;
    ss_server_shutdown(sv->server);
    pthread_join(sv->thread, NULL);
    return false;
}

/* A get_request error that says the socket is unusable ends serving, in
 * every model that owns its loop: sync, async with one loop and with two
 * (where a loop thread of its own meets the error). */
static void test_fatal_get_request_error_ends_serve_forever(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    unsigned loops;

    (void)state;
    for (loops = 0; loops <= 2; loops++) {
        ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
        ss_async_options ao = {.loops = loops};
        char line[16];
        served sv;
        int fd;

        assert_non_null(s);
        if (loops > 0)
            assert_int_equal(ss_server_use_async(s, &ao), 0);
        ss_server_override(s, &(ss_server_ops){.get_request =
                                               failing_get_request});
        failure = -ENOTSOCK;
        failures_left = 1;
        fd = client_connect(ss_server_address(s));
        assert_true(fd >= 0);
        /* serve_forever returns by itself; the shutdown after WAIT_LIMIT
         * is only a hang guard, and would end it with 0 */
        serve_in_thread(&sv, s, 0.05);
        expect_true(ended_within(&sv, WAIT_LIMIT),
                    "loops %u: serve_forever went on after the error",
                    loops);
        assert_int_equal(sv.rc, -ENOTSOCK);
        /* The same from handle_request: its error, no handle_timeout
         * (async: run_once with the server's timeout; one loop only). */
        if (loops <= 1) {
            failures_left = 1;
            assert_int_equal(ss_handle_request(s), -ENOTSOCK);
        }
        /* Once the socket works again, serving again serves the client
         * that waited. */
        failures_left = 0;
        assert_int_equal(send_all_fd(fd, "again\n", 6), 0);
        serve_in_thread(&sv, s, 0.05);
        assert_int_equal(recv_line(fd, line, sizeof line), 6);
        assert_memory_equal(line, "again\n", 6);
        stop_serving(&sv);
        close(fd);
        ss_server_free(s);
    }
}

/* A timeout of more than a day is waited for in day-long polls. */
static void test_handle_request_with_a_very_long_timeout(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.timeout = 1e7};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    char buf[64];
    int fd;

    (void)state;
    assert_non_null(s);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, "long\n", 5), 0);
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(recv_line(fd, buf, sizeof buf), 5);
    close(fd);
    ss_server_free(s);
}

/* ---- max_connections when driven one request at a time --------------------- */

static int gate[2];     /* a pipe: the handler waits for a byte */

static int gated_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char x;
    int rc = echo_line_handle(r, c, s);

    if (ss_wait_fd(r, gate[0], POLLIN, WAIT_LIMIT) == 1)
        (void)!read(gate[0], &x, 1);
    return rc;
}

static void test_run_once_at_max_connections_waits_for_a_place(void **state)
{
    ss_handler h = {.handle = gated_handle};
    ss_server_options o = {.max_connections = 1};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, &o);
    char buf[64];
    int a, b;

    (void)state;
    assert_non_null(s);
    assert_int_equal(pipe(gate), 0);
    a = client_connect(ss_server_address(s));
    b = client_connect(ss_server_address(s));
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(send_all_fd(a, "first\n", 6), 0);
    assert_int_equal(send_all_fd(b, "second\n", 7), 0);
    assert_int_equal(ss_server_run_once(s, WAIT_LIMIT), 1);
    assert_int_equal(recv_line(a, buf, sizeof buf), 6);
    /* The first handler holds the only place: the second connection
     * waits in the backlog, and a run that may not wait takes nothing. */
    assert_int_equal(ss_server_run_once(s, 0), 0);
    assert_int_equal(ss_server_run_once(s, 0.05), 0);
    /* Let the first handler end: the place is free again. */
    assert_int_equal(write(gate[1], "x", 1), 1);
    assert_int_equal(ss_server_run_once(s, WAIT_LIMIT), 1);
    assert_int_equal(recv_line(b, buf, sizeof buf), 7);
    assert_string_equal(buf, "second\n");
    assert_int_equal(write(gate[1], "x", 1), 1);
    close(a);
    close(b);
    ss_server_free(s);
    close(gate[0]);
    close(gate[1]);
}

/* ---- async mode's own refusals --------------------------------------------- */

static int hook_broadcast_rc;

static bool broadcasting_verify(ss_server *s, ss_request *r,
                                const ss_address *c)
{
    (void)r, (void)c;
    hook_broadcast_rc = ss_server_broadcast(s, "x", 1, NULL);
    return true;
}

static void test_async_refusals(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_async_options two = {.loops = 2};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    ss_server *f = ss_forking_tcp_server_new("127.0.0.1:0", &h, NULL);
    char buf[64];
    int fd;

    (void)state;
    assert_non_null(s);
    assert_non_null(f);
    assert_int_equal(ss_server_use_async(f, NULL), -ENOTSUP);
    ss_server_free(f);
    assert_int_equal(ss_server_use_async(s, &two), 0);
    assert_int_equal(ss_server_use_async(s, NULL), -EBUSY);
    assert_int_equal(ss_server_loop_fd(s), -EINVAL);
    assert_int_equal(ss_server_run_once(s, 0), -EINVAL);
    ss_server_free(s);

    /* One loop, driven from here: a hook on the loop's own stack cannot
     * broadcast (it could neither wait nor block the loop). */
    s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    ss_server_override(s, &(ss_server_ops){.verify_request =
                                           broadcasting_verify});
    assert_true(ss_server_loop_fd(s) >= 0);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, "hook\n", 5), 0);
    hook_broadcast_rc = 1;
    DRIVE_WHILE(s, hook_broadcast_rc == 1);
    assert_int_equal(hook_broadcast_rc, -EBUSY);
    DRIVE_WHILE(s, recv(fd, buf, 1, MSG_DONTWAIT) < 0);
    close(fd);
    ss_server_close(s);
    assert_int_equal(ss_server_loop_fd(s), -EBADF);
    assert_int_equal(ss_server_run_once(s, 0), -EBADF);
    ss_server_free(s);
}

/* ---- signals ------------------------------------------------------------------ */

/* Run fn in a forked child and return its wait status. */
static int child_status(void (*fn)(void *), void *arg)
{
    double end = now() + 3 * WAIT_LIMIT;
    int status = 0;
    pid_t pid = fork(), rc = 0;

    assert_true(pid >= 0);
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    while (now() < end && (rc = waitpid(pid, &status, WNOHANG)) == 0)
        sleep_ms(2);
    if (rc != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the child did not end");
    }
    return status;
}

static void raise_int(void *arg)
{
    (void)arg;
    raise(SIGINT);      /* the parent's to handle: ignored here */
    _exit(7);
}

static void raise_term(void *arg)
{
    (void)arg;
    raise(SIGTERM);     /* ends a forked handler child */
    _exit(3);
}

static void install_and_raise_twice(void *arg)
{
    ss_server *s = arg;

    if (ss_server_shutdown_on_signals(s) < 0)
        _exit(4);
    raise(SIGTERM);     /* the first: a graceful shutdown is asked for */
    if (ss_serve_forever(s, 0.05) != 0)
        _exit(5);
    raise(SIGTERM);     /* the second: the default action, at once */
    _exit(6);
}

static void test_shutdown_signals_in_children_and_a_second_signal(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    int status;

    (void)state;
    assert_non_null(s);
    /* A child forked after the handlers went in, as a forked handler is:
     * SIGINT is the parent's business, SIGTERM ends it. */
    assert_int_equal(ss_server_shutdown_on_signals(s), 0);
    status = child_status(raise_int, NULL);
    expect_true(WIFEXITED(status) && WEXITSTATUS(status) == 7,
                "status 0x%x", status);
    status = child_status(raise_term, NULL);
    expect_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
                "status 0x%x", status);
    assert_int_equal(ss_server_shutdown_on_signals(NULL), 0);
    assert_int_equal(ss_server_shutdown_on_signals(NULL), 0);  /* nothing left */
    /* The process that installed them: the first signal stops serving,
     * the second ends the process. (A process that dies of a signal writes
     * no coverage counts: what only these children run shows as missed.) */
    status = child_status(install_and_raise_twice, s);
    expect_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
                "status 0x%x", status);
    ss_server_free(s);
}

/* ---- inherited sockets: what is not one, and bad systemd variables ---------- */

static void expect_fd_refused(int fd, ss_server *(*ctor)(const char *,
                              const ss_handler *, const ss_server_options *),
                              const char *what)
{
    ss_handler h = {.handle = echo_line_handle};
    char ref[32];

    assert_true(fd >= 0);
    snprintf(ref, sizeof ref, "fd:%d", fd);
    assert_null(ctor(ref, &h, NULL));
    assert_int_equal(errno, EINVAL);
    expect_true(strstr(ss_last_error(), ref) && strstr(ss_last_error(), what),
                "ss_last_error() '%s' should name %s and '%s'", ss_last_error(),
                ref, what);
    /* refused, and left open as it was */
    assert_true(fcntl(fd, F_GETFD) >= 0);
    close(fd);
}

static void test_inherited_descriptors_that_are_not_sockets_or_do_not_fit(void **state)
{
    int sp[2], nl;
    char what[64];

    (void)state;
    assert_null(ss_tcp_server_new("fd:99999999999", &(ss_handler){
        .handle = echo_line_handle}, NULL));
    expect_true(strstr(ss_last_error(), "'99999999999' is not a descriptor "
                       "number"), "%s", ss_last_error());
    assert_null(ss_tcp_server_new("fd:3x", &(ss_handler){
        .handle = echo_line_handle}, NULL));
    expect_true(strstr(ss_last_error(), "'3x' is not a descriptor number"),
                "%s", ss_last_error());
    expect_fd_refused(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC),
                      ss_tcp_server_new, "a directory");
    expect_fd_refused(open("/dev/null", O_RDONLY | O_CLOEXEC),
                      ss_tcp_server_new, "a character device");
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp),
                     0);
    close(sp[1]);
    expect_fd_refused(sp[0], ss_unix_stream_server_new,
                      "a Unix seqpacket socket");
    nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (nl >= 0) {
        snprintf(what, sizeof what, "a socket of address family %d and type %d",
                 AF_NETLINK, SOCK_RAW);
        expect_fd_refused(nl, ss_udp_server_new, what);
    }
}

/* In a child (the variables are read once per process): set them, try
 * "systemd" twice, and exit 0 when both failed with EINVAL naming `want`;
 * else write why to the pipe. */
typedef struct env_case {
    const char *pid;        /* NULL: this process's */
    const char *fds;        /* NULL: unset */
    const char *want;
    int out;                /* pipe */
} env_case;

static void try_environment(void *arg)
{
    env_case *c = arg;
    ss_handler h = {.handle = echo_line_handle};
    char self[32], why[512];
    int i;

    snprintf(self, sizeof self, "%ld", (long)getpid());
    setenv("LISTEN_PID", c->pid ? c->pid : self, 1);
    if (c->fds)
        setenv("LISTEN_FDS", c->fds, 1);
    else
        unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    for (i = 0; i < 2; i++) {
        ss_server *s = ss_tcp_server_new("systemd", &h, NULL);

        if (s || errno != EINVAL || !strstr(ss_last_error(), c->want)) {
            snprintf(why, sizeof why, "try %d: %s, errno %d, '%s'", i,
                     s ? "a server" : "NULL", errno, ss_last_error());
            (void)!write(c->out, why, strlen(why));
            ss_server_free(s);
            _exit(1);
        }
    }
    _exit(0);
}

static void test_bad_systemd_variables_are_named(void **state)
{
    env_case cases[] = {
        {NULL, NULL, "systemd: LISTEN_PID is set but LISTEN_FDS is not", -1},
        {NULL, "", "systemd: LISTEN_PID is set but LISTEN_FDS is not", -1},
        {NULL, "two", "systemd: LISTEN_FDS 'two' is not a number of sockets", -1},
        {NULL, "-1", "systemd: LISTEN_FDS '-1' is not a number of sockets", -1},
        {NULL, "+1", "systemd: LISTEN_FDS '+1' is not a number of sockets", -1},
        {NULL, "0", "systemd: LISTEN_FDS is 0: no sockets passed", -1},
        {NULL, "100000", "systemd: LISTEN_FDS 100000 is more than", -1},
        {"pid", "1", "systemd: LISTEN_PID 'pid' is not a process id", -1},
        {"", "1", "systemd: LISTEN_PID '' is not a process id", -1},
        {"-5", "1", "systemd: LISTEN_PID '-5' is not a process id", -1},
        {"99999999999999999999999", "1", "is not a process id", -1},
        {NULL, "99999999999999999999999", "is not a number of sockets", -1},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[512] = "";
        int p[2], status;
        ssize_t n;

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        cases[i].out = p[1];
        status = child_status(try_environment, &cases[i]);
        close(p[1]);
        n = read(p[0], why, sizeof why - 1);
        why[n > 0 ? n : 0] = '\0';
        close(p[0]);
        expect_true(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                    "LISTEN_PID=%s LISTEN_FDS=%s: status 0x%x: %s",
                    cases[i].pid ? cases[i].pid : "(self)",
                    cases[i].fds ? cases[i].fds : "(unset)", status, why);
    }
}

/* ---- socket options and Unix abstract names ---------------------------------- */

static int sockopt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;

    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

static void *examine_stream(void *arg)
{
    stream_examine(arg);
    return NULL;
}

static void *examine_dgram(void *arg)
{
    dgram_examine(arg);
    return NULL;
}

static void test_reuse_options_and_backlog(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options off = {.reuse_address = -1, .request_queue_size = 3};
    ss_server_options on = {.reuse_address = 1, .reuse_port = true};
    ss_server_options unix_port = {.reuse_port = true};
    ss_server *tcp = ss_tcp_server_new("127.0.0.1:0", &h, &off);
    ss_server *udp = ss_udp_server_new("127.0.0.1:0", &h, &on);
    ss_server *tcp_port = ss_tcp_server_new("127.0.0.1:0", &h, &on);
    ss_server *un = ss_unix_stream_server_new(temp_path("port"), &h,
                                              &unix_port);
    pthread_t t;

    (void)state;
    assert_non_null(tcp);
    assert_non_null(udp);
    assert_non_null(tcp_port);
    expect_true(un != NULL, "reuse_port is ignored for Unix sockets: %s",
                ss_last_error());
    assert_int_equal(sockopt(ss_server_fileno(tcp), SOL_SOCKET, SO_REUSEADDR),
                     0);
    assert_int_equal(sockopt(ss_server_fileno(udp), SOL_SOCKET, SO_REUSEADDR),
                     1);
    assert_int_equal(sockopt(ss_server_fileno(udp), SOL_SOCKET, SO_REUSEPORT),
                     1);
    assert_int_equal(sockopt(ss_server_fileno(tcp_port), SOL_SOCKET,
                             SO_REUSEPORT), 1);
    /* a small backlog still serves */
    assert_int_equal(pthread_create(&t, NULL, examine_stream,
                                    (void *)ss_server_address(tcp)), 0);
    assert_int_equal(ss_handle_request(tcp), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    ss_server_free(tcp);
    ss_server_free(udp);
    ss_server_free(tcp_port);
    ss_server_free(un);
}

static void test_abstract_unix_servers(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    char name[64], buf[SS_ADDRESS_STRLEN];
    ss_server *s, *d, *again;
    pthread_t t;

    (void)state;
    snprintf(name, sizeof name, "@ss-edges-%d", (int)getpid());
    s = ss_unix_stream_server_new(name, &h, NULL);
    assert_non_null(s);
    assert_string_equal(ss_address_format(ss_server_address(s), buf,
                                          sizeof buf), name);
    /* in use: no file to call stale, just taken */
    again = ss_unix_stream_server_new(name, &h, NULL);
    assert_null(again);
    assert_int_equal(errno, EADDRINUSE);
    assert_int_equal(pthread_create(&t, NULL, examine_stream,
                                    (void *)ss_server_address(s)), 0);
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    ss_server_free(s);
    /* and free again once closed */
    s = ss_unix_stream_server_new(name, &h, NULL);
    assert_non_null(s);
    ss_server_free(s);

    snprintf(name, sizeof name, "unix:@ss-edges-d-%d", (int)getpid());
    d = ss_unix_datagram_server_new(name, &h, NULL);
    assert_non_null(d);
    assert_int_equal(pthread_create(&t, NULL, examine_dgram,
                                    (void *)ss_server_address(d)), 0);
    assert_int_equal(ss_handle_request(d), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    ss_server_free(d);
}

static void test_tiny_thread_stack_size_is_raised_to_the_minimum(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.thread_stack_size = 1};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, &o);
    served sv;

    (void)state;
    assert_non_null(s);
    serve_in_thread(&sv, s, 0.05);
    stream_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- request I/O edges, stream ------------------------------------------------ */

typedef struct io_seen {
    int overflow;
    ssize_t line1, line2, rest;
    char a[256], b[256], c[256];
} io_seen;

static io_seen io;

static int io_edges_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    static char whole[1];

    (void)c, (void)s;
    /* A length beyond int cannot be reported: refused before any byte is
     * read from the buffer. */
    io.overflow = ss_write(r, whole, (size_t)INT_MAX + 1);
    /* A line longer than rbufsize: the buffer grows. */
    io.line1 = ss_readline(r, io.a, sizeof io.a);
    /* A size beyond ssize_t is as large as ssize_t allows. */
    io.line2 = ss_readline(r, io.b, SIZE_MAX);
    io.rest = ss_read(r, io.c, SIZE_MAX);
    return 0;
}

static void test_request_io_sizes_at_their_limits(void **state)
{
    ss_handler h = {.handle = io_edges_handle, .rbufsize = 16};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char line[101];
    int fd;

    (void)state;
    assert_non_null(s);
    memset(&io, 0, sizeof io);
    memset(line, 'x', 99);
    line[99] = '\n';
    line[100] = '\0';
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, line, 100), 0);
    assert_int_equal(send_all_fd(fd, "second\nrest", 11), 0);
    shutdown(fd, SHUT_WR);
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(io.overflow, -EOVERFLOW);
    assert_int_equal(io.line1, 100);
    assert_string_equal(io.a, line);
    assert_int_equal(io.line2, 7);
    assert_string_equal(io.b, "second\n");
    assert_int_equal(io.rest, 4);
    assert_memory_equal(io.c, "rest", 4);
    close(fd);
    ss_server_free(s);
}

static ssize_t reset_recv;
static int reset_wait;

static int reset_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char buf[16];
    int p[2];

    (void)c, (void)s;
    /* Waiting on another descriptor, the client's reset is not this
     * wait's business: it goes on to its timeout. */
    if (pipe(p) < 0)
        return -errno;
    reset_wait = ss_wait_fd(r, p[0], POLLIN, 0.2);
    close(p[0]);
    close(p[1]);
    reset_recv = ss_recv(r, buf, sizeof buf);
    return 0;
}

static void test_a_reset_connection(void **state)
{
    ss_handler h = {.handle = reset_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    struct linger lg = {1, 0};
    int fd;

    (void)state;
    assert_non_null(s);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd);      /* RST */
    reset_recv = 1;
    reset_wait = 1;
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(reset_wait, 0);
    expect_true(reset_recv == -ECONNRESET, "recv: %zd (%s)", reset_recv,
                ss_strerror((int)reset_recv));
    ss_server_free(s);
}

/* ---- request I/O edges, datagram ----------------------------------------------- */

typedef struct dg_seen {
    const void *packet;
    size_t len;
    int readable_before, readable_after, flushed;
    ssize_t recv_after, readline_after, read_after;
    const void *packet_again;
    char got[64];
} dg_seen;

static dg_seen dg;

static int dgram_edges_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char chunk[100];
    int i;

    (void)c, (void)s;
    dg.packet = ss_request_packet(r, &dg.len);
    dg.readable_before = ss_wait_readable(r, 0);
    if (ss_recv(r, dg.got, sizeof dg.got - 1) < 0)
        return -EIO;
    dg.readable_after = ss_wait_readable(r, WAIT_LIMIT);   /* never waits */
    dg.recv_after = ss_recv(r, chunk, sizeof chunk);
    dg.readline_after = ss_readline(r, chunk, sizeof chunk);
    dg.read_after = ss_read(r, chunk, 10);
    dg.packet_again = ss_request_packet(r, NULL);
    dg.flushed = ss_flush(r);
    /* A reply written in pieces, longer than the first buffer. */
    memset(chunk, 'r', sizeof chunk);
    for (i = 0; i < 10; i++)
        if (ss_write(r, chunk, sizeof chunk) != (int)sizeof chunk)
            return -EIO;
    return 0;
}

static void test_datagram_request_reads_its_packet_and_replies_in_pieces(void **state)
{
    ss_handler h = {.handle = dgram_edges_handle};
    ss_server *s = ss_udp_server_new("127.0.0.1:0", &h, NULL);
    const ss_address *a;
    char reply[2000];
    int fd;

    (void)state;
    assert_non_null(s);
    a = ss_server_address(s);
    memset(&dg, 0, sizeof dg);
    fd = client_dgram(a, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(sendto(fd, "packet", 6, 0,
                            (const struct sockaddr *)&a->storage, a->len), 6);
    assert_int_equal(ss_handle_request(s), 0);
    assert_non_null(dg.packet);
    assert_int_equal(dg.len, 6);
    assert_int_equal(dg.readable_before, 1);
    assert_string_equal(dg.got, "packet");
    assert_int_equal(dg.readable_after, 0);
    assert_int_equal(dg.recv_after, 0);
    assert_int_equal(dg.readline_after, 0);
    assert_int_equal(dg.read_after, 0);
    assert_ptr_equal(dg.packet_again, dg.packet);
    assert_int_equal(dg.flushed, 0);
    assert_int_equal(recv(fd, reply, sizeof reply, 0), 1000);
    close(fd);
    ss_server_free(s);
}

/* ---- models that do not combine ------------------------------------------------- */

static void test_model_combinations_refused(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    ss_server *f = ss_forking_tcp_server_new("127.0.0.1:0", &h, NULL);

    (void)state;
    assert_non_null(s);
    assert_non_null(f);
    assert_int_equal(ss_server_use_prefork(s, 0), -EINVAL);
    assert_int_equal(ss_server_use_thread_pool(s, 0, 4), -EINVAL);
    /* a process per request cannot live inside prefork workers, either
     * way round */
    assert_int_equal(ss_server_use_prefork(f, 2), -ENOTSUP);
    assert_int_equal(ss_server_use_prefork(s, 2), 0);
    assert_int_equal(ss_server_use_forking(s), -ENOTSUP);
    /* the workers serve in other processes: nothing to drive from here */
    assert_int_equal(ss_server_run_once(s, 0), -EINVAL);
    assert_int_equal(ss_server_loop_fd(s), -EINVAL);
    assert_int_equal(ss_server_broadcast(s, "x", 1, NULL), -ENOTSUP);
    ss_server_free(s);
    ss_server_free(f);

    /* Once a server has handled a request, its model is fixed. */
    s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    assert_non_null(s);
    assert_int_equal(ss_server_run_once(s, 0), 0);
    assert_int_equal(ss_server_use_threading(s), -EBUSY);
    assert_int_equal(ss_server_use_async(s, NULL), -EBUSY);
    assert_int_equal(ss_server_use_prefork(s, 2), -EBUSY);
    ss_server_free(s);
}

/* ---- model-specific paths ------------------------------------------------------- */

static void test_forking_handle_request_times_out(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.timeout = 0.05};
    ss_server *s = ss_forking_tcp_server_new("127.0.0.1:0", &h, &o);
    served sv;

    (void)state;
    assert_non_null(s);
    /* No client: the forking handle_timeout (which reaps) runs. */
    assert_int_equal(ss_handle_request(s), -ETIMEDOUT);
    /* and it serves as before */
    serve_in_thread(&sv, s, 0.05);
    stream_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
}

static int exiting_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[64];
    ssize_t n = ss_readline(r, line, sizeof line);

    (void)c, (void)s;
    if (n > 0 && strcmp(line, "exit\n") == 0)
        _exit(3);       /* the worker process ends */
    return n < 0 ? (int)n : ss_write(r, line, (size_t)n) < 0 ? -EIO : 0;
}

static void test_prefork_worker_that_exits_is_named_and_restarted(void **state)
{
    ss_handler h = {.handle = exiting_handle};
    ss_server_options o = {.log = log_line};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    served sv;
    char buf[64];
    int fd;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_prefork(s, 1), 0);
    logged[0] = '\0';
    serve_in_thread(&sv, s, 0);     /* the default poll interval */
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, "exit\n", 5), 0);
    assert_int_equal(recv_line(fd, buf, sizeof buf), 0);    /* EOF */
    close(fd);
    expect_true(wait_for(logged_contains, "exited with status 3; restarting "
                         "it", WAIT_LIMIT), "log: %s", logged);
    /* the restarted worker serves */
    stream_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
}

static atomic_int sleep_rc, sleepers;

static atomic_int sleep_again_rc, short_sleep_rc;

/* "long": one long sleep, which the drain's end cuts short, then another,
 * which ends at once; "short": short sleeps until one is cut short (one
 * begins while the drain is on). */
static int sleeping_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    const void *packet = ss_request_packet(r, NULL);
    int rc;

    (void)c, (void)s;
    atomic_fetch_add(&sleepers, 1);
    if (memcmp(packet, "short", 5) == 0) {
        while ((rc = ss_sleep(r, 0.05)) == 0)
            ;
        atomic_store(&short_sleep_rc, rc);
        return 0;
    }
    atomic_store(&sleep_rc, ss_sleep(r, 10 * WAIT_LIMIT));
    /* the drain is over: any later wait ends at once */
    atomic_store(&sleep_again_rc, ss_sleep(r, 10 * WAIT_LIMIT));
    return 0;
}

static bool someone_sleeps(void *arg)
{
    (void)arg;
    return atomic_load(&sleepers) >= 2;
}

/* A close drains an async datagram request: its sleeps end at
 * close_timeout, with -ESHUTDOWN, and so does any wait after that. */
static void test_async_datagram_sleep_cut_short_by_close(void **state)
{
    ss_handler h = {.handle = sleeping_handle};
    ss_server_options o = {.close_timeout = 0.2};
    ss_server *s = ss_udp_server_new("127.0.0.1:0", &h, &o);
    const ss_address *a;
    served sv;
    int fd;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    a = ss_server_address(s);
    atomic_store(&sleepers, 0);
    atomic_store(&sleep_rc, 1);
    atomic_store(&sleep_again_rc, 1);
    atomic_store(&short_sleep_rc, 1);
    serve_in_thread(&sv, s, 0.05);
    fd = client_dgram(a, NULL, 0);
    assert_true(fd >= 0);
    assert_int_equal(sendto(fd, "long", 4, 0,
                            (const struct sockaddr *)&a->storage, a->len), 4);
    assert_int_equal(sendto(fd, "short", 5, 0,
                            (const struct sockaddr *)&a->storage, a->len), 5);
    assert_true(wait_for(someone_sleeps, NULL, WAIT_LIMIT));
    stop_serving(&sv);
    ss_server_close(s);
    assert_int_equal(atomic_load(&sleep_rc), -ESHUTDOWN);
    assert_int_equal(atomic_load(&sleep_again_rc), -ESHUTDOWN);
    assert_int_equal(atomic_load(&short_sleep_rc), -ESHUTDOWN);
    close(fd);
    ss_server_free(s);
}

/* Async waits with deadlines that end out of order: the loop's timers
 * are removed from the middle of their heap. */
static atomic_int arrivals;

static int staggered_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    int i = atomic_fetch_add(&arrivals, 1);
    int rc = ss_wait_readable(r, (double)(40 - 10 * i) * WAIT_LIMIT);

    (void)c, (void)s;
    if (rc != 1)
        return -EIO;
    return echo_line_handle(r, c, s);
}

static bool all_arrived(void *arg)
{
    return atomic_load(&arrivals) >= *(int *)arg;
}

static void test_async_deadlines_ending_out_of_order(void **state)
{
    ss_handler h = {.handle = staggered_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;
    char buf[64];
    int fd[3], i, three = 3;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    atomic_store(&arrivals, 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 3; i++) {
        int n = i + 1;

        fd[i] = client_connect(ss_server_address(s));
        assert_true(fd[i] >= 0);
        /* one at a time: handler i waits 40 - 10 i limits */
        assert_true(wait_for(all_arrived, &n, WAIT_LIMIT));
    }
    assert_true(wait_for(all_arrived, &three, WAIT_LIMIT));
    /* the longest wait first, then the others */
    for (i = 0; i < 3; i++) {
        assert_int_equal(send_all_fd(fd[i], "tick\n", 5), 0);
        assert_int_equal(recv_line(fd[i], buf, sizeof buf), 5);
        close(fd[i]);
    }
    stop_serving(&sv);
    ss_server_free(s);
}

/* A pool whose queue is full: ss_handle_request waits for room. */
static void *handle_one_request(void *arg)
{
    return (void *)(intptr_t)ss_handle_request(arg);
}

static void test_pool_handle_request_waits_while_the_queue_is_full(void **state)
{
    ss_handler h = {.handle = gated_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char buf[64];
    int fd[3], i;
    pthread_t t;
    void *rc;

    (void)state;
    assert_non_null(s);
    assert_int_equal(pipe(gate), 0);
    assert_int_equal(ss_server_use_thread_pool(s, 1, 1), 0);
    for (i = 0; i < 3; i++) {
        fd[i] = client_connect(ss_server_address(s));
        assert_true(fd[i] >= 0);
        assert_int_equal(send_all_fd(fd[i], "pool\n", 5), 0);
    }
    /* the first goes to the worker, which echoes and then waits */
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(recv_line(fd[0], buf, sizeof buf), 5);
    /* the second fills the queue; the third waits for room */
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(pthread_create(&t, NULL, handle_one_request, s), 0);
    for (i = 0; i < 3; i++)
        assert_int_equal(write(gate[1], "x", 1), 1);
    assert_int_equal(pthread_join(t, &rc), 0);
    assert_int_equal((intptr_t)rc, 0);
    for (i = 1; i < 3; i++)
        assert_int_equal(recv_line(fd[i], buf, sizeof buf), 5);
    for (i = 0; i < 3; i++)
        close(fd[i]);
    ss_server_free(s);
    close(gate[0]);
    close(gate[1]);
}

/* ---- forking: the limit, a close that does not wait, a child that ignores
 * SIGTERM ---------------------------------------------------------------------- */

static bool two_accepted(void *server)
{
    ss_server_stats st;

    return ss_server_get_stats(server, &st) == 0 && st.accepted >= 2;
}

static void test_forking_at_max_children_a_shutdown_ends_the_waiting_request(void **state)
{
    ss_handler h = {.handle = gated_handle};
    ss_server_options o = {.max_children = 1};
    ss_server *s = ss_forking_tcp_server_new("127.0.0.1:0", &h, &o);
    served sv;
    char buf[64];
    int a, b;

    (void)state;
    assert_non_null(s);
    assert_int_equal(pipe(gate), 0);
    serve_in_thread(&sv, s, 0.05);
    a = client_connect(ss_server_address(s));
    assert_true(a >= 0);
    assert_int_equal(send_all_fd(a, "held\n", 5), 0);
    assert_int_equal(recv_line(a, buf, sizeof buf), 5);     /* its child runs */
    b = client_connect(ss_server_address(s));
    assert_true(b >= 0);
    assert_int_equal(send_all_fd(b, "waits\n", 6), 0);
    /* b is accepted and waits for the one child's place: a shutdown ends
     * it, unhandled (the wait for the place shows in the stats as an
     * accepted request). */
    assert_true(wait_for(two_accepted, s, WAIT_LIMIT));
    stop_serving(&sv);
    assert_int_equal(recv_line(b, buf, sizeof buf), 0);
    assert_int_equal(write(gate[1], "x", 1), 1);
    ss_server_free(s);      /* waits for a's child */
    close(a);
    close(b);
    close(gate[0]);
    close(gate[1]);
}

static void test_forking_close_without_blocking(void **state)
{
    ss_handler h = {.handle = gated_handle};
    ss_server_options o = {.no_block_on_close = true};
    ss_server *s = ss_forking_tcp_server_new("127.0.0.1:0", &h, &o);
    char buf[64];
    int a, status;

    (void)state;
    assert_non_null(s);
    assert_int_equal(pipe(gate), 0);
    a = client_connect(ss_server_address(s));
    assert_true(a >= 0);
    assert_int_equal(send_all_fd(a, "bye\n", 4), 0);
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(recv_line(a, buf, sizeof buf), 4);
    /* the child still runs: close returns without it */
    ss_server_close(s);
    assert_int_equal(ss_server_active_handlers(s), 1);
    assert_int_equal(write(gate[1], "x", 1), 1);
    assert_int_equal(recv_line(a, buf, sizeof buf), 0);     /* it ended */
    /* free does not wait for children; it may have reaped this one */
    ss_server_free(s);
    if (waitpid(-1, &status, 0) > 0)
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(a);
    close(gate[0]);
    close(gate[1]);
}

static int stubborn_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char x;

    signal(SIGTERM, SIG_IGN);
    (void)echo_line_handle(r, c, s);
    /* only the gate or death ends this */
    while (read(gate[0], &x, 1) < 0 && errno == EINTR)
        ;
    return 0;
}

static void test_forking_close_kills_a_child_that_ignores_sigterm(void **state)
{
    ss_handler h = {.handle = stubborn_handle};
    ss_server_options o = {.close_timeout = 0.1};
    ss_server *s = ss_forking_tcp_server_new("127.0.0.1:0", &h, &o);
    char buf[64];
    int a;

    (void)state;
    assert_non_null(s);
    assert_int_equal(pipe(gate), 0);
    a = client_connect(ss_server_address(s));
    assert_true(a >= 0);
    assert_int_equal(send_all_fd(a, "stay\n", 5), 0);
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(recv_line(a, buf, sizeof buf), 5);
    ss_server_close(s);     /* SIGTERM, ignored; then SIGKILL */
    assert_int_equal(ss_server_active_handlers(s), 0);
    assert_int_equal(recv_line(a, buf, sizeof buf), 0);
    ss_server_free(s);
    close(a);
    close(gate[0]);
    close(gate[1]);
}

/* ---- accept back-off, reported ------------------------------------------------- */

/* get_request reporting EMFILE once: accepting pauses (one line, counted),
 * the connection is served after the back-off, and a success a quiet
 * second later says accepting resumed. */
static void test_accept_pause_and_resume_are_logged(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.log = log_line};
    int mode;

    (void)state;
    for (mode = 0; mode < 2; mode++) {
        ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
        ss_server_stats st;
        served sv;

        assert_non_null(s);
        if (mode == 1)
            assert_int_equal(ss_server_use_async(s, NULL), 0);
        ss_server_override(s, &(ss_server_ops){.get_request =
                                               failing_get_request});
        logged[0] = '\0';
        failure = -EMFILE;
        failures_left = 1;
        serve_in_thread(&sv, s, 0.05);
        stream_examine(ss_server_address(s));
        expect_true(logged_contains("pausing accepts until resources are "
                                    "free"), "%s: %s", mode ? "async" : "sync",
                    logged);
        assert_int_equal(ss_server_get_stats(s, &st), 0);
        assert_int_equal(st.accept_pauses, 1);
        sleep_ms(1100);     /* the library's quiet second (SS_PAUSE_QUIET) */
        stream_examine(ss_server_address(s));
        expect_true(wait_for(logged_contains, "accepting again after 1 "
                             "failure", WAIT_LIMIT), "%s: %s",
                    mode ? "async" : "sync", logged);
        stop_serving(&sv);
        ss_server_free(s);
    }
}

/* ---- a send that cannot finish within the handler timeout ----------------------- */

static atomic_int send_rc;

static int flooding_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    size_t len = 64u << 20;
    char *big = calloc(1, len);
    char line[64];
    int rc;

    (void)c, (void)s;
    if (!big)
        return -ENOMEM;
    rc = (int)ss_readline(r, line, sizeof line);
    if (rc > 0)
        rc = ss_sendall(r, big, len);   /* the client does not read */
    free(big);
    atomic_store(&send_rc, rc);
    return 0;
}

static bool send_ended(void *arg)
{
    (void)arg;
    return atomic_load(&send_rc) != 1;
}

static void test_sendall_to_a_client_that_does_not_read_times_out(void **state)
{
    ss_handler h = {.handle = flooding_handle, .timeout = 0.3};
    const char *names[] = {"sync", "threading", "pool", "async"};
    int mode;

    (void)state;
    for (mode = 0; mode < 4; mode++) {
        ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
        served sv;
        int fd;

        assert_non_null(s);
        if (mode == 1)
            assert_int_equal(ss_server_use_threading(s), 0);
        if (mode == 2)
            assert_int_equal(ss_server_use_thread_pool(s, 1, 1), 0);
        if (mode == 3)
            assert_int_equal(ss_server_use_async(s, NULL), 0);
        atomic_store(&send_rc, 1);
        serve_in_thread(&sv, s, 0.05);
        fd = client_connect(ss_server_address(s));
        assert_true(fd >= 0);
        assert_int_equal(send_all_fd(fd, "flood\n", 6), 0);
        expect_true(wait_for(send_ended, NULL, WAIT_LIMIT), "%s: the send "
                    "never ended", names[mode]);
        expect_true(atomic_load(&send_rc) == -ETIMEDOUT, "%s: %d (%s)",
                    names[mode], atomic_load(&send_rc),
                    ss_strerror(atomic_load(&send_rc)));
        close(fd);
        stop_serving(&sv);
        ss_server_free(s);
    }
}

/* ---- async driven from outside: re-entry and long timeouts ---------------------- */

static int reentry_rc;

static int reentering_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    reentry_rc = ss_server_run_once(s, 0);
    return echo_line_handle(r, c, s);
}

static void test_async_run_once_from_its_own_handler_is_ebusy(void **state)
{
    ss_handler h = {.handle = reentering_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char buf[64];
    int fd;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, "reenter\n", 8), 0);
    reentry_rc = 1;
    /* a timeout of more than a day, waited for in day-long polls (the
     * line is there already: it returns at once) */
    assert_true(ss_server_run_once(s, 1e7) >= 0);
    DRIVE_WHILE(s, reentry_rc == 1);
    assert_int_equal(reentry_rc, -EBUSY);
    DRIVE_WHILE(s, recv(fd, buf, sizeof buf, MSG_DONTWAIT) < 0);
    close(fd);
    ss_server_free(s);
}

/* A prefork worker does not inherit the loops its parent made when it
 * drove the server itself once: it makes its own. */
static void test_prefork_async_after_the_parent_drove_the_server(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    assert_true(ss_server_loop_fd(s) >= 0);    /* makes the parent's loop */
    assert_int_equal(ss_server_use_prefork(s, 1), 0);
    serve_in_thread(&sv, s, 0.05);
    stream_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
}

/* A connection reset in the middle of its PROXY header: handle_error
 * with the reset, nothing handled. */
static int proxy_err;
static bool proxy_handled;

static void record_error(ss_server *s, ss_request *r, const ss_address *c,
                         int err)
{
    (void)s, (void)r, (void)c;
    proxy_err = err;
}

static int mark_handled(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    proxy_handled = true;
    return 0;
}

static void test_reset_inside_a_proxy_header(void **state)
{
    ss_handler h = {.handle = mark_handled};
    ss_server_options o = {.proxy_protocol = SS_PROXY_REQUIRED};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    struct linger lg = {1, 0};
    int fd;

    (void)state;
    assert_non_null(s);
    ss_server_override(s, &(ss_server_ops){.handle_error = record_error});
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, "PROXY TCP4 192.0.2.1", 20), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd);      /* RST */
    proxy_err = 0;
    proxy_handled = false;
    assert_int_equal(ss_handle_request(s), 0);
    expect_true(proxy_err == -ECONNRESET, "handle_error(%d: %s)", proxy_err,
                ss_strerror(proxy_err));
    assert_false(proxy_handled);
    ss_server_free(s);
}

/* ---- a stack overflow, where the application handles SIGSEGV itself --------------- */

static int recurse(int depth, volatile char *sink)
{
    volatile char frame[1024];

    frame[0] = (char)depth;
    frame[sizeof frame - 1] = sink[0];
    return depth == 0 ? frame[0] : recurse(depth - 1, frame) + 1;
}

static int overflowing_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    volatile char seed[1] = {0};

    (void)r, (void)c, (void)s;
    return recurse(1 << 20, seed);
}

static void application_segv(int sig, siginfo_t *info, void *uc)
{
    static const char line[] = "the application's handler ran\n";

    (void)sig, (void)info, (void)uc;
    (void)!write(STDERR_FILENO, line, sizeof line - 1);
    _exit(42);
}

/* The same, installed without SA_SIGINFO. */
static void application_plain_segv(int sig)
{
    static const char line[] = "the application's plain handler ran\n";

    (void)sig;
    (void)!write(STDERR_FILENO, line, sizeof line - 1);
    _exit(43);
}

static int null_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    *(volatile int *)(uintptr_t)0 = 1;      /* a fault, not an overflow */
    return 0;
}

static bool plain_fault;    /* the child: a NULL write, a plain handler */

/* In the child: the application's own alternate stack and SIGSEGV
 * handler, then a server whose handler overflows its coroutine stack. */
static void overflow_with_a_handler_of_its_own(int out)
{
    ss_handler h = {.handle = plain_fault ? null_handle : overflowing_handle};
    ss_async_options ao = {.stack_size = 32 * 1024};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    struct sigaction sa;
    char a[SS_ADDRESS_STRLEN];
    stack_t st = {.ss_size = 1 << 20};

    st.ss_sp = malloc(st.ss_size);
    if (!st.ss_sp || sigaltstack(&st, NULL) < 0)
        _exit(2);
    memset(&sa, 0, sizeof sa);
    if (plain_fault) {
        sa.sa_handler = application_plain_segv;
        sa.sa_flags = SA_ONSTACK;
    } else {
        sa.sa_sigaction = application_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    }
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) < 0 || sigaction(SIGBUS, &sa, NULL) < 0)
        _exit(3);
    if (!s || ss_server_use_async(s, &ao) < 0)
        _exit(4);
    ss_address_format(ss_server_address(s), a, sizeof a);
    if (write(out, a, strlen(a) + 1) < 0)
        _exit(5);
    ss_serve_forever(s, 0.5);
    _exit(6);
}

/* Run the child; its stderr into text; its wait status. */
static int run_fault_child(char *text, size_t size)
{
    int addr_pipe[2], err_pipe[2], status = 0, fd;
    char address[SS_ADDRESS_STRLEN] = {0};
    double end = now() + 6 * WAIT_LIMIT;
    size_t got = 0;
    ss_address a;
    pid_t pid;
    ssize_t n;

    memset(text, 0, size);
    assert_int_equal(pipe2(addr_pipe, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err_pipe, O_CLOEXEC), 0);
    fflush(stdout);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(err_pipe[1], STDERR_FILENO);
        overflow_with_a_handler_of_its_own(addr_pipe[1]);
    }
    close(addr_pipe[1]);
    close(err_pipe[1]);
    n = read(addr_pipe[0], address, sizeof address - 1);
    expect_true(n > 0, "the child did not start its server");
    assert_int_equal(ss_address_parse(&a, address), 0);
    fd = client_connect(&a);
    expect_true(fd >= 0, "connect to the child");
    while (got < size - 1 && now() < end) {
        struct pollfd p = {.fd = err_pipe[0], .events = POLLIN};

        if (poll(&p, 1, 100) > 0) {
            n = read(err_pipe[0], text + got, size - 1 - got);
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
        fail_msg("the child survived its fault; it wrote:\n%s", text);
    }
    close(fd);
    close(addr_pipe[0]);
    close(err_pipe[0]);
    return status;
}

static void test_an_overflow_goes_on_to_the_applications_segv_handler(void **state)
{
    char text[8192];
    int status;

    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    skip();     /* the sanitizers own SIGSEGV; test_async covers them */
#endif
    plain_fault = false;
    status = run_fault_child(text, sizeof text);
    /* the library's line first, then the handler that was there before */
    expect_true(strstr(text, "stack overflow in the handler of the request "
                             "from 127.0.0.1:") != NULL &&
                strstr(text, "the application's handler ran") >
                strstr(text, "stack overflow"), "stderr:\n%s", text);
    expect_true(WIFEXITED(status) && WEXITSTATUS(status) == 42,
                "status 0x%x", status);
}

/* A fault that is not a coroutine's overflow: no line of the library's,
 * straight to the handler that was there before (one without SA_SIGINFO
 * here). */
static void test_a_fault_that_is_not_an_overflow_is_passed_on(void **state)
{
    char text[8192];
    int status;

    (void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    skip();     /* the sanitizers own SIGSEGV */
#endif
    plain_fault = true;
    status = run_fault_child(text, sizeof text);
    expect_true(strstr(text, "stack overflow") == NULL &&
                strstr(text, "the application's plain handler ran") != NULL,
                "stderr:\n%s", text);
    expect_true(WIFEXITED(status) && WEXITSTATUS(status) == 43,
                "status 0x%x", status);
}

/* ---- server_bind and server_activate overridden, as in Python ----------------- */

static char bind_trace[128];

static int traced_bind(ss_server *s)
{
    strcat(bind_trace, "bind ");
    return ss_server_base_ops(s)->server_bind(s);
}

static int traced_activate(ss_server *s)
{
    strcat(bind_trace, "activate");
    return ss_server_base_ops(s)->server_activate(s);
}

static void test_overridden_bind_and_activate_with_a_default_poll_interval(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.defer_bind = true};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, &o);
    served sv;

    (void)state;
    assert_non_null(s);
    bind_trace[0] = '\0';
    assert_int_equal(ss_server_override(s, &(ss_server_ops){
        .server_bind = traced_bind, .server_activate = traced_activate}), 0);
    assert_int_equal(ss_server_bind(s), 0);
    assert_int_equal(ss_server_activate(s), 0);
    assert_string_equal(bind_trace, "bind activate");
    assert_int_not_equal(ss_address_port(ss_server_address(s)), 0);
    /* poll_interval 0: the default */
    serve_in_thread(&sv, s, 0);
    stream_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_active_handlers_of_every_model_at_rest(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    int mode;

    (void)state;
    for (mode = 0; mode < 5; mode++) {
        ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);

        assert_non_null(s);
        if (mode == 1)
            assert_int_equal(ss_server_use_threading(s), 0);
        if (mode == 2)
            assert_int_equal(ss_server_use_forking(s), 0);
        if (mode == 3)
            assert_int_equal(ss_server_use_thread_pool(s, 2, 0), 0);
        if (mode == 4)
            assert_int_equal(ss_server_use_async(s, NULL), 0);
        assert_int_equal(ss_server_active_handlers(s), 0);
        ss_server_free(s);
    }
}

/* ---- signals that interrupt a handler's blocking I/O ---------------------------- */

static void nothing_on_signal(int sig)
{
    (void)sig;
}

static atomic_bool in_recv;
static pthread_t recv_thread;
static ssize_t interrupted_recv;
static char interrupted_buf[16];

static int interrupted_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)c, (void)s;
    recv_thread = pthread_self();
    atomic_store(&in_recv, true);
    interrupted_recv = ss_recv(r, interrupted_buf, sizeof interrupted_buf - 1);
    atomic_store(&in_recv, false);
    return 0;
}

static bool receiving(void *arg)
{
    (void)arg;
    return atomic_load(&in_recv);
}

/* A signal without SA_RESTART interrupts the handler's receive (with and
 * without a handler timeout): the library goes on waiting, the timeout
 * keeps counting from the start, and the data that comes is returned. */
static void test_eintr_in_a_handlers_receive_is_retried(void **state)
{
    struct sigaction sa, old;
    int mode;

    (void)state;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = nothing_on_signal;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    for (mode = 0; mode < 2; mode++) {
        ss_handler h = {.handle = interrupted_handle,
                        .timeout = mode ? 10 * WAIT_LIMIT : 0};
        ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, NULL);
        int fd, i;

        assert_non_null(s);
        atomic_store(&in_recv, false);
        interrupted_recv = 0;
        memset(interrupted_buf, 0, sizeof interrupted_buf);
        fd = client_connect(ss_server_address(s));
        assert_true(fd >= 0);
        assert_int_equal(ss_handle_request(s), 0);
        assert_true(wait_for(receiving, NULL, WAIT_LIMIT));
        for (i = 0; i < 20; i++) {
            pthread_kill(recv_thread, SIGUSR1);
            sleep_ms(2);
        }
        assert_true(atomic_load(&in_recv));
        assert_int_equal(send_all_fd(fd, "late", 4), 0);
        ss_server_close(s);     /* waits for the handler */
        assert_int_equal(interrupted_recv, 4);
        assert_string_equal(interrupted_buf, "late");
        close(fd);
        ss_server_free(s);
    }
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
}

/* ---- buffered writes ---------------------------------------------------------- */

static int buffered_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)c, (void)s;
    if (ss_write(r, "ab", 2) != 2 ||           /* buffered */
        ss_write(r, "0123456789", 10) != 10 ||  /* too big: after "ab" */
        ss_write(r, "cdefgh", 6) != 6 ||        /* buffered */
        ss_write(r, "ij", 2) != 2 ||            /* fills the buffer: out */
        ss_write(r, "k\n", 2) != 2)             /* sent after finish */
        return -EIO;
    return 0;
}

static void test_buffered_writes_keep_their_order(void **state)
{
    ss_handler h = {.handle = buffered_handle, .wbufsize = 8,
                    .disable_nagle_algorithm = true};
    ss_server *s = ss_unix_stream_server_new(temp_path("wbuf"), &h, NULL);
    char buf[64];
    int fd;

    (void)state;
    assert_non_null(s);     /* TCP_NODELAY is for TCP only: ignored here */
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(recv_line(fd, buf, sizeof buf), 22);
    assert_string_equal(buf, "ab0123456789cdefghijk\n");
    close(fd);
    ss_server_free(s);
}

/* max_connections counts stream requests: datagrams are not limited. */
static void test_max_connections_does_not_limit_datagrams(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.max_connections = 1};
    ss_server *s = ss_threading_udp_server_new("127.0.0.1:0", &h, &o);
    served sv;

    (void)state;
    assert_non_null(s);
    serve_in_thread(&sv, s, 0.05);
    dgram_examine(ss_server_address(s));
    dgram_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- async: a reset, and waits on the request's own connection ------------------ */

static atomic_bool reset_done;

static int async_reset_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    int rc = reset_handle(r, c, s);

    atomic_store(&reset_done, true);
    return rc;
}

static bool reset_seen(void *arg)
{
    (void)arg;
    return atomic_load(&reset_done);
}

static void test_a_reset_connection_async(void **state)
{
    ss_handler h = {.handle = async_reset_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    struct linger lg = {1, 0};
    served sv;
    int fd;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    atomic_store(&reset_done, false);
    reset_recv = 1;
    reset_wait = 1;
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd);      /* RST */
    serve_in_thread(&sv, s, 0.05);
    assert_true(wait_for(reset_seen, NULL, WAIT_LIMIT));
    stop_serving(&sv);
    assert_int_equal(reset_wait, 0);
    expect_true(reset_recv == -ECONNRESET, "recv: %zd (%s)", reset_recv,
                ss_strerror((int)reset_recv));
    ss_server_free(s);
}

static int own_wait_in_verify;

static bool waiting_verify(ss_server *s, ss_request *r, const ss_address *c)
{
    (void)s, (void)c;
    /* on the loop's own stack: nothing can yield, the thread polls */
    own_wait_in_verify = ss_wait_fd(r, ss_request_fd(r), POLLIN, WAIT_LIMIT);
    return true;
}

static int own_wait_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    int fd = ss_request_fd(r);

    /* no limit, one direction: the connection's own registration */
    if (ss_wait_fd(r, fd, POLLOUT, -1) != 1 ||
        ss_wait_fd(r, fd, POLLIN, -1) != 1)
        return -EIO;
    return echo_line_handle(r, c, s);
}

static void test_async_waits_on_the_requests_own_connection(void **state)
{
    ss_handler h = {.handle = own_wait_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    ss_server_override(s, &(ss_server_ops){.verify_request = waiting_verify});
    own_wait_in_verify = 0;
    serve_in_thread(&sv, s, 0.05);
    stream_examine(ss_server_address(s));
    stop_serving(&sv);
    assert_int_equal(own_wait_in_verify, 1);
    ss_server_free(s);
}

/* ---- handle_error's default text for unusual failures ------------------------------ */

static int returns_seven(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c, (void)s;
    return 7;
}

static void test_a_positive_handler_result_is_reported_as_returned(void **state)
{
    ss_handler h = {.handle = returns_seven};
    ss_server_options o = {.log = log_line};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    int fd;

    (void)state;
    assert_non_null(s);
    logged[0] = '\0';
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(s), 0);
    expect_true(logged_contains("\nhandle: returned 7\n"), "log: %s", logged);
    close(fd);
    ss_server_free(s);
}

/* A datagram reply to a Unix client that has gone: the handler succeeded,
 * the reply is an error of its own, reported as "sendto". */
static void test_a_datagram_reply_that_cannot_be_sent_is_reported(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.log = log_line};
    ss_server *s = ss_unix_datagram_server_new(temp_path("gone"), &h, &o);
    const ss_address *a;
    char path[108];
    int fd;

    (void)state;
    assert_non_null(s);
    a = ss_server_address(s);
    logged[0] = '\0';
    fd = client_dgram(a, path, sizeof path);
    assert_true(fd >= 0);
    assert_int_equal(sendto(fd, "hi\n", 3, 0,
                            (const struct sockaddr *)&a->storage, a->len), 3);
    close(fd);
    unlink(path);   /* the client and its name are gone */
    assert_int_equal(ss_handle_request(s), 0);
    expect_true(logged_contains("\nsendto: "), "log: %s", logged);
    ss_server_free(s);
}

/* ---- waits cut short by close ------------------------------------------------------ */

static atomic_int cut_rc;
static atomic_bool cut_waiting;

static int waits_for_the_gate(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)c, (void)s;
    atomic_store(&cut_waiting, true);
    atomic_store(&cut_rc, ss_wait_fd(r, gate[0], POLLIN, -1));
    return 0;
}

static bool cut_is_waiting(void *arg)
{
    (void)arg;
    return atomic_load(&cut_waiting);
}

/* A threading handler waiting, with no limit, on a descriptor of its own:
 * close_timeout passes, close shuts its connection down, and the wait
 * returns -ESHUTDOWN. */
static void test_close_cuts_short_a_wait_on_another_descriptor(void **state)
{
    ss_handler h = {.handle = waits_for_the_gate};
    ss_server_options o = {.close_timeout = 0.1};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, &o);
    int fd;

    (void)state;
    assert_non_null(s);
    assert_int_equal(pipe(gate), 0);
    atomic_store(&cut_waiting, false);
    atomic_store(&cut_rc, 1);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(ss_handle_request(s), 0);
    assert_true(wait_for(cut_is_waiting, NULL, WAIT_LIMIT));
    ss_server_close(s);
    assert_int_equal(atomic_load(&cut_rc), -ESHUTDOWN);
    close(fd);
    ss_server_free(s);
    close(gate[0]);
    close(gate[1]);
}

/* A handler timeout below the kernel's resolution is still a timeout. */
static atomic_long tiny_rc;

static int tiny_timeout_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char buf[8];

    (void)c, (void)s;
    atomic_store(&tiny_rc, (long)ss_recv(r, buf, sizeof buf));
    return 0;
}

static void test_a_sub_microsecond_handler_timeout(void **state)
{
    ss_handler h = {.handle = tiny_timeout_handle, .timeout = 1e-9};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    int fd;

    (void)state;
    assert_non_null(s);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    atomic_store(&tiny_rc, 1);
    assert_int_equal(ss_handle_request(s), 0);
    assert_int_equal(atomic_load(&tiny_rc), -ETIMEDOUT);
    close(fd);
    ss_server_free(s);
}

/* ---- async: more blocking calls than blocking threads; many deadlines --------- */

static atomic_int blocking_calls;

static int read_gate(void *arg)
{
    char x = 0;

    (void)arg;
    while (read(gate[0], &x, 1) < 0 && errno == EINTR)
        ;
    return x;
}

static int blocking_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[16];
    int rc;

    (void)c, (void)s;
    if (ss_readline(r, line, sizeof line) <= 0)
        return -EIO;
    atomic_fetch_add(&blocking_calls, 1);
    rc = ss_run_blocking(r, read_gate, NULL);
    return ss_printf(r, "%d\n", rc) < 0 ? -EIO : 0;
}

static bool two_blocking_calls(void *arg)
{
    (void)arg;
    return atomic_load(&blocking_calls) >= 2;
}

/* One blocking thread, two calls: the second waits for the thread, and
 * each gets its own result. */
static void test_async_blocking_calls_queue_for_the_thread(void **state)
{
    ss_handler h = {.handle = blocking_handle};
    ss_async_options ao = {.blocking_threads = 1};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char buf[2][16];
    served sv;
    int fd[2], i;

    (void)state;
    assert_non_null(s);
    assert_int_equal(pipe(gate), 0);
    assert_int_equal(ss_server_use_async(s, &ao), 0);
    atomic_store(&blocking_calls, 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 2; i++) {
        fd[i] = client_connect(ss_server_address(s));
        assert_true(fd[i] >= 0);
        assert_int_equal(send_all_fd(fd[i], "go\n", 3), 0);
    }
    assert_true(wait_for(two_blocking_calls, NULL, WAIT_LIMIT));
    assert_int_equal(write(gate[1], "xy", 2), 2);
    for (i = 0; i < 2; i++)
        assert_int_equal(recv_line(fd[i], buf[i], sizeof buf[i]), 4);
    expect_true((strcmp(buf[0], "120\n") == 0 && strcmp(buf[1], "121\n") == 0) ||
                (strcmp(buf[0], "121\n") == 0 && strcmp(buf[1], "120\n") == 0),
                "replies '%s' and '%s'", buf[0], buf[1]);
    for (i = 0; i < 2; i++)
        close(fd[i]);
    stop_serving(&sv);
    ss_server_free(s);
    close(gate[0]);
    close(gate[1]);
}

/* More waits with deadlines than the loop's first timer heap holds. */
#define MANY 80

static atomic_int waiting_many;

static int many_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    /* later connections wait shorter: each deadline sifts up */
    double limit = (double)(10 * MANY - atomic_fetch_add(&waiting_many, 1)) *
                   WAIT_LIMIT;

    if (ss_wait_readable(r, limit) != 1)
        return -EIO;
    return echo_line_handle(r, c, s);
}

static bool all_waiting(void *arg)
{
    (void)arg;
    return atomic_load(&waiting_many) >= MANY;
}

static void test_async_many_deadlines_at_once(void **state)
{
    ss_handler h = {.handle = many_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    served sv;
    char buf[32];
    int fd[MANY], i;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    atomic_store(&waiting_many, 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < MANY; i++) {
        fd[i] = client_connect(ss_server_address(s));
        assert_true(fd[i] >= 0);
    }
    assert_true(wait_for(all_waiting, NULL, WAIT_LIMIT));
    for (i = 0; i < MANY; i++) {
        assert_int_equal(send_all_fd(fd[i], "many\n", 5), 0);
        assert_int_equal(recv_line(fd[i], buf, sizeof buf), 5);
        close(fd[i]);
    }
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- a prefork Unix server: the workers leave the socket file alone ------------- */

static void test_prefork_unix_workers_leave_the_socket_file(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    const char *path = temp_path("prefork");
    ss_server *s = ss_unix_stream_server_new(path, &h, NULL);
    struct stat st;
    served sv;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_prefork(s, 2), 0);
    serve_in_thread(&sv, s, 0.05);
    stream_examine(ss_server_address(s));
    stop_serving(&sv);      /* the workers have closed and exited */
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    ss_server_close(s);     /* the parent's close removes it */
    assert_int_equal(lstat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
    ss_server_free(s);
}

/* ---- async driven by another event loop, with a deadline pending ---------------- */

static int napping_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    if (ss_sleep(r, 0.05) != 0)
        return -EIO;
    return echo_line_handle(r, c, s);
}

static void test_async_loop_fd_shows_deadlines(void **state)
{
    ss_handler h = {.handle = napping_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char buf[64];
    double end = now() + WAIT_LIMIT;
    int lfd, fd, n = -1;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    lfd = ss_server_loop_fd(s);
    assert_true(lfd >= 0);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, "nap\n", 4), 0);
    /* poll only the loop's descriptor, as another event loop would: the
     * handler's sleep must wake it when it ends */
    while (now() < end) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};

        if (poll(&p, 1, (int)(WAIT_LIMIT * 1000)) > 0)
            assert_true(ss_server_run_once(s, 0) >= 0);
        if ((n = (int)recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0)
            break;
    }
    assert_int_equal(n, 4);
    close(fd);
    ss_server_free(s);
}

/* ---- async broadcast from outside the loops, to a receiver busy sending -------- */

static atomic_int bc_flooding, bc_waiting, bc_flood_rc;

static int broadcast_target_handle(ss_request *r, const ss_address *c,
                                   ss_server *s)
{
    char line[32];

    (void)c, (void)s;
    if (ss_readline(r, line, sizeof line) <= 0)
        return -EIO;
    if (strcmp(line, "flood\n") == 0) {
        size_t len = 64u << 20;
        char *big = calloc(1, len);

        if (!big)
            return -ENOMEM;
        atomic_store(&bc_flooding, 1);
        /* the client never reads: this send holds the connection */
        atomic_store(&bc_flood_rc, ss_sendall(r, big, len));
        free(big);
        return 0;
    }
    atomic_fetch_add(&bc_waiting, 1);
    (void)ss_wait_readable(r, 10 * WAIT_LIMIT);     /* until EOF */
    return 0;
}

static bool broadcast_ready(void *arg)
{
    (void)arg;
    return atomic_load(&bc_flooding) == 1 && atomic_load(&bc_waiting) == 2;
}

static bool flood_ended(void *arg)
{
    (void)arg;
    return atomic_load(&bc_flood_rc) != 1;
}

/* Two loops, a broadcast from this thread: the idle receivers get it;
 * the one busy sending its own long reply cannot take it within the
 * broadcast's second (no handler timeout), so its connection is shut
 * down, which ends that send too. */
static void test_async_broadcast_to_idle_and_busy_receivers(void **state)
{
    ss_handler h = {.handle = broadcast_target_handle};
    ss_async_options ao = {.loops = 2};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char buf[32];
    served sv;
    int fd[3], i;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, &ao), 0);
    atomic_store(&bc_flooding, 0);
    atomic_store(&bc_waiting, 0);
    atomic_store(&bc_flood_rc, 1);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 3; i++) {
        fd[i] = client_connect(ss_server_address(s));
        assert_true(fd[i] >= 0);
        assert_int_equal(send_all_fd(fd[i], i == 0 ? "flood\n" : "wait\n",
                                     i == 0 ? 6 : 5), 0);
    }
    assert_true(wait_for(broadcast_ready, NULL, WAIT_LIMIT));
    assert_int_equal(ss_server_broadcast(s, "news\n", 5, NULL), 2);
    for (i = 1; i < 3; i++) {
        assert_int_equal(recv_line(fd[i], buf, sizeof buf), 5);
        assert_string_equal(buf, "news\n");
    }
    assert_true(wait_for(flood_ended, NULL, WAIT_LIMIT));
    expect_true(atomic_load(&bc_flood_rc) < 0, "the flood's send: %d",
                atomic_load(&bc_flood_rc));
    for (i = 0; i < 3; i++)
        close(fd[i]);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- async: two waits on one descriptor, one of them timing out ---------------- */

static atomic_int gate_waiters, first_gate_rc, second_gate_rc;

static bool all_arrived_1(void *arg)
{
    (void)arg;
    return atomic_load(&gate_waiters) >= 1;
}

static int shared_gate_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    int me = atomic_fetch_add(&gate_waiters, 1);

    /* the first waits half a second, the second as long as it takes */
    if (me == 0)
        atomic_store(&first_gate_rc, ss_wait_fd(r, gate[0], POLLIN, 0.5));
    else
        atomic_store(&second_gate_rc, ss_wait_fd(r, gate[0], POLLIN, -1));
    (void)c, (void)s;
    return ss_printf(r, "done\n") < 0 ? -EIO : 0;
}

static bool two_at_the_gate(void *arg)
{
    (void)arg;
    return atomic_load(&gate_waiters) == 2;
}

static bool first_gave_up(void *arg)
{
    (void)arg;
    return atomic_load(&first_gate_rc) != 1;
}

static void test_async_two_waits_on_one_descriptor(void **state)
{
    ss_handler h = {.handle = shared_gate_handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char buf[16];
    served sv;
    int a, b;

    (void)state;
    assert_non_null(s);
    assert_int_equal(pipe(gate), 0);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    atomic_store(&gate_waiters, 0);
    atomic_store(&first_gate_rc, 1);
    atomic_store(&second_gate_rc, 2);
    serve_in_thread(&sv, s, 0.05);
    a = client_connect(ss_server_address(s));
    assert_true(a >= 0);
    assert_true(wait_for(all_arrived_1, NULL, WAIT_LIMIT));
    b = client_connect(ss_server_address(s));
    assert_true(b >= 0);
    assert_true(wait_for(two_at_the_gate, NULL, WAIT_LIMIT));
    /* the first gives up (nothing came), the second still waits */
    assert_true(wait_for(first_gave_up, NULL, WAIT_LIMIT));
    assert_int_equal(atomic_load(&first_gate_rc), 0);
    assert_int_equal(recv_line(a, buf, sizeof buf), 5);
    assert_int_equal(write(gate[1], "x", 1), 1);
    assert_int_equal(recv_line(b, buf, sizeof buf), 5);
    assert_int_equal(atomic_load(&second_gate_rc), 1);
    close(a);
    close(b);
    stop_serving(&sv);
    ss_server_free(s);
    close(gate[0]);
    close(gate[1]);
}

/* ---- a shutdown asked for before serving, in the models with loops of their own */

static void test_shutdown_before_serving_async_and_prefork(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    int mode;

    (void)state;
    for (mode = 0; mode < 2; mode++) {
        ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);

        assert_non_null(s);
        if (mode == 0)
            assert_int_equal(ss_server_use_async(s, NULL), 0);
        else
            assert_int_equal(ss_server_use_prefork(s, 2), 0);
        ss_server_request_shutdown(s);
        /* the request is consumed: serve_forever returns 0 at once */
        assert_int_equal(ss_serve_forever(s, 0.05), 0);
        ss_server_free(s);
    }
}

/* An async server freed while its accepting is paused: the paused
 * accept's timer is cancelled, nothing is left behind. */
static void test_async_freed_while_accepting_is_paused(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.log = log_line};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    int fd;

    (void)state;
    assert_non_null(s);
    assert_int_equal(ss_server_use_async(s, NULL), 0);
    ss_server_override(s, &(ss_server_ops){.get_request = failing_get_request});
    logged[0] = '\0';
    failure = -EMFILE;
    failures_left = 1;
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    DRIVE_WHILE(s, failures_left > 0);
    expect_true(logged_contains("pausing accepts"), "log: %s", logged);
    close(fd);
    ss_server_free(s);
}

/* ---- max_connections with connections already waiting; broadcast but to self --- */

static void test_serve_forever_at_max_connections_with_a_backlog(void **state)
{
    ss_handler h = {.handle = gated_handle};
    ss_server_options o = {.max_connections = 1};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, &o);
    ss_server_stats st;
    char buf[64];
    served sv;
    int a, b;

    (void)state;
    assert_non_null(s);
    assert_int_equal(pipe(gate), 0);
    /* both wait in the backlog before serving begins */
    a = client_connect(ss_server_address(s));
    b = client_connect(ss_server_address(s));
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(send_all_fd(a, "one\n", 4), 0);
    assert_int_equal(send_all_fd(b, "two\n", 4), 0);
    serve_in_thread(&sv, s, 0.05);
    /* one is served and held; the other is not accepted meanwhile */
    assert_int_equal(recv_line(a, buf, sizeof buf), 4);
    assert_int_equal(ss_server_get_stats(s, &st), 0);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(write(gate[1], "x", 1), 1);
    assert_int_equal(recv_line(b, buf, sizeof buf), 4);
    assert_string_equal(buf, "two\n");
    assert_int_equal(write(gate[1], "x", 1), 1);
    stop_serving(&sv);
    assert_int_equal(ss_server_get_stats(s, &st), 0);
    assert_int_equal(st.accepted, 2);
    close(a);
    close(b);
    ss_server_free(s);
    close(gate[0]);
    close(gate[1]);
}

static atomic_int others_reached, talkers;

static int talker_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[64];
    ssize_t n;

    (void)c;
    atomic_fetch_add(&talkers, 1);
    while ((n = ss_readline(r, line, sizeof line)) > 0)
        if (strcmp(line, "shout\n") == 0)
            atomic_store(&others_reached,
                         ss_server_broadcast(s, "heard\n", 6, r));
    return n < 0 ? (int)n : 0;
}

static bool two_talkers(void *arg)
{
    (void)arg;
    return atomic_load(&talkers) == 2;
}

static bool broadcast_returned(void *arg)
{
    (void)arg;
    return atomic_load(&others_reached) != -1;
}

/* A handler's broadcast that names its own request reaches the others
 * only. */
static void test_broadcast_except_the_sender(void **state)
{
    ss_handler h = {.handle = talker_handle};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, NULL);
    char buf[64];
    served sv;
    int a, b;

    (void)state;
    assert_non_null(s);
    atomic_store(&talkers, 0);
    atomic_store(&others_reached, -1);
    serve_in_thread(&sv, s, 0.05);
    a = client_connect(ss_server_address(s));
    b = client_connect(ss_server_address(s));
    assert_true(a >= 0 && b >= 0);
    assert_true(wait_for(two_talkers, NULL, WAIT_LIMIT));
    assert_int_equal(send_all_fd(a, "shout\n", 6), 0);
    assert_int_equal(recv_line(b, buf, sizeof buf), 6);
    assert_string_equal(buf, "heard\n");
    assert_true(wait_for(broadcast_returned, NULL, WAIT_LIMIT));
    assert_int_equal(atomic_load(&others_reached), 1);
    shutdown(a, SHUT_WR);
    assert_int_equal(recv_line(a, buf, sizeof buf), 0);     /* nothing for a */
    close(a);
    close(b);
    stop_serving(&sv);
    ss_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_address_parse_refusals_say_what_was_wrong),
        TEST(test_ipv6_scope_by_interface_name_or_number),
        TEST(test_format_of_unusual_addresses),
        TEST(test_strerror_and_version),
        TEST(test_options_refused_at_construction),
        TEST(test_null_server_everywhere),
        TEST(test_server_calls_out_of_order),
        TEST(test_sync_loop_fd_and_run_once),
        TEST(test_run_once_after_a_connection_taken_elsewhere),
        TEST(test_datagram_broadcast_reaches_nobody),
        TEST(test_request_calls_refuse_bad_arguments),
        TEST(test_unexpected_get_request_error_is_logged_and_serving_goes_on),
        TEST(test_fatal_get_request_error_ends_serve_forever),
        TEST(test_handle_request_with_a_very_long_timeout),
        TEST(test_run_once_at_max_connections_waits_for_a_place),
        TEST(test_async_refusals),
        TEST(test_shutdown_signals_in_children_and_a_second_signal),
        TEST(test_inherited_descriptors_that_are_not_sockets_or_do_not_fit),
        TEST(test_bad_systemd_variables_are_named),
        TEST(test_reuse_options_and_backlog),
        TEST(test_abstract_unix_servers),
        TEST(test_tiny_thread_stack_size_is_raised_to_the_minimum),
        TEST(test_request_io_sizes_at_their_limits),
        TEST(test_a_reset_connection),
        TEST(test_datagram_request_reads_its_packet_and_replies_in_pieces),
        TEST(test_model_combinations_refused),
        TEST(test_forking_handle_request_times_out),
        TEST(test_prefork_worker_that_exits_is_named_and_restarted),
        TEST(test_async_datagram_sleep_cut_short_by_close),
        TEST(test_async_deadlines_ending_out_of_order),
        TEST(test_pool_handle_request_waits_while_the_queue_is_full),
        TEST(test_forking_at_max_children_a_shutdown_ends_the_waiting_request),
        TEST(test_forking_close_without_blocking),
        TEST(test_forking_close_kills_a_child_that_ignores_sigterm),
        TEST(test_accept_pause_and_resume_are_logged),
        TEST(test_sendall_to_a_client_that_does_not_read_times_out),
        TEST(test_async_run_once_from_its_own_handler_is_ebusy),
        TEST(test_prefork_async_after_the_parent_drove_the_server),
        TEST(test_reset_inside_a_proxy_header),
        TEST(test_an_overflow_goes_on_to_the_applications_segv_handler),
        TEST(test_a_fault_that_is_not_an_overflow_is_passed_on),
        TEST(test_overridden_bind_and_activate_with_a_default_poll_interval),
        TEST(test_active_handlers_of_every_model_at_rest),
        TEST(test_eintr_in_a_handlers_receive_is_retried),
        TEST(test_buffered_writes_keep_their_order),
        TEST(test_max_connections_does_not_limit_datagrams),
        TEST(test_a_reset_connection_async),
        TEST(test_async_waits_on_the_requests_own_connection),
        TEST(test_a_positive_handler_result_is_reported_as_returned),
        TEST(test_a_datagram_reply_that_cannot_be_sent_is_reported),
        TEST(test_close_cuts_short_a_wait_on_another_descriptor),
        TEST(test_a_sub_microsecond_handler_timeout),
        TEST(test_async_blocking_calls_queue_for_the_thread),
        TEST(test_async_many_deadlines_at_once),
        TEST(test_prefork_unix_workers_leave_the_socket_file),
        TEST(test_async_loop_fd_shows_deadlines),
        TEST(test_async_broadcast_to_idle_and_busy_receivers),
        TEST(test_async_two_waits_on_one_descriptor),
        TEST(test_shutdown_before_serving_async_and_prefork),
        TEST(test_async_freed_while_accepting_is_paused),
        TEST(test_serve_forever_at_max_connections_with_a_backlog),
        TEST(test_broadcast_except_the_sender),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
