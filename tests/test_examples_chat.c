/*
 * The chat room, run as a separate process: names, broadcast lines, join
 * and leave notices, nc as a client, and a stalled client that must not
 * stall the room. Every test runs twice, with the server's default model
 * (threading) and then in async mode (example_run_per_model); the rooms
 * of a named model run once.
 */
#include "example_harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int join(const example *e, const char *name)
{
    int fd = connect_text(e->address);
    char line[64];

    expect_true(fd >= 0, "connect to %s", e->address);
    snprintf(line, sizeof line, "%s\n", name);
    assert_int_equal(send_all_fd(fd, line, strlen(line)), 0);
    return fd;
}

/* Wait until the server has announced `name`: it logs the join once the
 * notice has gone to everyone else in the room. */
typedef struct joining {
    const example *e;
    const char    *name;
} joining;

static bool logged_join(void *arg)
{
    const joining *j = arg;
    char *log = example_log(j->e);
    char line[64];
    bool found;

    snprintf(line, sizeof line, "%s joined from ", j->name);
    found = log && strstr(log, line) != NULL;
    free(log);
    return found;
}

static void wait_joined(const example *e, const char *name)
{
    joining j = {e, name};

    expect_true(wait_for(logged_join, &j, WAIT_LIMIT),
                "the server never announced %s", name);
}

static void expect_line(int fd, const char *want)
{
    char line[256];
    ssize_t n = recv_line(fd, line, sizeof line);

    expect_true(n > 0 && strcmp(line, want) == 0, "got '%s' (%zd), expected "
                "'%s'", n > 0 ? line : "", n, want);
}

static void say(int fd, const char *text)
{
    assert_int_equal(send_all_fd(fd, text, strlen(text)), 0);
}

static bool quiet(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, ms) == 0;
}

/* The room under `model` with `workers` (pool threads, async loops). */
static void check_room(const char *model, const char *workers)
{
    const char *args[] = {"--model", model, "--workers", workers,
                          "127.0.0.1:0", NULL};
    example e;
    int alice, bob, carol;
    char *log;

    example_models_tested_once();
    example_start(&e, "chat_server", args);
    alice = join(&e, "alice");
    wait_joined(&e, "alice");
    bob = join(&e, "bob");
    expect_line(alice, "* bob joined\n");
    carol = join(&e, "carol");
    expect_line(alice, "* carol joined\n");
    expect_line(bob, "* carol joined\n");
    say(alice, "hi all\r\n");
    expect_line(bob, "alice: hi all\n");
    expect_line(carol, "alice: hi all\n");
    expect_true(quiet(alice, 100), "alice heard her own line");
    say(bob, "\n");     /* an empty line is not broadcast */
    say(bob, "hello\n");
    expect_line(alice, "bob: hello\n");
    expect_line(carol, "bob: hello\n");
    close(carol);
    expect_line(alice, "* carol left\n");
    expect_line(bob, "* carol left\n");
    close(alice);
    expect_line(bob, "* alice left\n");
    close(bob);
    log = example_stop(&e, SIGTERM);
    expect_true(strstr(log, "alice joined from 127.0.0.1:") &&
                strstr(log, "carol left"), "log:\n%s", log);
    free(log);
}

static void test_chat_room_threading(void **state)
{
    (void)state;
    check_room("threading", "0");
}

static void test_chat_room_pool(void **state)
{
    (void)state;
    check_room("pool", "0");
}

static void test_chat_room_async(void **state)
{
    (void)state;
    check_room("async", "1");
}

/* Two event loops, each taking the connections it accepts: wherever the
 * clients land, they hear each other. */
static void test_chat_room_async_on_two_loops(void **state)
{
    (void)state;
    check_room("async", "2");
}

static void test_nc_joins_the_room(void **state)
{
    const char *args[] = {"127.0.0.1:0", NULL};
    char host[64], *out = NULL;
    const char *port;
    example e;
    int alice, rc;

    (void)state;
    if (!have_program("nc"))
        skip();
    example_start(&e, "chat_server", args);
    alice = join(&e, "alice");
    wait_joined(&e, "alice");
    port = strrchr(e.address, ':') + 1;
    snprintf(host, sizeof host, "%.*s", (int)(port - 1 - e.address), e.address);
    rc = run_command((const char *[]){"nc", "-N", host, port, NULL},
                     "carol\nhello from nc\n", 20, &out, NULL, NULL,
                     WAIT_LIMIT);
    assert_int_equal(rc, 0);
    expect_line(alice, "* carol joined\n");
    expect_line(alice, "carol: hello from nc\n");
    expect_line(alice, "* carol left\n");
    close(alice);
    free(out);
    free(example_stop(&e, SIGINT));
}

/* The client that never reads, with a small receive buffer: what the room
 * can push at it before it stalls is then mostly the server's send
 * buffer, which max_lines bounds. */
static int join_stalled(const example *e)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), size = 4096;
    struct timeval tv = {(time_t)WAIT_LIMIT, 0};
    ss_address a;

    expect_true(fd >= 0 && ss_address_parse(&a, e->address) == 0,
                "a socket for %s", e->address);
    /* before connect: the window it advertises follows */
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size,
                                sizeof size), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
                                sizeof tv), 0);
    expect_true(connect(fd, (const struct sockaddr *)&a.storage, a.len) == 0,
                "connect to %s: %s", e->address, strerror(errno));
    say(fd, "stalled\n");
    return fd;
}

/* Line i of alice's chatter: numbered, 1000 bytes with its newline. */
static void chatter(char *line, size_t size, int i)
{
    int n = snprintf(line, size, "%06d ", i);

    memset(line + n, 'z', 999 - (size_t)n);
    line[999] = '\n';
    line[1000] = '\0';
}

/* The most lines the room may take to drop the stalled client: twice what
 * its socket buffers can hold, the server's send buffer at most
 * net.ipv4.tcp_wmem's maximum (4 MiB by default) and its own receive
 * buffer small. */
static int max_lines(void)
{
    char *wmem = read_file("/proc/sys/net/ipv4/tcp_wmem", NULL);
    long most = 0;

    if (!wmem || sscanf(wmem, "%*d %*d %ld", &most) != 1 || most <= 0)
        most = 4L << 20;
    free(wmem);
    return (int)(2 * most / 1000 + 100);
}

/* Alice says lines first..first+count-1; bob must hear each, in order,
 * the notice that the stalled client left aside (*left_at gets the line
 * before which bob heard it). */
static void chat_lines(int alice, int bob, int first, int count, int *left_at)
{
    char line[1100], in[1200], expect[1200];
    ssize_t n;
    int i;

    for (i = first; i < first + count; i++) {
        chatter(line, sizeof line, i);
        say(alice, line);
    }
    for (i = first; i < first + count; i++) {
        chatter(line, sizeof line, i);
        snprintf(expect, sizeof expect, "alice: %s", line);
        while ((n = recv_line(bob, in, sizeof in)) > 0 &&
               strcmp(in, "* stalled left\n") == 0 && *left_at < 0)
            *left_at = i;
        expect_true(n > 0 && strcmp(in, expect) == 0, "bob should hear line "
                    "%d, %s; he got '%.20s' (%zd)", i, *left_at < 0 ?
                    "the stalled client still connected" : "the stalled "
                    "client gone", n > 0 ? in : "", n);
    }
}

#define BATCH 20            /* lines alice says before bob listens */
#define ROOM_GUARD 300.0    /* s; a hang guard, see below */

/* A client that never reads fills its socket buffers; the room must then
 * drop it (the library shuts down a receiver that cannot take a message
 * within the handler timeout, 1 s here) and go on. Shown by order and
 * content: bob hears every line alice says, in order, while the stalled
 * client is still connected and after the room announced that it left;
 * and the stalled client's connection ends. Each line is bounded by bob's
 * receive timeout (WAIT_LIMIT): a room that blocked on the stalled client
 * fails there. A room that waited out the timeout on every line without
 * ever dropping the client would take max_lines() seconds: ROOM_GUARD
 * stops that; the room needs a small fraction of it (some 3,000 lines,
 * ThreadSanitizer on a busy machine: tens of seconds). */
static void test_a_stalled_client_does_not_stall_the_room(void **state)
{
    const char *args[] = {"127.0.0.1:0", NULL};
    int alice, bob, stalled, i, left_at = -1, most = max_lines();
    double end;
    size_t got = 0;
    char in[4096];
    example e;
    ssize_t n;

    (void)state;
    example_start(&e, "chat_server", args);
    stalled = join_stalled(&e);         /* never reads */
    wait_joined(&e, "stalled");
    bob = join(&e, "bob");
    wait_joined(&e, "bob");
    alice = join(&e, "alice");
    expect_line(bob, "* alice joined\n");
    /* her lines go out at once, not held for the server's delayed ACK */
    assert_int_equal(setsockopt(alice, IPPROTO_TCP, TCP_NODELAY, &(int){1},
                                sizeof(int)), 0);
    end = now() + ROOM_GUARD;
    for (i = 0; i < most && left_at < 0 && now() < end; i += BATCH)
        chat_lines(alice, bob, i, BATCH, &left_at);
    expect_true(left_at >= 0, "the stalled client was still in the room "
                "after %d lines of 1000 bytes (%.0f s)", i,
                ROOM_GUARD - (end - now()));
    /* the room goes on without it */
    chat_lines(alice, bob, i, 5 * BATCH, &left_at);
    i += 5 * BATCH;
    /* the server ended the stalled client's connection: some of what was
     * said (1007 bytes a line, and the join notices), then EOF or a
     * reset */
    while ((n = recv(stalled, in, sizeof in, 0)) > 0 &&
           got <= (size_t)i * 1007 + 100)
        got += (size_t)n;
    expect_true(n == 0 || (n < 0 && errno == ECONNRESET), "the stalled "
                "client's connection should have ended after %zu bytes "
                "(%s)", got, n < 0 ? strerror(errno) : "more data");
    close(stalled);
    close(alice);
    close(bob);
    free(example_stop(&e, SIGTERM));
}

static void test_forking_models_are_refused(void **state)
{
    char *err = NULL;
    int rc = run_command((const char *[]){example_bin("chat_server"),
                                          "--model", "forking", "127.0.0.1:0",
                                          NULL}, NULL, 0, NULL, NULL, &err,
                         WAIT_LIMIT);

    (void)state;
    expect_true(rc != 0 && strstr(err, "broadcast"), "exit %d: %s", rc, err);
    free(err);
}

#define TEST(f) cmocka_unit_test_teardown(f, example_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_chat_room_threading),
        TEST(test_chat_room_pool),
        TEST(test_chat_room_async),
        TEST(test_chat_room_async_on_two_loops),
        TEST(test_nc_joins_the_room),
        TEST(test_a_stalled_client_does_not_stall_the_room),
        TEST(test_forking_models_are_refused),
    };

    return example_run_tests_per_model(tests, NULL, NULL);
}
