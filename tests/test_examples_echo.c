/*
 * The uppercase echo examples, run as separate processes and driven by
 * their own clients, nc, socat and the articles' Python clients; stopped by
 * SIGINT or SIGTERM, even with a client still connected. Every test runs
 * twice: with the servers' default model (threading), then in async mode
 * (example_run_per_model); the tests that go through every model run once.
 */
#include "example_harness.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* socat -t for stream clients: a hang guard, not a wait (it ends when the
 * server closes); below the WAIT_LIMIT that run_command gives socat. */
#define SOCAT_WAIT "20"

static const char *models[] = {"sync", "threading", "forking", "pool",
                               "prefork", "async"};

/* "127.0.0.1:40000" -> host and port strings */
static void split(const char *address, char *host, size_t hsize, char *port,
                  size_t psize)
{
    const char *colon = strrchr(address, ':');

    snprintf(host, hsize, "%.*s", (int)(colon - address), address);
    snprintf(port, psize, "%s", colon + 1);
}

static void expect_output(const char *const *argv, const char *input,
                          const char *want)
{
    char *out = NULL, *err = NULL;
    int rc = run_command(argv, input, input ? strlen(input) : 0, &out, NULL,
                         &err, WAIT_LIMIT);

    expect_true(rc == 0 && strcmp(out, want) == 0,
                "%s exited %d, printed '%s' (stderr '%s'), expected '%s'",
                argv[0], rc, out, err, want);
    free(out);
    free(err);
}

/* The same for a datagram client that stops listening a fixed time after
 * its input ends (socat -t): its input ends only once the reply is in. */
static void expect_reply(const char *const *argv, const char *input,
                         const char *want)
{
    char *out = NULL, *err = NULL;
    int rc = run_command_holding_stdin(argv, input, strlen(input), &out, &err,
                                       WAIT_LIMIT);

    expect_true(rc == 0 && strcmp(out, want) == 0,
                "%s exited %d, printed '%s' (stderr '%s'), expected '%s'",
                argv[0], rc, out, err, want);
    free(out);
    free(err);
}

static void check_log_and_stop(example *e, int sig, const char *mention)
{
    char *log = example_stop(e, sig);

    expect_true(strstr(log, mention) != NULL, "the log should mention '%s':\n%s",
                mention, log);
    free(log);
}

static void test_tcp_echo_with_its_client_in_every_model(void **state)
{
    size_t i;

    (void)state;
    example_models_tested_once();
    for (i = 0; i < sizeof models / sizeof *models; i++) {
        const char *args[] = {"--model", models[i], "127.0.0.1:0", NULL};
        example e;

        example_start(&e, "echo_tcp_server", args);
        expect_output((const char *[]){example_bin("echo_tcp_client"),
                                       "--count", "3", e.address, NULL},
                      NULL, "HELLO 1\nHELLO 2\nHELLO 3\n");
        check_log_and_stop(&e, SIGTERM, " sent: hello 3");
    }
}

static void test_tcp_echo_client_sends_stdin_lines(void **state)
{
    const char *args[] = {"127.0.0.1:0", NULL};
    example e;

    (void)state;
    example_start(&e, "echo_tcp_server", args);
    expect_output((const char *[]){example_bin("echo_tcp_client"), e.address,
                                   NULL},
                  "first line\nsecond\n", "FIRST LINE\nSECOND\n");
    check_log_and_stop(&e, SIGINT, "sent: second");
}

static void test_tcp_echo_with_nc_and_socat(void **state)
{
    const char *args[] = {"127.0.0.1:0", NULL};
    char host[64], port[16], target[160];
    example e;

    (void)state;
    if (!have_program("nc") || !have_program("socat"))
        skip();
    example_start(&e, "echo_tcp_server", args);
    split(e.address, host, sizeof host, port, sizeof port);
    expect_output((const char *[]){"nc", "-N", host, port, NULL},
                  "hi from nc\n", "HI FROM NC\n");
    snprintf(target, sizeof target, "TCP:%s", e.address);
    /* -t: after its input ends, socat waits that long for the server to
     * close (0.5 s by default, which a busy machine can miss); the server
     * closes as soon as it has answered. */
    expect_output((const char *[]){"socat", "-t", SOCAT_WAIT, "-", target,
                                   NULL}, "hi from socat\n",
                  "HI FROM SOCAT\n");
    check_log_and_stop(&e, SIGTERM, "sent: hi from socat");
}

static void test_tcp_echo_with_the_articles_python_client(void **state)
{
    const char *args[] = {"127.0.0.1:0", NULL};
    char host[64], port[16];
    example e;

    (void)state;
    if (!have_program("python3"))
        skip();
    example_start(&e, "echo_tcp_server", args);
    split(e.address, host, sizeof host, port, sizeof port);
    expect_output((const char *[]){"python3",
                                   SS_TEST_CLIENTS_DIR "/article_echo_client.py",
                                   host, port, "hello", "socketserver", NULL},
                  NULL, "HELLO\nSOCKETSERVER\n");
    check_log_and_stop(&e, SIGTERM, "sent: socketserver");
}

static void test_udp_echo_with_its_client_socat_and_python(void **state)
{
    size_t i;

    (void)state;
    example_models_tested_once();
    for (i = 0; i < sizeof models / sizeof *models; i++) {
        const char *args[] = {"--model", models[i], "127.0.0.1:0", NULL};
        char host[64], port[16], target[160];
        example e;

        example_start(&e, "echo_udp_server", args);
        expect_output((const char *[]){example_bin("echo_udp_client"),
                                       "--count", "2", e.address, NULL},
                      NULL, "HELLO 1\nHELLO 2\n");
        split(e.address, host, sizeof host, port, sizeof port);
        if (have_program("socat")) {
            snprintf(target, sizeof target, "UDP:%s", e.address);
            expect_reply((const char *[]){"socat", "-t", "1", "-", target,
                                          NULL}, "datagram\n", "DATAGRAM\n");
        }
        if (have_program("python3"))
            expect_output((const char *[]){"python3", SS_TEST_CLIENTS_DIR
                                           "/article_udp_client.py", host,
                                           port, "udp", NULL}, NULL, "UDP\n");
        check_log_and_stop(&e, SIGTERM, "sent: hello 2");
    }
}

static void test_unix_stream_and_datagram_echo_remove_their_socket(void **state)
{
    int datagram;

    (void)state;
    for (datagram = 0; datagram <= 1; datagram++) {
        const char *path = temp_path("echo");
        const char *args[] = {datagram ? "--datagram" : path,
                              datagram ? path : NULL, NULL};
        example e;

        example_start(&e, "echo_unix_server", args);
        assert_string_equal(e.address, path);
        expect_output((const char *[]){example_bin("echo_unix_client"),
                                       datagram ? "--datagram" : "--count",
                                       datagram ? "--count" : "2",
                                       datagram ? "2" : path,
                                       datagram ? path : NULL, NULL},
                      NULL, "HELLO 1\nHELLO 2\n");
        check_log_and_stop(&e, SIGTERM, "sent: hello 2");
        expect_true(access(path, F_OK) != 0, "%s is still there after the "
                    "server stopped", path);
    }
}

static void test_unix_echo_with_socat(void **state)
{
    const char *path = temp_path("socat");
    const char *args[] = {path, NULL};
    char target[160];
    example e;

    (void)state;
    if (!have_program("socat"))
        skip();
    example_start(&e, "echo_unix_server", args);
    snprintf(target, sizeof target, "UNIX-CONNECT:%s", path);
    expect_output((const char *[]){"socat", "-t", SOCAT_WAIT, "-", target,
                                   NULL}, "unix\n", "UNIX\n");
    check_log_and_stop(&e, SIGINT, "sent: unix");
}

/* Ctrl-C with an idle client still connected: a clean exit while the
 * client stays connected. The echo handler has no timeout of its own, so
 * only close_timeout (2 s in the examples) can end it: a server that
 * waited for the client would never exit, and example_stop's hang guard
 * (WAIT_LIMIT) fails the test. */
static void test_stops_cleanly_with_an_idle_client_connected(void **state)
{
    size_t i;

    (void)state;
    example_models_tested_once();
    for (i = 0; i < sizeof models / sizeof *models; i++) {
        const char *args[] = {"--model", models[i], "127.0.0.1:0", NULL};
        char line[32];
        example e;
        ssize_t n;
        int fd;

        example_start(&e, "echo_tcp_server", args);
        fd = connect_text(e.address);
        assert_true(fd >= 0);
        assert_int_equal(send_all_fd(fd, "idle\n", 5), 0);
        assert_int_equal(recv_line(fd, line, sizeof line), 5);
        free(example_stop(&e, i % 2 ? SIGINT : SIGTERM));
        /* nothing of the server (a forked child, say) kept the connection:
         * EOF or a reset, not the client's receive timeout */
        n = recv(fd, line, sizeof line, 0);
        expect_true(n == 0 || (n < 0 && errno == ECONNRESET),
                    "%s: the idle connection outlived the server (%s)",
                    models[i], n < 0 ? strerror(errno) : "data");
        close(fd);
    }
}

/* A client that sends a lot and vanishes without reading the echo. */
static void test_a_client_vanishing_mid_reply_does_not_stop_the_server(void **state)
{
    const char *args[] = {"127.0.0.1:0", NULL};
    static char big[1 << 20];
    struct linger hard = {1, 0};
    example e;
    int fd;

    (void)state;
    memset(big, 'x', sizeof big);
    example_start(&e, "echo_tcp_server", args);
    fd = connect_text(e.address);
    assert_true(fd >= 0);
    send_all_fd(fd, big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd);
    expect_output((const char *[]){example_bin("echo_tcp_client"), "--count",
                                   "1", e.address, NULL}, NULL, "HELLO 1\n");
    check_log_and_stop(&e, SIGTERM, "sent: hello 1");
}

static void test_bad_command_lines_are_refused(void **state)
{
    char *out = NULL, *err = NULL;
    int rc;

    (void)state;
    rc = run_command((const char *[]){example_bin("echo_tcp_server"),
                                      "--model", "nonsense", "127.0.0.1:0",
                                      NULL}, NULL, 0, &out, NULL, &err,
                     WAIT_LIMIT);
    expect_true(rc != 0 && strstr(err, "nonsense"), "exit %d, stderr '%s'",
                rc, err);
    free(out);
    free(err);
    rc = run_command((const char *[]){example_bin("echo_tcp_server"),
                                      "127.0.0.1:99999", NULL}, NULL, 0, &out,
                     NULL, &err, WAIT_LIMIT);
    expect_true(rc != 0 && strstr(err, "99999"), "exit %d, stderr '%s'", rc,
                err);
    free(out);
    free(err);
}

#define TEST(f) cmocka_unit_test_teardown(f, example_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_tcp_echo_with_its_client_in_every_model),
        TEST(test_tcp_echo_client_sends_stdin_lines),
        TEST(test_tcp_echo_with_nc_and_socat),
        TEST(test_tcp_echo_with_the_articles_python_client),
        TEST(test_udp_echo_with_its_client_socat_and_python),
        TEST(test_unix_stream_and_datagram_echo_remove_their_socket),
        TEST(test_unix_echo_with_socat),
        TEST(test_stops_cleanly_with_an_idle_client_connected),
        TEST(test_a_client_vanishing_mid_reply_does_not_stop_the_server),
        TEST(test_bad_command_lines_are_refused),
    };

    return example_run_tests_per_model(tests, NULL, NULL);
}
