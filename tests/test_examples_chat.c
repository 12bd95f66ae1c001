/*
 * The chat room, run as a separate process: names, broadcast lines, join
 * and leave notices, nc as a client, and a stalled client that must not
 * stall the room. Every test runs twice, with the server's default model
 * (threading) and then in async mode (example_run_per_model); the rooms
 * of a named model run once.
 */
#include "example_harness.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

static void test_a_stalled_client_does_not_stall_the_room(void **state)
{
    const char *args[] = {"127.0.0.1:0", NULL};
    char line[1100], expect[1200];
    int alice, bob, stalled, i, got = 0;
    bool dropped = false;
    example e;
    double t0;

    (void)state;
    example_start(&e, "chat_server", args);
    stalled = join(&e, "stalled");      /* never reads */
    wait_joined(&e, "stalled");
    bob = join(&e, "bob");
    wait_joined(&e, "bob");
    alice = join(&e, "alice");
    expect_line(bob, "* alice joined\n");
    memset(line, 'z', 1000);
    line[1000] = '\n';
    line[1001] = '\0';
    snprintf(expect, sizeof expect, "alice: %s", line);
    t0 = now();
    /* 4 MB of chat: far more than the stalled client's socket buffers */
    for (i = 0; i < 4000; i++) {
        char in[1200];
        ssize_t n;

        say(alice, line);
        /* skip the notice that the stalled client was dropped */
        while ((n = recv_line(bob, in, sizeof in)) > 0 &&
               strcmp(in, "* stalled left\n") == 0)
            dropped = true;
        if (n > 0 && strcmp(in, expect) == 0)
            got++;
    }
    expect_true(got == 4000, "bob got %d of 4000 lines", got);
    expect_true(dropped, "the stalled client was not dropped");
    expect_true(now() - t0 < 30.0, "the room was stalled: %.1f s", now() - t0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_room_threading),
        cmocka_unit_test(test_chat_room_pool),
        cmocka_unit_test(test_chat_room_async),
        cmocka_unit_test(test_chat_room_async_on_two_loops),
        cmocka_unit_test(test_nc_joins_the_room),
        cmocka_unit_test(test_a_stalled_client_does_not_stall_the_room),
        cmocka_unit_test(test_forking_models_are_refused),
    };

    return example_run_tests_per_model(tests, NULL, NULL);
}
