#include "example_harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *example_bin(const char *name)
{
    static char path[512];
    const char *dir = getenv("SS_EXAMPLES_DIR");

    snprintf(path, sizeof path, "%s/%s", dir ? dir : SS_EXAMPLES_DIR, name);
    return path;
}

char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    size_t cap = 4096, n = 0;
    char *buf;
    ssize_t r;

    if (fd < 0)
        return NULL;
    buf = malloc(cap + 1);
    while (buf && (r = read(fd, buf + n, cap - n)) > 0) {
        n += (size_t)r;
        if (n == cap) {
            char *p = realloc(buf, cap * 2 + 1);

            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    close(fd);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* The examples started and not yet stopped, for example_teardown. */
static struct {
    pid_t pid;
    char  log_path[128];
} live[16];

static void track(const example *e, bool running)
{
    size_t i;

    for (i = 0; i < sizeof live / sizeof live[0]; i++)
        if (running ? live[i].pid == 0 : live[i].pid == e->pid) {
            live[i].pid = running ? e->pid : 0;
            snprintf(live[i].log_path, sizeof live[i].log_path, "%s",
                     e->log_path);
            return;
        }
}

/* Stop an example the harness did not stop; out says how it had ended
 * ("still running" when it had not). */
static void end_left_over(pid_t pid, char *out, size_t size)
{
    int status;

    if (waitpid(pid, &status, WNOHANG) != pid) {
        snprintf(out, size, "still running");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    } else if (WIFSIGNALED(status)) {
        snprintf(out, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        snprintf(out, size, "exited with status %d", WEXITSTATUS(status));
    }
}

/* An example left by a failed test: stop it, and print how it had ended
 * (a crash shows here) and what it logged, which usually says why the
 * test failed. */
int example_teardown(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof live / sizeof live[0]; i++)
        if (live[i].pid > 0) {
            char *log, end[96];

            end_left_over(live[i].pid, end, sizeof end);
            log = read_file(live[i].log_path, NULL);
            print_message("the example (pid %d) left by the failed test, "
                          "%s, logged:\n%s\n", (int)live[i].pid, end,
                          log && log[0] ? log : "(nothing)");
            free(log);
            unlink(live[i].log_path);
            live[i].pid = 0;
        }
    return 0;
}

char *example_log(const example *e)
{
    char *log = read_file(e->log_path, NULL);

    return log ? log : strdup("");
}

const char *example_model;

static bool names_model(const char *const *args)
{
    for (; args && *args; args++)
        if (strcmp(*args, "--model") == 0)
            return true;
    return false;
}

int example_run_per_model(const char *group, const struct CMUnitTest *tests,
                          size_t count, CMFixtureFunction setup,
                          CMFixtureFunction teardown)
{
    static const char *const passes[] = {NULL, "async"};
    char name[128];
    int failed = 0;
    size_t i;

    for (i = 0; i < sizeof passes / sizeof passes[0]; i++) {
        example_model = passes[i];
        snprintf(name, sizeof name, "%s, --model %s", group,
                 passes[i] ? passes[i] : "threading (the default)");
        failed += _cmocka_run_group_tests(name, tests, count, setup,
                                          teardown);
    }
    example_model = NULL;
    return failed;
}

void example_models_tested_once(void)
{
    if (example_model) {
        print_message("goes through the models itself: tested in the first "
                      "pass\n");
        skip();
    }
}

/* "name arg arg ...", cut short if long. */
static void describe_command(char *out, size_t size, const char *name,
                             const char *const *args)
{
    size_t len = (size_t)snprintf(out, size, "%s", name);

    for (; *args && len < size; args++)
        len += (size_t)snprintf(out + len, size - len, " %s", *args);
}

void example_start(example *e, const char *name, const char *const *args)
{
    const char *argv[32];
    posix_spawn_file_actions_t fa;
    double end = now() + WAIT_LIMIT;
    int i = 0, fd;

    static int started;

    memset(e, 0, sizeof *e);
    snprintf(e->log_path, sizeof e->log_path, "/tmp/ss-example-%d-%d-%s.log",
             (int)getpid(), ++started, name);
    fd = open(e->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    argv[i++] = example_bin(name);
    if (example_model && !names_model(args)) {
        argv[i++] = "--model";
        argv[i++] = example_model;
    }
    while (args && *args && i < 31)
        argv[i++] = *args++;
    argv[i] = NULL;
    describe_command(e->command, sizeof e->command, name, argv + 1);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    expect_true(posix_spawn(&e->pid, argv[0], &fa, NULL, (char **)argv,
                            environ) == 0, "cannot run %s", argv[0]);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    track(e, true);
    while (now() < end) {
        char *log = example_log(e), *p = strstr(log, "listening on ");

        if (p && strchr(p, '\n')) {
            p += strlen("listening on ");
            snprintf(e->address, sizeof e->address, "%.*s",
                     (int)(strchr(p, '\n') - p), p);
            free(log);
            return;
        }
        free(log);
        if (waitpid(e->pid, &e->status, WNOHANG) == e->pid) {
            char *log2 = example_log(e);

            track(e, false);
            fail_msg("%s exited before listening:\n%s", name, log2);
        }
        sleep_ms(5);
    }
    kill(e->pid, SIGKILL);
    waitpid(e->pid, NULL, 0);
    track(e, false);
    fail_msg("%s did not print 'listening on' within %.0f s", name, WAIT_LIMIT);
}

char *example_stop(example *e, int sig)
{
    double end = now() + WAIT_LIMIT;
    char *log;
    pid_t rc = 0;

    kill(e->pid, sig);
    while (now() < end && (rc = waitpid(e->pid, &e->status, WNOHANG)) == 0)
        sleep_ms(5);
    if (rc != e->pid) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, &e->status, 0);
    }
    track(e, false);
    log = example_log(e);
    unlink(e->log_path);
    expect_true(rc == e->pid, "`%s` did not stop within %.0f s of signal "
                "%d; its log:\n%s", e->command, WAIT_LIMIT, sig, log);
    expect_true(WIFEXITED(e->status) && WEXITSTATUS(e->status) == 0,
                "`%s` ended with status 0x%x; its log:\n%s", e->command,
                e->status, log);
    return log;
}

/* Read what the child writes to fd into a growing buffer. */
typedef struct sink {
    int    fd;
    char  *buf;
    size_t len, cap;
} sink;

static bool drain(sink *s)
{
    char chunk[65536];
    ssize_t n = read(s->fd, chunk, sizeof chunk);

    if (n <= 0)
        return false;
    if (s->len + (size_t)n + 1 > s->cap) {
        s->cap = (s->len + (size_t)n + 1) * 2;
        s->buf = realloc(s->buf, s->cap);
        assert_non_null(s->buf);
    }
    memcpy(s->buf + s->len, chunk, (size_t)n);
    s->len += (size_t)n;
    s->buf[s->len] = '\0';
    return true;
}

static int run(const char *const *argv, const char *input, size_t input_len,
               bool hold_stdin, char **out, size_t *out_len, char **err,
               double timeout)
{
    int in[2], o[2], e[2], status = -1;
    posix_spawn_file_actions_t fa;
    sink so = {0}, se = {0};
    double end = now() + timeout;
    size_t written = 0;
    pid_t pid;
    bool open_o = true, open_e = true;

    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(o, O_CLOEXEC), 0);
    assert_int_equal(pipe2(e, O_CLOEXEC), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, o[1], 1);
    posix_spawn_file_actions_adddup2(&fa, e[1], 2);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, (char **)argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(o[1]);
    close(e[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    so.fd = o[0];
    se.fd = e[0];
    if (input_len == 0) {
        close(in[1]);
        in[1] = -1;
    }
    while (pid > 0 && (open_o || open_e) && now() < end) {
        struct pollfd p[3] = {{so.fd, POLLIN, 0}, {se.fd, POLLIN, 0},
                              {in[1], POLLOUT, 0}};

        p[0].fd = open_o ? so.fd : -1;
        p[1].fd = open_e ? se.fd : -1;
        p[2].fd = in[1] >= 0 && written < input_len ? in[1] : -1;
        if (poll(p, 3, 50) < 0)
            continue;
        if (p[0].revents && !drain(&so))
            open_o = false;
        if (p[1].revents && !drain(&se))
            open_e = false;
        if (in[1] >= 0 && written < input_len && p[2].revents) {
            ssize_t n = write(in[1], input + written, input_len - written);

            if (n > 0)
                written += (size_t)n;
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                written = input_len;    /* it stopped reading: give up */
        }
        /* End of input: once written, or (hold_stdin) once a whole line
         * of output has come back. */
        if (in[1] >= 0 && written == input_len &&
            (!hold_stdin || (so.buf && memchr(so.buf, '\n', so.len)))) {
            close(in[1]);
            in[1] = -1;
        }
    }
    if (in[1] >= 0)
        close(in[1]);
    close(so.fd);
    close(se.fd);
    if (pid > 0) {
        while (now() < end && waitpid(pid, &status, WNOHANG) == 0)
            sleep_ms(2);
        if (now() >= end && waitpid(pid, &status, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
        } else if (WIFEXITED(status)) {
            status = WEXITSTATUS(status);
        } else {
            status = -1;
        }
    }
    if (out) {
        *out = so.buf ? so.buf : strdup("");
        so.buf = NULL;
    }
    if (out_len)
        *out_len = so.len;
    if (err) {
        *err = se.buf ? se.buf : strdup("");
        se.buf = NULL;
    }
    free(so.buf);
    free(se.buf);
    return status;
}

int run_command(const char *const *argv, const char *input, size_t input_len,
                char **out, size_t *out_len, char **err, double timeout)
{
    return run(argv, input, input_len, false, out, out_len, err, timeout);
}

int run_command_holding_stdin(const char *const *argv, const char *input,
                              size_t input_len, char **out, char **err,
                              double timeout)
{
    return run(argv, input, input_len, true, out, NULL, err, timeout);
}

bool have_program(const char *name)
{
    const char *argv[] = {"sh", "-c", NULL, NULL};
    char cmd[256];

    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    argv[2] = cmd;
    return run_command(argv, NULL, 0, NULL, NULL, NULL, WAIT_LIMIT) == 0;
}

char *make_temp_dir(const char *tag)
{
    char *path = malloc(128);

    snprintf(path, 128, "/tmp/ss-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(path));
    return path;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int connect_text(const char *address)
{
    ss_address a;

    if (ss_address_parse(&a, address) < 0)
        return -1;
    return client_connect(&a);
}
