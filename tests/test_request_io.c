/*
 * Request I/O: rfile (ss_readline, ss_read, ss_recv mixed), wfile
 * (unbuffered and buffered ss_write, ss_printf, ss_flush after finish),
 * ss_sendall without SIGPIPE, and datagram packets and replies.
 */
#include "helpers.h"

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>


/* Whatever the handler records for the test to check. */
static char got[8][256];
static ssize_t got_n[8];

/* A synchronous TCP server whose handler runs in a serving thread while
 * the test plays the client. */
typedef struct session {
    ss_server *server;
    served     sv;
    int        fd;
} session;

static atomic_int requests_ended;

static void count_ended(ss_server *s, ss_request *r)
{
    ss_server_base_ops(s)->shutdown_request(s, r);
    atomic_fetch_add(&requests_ended, 1);
}

static bool one_ended(void *arg)
{
    (void)arg;
    return atomic_load(&requests_ended) > 0;
}

static void open_session(session *t, const ss_handler *h)
{
    ss_server_ops ov = {.shutdown_request = count_ended};

    memset(got, 0, sizeof got);
    memset(got_n, 0x55, sizeof got_n);
    atomic_store(&requests_ended, 0);
    t->server = ss_tcp_server_new("127.0.0.1:0", h, NULL);
    assert_non_null(t->server);
    ss_server_override(t->server, &ov);
    serve_in_thread(&t->sv, t->server, 0.05);
    t->fd = client_connect(ss_server_address(t->server));
    assert_true(t->fd >= 0);
}

/* Close the client, wait for the handler to end the request, stop. */
static void close_session(session *t)
{
    if (t->fd >= 0)
        close(t->fd);
    expect_true(wait_for(one_ended, NULL, WAIT_LIMIT),
                "the handler did not end the request");
    stop_serving(&t->sv);
    ss_server_free(t->server);
}


/* ---- rfile ---------------------------------------------------------------- */

static int readline_sizes(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)c, (void)s;
    got_n[0] = ss_readline(r, got[0], 6);   /* "abcde" of a long line */
    got_n[1] = ss_readline(r, got[1], 256); /* the rest of it */
    got_n[2] = ss_readline(r, got[2], 256); /* a last line without \n */
    got_n[3] = ss_readline(r, got[3], 256); /* EOF */
    return 0;
}

static void test_readline_splits_long_lines_and_returns_the_last_one(void **state)
{
    ss_handler h = {.handle = readline_sizes, .rbufsize = 4};
    session t;

    (void)state;
    open_session(&t, &h);
    assert_int_equal(send_all_fd(t.fd, "abcdefgh\nlast", 13), 0);
    shutdown(t.fd, SHUT_WR);
    close_session(&t);
    assert_int_equal(got_n[0], 5);
    assert_string_equal(got[0], "abcde");
    assert_int_equal(got_n[1], 4);
    assert_string_equal(got[1], "fgh\n");
    assert_int_equal(got_n[2], 4);
    assert_string_equal(got[2], "last");
    assert_int_equal(got_n[3], 0);
}

static int readline_then_recv(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)c, (void)s;
    got_n[0] = ss_readline(r, got[0], sizeof got[0]);
    got_n[1] = ss_recv(r, got[1], sizeof got[1]);   /* buffered bytes first */
    got[1][got_n[1] > 0 ? got_n[1] : 0] = '\0';
    return 0;
}

static void test_recv_after_readline_returns_the_buffered_bytes_first(void **state)
{
    ss_handler h = {.handle = readline_then_recv};
    session t;

    (void)state;
    open_session(&t, &h);
    /* one segment: the line and what follows land in the read buffer */
    assert_int_equal(send_all_fd(t.fd, "line\nrest", 9), 0);
    close_session(&t);
    assert_string_equal(got[0], "line\n");
    assert_string_equal(got[1], "rest");
}

static int read_exact(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)c, (void)s;
    got_n[0] = ss_read(r, got[0], 10);
    got_n[1] = ss_read(r, got[1], 100);     /* short only at EOF */
    got_n[2] = ss_read(r, got[2], 100);
    return 0;
}

static void test_read_is_exact_and_short_only_at_eof(void **state)
{
    ss_handler h = {.handle = read_exact, .rbufsize = 3};
    session t;
    int i;

    (void)state;
    open_session(&t, &h);
    for (i = 0; i < 13; i++) {  /* dribbled, a byte at a time */
        assert_int_equal(send_all_fd(t.fd, &"0123456789abc"[i], 1), 0);
        sleep_ms(1);
    }
    shutdown(t.fd, SHUT_WR);
    close_session(&t);
    assert_int_equal(got_n[0], 10);
    assert_memory_equal(got[0], "0123456789", 10);
    assert_int_equal(got_n[1], 3);
    assert_memory_equal(got[1], "abc", 3);
    assert_int_equal(got_n[2], 0);
}

static int bad_arguments(ss_request *r, const ss_address *c, ss_server *s)
{
    char one[1];

    (void)c, (void)s;
    got_n[0] = ss_readline(r, one, 1);
    got_n[1] = ss_readline(NULL, got[0], 10);
    got_n[2] = ss_recv(r, NULL, 5);
    got_n[3] = ss_write(NULL, "x", 1);
    got_n[4] = ss_sendall(r, NULL, 3);
    return 0;
}

static void test_io_functions_refuse_bad_arguments(void **state)
{
    ss_handler h = {.handle = bad_arguments};
    session t;
    int i;

    (void)state;
    open_session(&t, &h);
    close_session(&t);
    for (i = 0; i < 5; i++)
        assert_int_equal(got_n[i], -EINVAL);
}

static int wait_readable_cases(ss_request *r, const ss_address *c,
                                ss_server *s)
{
    char line[16];

    (void)c, (void)s;
    got_n[0] = ss_wait_readable(r, 0.05);   /* nothing sent yet */
    ss_write(r, "go\n", 3);
    got_n[1] = ss_wait_readable(r, -1);     /* the client answers */
    got_n[2] = ss_readline(r, line, sizeof line);   /* "a\n" of "a\nb\n" */
    got_n[3] = ss_wait_readable(r, 0);      /* "b\n" is buffered */
    got_n[4] = ss_readline(r, line, sizeof line);
    /* EOF is readable (the client's FIN follows its data; the limit is a
     * hang guard) */
    got_n[5] = ss_wait_readable(r, WAIT_LIMIT);
    got_n[6] = ss_wait_readable(NULL, 0);
    return 0;
}

static void test_wait_readable_tells_waiting_from_sending_clients(void **state)
{
    ss_handler h = {.handle = wait_readable_cases};
    char line[16];
    session t;

    (void)state;
    open_session(&t, &h);
    assert_int_equal(recv_line(t.fd, line, sizeof line), 3);
    send_all_fd(t.fd, "a\nb\n", 4);
    shutdown(t.fd, SHUT_WR);
    close_session(&t);
    assert_int_equal(got_n[0], 0);
    assert_int_equal(got_n[1], 1);
    assert_int_equal(got_n[2], 2);
    assert_int_equal(got_n[3], 1);
    assert_int_equal(got_n[4], 2);
    assert_int_equal(got_n[5], 1);
    assert_int_equal(got_n[6], -EINVAL);
}

/* ---- wfile ---------------------------------------------------------------- */

static atomic_bool writes_made;

static bool made_writes(void *arg)
{
    (void)arg;
    return atomic_load(&writes_made);
}

static int buffered_writes(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[16];

    (void)c, (void)s;
    got_n[0] = ss_write(r, "held", 4);
    got_n[1] = ss_printf(r, " %d %s\n", 42, "back");
    atomic_store(&writes_made, true);
    /* the client checks nothing arrived, then asks for the flush */
    if (ss_readline(r, line, sizeof line) <= 0)
        return -EIO;
    got_n[2] = ss_flush(r);
    if (ss_readline(r, line, sizeof line) <= 0)
        return -EIO;
    got_n[3] = ss_write(r, "after finish\n", 13);   /* flushed after finish */
    return 0;
}

static bool readable_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, ms) > 0;
}

static void test_buffered_wfile_sends_on_flush_and_after_finish(void **state)
{
    ss_handler h = {.handle = buffered_writes, .wbufsize = 1024};
    char line[64];
    session t;

    (void)state;
    atomic_store(&writes_made, false);
    open_session(&t, &h);
    /* once both writes have returned, nothing may have been sent: had
     * they sent, the bytes would be on their way on loopback */
    expect_true(wait_for(made_writes, NULL, WAIT_LIMIT), "the handler did not "
                "write");
    expect_true(!readable_within(t.fd, 100), "buffered bytes were sent early");
    send_all_fd(t.fd, "flush\n", 6);
    assert_int_equal(recv_line(t.fd, line, sizeof line), 13);
    assert_string_equal(line, "held 42 back\n");
    send_all_fd(t.fd, "done\n", 5);
    assert_int_equal(recv_line(t.fd, line, sizeof line), 13);
    assert_string_equal(line, "after finish\n");
    close_session(&t);
    assert_int_equal(got_n[0], 4);
    assert_int_equal(got_n[1], 9);
    assert_int_equal(got_n[2], 0);
    assert_int_equal(got_n[3], 13);
}

static int fill_the_buffer(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[64];

    (void)c, (void)s;
    got_n[0] = ss_write(r, "abcde", 5);
    got_n[1] = ss_write(r, "fg\n", 3);     /* 8 of 8: the buffer is full */
    if (ss_readline(r, line, sizeof line) <= 0)     /* the client's "ok" */
        return -EIO;
    return 0;
}

/* The buffer goes out as soon as it is full, not at the next write or at
 * the end of the request. */
static void test_buffered_wfile_sends_when_the_buffer_is_full(void **state)
{
    ss_handler h = {.handle = fill_the_buffer, .wbufsize = 8};
    char line[64];
    session t;

    (void)state;
    open_session(&t, &h);
    /* held back, it would come only after our "ok": never (the limit is a
     * hang guard) */
    expect_true(readable_within(t.fd, (int)(WAIT_LIMIT * 1000)),
                "a full buffer was held back");
    assert_int_equal(recv_line(t.fd, line, sizeof line), 8);
    assert_string_equal(line, "abcdefg\n");
    send_all_fd(t.fd, "ok\n", 3);
    close_session(&t);
    assert_int_equal(got_n[0], 5);
    assert_int_equal(got_n[1], 3);
}

static int write_to_vanished(ss_request *r, const ss_address *c, ss_server *s)
{
    static char block[65536];
    int i, err = 0;

    (void)c, (void)s;
    /* wait until the client is gone, then keep writing */
    while (ss_recv(r, block, sizeof block) > 0)
        ;
    for (i = 0; i < 1000 && err == 0; i++)
        err = ss_sendall(r, block, sizeof block);
    got_n[0] = err;
    return 0;
}

static void test_a_vanished_client_gives_epipe_not_sigpipe(void **state)
{
    ss_handler h = {.handle = write_to_vanished};
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    struct linger hard = {1, 0};
    session t;

    (void)state;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGPIPE, &dfl, &old);     /* SIGPIPE would kill the test */
    open_session(&t, &h);
    setsockopt(t.fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(t.fd);    /* reset */
    t.fd = -1;
    close_session(&t);
    sigaction(SIGPIPE, &old, NULL);
    expect_true(got_n[0] == -EPIPE || got_n[0] == -ECONNRESET,
                "sendall returned %zd (%s)", got_n[0],
                ss_strerror((int)got_n[0]));
}

static int big_sendall(ss_request *r, const ss_address *c, ss_server *s)
{
    size_t len = 8u << 20;
    char *p = malloc(len);
    size_t i;

    (void)c, (void)s;
    for (i = 0; i < len; i++)
        p[i] = (char)(i * 7);
    got_n[0] = ss_sendall(r, p, len);
    free(p);
    return 0;
}

static void test_sendall_sends_every_byte_to_a_slow_reader(void **state)
{
    ss_handler h = {.handle = big_sendall};
    char buf[4096];
    size_t total = 0, i;
    bool same = true;
    session t;
    ssize_t n;

    (void)state;
    open_session(&t, &h);
    while ((n = recv(t.fd, buf, sizeof buf, 0)) > 0) {
        for (i = 0; i < (size_t)n; i++)
            same = same && buf[i] == (char)((total + i) * 7);
        total += (size_t)n;
        if (total < (1u << 20))
            sleep_ms(1);    /* slow at first: partial writes */
    }
    close_session(&t);
    assert_int_equal(got_n[0], 0);
    assert_int_equal(total, 8u << 20);
    assert_true(same);
}

static double sendall_seconds;

static int big_sendall_timed(ss_request *r, const ss_address *c, ss_server *s)
{
    int small = 65536;
    double t0;

    /* socket buffers that cannot hold much of the 8 MiB, whatever the
     * system's limits */
    setsockopt(ss_request_fd(r), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    t0 = now();
    big_sendall(r, c, s);
    sendall_seconds = now() - t0;
    return 0;
}

/* The handler timeout bounds a whole ss_sendall, as it bounds Python's
 * sendall: a client that takes a little now and then cannot stretch one
 * call past it. The client takes at most 16 KiB every 10 ms, so the 8 MiB
 * need at least 5 s: a timeout restarted by each partial send would never
 * fire, and sendall would return 0; the whole call's timeout returns
 * -ETIMEDOUT. The loop's limit is a hang guard. */
static void test_sendall_timeout_covers_the_whole_call(void **state)
{
    ss_handler h = {.handle = big_sendall_timed, .timeout = 0.5};
    double t0 = now();
    char buf[16384];
    int small = 65536;
    session t;

    (void)state;
    open_session(&t, &h);
    setsockopt(t.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    while (now() - t0 < WAIT_LIMIT && recv(t.fd, buf, sizeof buf, 0) > 0)
        sleep_ms(10);       /* 16 KiB every 10 ms */
    close_session(&t);
    expect_true(got_n[0] == -ETIMEDOUT, "sendall returned %zd (%s) after "
                "%.2f s", got_n[0], ss_strerror((int)got_n[0]),
                sendall_seconds);
    expect_true(sendall_seconds >= 0.5, "sendall gave up after %.2f s, "
                "before its timeout", sendall_seconds);
}

/* ---- datagrams ------------------------------------------------------------ */

static int packet_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    size_t len;
    const char *p = ss_request_packet(r, &len);
    char line[64];

    (void)c, (void)s;
    if (!p)
        return -EFAULT;
    if (len >= 5 && memcmp(p, "quiet", 5) == 0)
        return 0;   /* writes nothing: no reply datagram at all */
    if (len >= 4 && memcmp(p, "fail", 4) == 0) {
        ss_write(r, "partial\n", 8);
        return -EPROTO;     /* the reply still goes, as in Python */
    }
    if (len >= 3 && memcmp(p, "now", 3) == 0)
        return ss_sendall(r, "immediate\n", 10);
    if (ss_readline(r, line, sizeof line) <= 0)
        return -EIO;
    return ss_printf(r, "%zu:%s", len, line) < 0 ? -EIO : 0;
}

static atomic_int dgram_errors, dgram_last_err;

static void count_dgram_error(ss_server *s, ss_request *r, const ss_address *c,
                              int err)
{
    (void)s, (void)r, (void)c;
    atomic_store(&dgram_last_err, err);
    atomic_fetch_add(&dgram_errors, 1);
}

static int errors_wanted;

static bool errors_reached(void *arg)
{
    (void)arg;
    return atomic_load(&dgram_errors) >= errors_wanted;
}

/* handle_error runs after the reply went out: wait for it. */
static void expect_error(int count, int err)
{
    errors_wanted = count;
    expect_true(wait_for(errors_reached, NULL, WAIT_LIMIT),
                "handle_error ran %d times, expected %d",
                atomic_load(&dgram_errors), count);
    assert_int_equal(atomic_load(&dgram_last_err), err);
}

static void tell(int fd, const ss_address *a, const char *msg, size_t len)
{
    assert_int_equal(sendto(fd, msg, len, 0,
                            (const struct sockaddr *)&a->storage, a->len),
                     (ssize_t)len);
}

/* Send a datagram and receive the next one (the client's receive timeout,
 * WAIT_LIMIT, is the hang guard). The server is synchronous: replies come
 * in the order of the requests, so a request that must get no reply is
 * followed by one that must, whose reply has to be the next datagram. */
static ssize_t ask(int fd, const ss_address *a, const char *msg, size_t len,
                   char *reply, size_t size)
{
    ssize_t n;

    tell(fd, a, msg, len);
    n = recv(fd, reply, size - 1, 0);
    reply[n > 0 ? n : 0] = '\0';
    return n;
}

static void run_datagram_checks(ss_server *s)
{
    const ss_address *a = ss_server_address(s);
    char reply[256], path[108], big[300];
    ss_server_ops ov = {.handle_error = count_dgram_error};
    served sv;
    int fd;

    ss_server_override(s, &ov);
    atomic_store(&dgram_errors, 0);
    serve_in_thread(&sv, s, 0.05);
    fd = client_dgram(a, path, sizeof path);
    assert_true(fd >= 0);
    assert_int_equal(ask(fd, a, "hi\n", 3, reply, sizeof reply), 5);
    assert_string_equal(reply, "3:hi\n");
    /* nothing written: no (empty) datagram, unlike Python; the next reply
     * is that to "now" */
    tell(fd, a, "quiet", 5);
    assert_int_equal(ask(fd, a, "now", 3, reply, sizeof reply), 10);
    assert_string_equal(reply, "immediate\n");
    assert_int_equal(ask(fd, a, "fail", 4, reply, sizeof reply), 8);
    assert_string_equal(reply, "partial\n");
    expect_error(1, -EPROTO);
    /* longer than max_packet_size (100): reported, not handled (no
     * reply: the next is that to "again"), and the server keeps serving */
    memset(big, 'b', sizeof big);
    tell(fd, a, big, sizeof big);
    expect_error(2, -EMSGSIZE);
    assert_int_equal(ask(fd, a, "again\n", 6, reply, sizeof reply), 8);
    assert_string_equal(reply, "6:again\n");
    close(fd);
    if (path[0])
        unlink(path);
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_udp_packet_reply_and_truncation(void **state)
{
    ss_handler h = {.handle = packet_handle};
    ss_server_options o = {.max_packet_size = 100};

    (void)state;
    run_datagram_checks(ss_udp_server_new("127.0.0.1:0", &h, &o));
}

static void test_unix_datagram_packet_reply_and_truncation(void **state)
{
    ss_handler h = {.handle = packet_handle};
    ss_server_options o = {.max_packet_size = 100};

    (void)state;
    run_datagram_checks(ss_unix_datagram_server_new(temp_path("dg"), &h, &o));
}

static char unnamed_seen[64];
static atomic_int unnamed_family;

static int note_client(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)s;
    ss_address_format(c, unnamed_seen, sizeof unnamed_seen);
    atomic_store(&unnamed_family, c->storage.ss_family);
    return 0;   /* no reply: an unnamed client cannot get one */
}

/* A Unix datagram client that did not bind has no address: the handler
 * sees an unnamed Unix peer, "(unnamed)", not whatever was in memory. */
static void test_unix_datagram_from_an_unbound_client(void **state)
{
    ss_handler h = {.handle = note_client};
    ss_server *s = ss_unix_datagram_server_new(temp_path("unb"), &h, NULL);
    const ss_address *a;
    int fd;

    (void)state;
    assert_non_null(s);
    a = ss_server_address(s);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(sendto(fd, "hi", 2, 0, (const struct sockaddr *)&a->storage,
                            a->len), 2);
    memset(unnamed_seen, 'x', sizeof unnamed_seen - 1);
    unnamed_seen[sizeof unnamed_seen - 1] = '\0';
    atomic_store(&unnamed_family, -1);
    assert_int_equal(ss_handle_request(s), 0);
    close(fd);
    assert_string_equal(unnamed_seen, "(unnamed)");
    assert_int_equal(atomic_load(&unnamed_family), AF_UNIX);
    ss_server_free(s);
}

static void test_stream_request_has_no_packet(void **state)
{
    size_t len = 99;

    (void)state;
    assert_null(ss_request_packet(NULL, &len));
    assert_int_equal(len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FD_TEST(test_readline_splits_long_lines_and_returns_the_last_one),
        FD_TEST(test_recv_after_readline_returns_the_buffered_bytes_first),
        FD_TEST(test_read_is_exact_and_short_only_at_eof),
        FD_TEST(test_io_functions_refuse_bad_arguments),
        FD_TEST(test_wait_readable_tells_waiting_from_sending_clients),
        FD_TEST(test_buffered_wfile_sends_on_flush_and_after_finish),
        FD_TEST(test_buffered_wfile_sends_when_the_buffer_is_full),
        FD_TEST(test_a_vanished_client_gives_epipe_not_sigpipe),
        FD_TEST(test_sendall_sends_every_byte_to_a_slow_reader),
        FD_TEST(test_sendall_timeout_covers_the_whole_call),
        FD_TEST(test_udp_packet_reply_and_truncation),
        FD_TEST(test_unix_datagram_packet_reply_and_truncation),
        FD_TEST(test_unix_datagram_from_an_unbound_client),
        FD_TEST(test_stream_request_has_no_packet),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
