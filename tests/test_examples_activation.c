/*
 * The echo examples under the real systemd-socket-activate: it opens the
 * socket, waits for the first client, then execs the example with
 * LISTEN_PID/LISTEN_FDS (and LISTEN_FDNAMES with --fdname), as a .socket
 * unit would. The example is given "systemd" (or "systemd:NAME") as its
 * address, serves the client that woke it, and stops on SIGTERM.
 */
#include "example_harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define ATTEMPTS 5      /* a free port picked may be taken before it is used */

/* A port free a moment ago on 127.0.0.1: bind port 0, read it, close. */
static int free_port(int type)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0), port;

    assert_true(fd >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

/* Run systemd-socket-activate with `sa_args`, then the example `name` with
 * `args`, logging to e->log_path. True once it listens; false when it
 * exited because the address was taken meanwhile (the caller retries). */
static bool activate(example *e, const char *const *sa_args, const char *name,
                     const char *const *args)
{
    static int started;
    const char *argv[32];
    posix_spawn_file_actions_t fa;
    double end = now() + WAIT_LIMIT;
    int i = 0, fd;

    memset(e, 0, sizeof *e);
    snprintf(e->log_path, sizeof e->log_path, "/tmp/ss-activate-%d-%d-%s.log",
             (int)getpid(), ++started, name);
    fd = open(e->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    argv[i++] = "systemd-socket-activate";
    while (*sa_args)
        argv[i++] = *sa_args++;
    argv[i++] = example_bin(name);
    while (*args && i < 31)
        argv[i++] = *args++;
    argv[i] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    expect_true(posix_spawnp(&e->pid, argv[0], &fa, NULL, (char **)argv,
                             environ) == 0, "cannot run %s", argv[0]);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    while (now() < end) {
        char *log = example_log(e);
        bool ready = strstr(log, "Listening on") != NULL;

        if (!ready && waitpid(e->pid, &e->status, WNOHANG) == e->pid) {
            bool taken = strstr(log, "Address already in use") != NULL;

            expect_true(taken, "systemd-socket-activate exited before "
                        "listening:\n%s", log);
            free(log);
            unlink(e->log_path);
            return false;
        }
        free(log);
        if (ready)
            return true;
        sleep_ms(5);
    }
    kill(e->pid, SIGKILL);
    waitpid(e->pid, NULL, 0);
    fail_msg("systemd-socket-activate did not listen within %.0f s",
             WAIT_LIMIT);
    return false;
}

/* systemd-socket-activate on 127.0.0.1 at a free port (-d: datagram). */
static void activate_inet(example *e, bool datagram, const char *fdname,
                          const char *name, const char *const *args)
{
    int attempt;

    for (attempt = 0; attempt < ATTEMPTS; attempt++) {
        char listen_at[SS_ADDRESS_STRLEN + 16], fdname_opt[64];
        const char *sa[6];
        int n = 0;

        char address[SS_ADDRESS_STRLEN];

        snprintf(address, sizeof address, "127.0.0.1:%d",
                 free_port(datagram ? SOCK_DGRAM : SOCK_STREAM));
        snprintf(listen_at, sizeof listen_at, "--listen=%s", address);
        sa[n++] = listen_at;
        if (datagram)
            sa[n++] = "--datagram";
        if (fdname) {
            snprintf(fdname_opt, sizeof fdname_opt, "--fdname=%s", fdname);
            sa[n++] = fdname_opt;
        }
        sa[n] = NULL;
        if (activate(e, sa, name, args)) {
            snprintf(e->address, sizeof e->address, "%s", address);
            return;
        }
    }
    fail_msg("no free port taken by systemd-socket-activate in %d attempts",
             ATTEMPTS);
}

/* Once the first client woke it, the example says where it listens. */
static void expect_listening_line(example *e, const char *address)
{
    char want[160], *log = NULL;
    double end = now() + WAIT_LIMIT;

    snprintf(want, sizeof want, "listening on %s\n", address);
    while (now() < end) {
        free(log);
        log = example_log(e);
        if (strstr(log, want))
            break;
        sleep_ms(5);
    }
    expect_true(strstr(log, want) != NULL, "the example should print '%s' "
                "(its own server address, from the inherited socket); its "
                "log:\n%s", want, log);
    free(log);
}

static void stop_and_expect(example *e, const char *mention)
{
    char *log = example_stop(e, SIGTERM);

    expect_true(strstr(log, mention) != NULL, "the log should mention '%s':\n%s",
                mention, log);
    free(log);
}

static void stream_echo(const ss_address *a, const char *line,
                        const char *want)
{
    char buf[128];
    int fd = client_connect(a);

    expect_true(fd >= 0, "connect: %s", strerror(errno));
    assert_int_equal(send_all_fd(fd, line, strlen(line)), 0);
    expect_true(recv_line(fd, buf, sizeof buf) == (ssize_t)strlen(want) &&
                strcmp(buf, want) == 0, "the echo of '%s' should be '%s', "
                "got '%s'", line, want, buf);
    close(fd);
}

static void datagram_echo(const ss_address *a, const char *line,
                          const char *want)
{
    char buf[128], path[108];
    int fd = client_dgram(a, path, sizeof path);
    ssize_t n;

    expect_true(fd >= 0, "datagram client: %s", strerror(errno));
    n = sendto(fd, line, strlen(line), 0, (const struct sockaddr *)&a->storage,
               a->len);
    assert_int_equal(n, (ssize_t)strlen(line));
    n = recv(fd, buf, sizeof buf - 1, 0);
    expect_true(n == (ssize_t)strlen(want), "a reply of %zu bytes, got %zd "
                "(%s)", strlen(want), n, n < 0 ? strerror(errno) : "");
    buf[n] = '\0';
    assert_string_equal(buf, want);
    close(fd);
    if (path[0])
        unlink(path);
}

static void need_systemd_socket_activate(void)
{
    if (!have_program("systemd-socket-activate"))
        skip();
}

static void test_tcp_echo_serves_on_the_socket_systemd_passes(void **state)
{
    const char *models[] = {"threading", "prefork"};
    size_t i;

    (void)state;
    need_systemd_socket_activate();
    for (i = 0; i < sizeof models / sizeof *models; i++) {
        const char *args[] = {"--model", models[i], "systemd", NULL};
        ss_address a;
        example e;

        activate_inet(&e, false, NULL, "echo_tcp_server", args);
        assert_int_equal(ss_address_parse(&a, e.address), 0);
        stream_echo(&a, "wake up\n", "WAKE UP\n");
        expect_listening_line(&e, e.address);
        stream_echo(&a, "again\n", "AGAIN\n");
        stop_and_expect(&e, "sent: again");
    }
}

static void test_tcp_echo_takes_the_socket_by_its_fdname(void **state)
{
    const char *args[] = {"systemd:echo", NULL};
    ss_address a;
    example e;

    (void)state;
    need_systemd_socket_activate();
    activate_inet(&e, false, "echo", "echo_tcp_server", args);
    assert_int_equal(ss_address_parse(&a, e.address), 0);
    stream_echo(&a, "by name\n", "BY NAME\n");
    expect_listening_line(&e, e.address);
    stop_and_expect(&e, "sent: by name");
}

static void test_tcp_echo_refuses_a_name_systemd_did_not_pass(void **state)
{
    const char *args[] = {"systemd:web", NULL};
    ss_address a;
    example e;
    char *log;
    int fd;
    double end;

    (void)state;
    need_systemd_socket_activate();
    activate_inet(&e, false, "echo", "echo_tcp_server", args);
    assert_int_equal(ss_address_parse(&a, e.address), 0);
    fd = client_connect(&a);    /* wakes it: it execs the example */
    expect_true(fd >= 0, "connect: %s", strerror(errno));
    end = now() + WAIT_LIMIT;
    while (now() < end && waitpid(e.pid, &e.status, WNOHANG) == 0)
        sleep_ms(5);
    log = example_log(&e);
    unlink(e.log_path);
    expect_true(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 1 &&
                strstr(log, "systemd:web: no such name in LISTEN_FDNAMES"),
                "the example should exit 1 saying the name is missing "
                "(status 0x%x); its log:\n%s", e.status, log);
    free(log);
    close(fd);
}

static void test_udp_echo_serves_on_the_datagram_socket_systemd_passes(void **state)
{
    const char *args[] = {"systemd", NULL};
    ss_address a;
    example e;

    (void)state;
    need_systemd_socket_activate();
    activate_inet(&e, true, NULL, "echo_udp_server", args);
    assert_int_equal(ss_address_parse(&a, e.address), 0);
    datagram_echo(&a, "first datagram\n", "FIRST DATAGRAM\n");
    expect_listening_line(&e, e.address);
    datagram_echo(&a, "second\n", "SECOND\n");
    stop_and_expect(&e, "sent: second");
}

static void test_unix_echo_serves_on_a_passed_socket_and_leaves_its_file(void **state)
{
    int datagram;

    (void)state;
    need_systemd_socket_activate();
    for (datagram = 0; datagram <= 1; datagram++) {
        const char *path = temp_path("activate");
        char listen_at[160], unix_text[160];
        const char *sa[] = {listen_at, datagram ? "--datagram" : NULL, NULL};
        const char *args[] = {datagram ? "--datagram" : "systemd",
                              datagram ? "systemd" : NULL, NULL};
        ss_address a;
        example e;

        snprintf(listen_at, sizeof listen_at, "--listen=%s", path);
        expect_true(activate(&e, sa, "echo_unix_server", args),
                    "systemd-socket-activate on %s", path);
        snprintf(unix_text, sizeof unix_text, "unix:%s", path);
        assert_int_equal(ss_address_parse(&a, unix_text), 0);
        if (datagram)
            datagram_echo(&a, "unix datagram\n", "UNIX DATAGRAM\n");
        else
            stream_echo(&a, "unix stream\n", "UNIX STREAM\n");
        expect_listening_line(&e, path);
        stop_and_expect(&e, datagram ? "sent: unix datagram"
                                     : "sent: unix stream");
        expect_true(access(path, F_OK) == 0, "%s should still be there: the "
                    "server did not create it and must not remove it", path);
        unlink(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_echo_serves_on_the_socket_systemd_passes),
        cmocka_unit_test(test_tcp_echo_takes_the_socket_by_its_fdname),
        cmocka_unit_test(test_tcp_echo_refuses_a_name_systemd_did_not_pass),
        cmocka_unit_test(test_udp_echo_serves_on_the_datagram_socket_systemd_passes),
        cmocka_unit_test(test_unix_echo_serves_on_a_passed_socket_and_leaves_its_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
