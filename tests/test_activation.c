/*
 * Inherited sockets: "fd:N" and systemd socket activation ("systemd",
 * "systemd:NAME"). A server adopts a socket it is given by number, or one
 * LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES pass it, checks that it fits,
 * serves on it and closes it; a construction that fails leaves the
 * descriptor open and as it was.
 *
 * The systemd tests run in a forked child, which arranges its descriptors
 * 3.. and its environment as systemd would, and reports what went wrong
 * through a pipe and its exit status (the remembered variables are per
 * process, so each child starts afresh).
 */
#include "helpers.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const ss_handler echo = {.handle = echo_line_handle};

/* ---- sockets as a parent process would pass them ------------------------ */

/* A blocking, inheritable socket (as a process gets it across exec). */
static int raw_socket(int family, int type)
{
    int fd = socket(family, type, 0);

    expect_true(fd >= 0, "socket: %s", strerror(errno));
    return fd;
}

static void bind_loopback(int fd)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    expect_true(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0,
                "bind 127.0.0.1:0: %s", strerror(errno));
}

static int tcp_listener(int backlog)
{
    int fd = raw_socket(AF_INET, SOCK_STREAM);

    bind_loopback(fd);
    expect_true(listen(fd, backlog) == 0, "listen: %s", strerror(errno));
    return fd;
}

static int udp_bound(void)
{
    int fd = raw_socket(AF_INET, SOCK_DGRAM);

    bind_loopback(fd);
    return fd;
}

static int unix_bound(int type, const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = raw_socket(AF_UNIX, type);

    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    unlink(path);
    expect_true(bind(fd, (struct sockaddr *)&sun, sizeof sun) == 0,
                "bind %s: %s", path, strerror(errno));
    if (type == SOCK_STREAM)
        expect_true(listen(fd, 8) == 0, "listen: %s", strerror(errno));
    return fd;
}

static ss_address local_address(int fd)
{
    ss_address a;

    a.len = sizeof a.storage;
    expect_true(getsockname(fd, (struct sockaddr *)&a.storage, &a.len) == 0,
                "getsockname: %s", strerror(errno));
    return a;
}

static bool same_address(const ss_address *a, const ss_address *b)
{
    char x[SS_ADDRESS_STRLEN], y[SS_ADDRESS_STRLEN];

    return strcmp(ss_address_format(a, x, sizeof x),
                  ss_address_format(b, y, sizeof y)) == 0;
}

static int listening(int fd)
{
    int v = -1;
    socklen_t len = sizeof v;

    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 ? v : -1;
}

static char *fd_text(int fd)
{
    static char buf[4][32];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof buf[0], "fd:%d", fd);
    return p;
}

/* The state the caller left a descriptor in. */
typedef struct fd_state {
    int fd, fd_flags, fl_flags, listening;
} fd_state;

static fd_state save_state(int fd)
{
    fd_state st = {fd, fcntl(fd, F_GETFD), fcntl(fd, F_GETFL), -1};
    struct stat sb;

    if (fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode))
        st.listening = listening(fd);
    return st;
}

static void expect_unchanged(const fd_state *before, const char *what)
{
    fd_state now_ = save_state(before->fd);

    expect_true(now_.fd_flags >= 0, "%s: fd %d should still be open (%s)",
                what, before->fd, strerror(errno));
    expect_true(now_.fd_flags == before->fd_flags &&
                now_.fl_flags == before->fl_flags,
                "%s: fd %d should keep its flags: F_GETFD 0x%x F_GETFL 0x%x "
                "before, 0x%x 0x%x after", what, before->fd, before->fd_flags,
                before->fl_flags, now_.fd_flags, now_.fl_flags);
    expect_true(now_.listening == before->listening,
                "%s: fd %d should keep its listening state (%d before, %d "
                "after)", what, before->fd, before->listening, now_.listening);
}

/* Adopt `fd` and serve one request through it; free must close it. */
static void expect_serves_and_free_closes(ss_server *s, int fd, bool datagram)
{
    served sv;
    int flags;

    expect_true(s != NULL, "a server on fd %d, got NULL: %s", fd,
                ss_last_error());
    assert_int_equal(ss_server_fileno(s), fd);
    flags = fcntl(fd, F_GETFL);
    expect_true(flags >= 0 && (flags & O_NONBLOCK),
                "the adopted socket should be non-blocking (F_GETFL 0x%x)",
                flags);
    flags = fcntl(fd, F_GETFD);
    expect_true(flags >= 0 && (flags & FD_CLOEXEC),
                "the adopted socket should be close-on-exec (F_GETFD 0x%x)",
                flags);
    serve_in_thread(&sv, s, 0.5);
    if (datagram)
        dgram_examine(ss_server_address(s));
    else
        stream_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
    expect_true(fcntl(fd, F_GETFD) < 0 && errno == EBADF,
                "ss_server_free should close the adopted fd %d", fd);
}

/* ---- fd:N: serving -------------------------------------------------------- */

static void test_tcp_server_serves_on_a_listening_socket_passed_by_number(void **state)
{
    int fd = tcp_listener(8);
    ss_address a = local_address(fd);
    ss_server *s;

    (void)state;
    s = ss_tcp_server_new(fd_text(fd), &echo, NULL);
    expect_true(s != NULL, "tcp server on fd:%d: %s", fd, ss_last_error());
    expect_true(same_address(ss_server_address(s), &a),
                "the server address should be the socket's own");
    assert_string_equal(ss_last_error(), "");
    expect_serves_and_free_closes(s, fd, false);
}

static void test_udp_server_serves_on_a_bound_socket_passed_by_number(void **state)
{
    int fd = udp_bound();
    ss_address a = local_address(fd);
    ss_server *s;

    (void)state;
    s = ss_udp_server_new(fd_text(fd), &echo, NULL);
    expect_true(s != NULL, "udp server on fd:%d: %s", fd, ss_last_error());
    expect_true(same_address(ss_server_address(s), &a),
                "the server address should be the socket's own");
    expect_serves_and_free_closes(s, fd, true);
}

static void test_unix_stream_server_serves_on_a_passed_socket_and_leaves_its_file(void **state)
{
    const char *path = temp_path("adopt");
    int fd = unix_bound(SOCK_STREAM, path);
    char buf[SS_ADDRESS_STRLEN];
    ss_server *s;

    (void)state;
    s = ss_unix_stream_server_new(fd_text(fd), &echo, NULL);
    expect_true(s != NULL, "unix stream server on fd:%d: %s", fd,
                ss_last_error());
    assert_string_equal(ss_address_format(ss_server_address(s), buf,
                                          sizeof buf), path);
    expect_serves_and_free_closes(s, fd, false);
    expect_true(access(path, F_OK) == 0, "%s should still exist: an adopted "
                "socket's file is never unlinked", path);
    unlink(path);
}

static void test_unix_datagram_server_serves_on_a_passed_socket_and_leaves_its_file(void **state)
{
    const char *path = temp_path("adoptd");
    int fd = unix_bound(SOCK_DGRAM, path);
    ss_server *s;

    (void)state;
    s = ss_unix_datagram_server_new(fd_text(fd), &echo, NULL);
    expect_serves_and_free_closes(s, fd, true);
    expect_true(access(path, F_OK) == 0, "%s should still exist: an adopted "
                "socket's file is never unlinked", path);
    unlink(path);
}

static void test_threading_server_serves_on_a_socket_passed_by_number(void **state)
{
    int fd = tcp_listener(8);
    ss_server *s;

    (void)state;
    s = ss_threading_tcp_server_new(fd_text(fd), &echo, NULL);
    expect_serves_and_free_closes(s, fd, false);
}

static void test_a_bound_stream_socket_not_yet_listening_is_made_to_listen(void **state)
{
    int fd = raw_socket(AF_INET, SOCK_STREAM);
    ss_address a;
    ss_server *s;

    (void)state;
    bind_loopback(fd);
    a = local_address(fd);
    assert_int_equal(listening(fd), 0);
    s = ss_tcp_server_new(fd_text(fd), &echo, NULL);
    expect_true(s != NULL, "tcp server on a bound fd:%d: %s", fd,
                ss_last_error());
    expect_true(listening(fd) == 1, "the server should listen() on a bound "
                "socket that was not listening");
    expect_true(same_address(ss_server_address(s), &a),
                "the socket should keep its address, not be bound again");
    expect_serves_and_free_closes(s, fd, false);
}

static void test_a_listening_socket_is_not_bound_again_and_keeps_its_backlog(void **state)
{
    int fd = tcp_listener(3);
    ss_address a = local_address(fd);
    ss_server_options o = {.request_queue_size = 50};
    ss_server *s;

    (void)state;
    s = ss_tcp_server_new(fd_text(fd), &echo, &o);
    expect_true(s != NULL, "tcp server on fd:%d: %s", fd, ss_last_error());
    expect_true(same_address(ss_server_address(s), &a),
                "the socket should keep its address");
#if defined(__linux__) && defined(TCP_INFO)
    {
        /* For a listener, Linux reports its backlog in tcpi_sacked. */
        struct tcp_info ti;
        socklen_t len = sizeof ti;

        memset(&ti, 0, sizeof ti);
        assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
        expect_true(ti.tcpi_sacked == 3, "the backlog should stay the caller's "
                    "3 (no second listen() with 50), it is %u",
                    ti.tcpi_sacked);
    }
#endif
    expect_serves_and_free_closes(s, fd, false);
}

static void test_defer_bind_on_an_adopted_socket_binds_as_a_no_op(void **state)
{
    int fd = raw_socket(AF_INET, SOCK_STREAM);
    ss_server_options o = {.defer_bind = true};
    ss_address a;
    ss_server *s;

    (void)state;
    bind_loopback(fd);
    a = local_address(fd);
    s = ss_tcp_server_new(fd_text(fd), &echo, &o);
    expect_true(s != NULL, "deferred tcp server on fd:%d: %s", fd,
                ss_last_error());
    assert_int_equal(listening(fd), 0);
    expect_true(ss_server_bind(s) == 0, "ss_server_bind on an adopted socket "
                "should succeed without binding: %s", ss_last_error());
    expect_true(ss_server_bind(s) == -EINVAL, "a second ss_server_bind should "
                "be -EINVAL, as for any server");
    expect_true(same_address(ss_server_address(s), &a),
                "the socket should keep its address");
    expect_true(ss_server_activate(s) == 0, "ss_server_activate: %s",
                ss_last_error());
    assert_int_equal(listening(fd), 1);
    expect_serves_and_free_closes(s, fd, false);
}

static void test_close_closes_an_adopted_socket_once(void **state)
{
    int fd = tcp_listener(8);
    ss_server *s;

    (void)state;
    s = ss_tcp_server_new(fd_text(fd), &echo, NULL);
    expect_true(s != NULL, "tcp server on fd:%d: %s", fd, ss_last_error());
    ss_server_close(s);
    assert_int_equal(ss_server_fileno(s), -1);
    expect_true(fcntl(fd, F_GETFD) < 0 && errno == EBADF,
                "ss_server_close should close the adopted fd %d", fd);
    ss_server_free(s);
}

/* ---- fd:N: refusals --------------------------------------------------- */

typedef ss_server *(*ctor)(const char *, const ss_handler *,
                           const ss_server_options *);

/* The constructor refuses `text` with `err` and a message mentioning
 * `mention`; fd (when >= 0) stays open and as it was. */
static void expect_refused(ctor make, const char *name, const char *text,
                           int fd, int err, const char *mention)
{
    fd_state before = save_state(fd);
    ss_server *s;

    errno = 0;
    s = make(text, &echo, NULL);
    expect_true(s == NULL, "%s(\"%s\") should fail", name, text);
    expect_true(errno == -err, "%s(\"%s\"): errno %d (%s), expected %d (%s)",
                name, text, errno, strerror(errno), -err, strerror(-err));
    expect_true(strstr(ss_last_error(), mention) != NULL,
                "%s(\"%s\"): the message '%s' should say '%s'", name, text,
                ss_last_error(), mention);
    if (fd >= 0)
        expect_unchanged(&before, text);
}

static void test_a_udp_socket_is_refused_by_a_tcp_server(void **state)
{
    int fd = udp_bound();
    char want[128];

    (void)state;
    snprintf(want, sizeof want, "fd:%d is a UDP socket; the tcp server needs "
             "a SOCK_STREAM socket", fd);
    expect_refused(ss_tcp_server_new, "tcp", fd_text(fd), fd, -EINVAL, want);
    expect_refused(ss_threading_tcp_server_new, "threading_tcp", fd_text(fd),
                   fd, -EINVAL, "is a UDP socket");
    close(fd);
}

static void test_a_tcp_socket_is_refused_by_a_udp_server(void **state)
{
    int fd = tcp_listener(8);
    char want[128];

    (void)state;
    snprintf(want, sizeof want, "fd:%d is a TCP socket; the udp server needs "
             "a SOCK_DGRAM socket", fd);
    expect_refused(ss_udp_server_new, "udp", fd_text(fd), fd, -EINVAL, want);
    close(fd);
}

static void test_a_unix_socket_is_refused_by_a_tcp_server(void **state)
{
    const char *path = temp_path("refuse");
    int fd = unix_bound(SOCK_STREAM, path);

    (void)state;
    expect_refused(ss_tcp_server_new, "tcp", fd_text(fd), fd, -EINVAL,
                   "is a Unix stream socket; the tcp server needs an IPv4 or "
                   "IPv6 socket");
    close(fd);
    unlink(path);
}

static void test_an_ip_socket_is_refused_by_the_unix_server_types(void **state)
{
    int tcp = tcp_listener(8), udp = udp_bound();

    (void)state;
    expect_refused(ss_unix_stream_server_new, "unix_stream", fd_text(tcp), tcp,
                   -EINVAL, "is a TCP socket; the unix stream server needs a "
                   "Unix (AF_UNIX) socket");
    expect_refused(ss_unix_datagram_server_new, "unix_datagram", fd_text(udp),
                   udp, -EINVAL, "is a UDP socket; the unix datagram server "
                   "needs a Unix (AF_UNIX) socket");
    close(tcp);
    close(udp);
}

static void test_a_unix_socket_of_the_other_type_is_refused(void **state)
{
    const char *path = temp_path("othertype");
    int fd = unix_bound(SOCK_DGRAM, path);

    (void)state;
    expect_refused(ss_unix_stream_server_new, "unix_stream", fd_text(fd), fd,
                   -EINVAL, "is a Unix datagram socket; the unix stream "
                   "server needs a SOCK_STREAM socket");
    close(fd);
    unlink(path);
}

static void test_a_pipe_is_refused(void **state)
{
    int p[2];
    char want[64];

    (void)state;
    assert_int_equal(pipe(p), 0);
    snprintf(want, sizeof want, "fd:%d is a pipe, not a socket", p[0]);
    expect_refused(ss_tcp_server_new, "tcp", fd_text(p[0]), p[0], -EINVAL,
                   want);
    close(p[0]);
    close(p[1]);
}

static void test_a_regular_file_is_refused(void **state)
{
    char path[] = "/tmp/ss-activation-XXXXXX", want[64];
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    unlink(path);
    snprintf(want, sizeof want, "fd:%d is a regular file, not a socket", fd);
    expect_refused(ss_udp_server_new, "udp", fd_text(fd), fd, -EINVAL, want);
    close(fd);
}

static void test_a_closed_number_is_ebadf(void **state)
{
    int fd = raw_socket(AF_INET, SOCK_STREAM);
    char want[64];

    (void)state;
    close(fd);
    snprintf(want, sizeof want, "fd:%d is not an open descriptor", fd);
    expect_refused(ss_tcp_server_new, "tcp", fd_text(fd), -1, -EBADF, want);
}

static void test_a_descriptor_that_is_not_a_number_is_refused(void **state)
{
    (void)state;
    expect_refused(ss_tcp_server_new, "tcp", "fd:abc", -1, -EINVAL,
                   "'abc' is not a descriptor number");
    expect_refused(ss_tcp_server_new, "tcp", "fd:-1", -1, -EINVAL,
                   "'-1' is not a descriptor number");
    expect_refused(ss_tcp_server_new, "tcp", "fd:", -1, -EINVAL,
                   "'' is not a descriptor number");
    expect_refused(ss_tcp_server_new, "tcp", "fd:3x", -1, -EINVAL,
                   "'3x' is not a descriptor number");
    expect_refused(ss_tcp_server_new, "tcp", "fd:99999999999", -1, -EINVAL,
                   "is not a descriptor number");
}

static void test_a_connected_stream_socket_is_refused(void **state)
{
    int listener = tcp_listener(8), client, accepted;
    ss_address a = local_address(listener);

    (void)state;
    client = client_connect(&a);
    assert_true(client >= 0);
    accepted = accept(listener, NULL, NULL);
    assert_true(accepted >= 0);
    expect_refused(ss_tcp_server_new, "tcp", fd_text(client), client, -EINVAL,
                   "is a connected TCP socket (one end of a connection); the "
                   "tcp server needs a listening socket");
    expect_refused(ss_tcp_server_new, "tcp", fd_text(accepted), accepted,
                   -EINVAL, "is a connected TCP socket");
    close(accepted);
    close(client);
    close(listener);
}

static void test_a_connected_datagram_socket_is_refused(void **state)
{
    int peer = udp_bound(), fd = udp_bound();
    ss_address a = local_address(peer);

    (void)state;
    assert_int_equal(connect(fd, (struct sockaddr *)&a.storage, a.len), 0);
    expect_refused(ss_udp_server_new, "udp", fd_text(fd), fd, -EINVAL,
                   "is a connected UDP socket, which hears from its peer "
                   "only; the udp server needs an unconnected one");
    close(fd);
    close(peer);
}

static void test_an_unbound_socket_is_refused(void **state)
{
    int tcp = raw_socket(AF_INET, SOCK_STREAM), udp = raw_socket(AF_INET,
                                                                 SOCK_DGRAM);
    int unx = raw_socket(AF_UNIX, SOCK_STREAM);

    (void)state;
    expect_refused(ss_tcp_server_new, "tcp", fd_text(tcp), tcp, -EINVAL,
                   "is a TCP socket bound to no address");
    expect_refused(ss_udp_server_new, "udp", fd_text(udp), udp, -EINVAL,
                   "is a UDP socket bound to no address");
    expect_refused(ss_unix_stream_server_new, "unix_stream", fd_text(unx), unx,
                   -EINVAL, "is a Unix stream socket bound to no address");
    close(tcp);
    close(udp);
    close(unx);
}

/* No descriptor can be opened below the soft limit set here: the server's
 * wake-up descriptor then fails after the socket was found and adopted. */
static void test_a_construction_failing_after_adoption_gives_the_socket_back(void **state)
{
    int listener = tcp_listener(8), bound = raw_socket(AF_INET, SOCK_STREAM);
    struct rlimit saved, low;
    fd_state l_before, b_before;
    ss_server *s1, *s2;
    int lowest, e1, e2;

    (void)state;
    bind_loopback(bound);
    l_before = save_state(listener);
    b_before = save_state(bound);
    lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = (rlim_t)lowest;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    s1 = ss_tcp_server_new(fd_text(listener), &echo, NULL);
    e1 = errno;
    s2 = ss_tcp_server_new(fd_text(bound), &echo, NULL);
    e2 = errno;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    expect_true(s1 == NULL && e1 == EMFILE && s2 == NULL && e2 == EMFILE,
                "with no descriptor left both constructions should fail "
                "with EMFILE (got %p %d, %p %d)", (void *)s1, e1, (void *)s2,
                e2);
    expect_unchanged(&l_before, "after a failed construction");
    expect_unchanged(&b_before, "after a failed construction");
    /* And the socket is as good as before. */
    s1 = ss_tcp_server_new(fd_text(listener), &echo, NULL);
    expect_serves_and_free_closes(s1, listener, false);
    close(bound);
}

/* ---- ss_address_parse --------------------------------------------------- */

static void test_address_parse_refuses_forms_that_name_a_socket(void **state)
{
    const char *forms[] = {"fd:3", "systemd", "systemd:web"};
    ss_address a;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof forms / sizeof *forms; i++) {
        int rc = ss_address_parse(&a, forms[i]);

        expect_true(rc == -EINVAL, "ss_address_parse(\"%s\") returned %d, "
                    "expected -EINVAL", forms[i], rc);
        expect_true(strstr(ss_last_error(), "names a socket, not an address"),
                    "the message '%s' should say that '%s' names a socket",
                    ss_last_error(), forms[i]);
    }
}

/* ---- systemd socket activation, in a child process ---------------------- */

static char child_why[1024];

/* In the child: record what went wrong and return it. */
#define CHILD_CHECK(cond, ...)                                              \
    do {                                                                    \
        if (!(cond)) {                                                      \
            snprintf(child_why, sizeof child_why, __VA_ARGS__);             \
            return child_why;                                               \
        }                                                                   \
    } while (0)

/* Run fn in a forked child; it returns NULL when all went as expected. */
static void run_in_child(const char *(*fn)(void), const char *name)
{
    char msg[1024] = "";
    double end = now() + 3 * WAIT_LIMIT;
    size_t got = 0;
    int p[2], status = -1;
    pid_t pid, rc = 0;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int w = fcntl(p[1], F_DUPFD_CLOEXEC, 100);
        const char *why;

        close(p[0]);
        close(p[1]);
        why = fn();
        if (why && w >= 0 && write(w, why, strlen(why)) < 0)
            _exit(3);
        _exit(why ? 1 : 0);
    }
    close(p[1]);
    while (got < sizeof msg - 1 && now() < end) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        ssize_t n;

        if (poll(&pf, 1, 100) <= 0)
            continue;
        n = read(p[0], msg + got, sizeof msg - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    msg[got] = '\0';
    close(p[0]);
    while (now() < end && (rc = waitpid(pid, &status, WNOHANG)) == 0)
        sleep_ms(2);
    if (rc != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    expect_true(rc == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "%s (in a child process, status 0x%x): %s", name, status,
                msg[0] ? msg : "no message");
}

/* Put the sockets at 3, 4, ... as systemd passes them (inheritable), and
 * set the variables for this process. names may be NULL. */
static const char *pass_sockets(const int *fds, int n, const char *names)
{
    int high[8], i;
    char text[32];

    for (i = 0; i < n; i++) {
        high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 200);
        CHILD_CHECK(high[i] >= 0, "F_DUPFD: %s", strerror(errno));
        close(fds[i]);
    }
    for (i = 0; i < n; i++) {
        CHILD_CHECK(dup2(high[i], 3 + i) == 3 + i, "dup2: %s",
                    strerror(errno));
        close(high[i]);
    }
    snprintf(text, sizeof text, "%ld", (long)getpid());
    setenv("LISTEN_PID", text, 1);
    snprintf(text, sizeof text, "%d", n);
    setenv("LISTEN_FDS", text, 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
    else
        unsetenv("LISTEN_FDNAMES");
    return NULL;
}

static int child_tcp_listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        listen(fd, 8) < 0)
        return -1;
    return fd;
}

static int child_udp(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        return -1;
    return fd;
}

static bool env_gone(void)
{
    return !getenv("LISTEN_PID") && !getenv("LISTEN_FDS") &&
           !getenv("LISTEN_FDNAMES");
}

/* One request through a synchronous server, in this thread: the client's
 * line waits in the kernel while the server accepts and echoes it. */
static const char *child_echo(ss_server *s)
{
    char buf[64];
    int fd = client_connect(ss_server_address(s)), rc;

    CHILD_CHECK(fd >= 0, "connect to the server: %s", strerror(errno));
    CHILD_CHECK(send_all_fd(fd, TEST_STR, strlen(TEST_STR)) == 0, "send");
    shutdown(fd, SHUT_WR);
    rc = ss_handle_request(s);
    CHILD_CHECK(rc == 0, "ss_handle_request: %s", ss_strerror(rc));
    CHILD_CHECK(recv_line(fd, buf, sizeof buf) == (ssize_t)strlen(TEST_STR) &&
                strcmp(buf, TEST_STR) == 0, "the echo of '%s'", TEST_STR);
    close(fd);
    return NULL;
}

static const char *systemd_takes_the_first_socket_of_the_right_type(void)
{
    int fds[3] = {child_udp(), child_tcp_listener(), child_tcp_listener()};
    ss_server *s;
    const char *why;

    if ((why = pass_sockets(fds, 3, NULL)))
        return why;
    s = ss_tcp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(s != NULL, "expected a tcp server on 'systemd': %s",
                ss_last_error());
    CHILD_CHECK(ss_server_fileno(s) == 4, "expected fd 4, the first TCP "
                "socket after a UDP one; got %d", ss_server_fileno(s));
    CHILD_CHECK(fcntl(4, F_GETFD) & FD_CLOEXEC, "fd 4 should be close-on-exec");
    CHILD_CHECK(fcntl(4, F_GETFL) & O_NONBLOCK, "fd 4 should be non-blocking");
    CHILD_CHECK(!(fcntl(5, F_GETFD) & FD_CLOEXEC),
                "fd 5, not adopted, should be left as it was");
    if ((why = child_echo(s)))
        return why;
    ss_server_free(s);
    CHILD_CHECK(fcntl(4, F_GETFD) < 0 && errno == EBADF,
                "ss_server_free should close fd 4");
    return NULL;
}

static const char *systemd_name_picks_the_socket_of_that_name(void)
{
    int fds[3] = {child_tcp_listener(), child_tcp_listener(),
                  child_tcp_listener()};
    ss_server *s;
    const char *why;

    if ((why = pass_sockets(fds, 3, "api:web:admin")))
        return why;
    s = ss_tcp_server_new("systemd:web", &echo, NULL);
    CHILD_CHECK(s != NULL, "expected a tcp server on 'systemd:web': %s",
                ss_last_error());
    CHILD_CHECK(ss_server_fileno(s) == 4, "expected fd 4, named 'web'; got %d",
                ss_server_fileno(s));
    ss_server_free(s);
    s = ss_tcp_server_new("systemd:admin", &echo, NULL);
    CHILD_CHECK(s && ss_server_fileno(s) == 5, "expected fd 5 for 'admin'");
    ss_server_free(s);
    return NULL;
}

static const char *tcp_and_udp_servers_each_take_theirs(void)
{
    int fds[2] = {child_tcp_listener(), child_udp()};
    ss_server *udp, *tcp;
    const char *why;

    if ((why = pass_sockets(fds, 2, "web:web")))
        return why;
    udp = ss_udp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(udp && ss_server_fileno(udp) == 4, "expected the udp server "
                "on fd 4: %s", udp ? "another fd" : ss_last_error());
    tcp = ss_threading_tcp_server_new("systemd:web", &echo, NULL);
    CHILD_CHECK(tcp && ss_server_fileno(tcp) == 3, "expected the tcp server "
                "on fd 3: %s", tcp ? "another fd" : ss_last_error());
    CHILD_CHECK(env_gone(), "LISTEN_* should be gone from the environment");
    ss_server_free(tcp);
    ss_server_free(udp);
    return NULL;
}

static const char *a_socket_already_taken_is_skipped(void)
{
    int fds[2] = {child_tcp_listener(), child_tcp_listener()};
    ss_server *a, *b, *c;
    const char *why;

    if ((why = pass_sockets(fds, 2, NULL)))
        return why;
    a = ss_tcp_server_new("systemd", &echo, NULL);
    b = ss_tcp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(a && b && ss_server_fileno(a) == 3 && ss_server_fileno(b) == 4,
                "expected two servers on fds 3 and 4: %s", ss_last_error());
    ss_server_free(a);      /* closed, and stays taken */
    errno = 0;
    c = ss_tcp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(!c && errno == EINVAL, "a third server should fail with "
                "EINVAL, all sockets being taken");
    CHILD_CHECK(strstr(ss_last_error(), "none of the 2 sockets passed (fds "
                       "3-4) is a free one that fits the tcp server"),
                "the message should say none is free: '%s'", ss_last_error());
    ss_server_free(b);
    return NULL;
}

static const char *a_taken_name_is_refused(void)
{
    int fds[1] = {child_tcp_listener()};
    ss_server *a, *b;
    const char *why;

    if ((why = pass_sockets(fds, 1, "web")))
        return why;
    a = ss_tcp_server_new("systemd:web", &echo, NULL);
    CHILD_CHECK(a != NULL, "the first server on 'web': %s", ss_last_error());
    errno = 0;
    b = ss_tcp_server_new("systemd:web", &echo, NULL);
    CHILD_CHECK(!b && errno == EINVAL, "a second server on 'web' should fail "
                "with EINVAL");
    CHILD_CHECK(strstr(ss_last_error(), "systemd:web: the socket of that name "
                       "(fd 3) is taken by another server already"),
                "the message should say it is taken: '%s'", ss_last_error());
    ss_server_free(a);
    return NULL;
}

static const char *the_variables_are_gone_after_the_first_read(void)
{
    int fds[1] = {child_udp()};
    ss_server *s;
    const char *why;

    if ((why = pass_sockets(fds, 1, "dns")))
        return why;
    /* Even a construction that finds nothing for it consumes them. */
    s = ss_tcp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(!s && errno == EINVAL, "no TCP socket: expected EINVAL");
    CHILD_CHECK(strstr(ss_last_error(), "systemd: the one socket passed (fd "
                       "3) is not a free one that fits the tcp server"),
                "the message should say the one socket does not fit: '%s'",
                ss_last_error());
    CHILD_CHECK(env_gone(), "LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES should be "
                "gone once read");
    s = ss_udp_server_new("systemd:dns", &echo, NULL);
    CHILD_CHECK(s && ss_server_fileno(s) == 3, "the remembered socket should "
                "still be there for the udp server: %s", ss_last_error());
    ss_server_free(s);
    return NULL;
}

static const char *another_process_s_variables_are_left_alone(void)
{
    int fds[1] = {child_tcp_listener()};
    char want[64];
    const char *why;
    fd_state before;
    ss_server *s;

    if ((why = pass_sockets(fds, 1, "web")))
        return why;
    snprintf(want, sizeof want, "%ld", (long)getppid());
    setenv("LISTEN_PID", want, 1);
    before = save_state(3);
    errno = 0;
    s = ss_tcp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(!s && errno == EINVAL, "a foreign LISTEN_PID: expected EINVAL");
    CHILD_CHECK(strstr(ss_last_error(), "systemd: LISTEN_PID is not this "
                       "process"), "the message should say LISTEN_PID is not "
                "this process: '%s'", ss_last_error());
    CHILD_CHECK(getenv("LISTEN_PID") && strcmp(getenv("LISTEN_PID"), want) == 0
                && getenv("LISTEN_FDS") && getenv("LISTEN_FDNAMES"),
                "another process's variables should be left in place");
    CHILD_CHECK(fcntl(3, F_GETFD) == before.fd_flags &&
                fcntl(3, F_GETFL) == before.fl_flags,
                "fd 3 should be left open and as it was");
    return NULL;
}

static const char *listen_fds_zero_is_refused(void)
{
    const char *why;

    if ((why = pass_sockets(NULL, 0, NULL)))
        return why;
    errno = 0;
    CHILD_CHECK(!ss_tcp_server_new("systemd", &echo, NULL) && errno == EINVAL,
                "LISTEN_FDS=0: expected EINVAL");
    CHILD_CHECK(strstr(ss_last_error(), "systemd: LISTEN_FDS is 0"),
                "the message should say LISTEN_FDS is 0: '%s'",
                ss_last_error());
    CHILD_CHECK(env_gone(), "the variables, this process's, should be gone");
    return NULL;
}

static const char *no_variables_is_refused(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    errno = 0;
    CHILD_CHECK(!ss_udp_server_new("systemd", &echo, NULL) && errno == EINVAL,
                "no LISTEN_PID: expected EINVAL");
    CHILD_CHECK(strstr(ss_last_error(), "systemd: no sockets passed to this "
                       "process (LISTEN_PID is not set)"),
                "the message should say no sockets were passed: '%s'",
                ss_last_error());
    return NULL;
}

static const char *a_missing_name_is_refused(void)
{
    int fds[2] = {child_tcp_listener(), child_tcp_listener()};
    fd_state before[2];
    const char *why;

    if ((why = pass_sockets(fds, 2, "api:admin")))
        return why;
    before[0] = save_state(3);
    before[1] = save_state(4);
    errno = 0;
    CHILD_CHECK(!ss_tcp_server_new("systemd:web", &echo, NULL) &&
                errno == EINVAL, "a name not passed: expected EINVAL");
    CHILD_CHECK(strstr(ss_last_error(), "systemd:web: no such name in "
                       "LISTEN_FDNAMES"), "the message should say there is "
                "no such name: '%s'", ss_last_error());
    CHILD_CHECK(fcntl(3, F_GETFD) == before[0].fd_flags &&
                fcntl(4, F_GETFD) == before[1].fd_flags &&
                fcntl(3, F_GETFL) == before[0].fl_flags &&
                fcntl(4, F_GETFL) == before[1].fl_flags,
                "fds 3 and 4 should be left as they were");
    errno = 0;
    CHILD_CHECK(!ss_tcp_server_new("systemd:", &echo, NULL) && errno == EINVAL &&
                strstr(ss_last_error(), "empty socket name"),
                "'systemd:' should be refused as an empty name: '%s'",
                ss_last_error());
    return NULL;
}

static const char *a_named_socket_of_the_wrong_type_is_refused(void)
{
    int fds[2] = {child_tcp_listener(), child_udp()};
    fd_state before;
    const char *why;

    if ((why = pass_sockets(fds, 2, "web:dns")))
        return why;
    before = save_state(4);
    errno = 0;
    CHILD_CHECK(!ss_tcp_server_new("systemd:dns", &echo, NULL) &&
                errno == EINVAL, "a UDP socket by name to a tcp server: "
                "expected EINVAL");
    CHILD_CHECK(strstr(ss_last_error(), "systemd:dns (fd 4) is a UDP socket; "
                       "the tcp server needs a SOCK_STREAM socket"),
                "the message should say why: '%s'", ss_last_error());
    CHILD_CHECK(fcntl(4, F_GETFD) == before.fd_flags &&
                fcntl(4, F_GETFL) == before.fl_flags,
                "fd 4 should be left open and as it was");
    return NULL;
}

/* A construction that fails after taking a systemd socket gives it back. */
static const char *a_failed_construction_leaves_the_socket_free(void)
{
    int fds[1] = {child_tcp_listener()};
    struct rlimit saved, low;
    const char *why;
    fd_state before;
    ss_server *s;
    int lowest;

    if ((why = pass_sockets(fds, 1, NULL)))
        return why;
    before = save_state(3);
    lowest = dup(0);
    CHILD_CHECK(lowest >= 0, "dup: %s", strerror(errno));
    close(lowest);
    getrlimit(RLIMIT_NOFILE, &saved);
    low = saved;
    low.rlim_cur = (rlim_t)lowest;
    setrlimit(RLIMIT_NOFILE, &low);
    s = ss_tcp_server_new("systemd", &echo, NULL);
    setrlimit(RLIMIT_NOFILE, &saved);
    CHILD_CHECK(!s && errno == EMFILE, "without descriptors: expected EMFILE");
    CHILD_CHECK(fcntl(3, F_GETFD) == before.fd_flags &&
                fcntl(3, F_GETFL) == before.fl_flags,
                "fd 3 should be left open and as it was");
    s = ss_tcp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(s && ss_server_fileno(s) == 3, "the socket should be free "
                "again for the next server: %s", ss_last_error());
    ss_server_free(s);
    return NULL;
}

/* fd:N naming a passed socket, before or after the variables were read:
 * "systemd" does not hand it out again. */
static const char *fd_n_takes_a_passed_socket_too(void)
{
    int fds[3] = {child_tcp_listener(), child_tcp_listener(),
                  child_tcp_listener()};
    ss_server *a, *b, *c;
    const char *why;

    if ((why = pass_sockets(fds, 3, NULL)))
        return why;
    a = ss_tcp_server_new("fd:3", &echo, NULL);     /* before any read */
    CHILD_CHECK(a != NULL, "fd:3: %s", ss_last_error());
    CHILD_CHECK(env_gone(), "fd:3 should read (and remove) this process's "
                "variables, so that 'systemd' knows fd 3 is taken");
    b = ss_tcp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(b && ss_server_fileno(b) == 4, "'systemd' should skip fd 3, "
                "taken by fd:3, and take fd 4: %s", ss_last_error());
    c = ss_tcp_server_new("fd:5", &echo, NULL);     /* after the read */
    CHILD_CHECK(c != NULL, "fd:5: %s", ss_last_error());
    ss_server_free(b);
    b = ss_tcp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(!b, "'systemd' should hand out none of fds 3-5 again");
    ss_server_free(c);
    ss_server_free(a);
    return NULL;
}

/* After a fork the child has its own process id: the parent's remembered
 * sockets are not the child's, and the variables are gone. */
static const char *a_forked_child_does_not_get_the_parent_s_sockets(void)
{
    int fds[2] = {child_tcp_listener(), child_tcp_listener()};
    const char *why;
    ss_server *s;
    int status = -1;
    pid_t pid;

    if ((why = pass_sockets(fds, 2, NULL)))
        return why;
    s = ss_tcp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(s && ss_server_fileno(s) == 3, "the parent's server on fd 3");
    pid = fork();
    CHILD_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        ss_server *c = ss_tcp_server_new("systemd", &echo, NULL);

        _exit(!c && errno == EINVAL &&
              strstr(ss_last_error(), "LISTEN_PID is not set") ? 0 : 1);
    }
    CHILD_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                WEXITSTATUS(status) == 0, "the forked child should find no "
                "sockets passed to it (status 0x%x)", status);
    ss_server_free(s);
    /* Still the parent's to hand out. */
    s = ss_tcp_server_new("systemd", &echo, NULL);
    CHILD_CHECK(s && ss_server_fileno(s) == 4, "the parent's second server "
                "on fd 4: %s", ss_last_error());
    ss_server_free(s);
    return NULL;
}

/* A child that never read them sees the parent's LISTEN_PID. */
static const char *a_child_of_an_unread_environment_sees_a_foreign_pid(void)
{
    int fds[1] = {child_tcp_listener()};
    const char *why;
    int status = -1;
    pid_t pid;

    if ((why = pass_sockets(fds, 1, NULL)))
        return why;
    pid = fork();
    CHILD_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        ss_server *c = ss_tcp_server_new("systemd", &echo, NULL);

        _exit(!c && errno == EINVAL && getenv("LISTEN_PID") &&
              strstr(ss_last_error(), "LISTEN_PID is not this process")
              ? 0 : 1);
    }
    CHILD_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                WEXITSTATUS(status) == 0, "the child should be told "
                "LISTEN_PID is not it (status 0x%x)", status);
    return NULL;
}

#define THREADS 4

static void *take_one(void *arg)
{
    *(ss_server **)arg = ss_udp_server_new("systemd", &echo, NULL);
    return NULL;
}

/* Several threads constructing at once each get a socket of their own. */
static const char *threads_constructing_at_once_take_distinct_sockets(void)
{
    int fds[THREADS], i, j;
    ss_server *s[THREADS] = {0};
    pthread_t t[THREADS];
    const char *why;

    for (i = 0; i < THREADS; i++)
        fds[i] = child_udp();
    if ((why = pass_sockets(fds, THREADS, NULL)))
        return why;
    for (i = 0; i < THREADS; i++)
        CHILD_CHECK(pthread_create(&t[i], NULL, take_one, &s[i]) == 0,
                    "pthread_create");
    for (i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (i = 0; i < THREADS; i++) {
        CHILD_CHECK(s[i] != NULL, "every thread should get a server");
        for (j = 0; j < i; j++)
            CHILD_CHECK(ss_server_fileno(s[i]) != ss_server_fileno(s[j]),
                        "two servers on one fd %d", ss_server_fileno(s[i]));
    }
    for (i = 0; i < THREADS; i++)
        ss_server_free(s[i]);
    CHILD_CHECK(env_gone(), "the variables should be gone");
    return NULL;
}

#define CHILD_TEST(fn)                                                      \
    static void test_##fn(void **state)                                     \
    {                                                                       \
        (void)state;                                                        \
        run_in_child(fn, #fn);                                              \
    }

CHILD_TEST(systemd_takes_the_first_socket_of_the_right_type)
CHILD_TEST(systemd_name_picks_the_socket_of_that_name)
CHILD_TEST(tcp_and_udp_servers_each_take_theirs)
CHILD_TEST(a_socket_already_taken_is_skipped)
CHILD_TEST(a_taken_name_is_refused)
CHILD_TEST(the_variables_are_gone_after_the_first_read)
CHILD_TEST(another_process_s_variables_are_left_alone)
CHILD_TEST(listen_fds_zero_is_refused)
CHILD_TEST(no_variables_is_refused)
CHILD_TEST(a_missing_name_is_refused)
CHILD_TEST(a_named_socket_of_the_wrong_type_is_refused)
CHILD_TEST(a_failed_construction_leaves_the_socket_free)
CHILD_TEST(fd_n_takes_a_passed_socket_too)
CHILD_TEST(a_forked_child_does_not_get_the_parent_s_sockets)
CHILD_TEST(a_child_of_an_unread_environment_sees_a_foreign_pid)
CHILD_TEST(threads_constructing_at_once_take_distinct_sockets)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FD_TEST(test_tcp_server_serves_on_a_listening_socket_passed_by_number),
        FD_TEST(test_udp_server_serves_on_a_bound_socket_passed_by_number),
        FD_TEST(test_unix_stream_server_serves_on_a_passed_socket_and_leaves_its_file),
        FD_TEST(test_unix_datagram_server_serves_on_a_passed_socket_and_leaves_its_file),
        FD_TEST(test_threading_server_serves_on_a_socket_passed_by_number),
        FD_TEST(test_a_bound_stream_socket_not_yet_listening_is_made_to_listen),
        FD_TEST(test_a_listening_socket_is_not_bound_again_and_keeps_its_backlog),
        FD_TEST(test_defer_bind_on_an_adopted_socket_binds_as_a_no_op),
        FD_TEST(test_close_closes_an_adopted_socket_once),
        FD_TEST(test_a_udp_socket_is_refused_by_a_tcp_server),
        FD_TEST(test_a_tcp_socket_is_refused_by_a_udp_server),
        FD_TEST(test_a_unix_socket_is_refused_by_a_tcp_server),
        FD_TEST(test_an_ip_socket_is_refused_by_the_unix_server_types),
        FD_TEST(test_a_unix_socket_of_the_other_type_is_refused),
        FD_TEST(test_a_pipe_is_refused),
        FD_TEST(test_a_regular_file_is_refused),
        FD_TEST(test_a_closed_number_is_ebadf),
        FD_TEST(test_a_descriptor_that_is_not_a_number_is_refused),
        FD_TEST(test_a_connected_stream_socket_is_refused),
        FD_TEST(test_a_connected_datagram_socket_is_refused),
        FD_TEST(test_an_unbound_socket_is_refused),
        FD_TEST(test_a_construction_failing_after_adoption_gives_the_socket_back),
        FD_TEST(test_address_parse_refuses_forms_that_name_a_socket),
        FD_TEST(test_systemd_takes_the_first_socket_of_the_right_type),
        FD_TEST(test_systemd_name_picks_the_socket_of_that_name),
        FD_TEST(test_tcp_and_udp_servers_each_take_theirs),
        FD_TEST(test_a_socket_already_taken_is_skipped),
        FD_TEST(test_a_taken_name_is_refused),
        FD_TEST(test_the_variables_are_gone_after_the_first_read),
        FD_TEST(test_another_process_s_variables_are_left_alone),
        FD_TEST(test_listen_fds_zero_is_refused),
        FD_TEST(test_no_variables_is_refused),
        FD_TEST(test_a_missing_name_is_refused),
        FD_TEST(test_a_named_socket_of_the_wrong_type_is_refused),
        FD_TEST(test_a_failed_construction_leaves_the_socket_free),
        FD_TEST(test_fd_n_takes_a_passed_socket_too),
        FD_TEST(test_a_forked_child_does_not_get_the_parent_s_sockets),
        FD_TEST(test_a_child_of_an_unread_environment_sees_a_foreign_pid),
        FD_TEST(test_threads_constructing_at_once_take_distinct_sockets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
