#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
/* Prefork workers with threads inside fork a process that has threads:
 * ThreadSanitizer supports that only with die_after_fork=0. */
__attribute__((visibility("default"))) const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}
#endif

static void *nothing(void *arg)
{
    return arg;
}

/* Sanitizer runtimes start a background thread with the first thread the
 * program creates: create one before any test counts threads. */
__attribute__((constructor)) static void warm_up_threads(void)
{
    pthread_t t;

    if (pthread_create(&t, NULL, nothing, NULL) == 0)
        pthread_join(t, NULL);
}

double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

bool wait_for(bool (*fn)(void *), void *arg, double seconds)
{
    double end = now() + seconds;

    while (!fn(arg)) {
        if (now() > end)
            return false;
        sleep_ms(1);
    }
    return true;
}

static void *guard_main(void *arg)
{
    hang_guard *g = arg;
    struct pollfd p = {.fd = g->stop[0], .events = POLLIN};
    double end = now() + g->seconds, left;

    while ((left = end - now()) > 0)
        if (poll(&p, 1, (int)(left * 1000) + 1) > 0)
            return NULL;    /* stopped in time */
    g->fired = true;
    g->action(g->arg);
    return NULL;
}

void guard_start(hang_guard *g, double seconds, void (*action)(void *),
                 void *arg)
{
    sigset_t all, old;

    assert_int_equal(pipe2(g->stop, O_CLOEXEC), 0);
    g->seconds = seconds;
    g->action = action;
    g->arg = arg;
    g->fired = false;
    /* The thread inherits a mask that blocks everything: signals a test
     * sends to the process go to the threads under test. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    assert_int_equal(pthread_create(&g->thread, NULL, guard_main, g), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

bool guard_end(hang_guard *g)
{
    assert_int_equal(write(g->stop[1], "x", 1), 1);
    assert_int_equal(pthread_join(g->thread, NULL), 0);
    close(g->stop[0]);
    close(g->stop[1]);
    return g->fired;
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int count_fds(void)
{
    return count_dir("/proc/self/fd") - 1;  /* the directory's own fd */
}

int count_threads(void)
{
    return count_dir("/proc/self/task");
}

static int settle(int (*count)(void), int baseline)
{
    double end = now() + WAIT_LIMIT;
    int n;

    while ((n = count()) != baseline && now() < end)
        sleep_ms(2);
    return n;
}

static int fds_before;

int setup_fds(void **state)
{
    (void)state;
    fds_before = count_fds();
    return 0;
}

int check_fds(void **state)
{
    int n = settle_fds(fds_before);

    (void)state;
    if (n != fds_before) {
        print_error("descriptor leak: %d open, %d before the test\n", n,
                    fds_before);
        return -1;
    }
    return 0;
}

int settle_fds(int baseline)
{
    return settle(count_fds, baseline);
}

int settle_threads(int baseline)
{
    return settle(count_threads, baseline);
}

int reap_zombies(void)
{
    int n = 0;

    while (waitpid(-1, NULL, WNOHANG) > 0)
        n++;
    return n;
}

const char *temp_path(const char *tag)
{
    static char paths[64][108];
    static int next;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    const char *dir = getenv("TMPDIR");
    char *p;

    pthread_mutex_lock(&lock);
    p = paths[next++ % 64];
    snprintf(p, sizeof paths[0], "%s/ss-%s-%d-%d.sock",
             dir && strlen(dir) < 60 ? dir : "/tmp", tag, (int)getpid(), next);
    pthread_mutex_unlock(&lock);
    unlink(p);
    return p;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {(time_t)WAIT_LIMIT, 0};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int client_connect(const ss_address *a)
{
    int fd = socket(a->storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    set_timeouts(fd);
    if (connect(fd, (const struct sockaddr *)&a->storage, a->len) < 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int client_dgram(const ss_address *a, char *bound_path, size_t size)
{
    int fd = socket(a->storage.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (bound_path && size)
        bound_path[0] = '\0';
    if (fd < 0)
        return -1;
    set_timeouts(fd);
    if (a->storage.ss_family == AF_UNIX) {
        /* A Unix datagram client must bind to get a reply. */
        struct sockaddr_un sun = {.sun_family = AF_UNIX};

        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", temp_path("cli"));
        if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
            close(fd);
            return -1;
        }
        if (bound_path)
            snprintf(bound_path, size, "%s", sun.sun_path);
    }
    return fd;
}

int send_all_fd(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t recv_line(int fd, char *buf, size_t size)
{
    size_t got = 0;

    while (got + 1 < size) {
        ssize_t n = recv(fd, buf + got, 1, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        if (buf[got++] == '\n')
            break;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

ssize_t recv_exact(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

void stream_examine(const ss_address *a)
{
    char buf[256];
    int fd = client_connect(a);

    expect_true(fd >= 0, "connect: %s", strerror(errno));
    assert_int_equal(send_all_fd(fd, TEST_STR, strlen(TEST_STR)), 0);
    /* Half-close: EOF reaches the handler even when a forked child holds
     * a copy of this descriptor. */
    shutdown(fd, SHUT_WR);
    assert_int_equal(recv_line(fd, buf, sizeof buf), (ssize_t)strlen(TEST_STR));
    assert_string_equal(buf, TEST_STR);
    close(fd);
}

void dgram_examine(const ss_address *a)
{
    char buf[256], path[108];
    int fd = client_dgram(a, path, sizeof path);
    ssize_t n;

    expect_true(fd >= 0, "datagram client: %s", strerror(errno));
    n = sendto(fd, TEST_STR, strlen(TEST_STR), 0,
               (const struct sockaddr *)&a->storage, a->len);
    assert_int_equal(n, (ssize_t)strlen(TEST_STR));
    n = recv(fd, buf, sizeof buf - 1, 0);
    expect_true(n == (ssize_t)strlen(TEST_STR), "reply of %zd bytes (%s)", n,
                n < 0 ? strerror(errno) : "");
    buf[n] = '\0';
    assert_string_equal(buf, TEST_STR);
    close(fd);
    if (path[0])
        unlink(path);
}

static void *serve_main(void *arg)
{
    served *sv = arg;

    sv->rc = ss_serve_forever(sv->server, sv->poll_interval);
    return NULL;
}

void serve_in_thread(served *sv, ss_server *s, double poll_interval)
{
    sv->server = s;
    sv->poll_interval = poll_interval;
    sv->rc = -1;
    assert_int_equal(pthread_create(&sv->thread, NULL, serve_main, sv), 0);
}

void stop_serving(served *sv)
{
    ss_server_shutdown(sv->server);
    assert_int_equal(pthread_join(sv->thread, NULL), 0);
    assert_int_equal(sv->rc, 0);
}

char *capture_stderr(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/ss-stderr-XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    char *out = calloc(1, 65536);
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0 && out);
    unlink(path);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    fn(arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, out, 65535);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    return out;
}

int echo_line_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[1024];
    ssize_t n = ss_readline(r, line, sizeof line);

    (void)c, (void)s;
    if (n < 0)
        return (int)n;
    return ss_write(r, line, (size_t)n) < 0 ? -EIO : 0;
}

/* A small file (of /proc) read whole into buf, NUL-terminated: the
 * length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    ssize_t n;

    if (fd < 0)
        return -1;
    while (len < size - 1 &&
           ((n = read(fd, buf + len, size - 1 - len)) > 0 ||
            (n < 0 && errno == EINTR)))
        if (n > 0)
            len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Whether pid is alive and not a zombie ("pid (comm) S ...": the state
 * follows the last ')'). */
static bool alive_not_zombie(pid_t pid)
{
    char path[64], buf[512], *p;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_small(path, buf, sizeof buf) <= 0 || !(p = strrchr(buf, ')')) ||
        p[1] != ' ')
        return false;
    return p[2] != 'Z';
}

/* Add the children listed in one task's children file ("12 34 ") to out. */
static int add_children_of(const char *task, pid_t *out, int n, int max)
{
    char path[300], buf[4096], *p, *end;
    long pid;

    snprintf(path, sizeof path, "/proc/self/task/%s/children", task);
    if (read_small(path, buf, sizeof buf) <= 0)
        return n;
    for (p = buf; n < max; p = end) {
        pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (alive_not_zombie((pid_t)pid))
            out[n++] = (pid_t)pid;
    }
    return n;
}

/* This process's live children (the prefork workers: the supervisor is a
 * thread of ours, so they are children of some task of this process),
 * zombies left out. Up to max pids go to out; returns how many.
 *
 * It allocates nothing (no opendir, no stdio): tests poll it while a
 * supervisor thread forks, and under AddressSanitizer a fork taken while
 * another thread holds the sanitizer's allocator lock leaves the child
 * blocked on that lock for ever (GCC 12's and Clang 14's runtimes install
 * no fork handler for their allocator, as glibc's malloc does). */
int live_children(pid_t *out, int max)
{
    _Alignas(8) char buf[4096];     /* linux_dirent64 records */
    int dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int n = 0;
    long got;

    if (dir < 0)
        return 0;
    while (n < max && (got = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        long off = 0;

        while (off < got && n < max) {
            struct linux_dirent64 {
                unsigned long long d_ino;
                long long          d_off;
                unsigned short     d_reclen;
                unsigned char      d_type;
                char               d_name[];
            } *e = (void *)(buf + off);

            if (e->d_name[0] != '.')
                n = add_children_of(e->d_name, out, n, max);
            off += e->d_reclen;
        }
    }
    close(dir);
    return n;
}
