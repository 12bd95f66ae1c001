/*
 * Debian's HAProxy in front of two http_server examples started with
 * --proxy: one backend gets PROXY protocol v1 (send-proxy), the other v2
 * (send-proxy-v2), balanced round-robin, with health checks that send a
 * header too (check-send-proxy). The test shows that
 * - each backend logs the true client address (the client binds its own
 *   source address; the backends only ever talk to HAProxy),
 * - both backends serve,
 * - once one backend is killed, every new connection still succeeds
 *   through the other (retries and option redispatch cover the moment
 *   before the health check marks it down), and HAProxy does mark it down.
 *
 * Twice: (a) everything on loopback addresses, backends on port 0 (the
 * real port read from "listening on ADDRESS"), HAProxy on a port found
 * free a moment before (retried once if taken meanwhile); (b) as separate
 * hosts: network namespaces the test creates (client, haproxy, backend 1,
 * backend 2, joined by veth pairs, 10.213.0.0/24 addresses only inside
 * them), deleted in the teardown whatever happened. (b) skips when
 * namespaces cannot be made (not root, no `ip`); both skip without
 * haproxy (tests/run installs it).
 *
 * Every process is started here, stopped by its PID, and reaped; every
 * wait is bounded (HAP_WAIT, a hang guard, never a speed requirement).
 * docs/deploying.md shows the HAProxy configuration written here.
 */
#include "example_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define HAP_WAIT 60.0           /* hang guard for every wait here */

/* ---- processes ------------------------------------------------------------ */

typedef struct proc {
    pid_t pid;                  /* 0: not running */
    char  log[512];             /* its stdout and stderr */
    char  address[SS_ADDRESS_STRLEN];   /* an example's listening address */
} proc;

static proc *procs[8];          /* the running ones, for the teardown */

static void track(proc *p, bool on)
{
    size_t i;

    for (i = 0; i < sizeof procs / sizeof procs[0]; i++)
        if (on ? procs[i] == NULL : procs[i] == p) {
            procs[i] = on ? p : NULL;
            return;
        }
}

static char *log_of(const proc *p)
{
    char *text = read_file(p->log, NULL);

    return text ? text : strdup("");
}

/* Start argv (inside network namespace `netns` when not NULL, through
 * `ip netns exec`, which execs the command: the PID is the command's),
 * with stdout and stderr into p->log. */
static void spawn(proc *p, const char *netns, const char *const *argv)
{
    const char *full[32];
    posix_spawn_file_actions_t fa;
    int i = 0, fd;

    if (netns) {
        full[i++] = "ip";
        full[i++] = "netns";
        full[i++] = "exec";
        full[i++] = netns;
    }
    while (*argv && i < 31)
        full[i++] = *argv++;
    full[i] = NULL;
    fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    expect_true(posix_spawnp(&p->pid, full[0], &fa, NULL, (char **)full,
                             environ) == 0, "cannot run %s", full[0]);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    track(p, true);
}

/* Whether p has exited (reaped, p->pid cleared); *status its status. */
static bool exited(proc *p, int *status)
{
    if (p->pid > 0 && waitpid(p->pid, status, WNOHANG) == p->pid) {
        track(p, false);
        p->pid = 0;
        return true;
    }
    return false;
}

/* Send sig and reap, waiting HAP_WAIT at most (then SIGKILL). Returns the
 * wait status, or -1 when it had to be killed. */
static int stop_proc(proc *p, int sig)
{
    double end = now() + HAP_WAIT;
    int status = 0;
    pid_t rc = 0;

    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    while (now() < end && (rc = waitpid(p->pid, &status, WNOHANG)) == 0)
        sleep_ms(10);
    if (rc != p->pid) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &status, 0);
        status = -1;
    }
    track(p, false);
    p->pid = 0;
    return status;
}

static void kill_all(void)
{
    size_t i;

    for (i = 0; i < sizeof procs / sizeof procs[0]; i++)
        if (procs[i]) {
            kill(procs[i]->pid, SIGKILL);
            waitpid(procs[i]->pid, NULL, 0);
            procs[i]->pid = 0;
            procs[i] = NULL;
        }
}

/* http_server --proxy serving `root` on `address`; waits for its
 * "listening on ADDRESS" line. */
static void start_backend(proc *p, const char *netns, const char *root,
                          const char *model, const char *address)
{
    const char *argv[] = {example_bin("http_server"), "--proxy", "--model",
                          model, "--root", root, address, NULL};
    double end = now() + HAP_WAIT;
    int status;

    spawn(p, netns, argv);
    for (;;) {
        char *log = log_of(p), *at = strstr(log, "listening on ");

        if (at && strchr(at, '\n')) {
            at += strlen("listening on ");
            snprintf(p->address, sizeof p->address, "%.*s",
                     (int)(strchr(at, '\n') - at), at);
            free(log);
            return;
        }
        if (exited(p, &status) || now() > end)
            fail_msg("http_server on %s did not start listening (within "
                     "%.0f s); its log:\n%s", address, HAP_WAIT, log);
        free(log);
        sleep_ms(10);
    }
}

/* ---- the scenario --------------------------------------------------------- */

typedef struct scenario {
    const char *client_ns, *haproxy_ns, *b1_ns, *b2_ns;  /* NULL: here */
    const char *client_ip;      /* the client binds this source address */
    const char *front_ip;       /* HAProxy's frontend */
    int         front_port;     /* 0: pick a free one (loopback) */
    const char *b1_address, *b2_address;     /* port 0 */
} scenario;

static char *dir;               /* the test's temporary directory */
static const char *haproxy;     /* the program */

/* A socket made inside network namespace `netns` (NULL: this one): the
 * thread enters it, makes the socket, and comes back; the socket stays
 * in the namespace it was made in. */
static int socket_in(const char *netns)
{
    char path[256];
    int self, target, fd;

    if (!netns)
        return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(path, sizeof path, "/var/run/netns/%s", netns);
    self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    target = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(self >= 0 && target >= 0);
    assert_int_equal(setns(target, CLONE_NEWNET), 0);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(setns(self, CLONE_NEWNET), 0);
    close(self);
    close(target);
    return fd;
}

/* One request through HAProxy, from the client's own source address.
 * Returns the backend that answered (1 or 2, from the body), or 0 with
 * *why set when the connection or the answer failed. */
static int fetch(const scenario *sc, char *why, size_t why_size)
{
    static const char req[] = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n"
                              "Connection: close\r\n\r\n";
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct sockaddr_in dst = {.sin_family = AF_INET};
    struct timeval tv = {.tv_sec = (time_t)HAP_WAIT};
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    int fd = socket_in(sc->client_ns), backend = 0;
    const char *body;

    assert_true(fd >= 0);
    inet_pton(AF_INET, sc->client_ip, &src.sin_addr);
    inet_pton(AF_INET, sc->front_ip, &dst.sin_addr);
    dst.sin_port = htons((uint16_t)sc->front_port);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) {
        snprintf(why, why_size, "connect: %s", strerror(errno));
        close(fd);
        return 0;
    }
    if (send_all_fd(fd, req, sizeof req - 1) < 0) {
        snprintf(why, why_size, "send: %s", strerror(errno));
        close(fd);
        return 0;
    }
    while (n < sizeof buf - 1 && (r = recv(fd, buf + n, sizeof buf - 1 - n,
                                           0)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.1 200 ", 13) == 0 && body &&
        sscanf(body + 4, "backend %d", &backend) == 1)
        return backend;
    snprintf(why, why_size, "answer of %zu bytes: '%.200s'", n, buf);
    return 0;
}

/* The configuration docs/deploying.md shows, for two machines. */
static void write_config(const char *path, const scenario *sc,
                         const proc *b1, const proc *b2)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fprintf(f,
            "global\n"
            "    maxconn 256\n"
            "\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 5s\n"
            "    timeout client 60s\n"
            "    timeout server 60s\n"
            "    retries 3\n"
            "    option redispatch 1\n"
            "\n"
            "frontend web\n"
            "    bind %s:%d\n"
            "    default_backend servers\n"
            "\n"
            "backend servers\n"
            "    balance roundrobin\n"
            "    default-server check check-send-proxy inter 200ms fall 2 "
            "rise 1\n"
            "    server b1 %s send-proxy\n"
            "    server b2 %s send-proxy-v2\n",
            sc->front_ip, sc->front_port, b1->address, b2->address);
    assert_int_equal(fclose(f), 0);
}

/* A port free a moment ago on ip: bind port 0, read it, close. */
static int free_port(const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

    assert_true(fd >= 0);
    inet_pton(AF_INET, ip, &sin.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

/* Start HAProxy and wait until a request goes through it. Returns the
 * backend that served that request, or 0 when HAProxy exited because its
 * port was taken meanwhile (the caller picks another). */
static int start_haproxy(proc *hap, scenario *sc, const proc *b1,
                         const proc *b2)
{
    char cfg[512], why[512] = "";
    const char *argv[] = {haproxy, "-f", cfg, "-db", NULL};
    double end = now() + HAP_WAIT;
    int status, served;

    snprintf(cfg, sizeof cfg, "%s/haproxy.cfg", dir);
    write_config(cfg, sc, b1, b2);
    spawn(hap, sc->haproxy_ns, argv);
    for (;;) {
        if (exited(hap, &status)) {
            char *log = log_of(hap);
            bool taken = strstr(log, "cannot bind") ||
                         strstr(log, "Address already in use");

            expect_true(taken && sc->haproxy_ns == NULL,
                        "haproxy exited (status 0x%x); its log:\n%s",
                        status, log);
            free(log);
            return 0;
        }
        if ((served = fetch(sc, why, sizeof why)) > 0)
            return served;
        if (now() > end) {
            char *log = log_of(hap);

            fail_msg("no request went through haproxy within %.0f s (last: "
                     "%s); its log:\n%s", HAP_WAIT, why, log);
        }
        sleep_ms(50);
    }
}

/* Every request line in the backend's log names the client's address. */
static void expect_client_address_logged(const proc *b, const char *ip,
                                         const char *name)
{
    char *log = log_of(b), *line, *save = NULL, want[64];
    int requests = 0;

    snprintf(want, sizeof want, "%s:", ip);
    for (line = strtok_r(log, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (!strstr(line, "\"GET /hello.txt HTTP/1.1\" 200"))
            continue;
        requests++;
        expect_true(strncmp(line, want, strlen(want)) == 0,
                    "%s logged a request from '%.*s', not the client %s",
                    name, (int)strcspn(line, " "), line, ip);
    }
    free(log);
    expect_true(requests > 0, "%s logged no request", name);
}

static void run_scenario(scenario *sc)
{
    static proc b1, b2, hap;
    char r1[512], r2[512], why[512] = "", text[64];
    bool seen[3] = {false, false, false};
    double end;
    int i, served, status, attempt;

    snprintf(r1, sizeof r1, "%s/r1", dir);
    snprintf(r2, sizeof r2, "%s/r2", dir);
    snprintf(b1.log, sizeof b1.log, "%s/b1.log", dir);
    snprintf(b2.log, sizeof b2.log, "%s/b2.log", dir);
    snprintf(hap.log, sizeof hap.log, "%s/haproxy.log", dir);
    mkdir(r1, 0700);
    mkdir(r2, 0700);
    for (i = 1; i <= 2; i++) {
        char path[600];
        FILE *f;

        snprintf(path, sizeof path, "%s/hello.txt", i == 1 ? r1 : r2);
        assert_non_null(f = fopen(path, "w"));
        fprintf(f, "backend %d\n", i);
        fclose(f);
    }
    start_backend(&b1, sc->b1_ns, r1, "threading", sc->b1_address);
    start_backend(&b2, sc->b2_ns, r2, "async", sc->b2_address);

    for (attempt = 0, served = 0; !served && attempt < 2; attempt++) {
        if (!sc->haproxy_ns || attempt > 0)
            sc->front_port = free_port(sc->front_ip);
        served = start_haproxy(&hap, sc, &b1, &b2);
    }
    expect_true(served > 0, "haproxy could not bind a free port twice");
    seen[served] = true;

    /* Round-robin: both serve. Every request succeeds. */
    for (i = 0; i < 10; i++) {
        served = fetch(sc, why, sizeof why);
        expect_true(served > 0, "request %d through haproxy failed: %s",
                    i + 2, why);
        seen[served] = true;
    }
    expect_true(seen[1] && seen[2], "both backends to serve (1: %d, 2: %d)",
                seen[1], seen[2]);
    expect_client_address_logged(&b1, sc->client_ip, "backend 1 (send-proxy)");
    expect_client_address_logged(&b2, sc->client_ip,
                                 "backend 2 (send-proxy-v2)");

    /* Backend 1 dies. New connections keep succeeding, on backend 2. */
    kill(b1.pid, SIGKILL);
    waitpid(b1.pid, NULL, 0);
    track(&b1, false);
    b1.pid = 0;
    for (i = 0; i < 6; i++) {
        served = fetch(sc, why, sizeof why);
        expect_true(served == 2, "request %d after backend 1 was killed: %s",
                    i + 1, served ? "served by backend 1" : why);
    }
    /* The health check marks it down (bounded wait: a hang guard). */
    end = now() + HAP_WAIT;
    for (;;) {
        char *log = log_of(&hap);
        bool down = strstr(log, "servers/b1 is DOWN") != NULL;

        if (!down && now() > end)
            fail_msg("haproxy did not mark backend 1 down within %.0f s; "
                     "its log:\n%s", HAP_WAIT, log);
        free(log);
        if (down)
            break;
        sleep_ms(50);
    }
    for (i = 0; i < 6; i++) {
        served = fetch(sc, why, sizeof why);
        expect_true(served == 2, "request %d once backend 1 is down: %s",
                    i + 1, served ? "served by backend 1" : why);
    }
    expect_client_address_logged(&b2, sc->client_ip,
                                 "backend 2 (send-proxy-v2)");

    status = stop_proc(&hap, SIGTERM);
    expect_true(status != -1, "haproxy did not stop on SIGTERM");
    status = stop_proc(&b2, SIGTERM);
    snprintf(text, sizeof text, "0x%x", status);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        char *log = log_of(&b2);

        fail_msg("backend 2 ended with status %s; its log:\n%s", text, log);
    }
}

/* ---- fixtures ------------------------------------------------------------- */

static int make_dir(void **state)
{
    (void)state;
    dir = make_temp_dir("haproxy");
    return dir ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    kill_all();
    remove_tree(dir);
    free(dir);
    return 0;
}

static void need_haproxy(void)
{
    if (have_program("haproxy"))
        haproxy = "haproxy";
    else if (access("/usr/sbin/haproxy", X_OK) == 0)
        haproxy = "/usr/sbin/haproxy";
    else {
        print_message("haproxy is not installed (Debian: apt-get install "
                      "haproxy; tests/run does): skipped\n");
        skip();
    }
}

/* (a) Loopback: backends on 127.0.0.2 and 127.0.0.3, HAProxy on
 * 127.0.0.4, the client from 127.0.0.5. */
static void test_haproxy_on_loopback(void **state)
{
    scenario sc = {
        .client_ip = "127.0.0.5", .front_ip = "127.0.0.4",
        .b1_address = "127.0.0.2:0", .b2_address = "127.0.0.3:0",
    };

    (void)state;
    need_haproxy();
    run_scenario(&sc);
}

/* (b) Four hosts: network namespaces client, haproxy, b1, b2, each backend
 * and the client joined to the haproxy host by a veth pair:
 *   client 10.213.0.2 -- 10.213.0.1 haproxy 10.213.0.5 -- 10.213.0.6 b1
 *                                           10.213.0.9 -- 10.213.0.10 b2 */
static char ns[4][32];          /* client, haproxy, b1, b2; "" if not made */

static int ip(const char *const *argv, char **err)
{
    const char *full[24] = {"ip"};
    int i = 1;

    while (*argv && i < 23)
        full[i++] = *argv++;
    full[i] = NULL;
    return run_command(full, NULL, 0, NULL, NULL, err, HAP_WAIT);
}

static void ip_ok(const char *const *argv)
{
    char *err = NULL;
    int rc = ip(argv, &err);

    expect_true(rc == 0, "ip %s %s %s %s ... exited %d: %s", argv[0],
                argv[1] ? argv[1] : "", argv[1] && argv[2] ? argv[2] : "",
                argv[1] && argv[2] && argv[3] ? argv[3] : "", rc,
                err ? err : "");
    free(err);
}

static void link_hosts(const char *a, const char *a_ip, const char *b,
                       const char *b_ip, const char *dev)
{
    ip_ok((const char *const[]){"-n", a, "link", "add", dev, "type", "veth",
                                "peer", "name", dev, "netns", b, NULL});
    ip_ok((const char *const[]){"-n", a, "addr", "add", a_ip, "dev", dev,
                                NULL});
    ip_ok((const char *const[]){"-n", b, "addr", "add", b_ip, "dev", dev,
                                NULL});
    ip_ok((const char *const[]){"-n", a, "link", "set", dev, "up", NULL});
    ip_ok((const char *const[]){"-n", b, "link", "set", dev, "up", NULL});
}

static int delete_namespaces(void **state)
{
    size_t i;

    kill_all();     /* nothing may be left running in them */
    for (i = 0; i < 4; i++)
        if (ns[i][0]) {
            char *err = NULL;

            if (ip((const char *const[]){"netns", "del", ns[i], NULL},
                   &err) != 0)
                print_message("ip netns del %s: %s\n", ns[i], err ? err : "");
            free(err);
            ns[i][0] = '\0';
        }
    return remove_dir(state);
}

static void test_haproxy_across_namespaces(void **state)
{
    static const char *const role[4] = {"client", "haproxy", "b1", "b2"};
    scenario sc = {
        .client_ip = "10.213.0.2", .front_ip = "10.213.0.1",
        .front_port = 8080,     /* a fresh host: free */
        .b1_address = "10.213.0.6:0", .b2_address = "10.213.0.10:0",
    };
    char *err = NULL;
    size_t i;

    (void)state;
    need_haproxy();
    if (geteuid() != 0 || !have_program("ip")) {
        print_message("network namespaces need root and iproute2's ip "
                      "(uid %d, ip %s): skipped\n", (int)geteuid(),
                      have_program("ip") ? "found" : "not found");
        skip();
    }
    for (i = 0; i < 4; i++) {
        char name[32];

        snprintf(name, sizeof name, "ss%d-%s", (int)getpid(), role[i]);
        if (ip((const char *const[]){"netns", "add", name, NULL}, &err)
            != 0) {
            print_message("cannot create a network namespace (ip netns add "
                          "%s: %s): skipped\n", name, err ? err : "");
            free(err);
            skip();
        }
        free(err);
        err = NULL;
        snprintf(ns[i], sizeof ns[i], "%s", name);
        ip_ok((const char *const[]){"-n", ns[i], "link", "set", "lo", "up",
                                    NULL});
    }
    link_hosts(ns[0], "10.213.0.2/30", ns[1], "10.213.0.1/30", "v0");
    link_hosts(ns[1], "10.213.0.5/30", ns[2], "10.213.0.6/30", "v1");
    link_hosts(ns[1], "10.213.0.9/30", ns[3], "10.213.0.10/30", "v2");
    sc.client_ns = ns[0];
    sc.haproxy_ns = ns[1];
    sc.b1_ns = ns[2];
    sc.b2_ns = ns[3];
    run_scenario(&sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_haproxy_on_loopback, make_dir,
                                        remove_dir),
        cmocka_unit_test_setup_teardown(test_haproxy_across_namespaces,
                                        make_dir, delete_namespaces),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
