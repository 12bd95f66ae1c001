/*
 * The concurrency models: threading, forking, thread pool, prefork (alone
 * and with threads inside), under load, at close, with close_timeout, with
 * broadcast and with signals. After every test: no descriptor, thread or
 * child process is left.
 */
#include "helpers.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

typedef enum { SYNC, THREADING, FORKING, POOL, PREFORK, PREFORK_THREADS,
               PREFORK_POOL } model;

static const char *model_name[] = {"sync", "threading", "forking", "pool",
                                   "prefork", "prefork+threading",
                                   "prefork+pool"};

static void use_model(ss_server *s, model m)
{
    int err = 0;

    switch (m) {
    case SYNC: break;
    case THREADING: err = ss_server_use_threading(s); break;
    case FORKING: err = ss_server_use_forking(s); break;
    case POOL: err = ss_server_use_thread_pool(s, 8, 16); break;
    case PREFORK: err = ss_server_use_prefork(s, 2); break;
    case PREFORK_THREADS:
        err = ss_server_use_threading(s);
        if (!err)
            err = ss_server_use_prefork(s, 2);
        break;
    case PREFORK_POOL:
        err = ss_server_use_thread_pool(s, 4, 8);
        if (!err)
            err = ss_server_use_prefork(s, 2);
        break;
    }
    expect_true(err == 0, "model %s: %s", model_name[m], ss_strerror(err));
}

/* Echo every line until EOF. */
static int echo_lines(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[256];
    ssize_t n;
    int err;

    (void)c, (void)s;
    while ((n = ss_readline(r, line, sizeof line)) > 0)
        if ((err = ss_sendall(r, line, (size_t)n)) < 0)
            return err;
    return (int)n;
}

static ss_server *new_server(model m, ss_handle_fn handle,
                             const ss_server_options *o)
{
    ss_handler h = {.handle = handle};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, o);

    expect_true(s != NULL, "%s", ss_last_error());
    use_model(s, m);
    return s;
}

/* The hang guard's way out for a handler stuck on the client guarded_fd:
 * end the stream (EOF for the handler), or read a datagram socket empty
 * for a while so that a blocked reply goes through. A test that has to be
 * rescued this way fails: guard_end says the guard fired. */
static int guarded_fd = -1;

static void unblock_client(void *arg)
{
    int type = 0;
    socklen_t len = sizeof type;
    char buf[2048];
    double t0;

    (void)arg;
    getsockopt(guarded_fd, SOL_SOCKET, SO_TYPE, &type, &len);
    if (type != SOCK_DGRAM) {
        shutdown(guarded_fd, SHUT_WR);
        return;
    }
    for (t0 = now(); now() - t0 < 3.0;)
        if (recv(guarded_fd, buf, sizeof buf, MSG_DONTWAIT) < 0)
            sleep_ms(1);
}

static void guard_client(hang_guard *g, int fd)
{
    guarded_fd = fd;
    guard_start(g, WAIT_LIMIT, unblock_client, NULL);
}

/* ---- a load of clients, driven by one poll() loop ------------------------ */

typedef struct conn {
    int    fd;
    int    id, done;        /* requests answered */
    size_t have;
    char   buf[128], want[128];
    bool   eof;
} conn;

typedef struct load_result {
    int answered, mismatches, errors, closed_early;
} load_result;

static void next_request(conn *c)
{
    snprintf(c->want, sizeof c->want, "client %d request %d\n", c->id, c->done);
    c->have = 0;
    if (send_all_fd(c->fd, c->want, strlen(c->want)) < 0)
        c->eof = true;
}

/* Read what is there; true when the connection ended. */
static bool on_readable(conn *c, int requests, load_result *res)
{
    ssize_t n = recv(c->fd, c->buf + c->have, sizeof c->buf - 1 - c->have, 0);

    if (n <= 0) {
        if (c->done < requests) {
            res->closed_early++;
            if (n < 0 || c->have > 0)
                res->errors++;
        }
        return true;
    }
    c->have += (size_t)n;
    if (c->have < strlen(c->want))
        return false;
    if (c->have != strlen(c->want) || memcmp(c->buf, c->want, c->have) != 0)
        res->mismatches++;
    res->answered++;
    if (++c->done < requests)
        next_request(c);
    else
        shutdown(c->fd, SHUT_WR);   /* EOF for the handler; wait for ours */
    return false;
}

static load_result run_load(const ss_address *a, int clients, int requests,
                            double limit)
{
    conn *c = calloc((size_t)clients, sizeof *c);
    struct pollfd *p = calloc((size_t)clients, sizeof *p);
    load_result res = {0};
    double end = now() + limit;
    int i, open = clients;

    for (i = 0; i < clients; i++) {
        c[i].id = i;
        c[i].fd = client_connect(a);
        expect_true(c[i].fd >= 0, "connect %d: %s", i, strerror(errno));
        next_request(&c[i]);
    }
    while (open > 0 && now() < end) {
        for (i = 0; i < clients; i++)
            p[i] = (struct pollfd){.fd = c[i].eof ? -1 : c[i].fd,
                                   .events = POLLIN};
        if (poll(p, (nfds_t)clients, 100) < 0)
            break;
        for (i = 0; i < clients; i++)
            if (p[i].revents && on_readable(&c[i], requests, &res)) {
                c[i].eof = true;
                open--;
            }
    }
    expect_true(open == 0, "%d connections still open after %.0f s", open,
                limit);
    for (i = 0; i < clients; i++)
        close(c[i].fd);
    free(c);
    free(p);
    return res;
}

static void check_load(model m, int clients, int requests)
{
    ss_server *s = new_server(m, echo_lines, NULL);
    load_result res;
    served sv;

    serve_in_thread(&sv, s, 0.05);
    res = run_load(ss_server_address(s), clients, requests, 240);
    stop_serving(&sv);
    ss_server_close(s);
    assert_int_equal(ss_server_active_handlers(s), 0);
    ss_server_free(s);
    expect_true(res.answered == clients * requests && res.mismatches == 0 &&
                res.errors == 0, "%s: %d of %d answered, %d mismatched, "
                "%d errors", model_name[m], res.answered, clients * requests,
                res.mismatches, res.errors);
}

static void test_threading_200_clients_50_requests(void **state)
{
    (void)state;
    check_load(THREADING, 200, 50);
}

static void test_forking_200_clients_50_requests(void **state)
{
    (void)state;
    check_load(FORKING, 200, 50);
}

static void test_pool_200_clients_50_requests(void **state)
{
    (void)state;
    check_load(POOL, 200, 50);
}

static void test_prefork_200_clients_50_requests(void **state)
{
    (void)state;
    check_load(PREFORK, 200, 50);
}

static void test_prefork_threading_200_clients_50_requests(void **state)
{
    (void)state;
    check_load(PREFORK_THREADS, 200, 50);
}

static void test_prefork_pool_200_clients_50_requests(void **state)
{
    (void)state;
    check_load(PREFORK_POOL, 200, 50);
}

static void test_sync_200_clients_50_requests(void **state)
{
    (void)state;
    check_load(SYNC, 200, 50);
}

/* ---- bookkeeping stays flat ------------------------------------------------- */

static void check_sequential(model m)
{
    int threads = count_threads(), i;
    ss_server *s = new_server(m, echo_lines, NULL);
    served sv;

    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 1000; i++)
        stream_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_close(s);
    ss_server_free(s);
    assert_int_equal(settle_threads(threads), threads);
}

static void test_threading_threads_back_to_baseline_after_1000_requests(void **state)
{
    (void)state;
    check_sequential(THREADING);
}

static void test_pool_threads_back_to_baseline_after_1000_requests(void **state)
{
    (void)state;
    check_sequential(POOL);
}

static void test_prefork_threads_back_to_baseline_after_1000_requests(void **state)
{
    (void)state;
    check_sequential(PREFORK_THREADS);
}

static void test_forking_no_zombies_after_1000_requests(void **state)
{
    (void)state;
    check_sequential(FORKING);
    assert_true(no_children());
}

static int live_threads_seen;

static bool threads_drop_to(void *arg)
{
    live_threads_seen = count_threads();
    return live_threads_seen <= *(int *)arg;
}

static void test_threading_reaps_finished_threads_while_serving(void **state)
{
    ss_server *s = new_server(THREADING, echo_lines, NULL);
    int threads = count_threads(), i;
    served sv;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 300; i++)
        stream_examine(ss_server_address(s));
    /* while it still serves: only the serving thread is left */
    threads++;
    expect_true(wait_for(threads_drop_to, &threads, WAIT_LIMIT),
                "%d threads while idle, expected %d", live_threads_seen,
                threads);
    assert_int_equal(ss_server_active_handlers(s), 0);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- the forking limit, counted by the children themselves --------------- */

typedef struct shared_count {
    atomic_int now, max;
} shared_count;

static shared_count *shared;

static int count_children_handle(ss_request *r, const ss_address *c,
                                 ss_server *s)
{
    int n = atomic_fetch_add(&shared->now, 1) + 1, m;

    (void)c, (void)s;
    while ((m = atomic_load(&shared->max)) < n &&
           !atomic_compare_exchange_weak(&shared->max, &m, n))
        ;
    sleep_ms(20);
    atomic_fetch_sub(&shared->now, 1);
    return echo_lines(r, c, s);
}

static void test_forking_never_exceeds_max_children(void **state)
{
    ss_server_options o = {.max_children = 4};
    ss_server *s;
    load_result res;
    served sv;

    (void)state;
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shared != MAP_FAILED);
    s = new_server(FORKING, count_children_handle, &o);
    serve_in_thread(&sv, s, 0.05);
    res = run_load(ss_server_address(s), 24, 3, 120);
    stop_serving(&sv);
    ss_server_free(s);
    assert_int_equal(res.answered, 24 * 3);
    expect_true(atomic_load(&shared->max) <= 4, "%d children at once",
                atomic_load(&shared->max));
    expect_true(atomic_load(&shared->max) >= 2, "only %d child at a time",
                atomic_load(&shared->max));
    munmap(shared, sizeof *shared);
}

/* ---- the pool: bounded concurrency, nothing refused ---------------------- */

static atomic_int pool_now, pool_max;

static int count_workers_handle(ss_request *r, const ss_address *c,
                                ss_server *s)
{
    int n = atomic_fetch_add(&pool_now, 1) + 1, m;

    while ((m = atomic_load(&pool_max)) < n &&
           !atomic_compare_exchange_weak(&pool_max, &m, n))
        ;
    sleep_ms(5);
    atomic_fetch_sub(&pool_now, 1);
    return echo_lines(r, c, s);
}

static void test_pool_bounds_concurrency_and_refuses_nobody(void **state)
{
    ss_handler h = {.handle = count_workers_handle};
    ss_server_options o = {.request_queue_size = 128};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    load_result res;
    served sv;

    (void)state;
    assert_int_equal(ss_server_use_thread_pool(s, 3, 2), 0);
    atomic_store(&pool_now, 0);
    atomic_store(&pool_max, 0);
    serve_in_thread(&sv, s, 0.05);
    /* 100 clients for 3 workers and a queue of 2: most wait in the
     * kernel's backlog, none is refused or dropped */
    res = run_load(ss_server_address(s), 100, 2, 120);
    stop_serving(&sv);
    ss_server_free(s);
    expect_true(res.answered == 200 && res.errors == 0 && res.closed_early == 0,
                "%d answered, %d errors, %d closed early", res.answered,
                res.errors, res.closed_early);
    expect_true(atomic_load(&pool_max) <= 3, "%d handlers at once with 3 "
                "workers", atomic_load(&pool_max));
}

static void test_pool_serves_datagrams(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server *s = ss_udp_server_new("127.0.0.1:0", &h, NULL);
    served sv;
    int i;

    (void)state;
    assert_int_equal(ss_server_use_thread_pool(s, 2, 4), 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 20; i++)
        dgram_examine(ss_server_address(s));
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- the pool's serving thread does not preempt its handlers ----------- */

static atomic_int policy_in_verify, policy_in_handler;

/* The calling thread's policy, as the kernel has it. */
static int thread_policy(void)
{
    int policy = sched_getscheduler(0);

    assert_true(policy >= 0);
    return policy;
}

static bool note_verify_policy(ss_server *s, ss_request *r,
                               const ss_address *c)
{
    (void)s, (void)r, (void)c;
    atomic_store(&policy_in_verify, thread_policy());
    return true;
}

static int echo_noting_policy(ss_request *r, const ss_address *c,
                              ss_server *s)
{
    size_t len;
    const void *p = ss_request_packet(r, &len);

    (void)c, (void)s;
    atomic_store(&policy_in_handler, thread_policy());
    return ss_sendall(r, p, len);
}

typedef struct policy_run {
    ss_server *server;
    int        set;             /* the policy the thread serves with */
    int        before, after;   /* its policy around ss_serve_forever */
    int        rc;
} policy_run;

/* Set the policy as sched_setscheduler(2) (or chrt) does, after glibc has
 * cached the thread's policy (pthread_getschedparam): that cache is not
 * updated, so the library must ask the kernel. */
static void *serve_with_policy(void *arg)
{
    policy_run *run = arg;
    struct sched_param param = {.sched_priority = 0};
    int cached;

    (void)pthread_getschedparam(pthread_self(), &cached, &param);
    if (sched_setscheduler(0, run->set, &param) != 0) {
        run->rc = -errno;
        return NULL;
    }
    run->before = thread_policy();
    run->rc = ss_serve_forever(run->server, 0.05);
    run->after = thread_policy();
    return NULL;
}

/* Serve a few datagrams from a thread of policy `set`; the policies seen
 * by verify_request (in the serving thread) and by the handler. */
static void serve_noting_policies(bool use_pool, bool keep, int set,
                                  int *in_verify, int *in_handler)
{
    ss_handler h = {.handle = echo_noting_policy};
    ss_server_ops ov = {.verify_request = note_verify_policy};
    ss_server_options o = {.keep_sched_policy = keep};
    ss_server *s = ss_udp_server_new("127.0.0.1:0", &h, &o);
    policy_run run = {.server = s, .set = set, .rc = -1};
    pthread_t t;
    int i;

    expect_true(s != NULL, "%s", ss_last_error());
    assert_int_equal(ss_server_override(s, &ov), 0);
    if (use_pool)
        assert_int_equal(ss_server_use_thread_pool(s, 2, 4), 0);
    atomic_store(&policy_in_verify, -1);
    atomic_store(&policy_in_handler, -1);
    assert_int_equal(pthread_create(&t, NULL, serve_with_policy, &run), 0);
    for (i = 0; i < 3; i++)
        dgram_examine(ss_server_address(s));
    ss_server_shutdown(s);
    assert_int_equal(pthread_join(t, NULL), 0);
    expect_true(run.rc == 0, "serving with policy %d: %s", set,
                ss_strerror(run.rc));
    /* The thread leaves ss_serve_forever with the policy it came with. */
    assert_int_equal(run.before, set);
    assert_int_equal(run.after, set);
    ss_server_free(s);
    *in_verify = atomic_load(&policy_in_verify);
    *in_handler = atomic_load(&policy_in_handler);
}

/* Whether a thread may take SCHED_BATCH and leave it (Linux). The calling
 * thread gets its own policy back. */
static bool batch_available(void)
{
#ifdef SCHED_BATCH
    struct sched_param param = {.sched_priority = 0};
    int policy = sched_getscheduler(0);
    bool ok;

    if (policy < 0 || sched_getparam(0, &param) != 0)
        return false;
    ok = sched_setscheduler(0, SCHED_BATCH, &(struct sched_param){0}) == 0 &&
         sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){0}) == 0;
    (void)sched_setscheduler(0, policy, &param);
    return ok;
#else
    return false;
#endif
}

/* While a pool server serves, its serving thread is SCHED_BATCH, so a
 * request's arrival does not preempt a handler; its handlers run
 * SCHED_OTHER. A synchronous server changes nothing. */
static void test_pool_serving_thread_does_not_preempt_handlers(void **state)
{
    int in_verify, in_handler;

    (void)state;
    if (!batch_available())
        skip();
#ifdef SCHED_BATCH
    serve_noting_policies(true, false, SCHED_OTHER, &in_verify, &in_handler);
    assert_int_equal(in_verify, SCHED_BATCH);
    assert_int_equal(in_handler, SCHED_OTHER);
    serve_noting_policies(false, false, SCHED_OTHER, &in_verify,
                          &in_handler);
    assert_int_equal(in_verify, SCHED_OTHER);
    assert_int_equal(in_handler, SCHED_OTHER);
#endif
}

/* A policy the application chose is left alone, even when set behind
 * glibc's back: a serving thread that is SCHED_BATCH already stays so
 * after ss_serve_forever, and its handlers inherit it as usual. With
 * keep_sched_policy, a SCHED_OTHER thread is left alone too. */
static void test_pool_keeps_the_policy_the_application_chose(void **state)
{
    int in_verify, in_handler;

    (void)state;
    if (!batch_available())
        skip();
#ifdef SCHED_BATCH
    serve_noting_policies(true, false, SCHED_BATCH, &in_verify, &in_handler);
    assert_int_equal(in_verify, SCHED_BATCH);
    assert_int_equal(in_handler, SCHED_BATCH);
    serve_noting_policies(true, true, SCHED_OTHER, &in_verify, &in_handler);
    assert_int_equal(in_verify, SCHED_OTHER);
    assert_int_equal(in_handler, SCHED_OTHER);
#endif
}

static void test_mixins_refuse_bad_combinations(void **state)
{
    ss_server *s = new_server(SYNC, echo_lines, NULL);

    (void)state;
    assert_int_equal(ss_server_use_thread_pool(s, 0, 1), -EINVAL);
    assert_int_equal(ss_server_use_prefork(s, 0), -EINVAL);
    assert_int_equal(ss_server_use_threading(NULL), -EINVAL);
    assert_int_equal(ss_server_use_forking(s), 0);
    assert_int_equal(ss_server_use_threading(s), -EBUSY);
    assert_int_equal(ss_server_use_prefork(s, 2), -ENOTSUP);
    ss_server_free(s);
}

/* ---- prefork --------------------------------------------------------- */

static int pid_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[64];

    (void)c, (void)s;
    while (ss_readline(r, line, sizeof line) > 0)
        if (ss_printf(r, "%d\n", (int)getpid()) < 0)
            return -EIO;
    return 0;
}

static bool known(const pid_t *pids, int n, pid_t pid)
{
    int i;

    for (i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

typedef struct workers_wanted {
    pid_t not;          /* a pid that must not be among them (or 0) */
    pid_t pids[8];
    int   n;
} workers_wanted;

/* Two live workers, neither of them w->not. */
static bool two_workers_up(void *arg)
{
    workers_wanted *w = arg;

    w->n = live_children(w->pids, 8);
    return w->n == 2 && w->pids[0] != w->not && w->pids[1] != w->not;
}

/* Two connections held open at once: each sync worker handles one
 * connection at a time, and pid_handle keeps it until the client hangs
 * up, so the two are necessarily served by two different workers. Both
 * ask, then both hang up. Call it only once the workers are running: a
 * worker forked while these connections are open would inherit the
 * client ends, and the connections would never end. The pids answered go
 * to out; returns how many answers came. */
static int pids_of_two_held_connections(const ss_address *a, pid_t out[2])
{
    int fd[2], got = 0, i;
    char line[64];

    for (i = 0; i < 2; i++)
        fd[i] = client_connect(a);
    for (i = 0; i < 2; i++) {
        out[i] = -1;
        if (fd[i] >= 0 && send_all_fd(fd[i], "pid?\n", 5) == 0 &&
            recv_line(fd[i], line, sizeof line) > 0) {
            out[i] = (pid_t)atoi(line);
            got++;
        }
    }
    for (i = 0; i < 2; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    return got;
}

/* Shown by order, not by counting requests: once two workers run, two
 * connections held at once are served by the two; one is killed; once a
 * replacement runs, two connections held at once are served by the
 * survivor and the replacement, never by the dead one. Failures are
 * recorded, not fatal, so the workers are always stopped. */
static void test_prefork_serves_from_several_workers_and_replaces_the_dead(void **state)
{
    ss_server *s = new_server(PREFORK, pid_handle, NULL);
    workers_wanted w = {0};
    pid_t first[2], after[2];
    served sv;
    int n;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    expect_true(wait_for(two_workers_up, &w, WAIT_LIMIT),
                "two workers did not start (%d running)", w.n);
    n = pids_of_two_held_connections(ss_server_address(s), first);
    expect_true(n == 2 && first[0] != first[1] &&
                known(w.pids, w.n, first[0]) && known(w.pids, w.n, first[1]),
                "two held connections: %d answers, pids %d and %d (the "
                "workers: %d and %d)", n, (int)first[0], (int)first[1],
                (int)w.pids[0], (int)w.pids[1]);
    if (n == 2 && known(w.pids, w.n, first[0])) {
        kill(first[0], SIGKILL);
        w.not = first[0];
        expect_true(wait_for(two_workers_up, &w, WAIT_LIMIT),
                    "no replacement for the killed worker %d",
                    (int)first[0]);
        n = pids_of_two_held_connections(ss_server_address(s), after);
        expect_true(n == 2, "after a worker was killed, %d of 2 held "
                    "connections were answered", n);
        expect_true(after[0] != first[0] && after[1] != first[0],
                    "the killed worker %d still served (%d, %d)",
                    (int)first[0], (int)after[0], (int)after[1]);
        expect_true(after[0] != after[1] &&
                    (after[0] == first[1] || after[1] == first[1]),
                    "the survivor %d and a replacement should serve the two: "
                    "got %d and %d", (int)first[1], (int)after[0],
                    (int)after[1]);
    }
    stop_serving(&sv);
    ss_server_close(s);
    ss_server_free(s);
    assert_true(no_children());
}

/* ---- close_timeout frees handlers blocked on idle clients ------------------ */

/* The handler (echo_lines, no timeout of its own) waits for an idle
 * client that stays connected: only close_timeout can end it. Shown by
 * order: stop and close return while the client is still connected and
 * silent, and the client then sees the end of the connection. A close
 * that waited for the client would wait for ever: the hang guard hangs
 * up for the client after WAIT_LIMIT, and the test fails. */
static void check_close_timeout(model m)
{
    ss_server_options o = {.close_timeout = 0.3};
    ss_server *s = new_server(m, echo_lines, &o);
    char line[64];
    hang_guard g;
    served sv;
    bool fired;
    ssize_t n;
    int fd;

    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    /* one answered request proves the connection is being handled */
    assert_int_equal(send_all_fd(fd, "one\n", 4), 0);
    assert_int_equal(recv_line(fd, line, sizeof line), 4);
    /* then the client idles */
    guard_client(&g, fd);
    stop_serving(&sv);
    ss_server_close(s);
    fired = guard_end(&g);
    expect_true(!fired, "%s: close waited for the idle client until it hung "
                "up (close_timeout 0.3)", model_name[m]);
    /* the server ended the connection: EOF (or a reset) */
    n = recv(fd, line, sizeof line, 0);
    expect_true(n == 0 || (n < 0 && errno == ECONNRESET), "%s: the idle "
                "connection is still open after close (%s)", model_name[m],
                n < 0 ? strerror(errno) : "data");
    ss_server_free(s);
    close(fd);
}

static void test_threading_close_timeout_frees_idle_handler(void **state)
{
    (void)state;
    check_close_timeout(THREADING);
}

static void test_forking_close_timeout_frees_idle_handler(void **state)
{
    (void)state;
    check_close_timeout(FORKING);
}

static void test_pool_close_timeout_frees_idle_handler(void **state)
{
    (void)state;
    check_close_timeout(POOL);
}

static void test_prefork_close_timeout_frees_idle_handler(void **state)
{
    (void)state;
    check_close_timeout(PREFORK);
}

static void test_sync_close_timeout_frees_idle_handler(void **state)
{
    (void)state;
    check_close_timeout(SYNC);
}

/* ---- shutdown and close under load ------------------------------------------ */

typedef struct busy_client {
    const ss_address *a;
    pthread_t         t;
    atomic_int        answered;
    int               partial;
} busy_client;

static atomic_int stop_clients, answers;

static void *busy_main(void *arg)
{
    busy_client *b = arg;
    char line[64], want[64];
    int fd = client_connect(b->a), i;
    ssize_t n;

    if (fd < 0)
        return NULL;
    for (i = 0; !atomic_load(&stop_clients); i++) {
        snprintf(want, sizeof want, "busy %d\n", i);
        if (send_all_fd(fd, want, strlen(want)) < 0)
            break;
        n = recv_line(fd, line, sizeof line);
        if (n <= 0)
            break;  /* closed: EOF or reset, never half a reply */
        if (strcmp(line, want) != 0) {
            b->partial++;
        } else {
            atomic_fetch_add(&b->answered, 1);
            atomic_fetch_add(&answers, 1);
        }
    }
    /* not close alone: a forked handler holds a copy of this descriptor
     * (it was forked from this process) */
    shutdown(fd, SHUT_RDWR);
    close(fd);
    return NULL;
}

static bool under_load(void *arg)
{
    (void)arg;
    return atomic_load(&answers) >= 200;
}

static void stop_the_clients(void *arg)
{
    (void)arg;
    atomic_store(&stop_clients, 1);
}

/* 100 clients talk without pause; shutdown and close come in the middle
 * of it. The clients never stop by themselves (until the test tells them,
 * afterwards), so only close_timeout can end their handlers: close
 * returning while they still talk shows it did, and no client sees half a
 * reply. A close that waited for them would wait for ever: the hang guard
 * stops the clients after WAIT_LIMIT, and the test fails. */
static void check_shutdown_under_load(model m)
{
    ss_server_options o = {.close_timeout = 0.5};
    ss_server *s = new_server(m, echo_lines, &o);
    busy_client b[100];
    int i, answered = 0, partial = 0;
    hang_guard g;
    served sv;
    bool fired;

    atomic_store(&stop_clients, 0);
    atomic_store(&answers, 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 100; i++) {
        b[i] = (busy_client){.a = ss_server_address(s)};
        pthread_create(&b[i].t, NULL, busy_main, &b[i]);
    }
    /* the load is on: answers are flowing */
    expect_true(wait_for(under_load, NULL, WAIT_LIMIT), "%s: only %d answers",
                model_name[m], atomic_load(&answers));
    guard_start(&g, WAIT_LIMIT, stop_the_clients, NULL);
    stop_serving(&sv);
    ss_server_close(s);
    fired = guard_end(&g);
    atomic_store(&stop_clients, 1);
    for (i = 0; i < 100; i++) {
        pthread_join(b[i].t, NULL);
        answered += atomic_load(&b[i].answered);
        partial += b[i].partial;
    }
    ss_server_free(s);
    expect_true(!fired, "%s: close waited for the busy clients until they "
                "stopped", model_name[m]);
    assert_int_equal(partial, 0);
    expect_true(answered > 0, "%s: nothing answered", model_name[m]);
}

static void test_threading_shutdown_and_close_under_load(void **state)
{
    (void)state;
    check_shutdown_under_load(THREADING);
}

static void test_pool_shutdown_and_close_under_load(void **state)
{
    (void)state;
    check_shutdown_under_load(POOL);
}

static void test_forking_shutdown_and_close_under_load(void **state)
{
    (void)state;
    check_shutdown_under_load(FORKING);
}

static void test_prefork_shutdown_and_close_under_load(void **state)
{
    (void)state;
    check_shutdown_under_load(PREFORK_THREADS);
}

/* ---- broadcast ------------------------------------------------------------ */

static int broadcast_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[128];
    ssize_t n;

    (void)c;
    while ((n = ss_readline(r, line, sizeof line)) > 0) {
        if (strncmp(line, "all ", 4) == 0) {
            int reached = ss_server_broadcast(s, line + 4, (size_t)n - 4, r);

            if (ss_printf(r, "reached %d\n", reached) < 0)
                return -EIO;
        } else if (ss_write(r, "ok\n", 3) < 0) {
            return -EIO;
        }
    }
    return 0;
}

static void check_broadcast(model m, int clients, int expect_reached)
{
    ss_server *s = new_server(m, broadcast_handle, NULL);
    int fd[16], i;
    char line[64], want[32];
    served sv;

    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < clients; i++) {
        fd[i] = client_connect(ss_server_address(s));
        /* answered: its handler is live */
        assert_int_equal(send_all_fd(fd[i], "hi\n", 3), 0);
        assert_int_equal(recv_line(fd[i], line, sizeof line), 3);
    }
    assert_int_equal(send_all_fd(fd[0], "all news\n", 9), 0);
    snprintf(want, sizeof want, "reached %d\n", expect_reached);
    assert_int_equal(recv_line(fd[0], line, sizeof line), (ssize_t)strlen(want));
    assert_string_equal(line, want);
    for (i = 1; i < clients && expect_reached > 0; i++) {
        /* exactly one copy, then the reply to our own next line */
        assert_int_equal(recv_line(fd[i], line, sizeof line), 5);
        assert_string_equal(line, "news\n");
        assert_int_equal(send_all_fd(fd[i], "x\n", 2), 0);
        assert_int_equal(recv_line(fd[i], line, sizeof line), 3);
        assert_string_equal(line, "ok\n");
    }
    for (i = 0; i < clients; i++) {
        shutdown(fd[i], SHUT_WR);
        close(fd[i]);
    }
    stop_serving(&sv);
    ss_server_free(s);
}

static void test_broadcast_reaches_every_other_client_once_threading(void **state)
{
    (void)state;
    check_broadcast(THREADING, 10, 9);
}

static void test_broadcast_reaches_every_other_client_once_pool(void **state)
{
    (void)state;
    check_broadcast(POOL, 6, 5);
}

static void test_broadcast_in_a_sync_server_reaches_nobody_else(void **state)
{
    (void)state;
    check_broadcast(SYNC, 1, 0);
}

static void test_broadcast_is_enotsup_for_forking_and_prefork(void **state)
{
    ss_server *f = new_server(FORKING, echo_lines, NULL);
    ss_server *p = new_server(PREFORK, echo_lines, NULL);

    (void)state;
    assert_int_equal(ss_server_broadcast(f, "x", 1, NULL), -ENOTSUP);
    assert_int_equal(ss_server_broadcast(p, "x", 1, NULL), -ENOTSUP);
    assert_int_equal(ss_server_broadcast(NULL, "x", 1, NULL), -EINVAL);
    ss_server_free(f);
    ss_server_free(p);
}

#define FLOOD_BLOCKS 64

static int stalled_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    static char block[1 << 16];
    char line[64];
    int i, reached = 0, small = 16384;

    (void)c;
    if (ss_readline(r, line, sizeof line) <= 0)
        return 0;
    if (strncmp(line, "flood", 5) != 0) {
        /* The stalled one: a small send buffer, so that the flood is
         * far more than its socket buffers hold, whatever the system's
         * limits; then it echoes until its connection ends. */
        setsockopt(ss_request_fd(r), SOL_SOCKET, SO_SNDBUF, &small,
                   sizeof small);
        return echo_lines(r, c, s);
    }
    for (i = 0; i < FLOOD_BLOCKS; i++)
        reached += ss_server_broadcast(s, block, sizeof block, r);
    ss_printf(r, "reached %d\n", reached);
    return 0;
}

/* 4 MiB broadcast at a client that reads nothing: its connection must be
 * dropped once a message could not go out within the broadcast's timeout
 * (1 s: the handler has none), instead of blocking the broadcaster on it.
 * Shown by order and content: the broadcaster gets its reply (bounded by
 * its receive timeout, WAIT_LIMIT: a broadcaster that blocked, or waited
 * the timeout for each of the 64 messages, fails there), having reached
 * the stalled client with fewer than all of them; and the stalled client,
 * still connected, finds its connection ended. Its handler has no timeout
 * that could end it instead. */
static void test_a_stalled_receiver_does_not_stall_the_broadcaster(void **state)
{
    ss_handler h = {.handle = stalled_handle};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, NULL);
    char line[64], buf[65536];
    size_t got = 0;
    served sv;
    int stalled, sender, reached = -1;
    ssize_t n;

    (void)state;
    serve_in_thread(&sv, s, 0.05);
    stalled = client_connect(ss_server_address(s));
    send_all_fd(stalled, "wait\nping\n", 10);
    /* the echo of its second line: its handler is live (then it never
     * reads again until the end) */
    assert_int_equal(recv_line(stalled, line, sizeof line), 5);
    sender = client_connect(ss_server_address(s));
    send_all_fd(sender, "flood\n", 6);
    n = recv_line(sender, line, sizeof line);
    expect_true(n > 0 && sscanf(line, "reached %d", &reached) == 1,
                "the broadcaster's reply, got '%s' (%s)", n > 0 ? line : "",
                n < 0 ? strerror(errno) : "EOF");
    expect_true(reached >= 0 && reached < FLOOD_BLOCKS, "the stalled client "
                "took %d of %d blocks of 64 KiB", reached, FLOOD_BLOCKS);
    /* what it had room for, then the end of its connection */
    while ((n = recv(stalled, buf, sizeof buf, 0)) > 0 &&
           got <= (size_t)FLOOD_BLOCKS * sizeof buf)
        got += (size_t)n;
    expect_true(n == 0 || (n < 0 && errno == ECONNRESET), "the stalled "
                "client's connection should have ended after %zu bytes (%s)",
                got, n < 0 ? strerror(errno) : "more data");
    close(stalled);
    close(sender);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- ErrorHandlerTest, threading and forking ------------------------------ */

static const char *error_log_path;

static void append_log(const char *text)
{
    int fd = open(error_log_path, O_WRONLY | O_APPEND | O_CREAT, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int bad_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    (void)r, (void)c;
    append_log("Handler called\n");
    return *(int *)ss_server_data(s);
}

static void log_error(ss_server *s, ss_request *r, const ss_address *c, int e)
{
    (void)s, (void)r, (void)c, (void)e;
    append_log("Error handled\n");
}

static atomic_int done_count;

static void done_shutdown_request(ss_server *s, ss_request *r)
{
    ss_server_base_ops(s)->shutdown_request(s, r);
    atomic_fetch_add(&done_count, 1);
}

static bool done_once(void *arg)
{
    (void)arg;
    return atomic_load(&done_count) > 0;
}

static void check_error_handler(model m, int exception, const char *expect)
{
    ss_handler h = {.handle = bad_handle};
    ss_server_options o = {.data = &exception};
    ss_server_ops ov = {.handle_error = log_error,
                        .shutdown_request = done_shutdown_request};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    char buf[128] = "";
    int fd;

    error_log_path = temp_path("log");
    use_model(s, m);
    ss_server_override(s, &ov);
    atomic_store(&done_count, 0);
    fd = client_connect(ss_server_address(s));
    close(fd);
    assert_int_equal(ss_handle_request(s), 0);
    ss_server_close(s);     /* waits for the thread or the child */
    if (m == THREADING)     /* the thread called shutdown_request */
        assert_true(wait_for(done_once, NULL, WAIT_LIMIT));
    ss_server_free(s);
    fd = open(error_log_path, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(read(fd, buf, sizeof buf - 1) >= 0);
    close(fd);
    unlink(error_log_path);
    assert_string_equal(buf, expect);
}

static void test_threading_handled(void **state)
{
    (void)state;
    check_error_handler(THREADING, -EINVAL, "Handler called\nError handled\n");
}

static void test_threading_not_handled(void **state)
{
    (void)state;
    check_error_handler(THREADING, SS_ABORT, "Handler called\n");
}

static void test_forking_handled(void **state)
{
    (void)state;
    check_error_handler(FORKING, -EINVAL, "Handler called\nError handled\n");
}

static void test_forking_not_handled(void **state)
{
    (void)state;
    check_error_handler(FORKING, SS_ABORT, "Handler called\n");
}

static void test_forking_close_immediately(void **state)
{
    ss_server *s = new_server(FORKING, echo_lines, NULL);

    (void)state;
    ss_server_close(s);
    assert_int_equal(ss_server_fileno(s), -1);
    ss_server_free(s);
}

/* ---- what a forking child sees of its server ------------------------------ */

static size_t child_state_bytes;    /* the handler's state_size */
static atomic_int dirty_states;

/* verify_request runs in the parent, on the request memory the forking
 * model reuses from one request to the next: each request's state must
 * start zeroed even though the previous one's was written here. It then
 * fills the state with a pattern that starts with the state's address. */
static bool check_then_dirty_state(ss_server *s, ss_request *r,
                                   const ss_address *c)
{
    unsigned char *st = ss_request_state(r);
    size_t i;

    (void)s, (void)c;
    for (i = 0; i < child_state_bytes; i++)
        if (st[i] != 0) {
            atomic_fetch_add(&dirty_states, 1);
            break;
        }
    memset(st, 0xa5, child_state_bytes);
    memcpy(st, &st, sizeof st);
    return true;
}

/* The child reports the handlers its server tracks and whether its state
 * holds what verify_request wrote in the parent, at the same address, then
 * echoes. */
static int report_child_view(ss_request *r, const ss_address *c, ss_server *s)
{
    const unsigned char *st = ss_request_state(r);
    const unsigned char *where;
    char line[64];
    size_t i;
    int n, err;

    memcpy(&where, st, sizeof where);
    for (i = sizeof where; i < child_state_bytes; i++)
        if (st[i] != 0xa5)
            break;
    n = snprintf(line, sizeof line, "%d %s\n", ss_server_active_handlers(s),
                 where != st ? "moved"
                 : i == child_state_bytes ? "state" : "lost");
    if ((err = ss_sendall(r, line, (size_t)n)) < 0)
        return err;
    return echo_lines(r, c, s);
}

/* End a connection to a forking server: shutdown, not close alone, since
 * the child holds a copy of this client's descriptor too (it was forked
 * from this process); then wait for the handler's EOF. */
static void end_exchange(int fd)
{
    char line[64];

    shutdown(fd, SHUT_WR);
    assert_int_equal(recv_line(fd, line, sizeof line), 0);
    close(fd);
}

static bool has_handlers(void *arg)
{
    return ss_server_active_handlers(arg) >= 1;
}

/* close_timeout is close's to apply: a shutdown alone does not cut a
 * handler thread's I/O short, however long after it the client speaks.
 * (The drain a shutdown starts bounds only a handler that runs on the
 * serving thread, which keeps serve_forever from returning.) */
static void test_shutdown_alone_does_not_cut_handler_threads(void **state)
{
    ss_handler h = {.handle = echo_line_handle};
    ss_server_options o = {.close_timeout = 0.2};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, &o);
    char line[64];
    served sv;
    int fd;

    (void)state;
    assert_non_null(s);
    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_true(wait_for(has_handlers, s, WAIT_LIMIT));
    stop_serving(&sv);      /* shutdown; the handler waits for its line */
    sleep_ms(500);          /* well past close_timeout */
    assert_int_equal(send_all_fd(fd, "still here\n", 11), 0);
    expect_true(recv_line(fd, line, sizeof line) == 11, "no echo: %s",
                strerror(errno));
    assert_string_equal(line, "still here\n");
    close(fd);
    ss_server_close(s);
    assert_int_equal(ss_server_active_handlers(s), 0);
    ss_server_free(s);
}

/* ss_server_free cannot wait for ever for handlers stuck on idle clients,
 * even with no_block_on_close: they get close_timeout (0 here: none), then
 * their connections are shut down, and the clients see the end. */
static void check_free_cuts_idle_handlers(model m)
{
    ss_server_options o = {.no_block_on_close = true};
    ss_server *s = new_server(m, echo_line_handle, &o);
    char line[64];
    hang_guard g;
    served sv;
    int fd;

    serve_in_thread(&sv, s, 0.05);
    fd = client_connect(ss_server_address(s));
    assert_true(fd >= 0);
    assert_true(wait_for(has_handlers, s, WAIT_LIMIT));
    stop_serving(&sv);
    guard_client(&g, fd);
    ss_server_close(s);     /* returns at once: no_block_on_close */
    ss_server_free(s);      /* must not wait for the idle client */
    expect_true(!guard_end(&g), "%s: ss_server_free waited for the idle "
                "client until it hung up", model_name[m]);
    assert_int_equal(recv_line(fd, line, sizeof line), 0);    /* the end */
    close(fd);
}

static void test_free_does_not_wait_for_idle_clients(void **state)
{
    (void)state;
    check_free_cuts_idle_handlers(THREADING);
    check_free_cuts_idle_handlers(POOL);
}

static atomic_int flood_err;

/* Reply to one datagram with up to 4,000 more, to a client that does not
 * read: the replies soon block. */
static int flood_replies(ss_request *r, const ss_address *c, ss_server *s)
{
    static const char block[1024];
    int i, err = 0;

    (void)c, (void)s;
    for (i = 0; i < 4000 && err == 0; i++)
        err = ss_sendall(r, block, sizeof block);
    atomic_store(&flood_err, err);
    return 0;
}

/* A threaded datagram handler whose reply blocks on a client that does
 * not read: close waits for it (replies need the socket) but only
 * close_timeout, then the reply fails with -ESHUTDOWN and close returns.
 * No connection to shut down here, so the drain alone ends it: the one a
 * shutdown starts (serve_forever), or the one close starts itself
 * (ss_handle_request, no shutdown at all). */
static void check_close_bounds_a_blocked_datagram_reply(bool serve)
{
    ss_handler h = {.handle = flood_replies};
    ss_server_options o = {.close_timeout = 0.3};
    ss_server *s = ss_threading_unix_datagram_server_new(temp_path("flood"),
                                                         &h, &o);
    char path[108];
    hang_guard g;
    served sv;
    int fd;

    assert_non_null(s);
    atomic_store(&flood_err, 1);
    if (serve)
        serve_in_thread(&sv, s, 0.05);
    fd = client_dgram(ss_server_address(s), path, sizeof path);
    assert_true(fd >= 0);
    assert_int_equal(sendto(fd, "go", 2, 0,
                            (const struct sockaddr *)&ss_server_address(s)->storage,
                            ss_server_address(s)->len), 2);
    if (!serve)
        assert_int_equal(ss_handle_request(s), 0);
    assert_true(wait_for(has_handlers, s, WAIT_LIMIT));
    sleep_ms(200);          /* the replies fill the client's queue */
    if (serve)
        stop_serving(&sv);
    guard_client(&g, fd);
    ss_server_close(s);
    expect_true(!guard_end(&g), "close waited for the blocked reply until "
                "the client read (%s)", serve ? "after serve_forever" :
                "no shutdown");
    assert_int_equal(atomic_load(&flood_err), -ESHUTDOWN);
    ss_server_free(s);
    close(fd);
    unlink(path);
}

static void test_close_bounds_a_blocked_datagram_reply(void **state)
{
    (void)state;
    check_close_bounds_a_blocked_datagram_reply(true);
    check_close_bounds_a_blocked_datagram_reply(false);
}

/* With a handler state of `bytes` (at least a pointer's): small ones share
 * request memory kept for the next request, large ones do not. */
static void check_forking_child_view(size_t bytes)
{
    /* the timeout: a hang guard only, for a test that failed half-way */
    ss_handler h = {.handle = report_child_view, .state_size = bytes,
                    .timeout = WAIT_LIMIT};
    ss_server_ops ov = {.verify_request = check_then_dirty_state};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, NULL);
    char line[64];
    served sv;
    int i, fd;

    child_state_bytes = bytes;
    expect_true(s != NULL, "%s", ss_last_error());
    assert_int_equal(ss_server_use_forking(s), 0);
    assert_int_equal(ss_server_override(s, &ov), 0);
    atomic_store(&dirty_states, 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 20; i++) {
        fd = client_connect(ss_server_address(s));
        assert_true(fd >= 0);
        expect_true(recv_line(fd, line, sizeof line) > 0, "request %d: %s", i,
                    strerror(errno));
        /* The child has no children of its own, and the state the
         * parent wrote. */
        assert_string_equal(line, "0 state\n");
        /* The parent counts the child, which waits for our EOF (once the
         * parent has returned from fork: the child may answer first). */
        assert_true(wait_for(has_handlers, s, WAIT_LIMIT));
        end_exchange(fd);
    }
    stop_serving(&sv);
    ss_server_close(s);
    assert_int_equal(ss_server_active_handlers(s), 0);
    ss_server_free(s);
    assert_int_equal(atomic_load(&dirty_states), 0);
}

static void test_forking_child_view_of_its_server(void **state)
{
    (void)state;
    check_forking_child_view(48);
}

/* Around the size where requests stop sharing the kept memory (4 KiB in
 * all), and far above it. */
static void test_forking_child_view_large_state(void **state)
{
    (void)state;
    check_forking_child_view(3500);
    check_forking_child_view(4096);
    check_forking_child_view(5000);
    check_forking_child_view(100000);
}

/* Where the parent's verify_request saw a datagram request's state and
 * packet: the child must find them at the same addresses. */
typedef struct seen_in_parent {
    const void *state;
    const void *packet;
} seen_in_parent;

static bool record_addresses(ss_server *s, ss_request *r, const ss_address *c)
{
    seen_in_parent *seen = ss_request_state(r);
    size_t len;

    (void)s, (void)c;
    seen->state = seen;
    seen->packet = ss_request_packet(r, &len);
    return true;
}

static int echo_packet_in_place(ss_request *r, const ss_address *c,
                                ss_server *s)
{
    const seen_in_parent *seen = ss_request_state(r);
    size_t len;
    const void *p = ss_request_packet(r, &len);

    (void)c, (void)s;
    if (seen->state != seen || seen->packet != p)
        return ss_sendall(r, "moved", 5);
    return ss_sendall(r, p, len);
}

/* Datagram requests differ in size: the reused request memory must fit
 * every packet, growing and shrinking, with the handler's state before
 * it, and keep them where the parent's hooks saw them. */
static void test_forking_datagrams_of_changing_sizes(void **state)
{
    static const size_t sizes[] = {1, 3000, 10, 8000, 100, 8192, 0, 2, 5000,
                                   300};
    ss_handler h = {.handle = echo_packet_in_place,
                    .state_size = sizeof(seen_in_parent)};
    ss_server_ops ov = {.verify_request = record_addresses};
    ss_server *s = ss_forking_udp_server_new("127.0.0.1:0", &h, NULL);
    const ss_address *a;
    char out[8192], in[8193];
    size_t i, j;
    served sv;
    int fd;

    (void)state;
    expect_true(s != NULL, "%s", ss_last_error());
    assert_int_equal(ss_server_override(s, &ov), 0);
    a = ss_server_address(s);
    serve_in_thread(&sv, s, 0.05);
    fd = client_dgram(a, NULL, 0);
    assert_true(fd >= 0);
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ssize_t n;

        for (j = 0; j < sizes[i]; j++)
            out[j] = (char)('a' + (i * 7 + j) % 26);
        n = sendto(fd, out, sizes[i], 0, (const struct sockaddr *)&a->storage,
                   a->len);
        assert_int_equal(n, (ssize_t)sizes[i]);
        n = recv(fd, in, sizeof in, 0);
        expect_true(n == (ssize_t)sizes[i], "packet %zu: %zd bytes back of "
                    "%zu (%s)", i, n, sizes[i], n < 0 ? strerror(errno) : "");
        assert_memory_equal(in, out, sizes[i]);
    }
    close(fd);
    stop_serving(&sv);
    ss_server_free(s);
}

/* A process forked after the server was set up (a daemon) serves with a
 * table of children of its own: it neither waits for nor signals the
 * children of the process it was forked from, and stops having reaped
 * every one of its own. */
static int daemon_serves(ss_server *s, int requests)
{
    int i, err;

    for (i = 0; i < requests; i++)
        if ((err = ss_handle_request(s)) < 0) {
            fprintf(stderr, "daemon: handle_request: %s\n", ss_strerror(err));
            return 1;
        }
    ss_server_close(s);
    if (ss_server_active_handlers(s) != 0) {
        fprintf(stderr, "daemon: %d handlers after close\n",
                ss_server_active_handlers(s));
        return 1;
    }
    if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD) {
        fprintf(stderr, "daemon: children left unreaped\n");
        return 1;
    }
    ss_server_free(s);
    return 0;
}

/* One echo exchange on a new connection; the connection stays open. */
static int exchange(ss_server *s, const char *text)
{
    char line[64];
    int fd = client_connect(ss_server_address(s));

    assert_true(fd >= 0);
    assert_int_equal(send_all_fd(fd, text, strlen(text)), 0);
    expect_true(recv_line(fd, line, sizeof line) > 0, "%s: %s", text,
                strerror(errno));
    assert_string_equal(line, text);
    return fd;
}

static void test_forking_server_serves_after_the_process_forks(void **state)
{
    /* timeouts: hang guards only, for a test that failed half-way */
    ss_handler h = {.handle = echo_lines, .timeout = WAIT_LIMIT};
    ss_server_options o = {.timeout = WAIT_LIMIT, .close_timeout = WAIT_LIMIT};
    ss_server *s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    int i, fd, held, status = -1;
    char text[64];
    double end;
    pid_t daemon;

    (void)state;
    expect_true(s != NULL, "%s", ss_last_error());
    assert_int_equal(ss_server_use_forking(s), 0);
    /* The parent has a live child of its own when the daemon forks (the
     * connection waits in the backlog until handle_request accepts it). */
    held = client_connect(ss_server_address(s));
    assert_true(held >= 0);
    assert_int_equal(send_all_fd(held, "held\n", 5), 0);
    assert_int_equal(ss_handle_request(s), 0);
    expect_true(recv_line(held, text, sizeof text) > 0, "held: %s",
                strerror(errno));
    assert_string_equal(text, "held\n");
    assert_int_equal(ss_server_active_handlers(s), 1);
    daemon = fork();
    assert_true(daemon >= 0);
    if (daemon == 0)
        _exit(daemon_serves(s, 3));
    for (i = 0; i < 3; i++) {
        snprintf(text, sizeof text, "request %d\n", i);
        fd = exchange(s, text);
        end_exchange(fd);
    }
    end = now() + WAIT_LIMIT;
    while (waitpid(daemon, &status, WNOHANG) == 0 && now() < end)
        sleep_ms(10);
    if (now() >= end) {
        kill(daemon, SIGKILL);
        waitpid(daemon, &status, 0);
    }
    /* The parent's child was neither signalled nor reaped by the daemon:
     * it still answers, and the parent still counts it. */
    assert_int_equal(send_all_fd(held, "still here\n", 11), 0);
    expect_true(recv_line(held, text, sizeof text) > 0, "held child: %s",
                strerror(errno));
    assert_string_equal(text, "still here\n");
    assert_int_equal(ss_server_active_handlers(s), 1);
    end_exchange(held);
    expect_true(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "the daemon failed (status %#x)", status);
    ss_server_close(s);
    assert_int_equal(ss_server_active_handlers(s), 0);
    ss_server_free(s);
}

/* ---- a failed pthread_create ends one request ------------------------------ */

static atomic_int thread_errors;

static void count_thread_error(ss_server *s, ss_request *r,
                               const ss_address *c, int e)
{
    (void)s, (void)r, (void)c, (void)e;
    atomic_fetch_add(&thread_errors, 1);
}

static void test_failed_pthread_create_ends_that_request_only(void **state)
{
    ss_handler h = {.handle = echo_lines};
    /* a stack no machine can map: every pthread_create fails */
    ss_server_options o = {.thread_stack_size = (size_t)1 << 46};
    ss_server_ops ov = {.handle_error = count_thread_error};
    ss_server *s = ss_threading_tcp_server_new("127.0.0.1:0", &h, &o);
    char c;
    served sv;
    int i, fd;

    (void)state;
    assert_non_null(s);
    ss_server_override(s, &ov);
    atomic_store(&thread_errors, 0);
    serve_in_thread(&sv, s, 0.05);
    for (i = 0; i < 3; i++) {   /* each is closed; the server goes on */
        fd = client_connect(ss_server_address(s));
        assert_int_equal(recv(fd, &c, 1, 0), 0);
        close(fd);
    }
    assert_int_equal(atomic_load(&thread_errors), 3);
    stop_serving(&sv);
    ss_server_free(s);
}

/* ---- Ctrl-C and SIGTERM ------------------------------------------------- */

/* In a child process: serve until a signal, then close and exit 0. */
static void signal_child(model m, int ready_fd)
{
    ss_server_options o = {.close_timeout = 0.5};
    ss_server *s = new_server(m, echo_lines, &o);
    char text[SS_ADDRESS_STRLEN + 1];
    int rc;

    ss_address_format(ss_server_address(s), text, sizeof text - 1);
    strcat(text, "\n");
    ss_server_shutdown_on_signals(s);
    if (write(ready_fd, text, strlen(text)) < 0)
        _exit(3);
    rc = ss_serve_forever(s, 0.5);
    ss_server_close(s);
    ss_server_shutdown_on_signals(NULL);
    ss_server_free(s);
    _exit(rc == 0 ? 0 : 1);
}

static void check_signal_stops(model m, int sig)
{
    int p[2], status = -1, fd;
    char text[SS_ADDRESS_STRLEN + 1] = "", line[16];
    ss_address a;
    pid_t pid, rc;
    double end;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        signal_child(m, p[1]);
    }
    close(p[1]);
    assert_true(read(p[0], text, sizeof text - 1) > 0);
    close(p[0]);
    *strchr(text, '\n') = '\0';
    assert_int_equal(ss_address_parse(&a, text), 0);
    fd = client_connect(&a);    /* an idle client stays connected */
    assert_int_equal(send_all_fd(fd, "x\n", 2), 0);
    assert_int_equal(recv_line(fd, line, sizeof line), 2);
    kill(pid, sig);
    /* It stops while the client is still connected and idle: only
     * close_timeout (0.5 s) can end that handler. A server that waited
     * for the client would never exit: WAIT_LIMIT is the hang guard. */
    for (end = now() + WAIT_LIMIT; (rc = waitpid(pid, &status, WNOHANG)) == 0 &&
         now() < end;)
        sleep_ms(5);
    if (rc == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    close(fd);
    expect_true(rc == pid, "%s: still running %.0f s after signal %d, with "
                "an idle client", model_name[m], WAIT_LIMIT, sig);
    expect_true(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "%s: status 0x%x after signal %d", model_name[m], status, sig);
}

static void test_sigterm_stops_a_threading_server_gracefully(void **state)
{
    (void)state;
    check_signal_stops(THREADING, SIGTERM);
}

static void test_sigint_stops_a_sync_server_gracefully(void **state)
{
    (void)state;
    check_signal_stops(SYNC, SIGINT);
}

static void test_sigterm_stops_a_prefork_server_gracefully(void **state)
{
    (void)state;
    check_signal_stops(PREFORK, SIGTERM);
}

static void test_sigint_stops_a_forking_server_gracefully(void **state)
{
    (void)state;
    check_signal_stops(FORKING, SIGINT);
}

/* ---- a prefork supervisor that dies ------------------------------------- */

/* In a child process: a prefork server, serving until it is killed. */
static void supervisor_child(int ready_fd)
{
    ss_server_options o = {.close_timeout = 0.5};
    ss_server *s = new_server(PREFORK, pid_handle, &o);
    char text[SS_ADDRESS_STRLEN + 1];

    ss_address_format(ss_server_address(s), text, sizeof text - 1);
    strcat(text, "\n");
    if (write(ready_fd, text, strlen(text)) < 0)
        _exit(3);
    (void)ss_serve_forever(s, 0.05);
    _exit(4);   /* not reached: the test kills this process */
}

/* The live children of process `pid`'s main thread: up to max to out. */
static int children_of(pid_t pid, pid_t *out, int max)
{
    char path[64];
    FILE *f;
    int n = 0, child;

    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid,
             (int)pid);
    if (!(f = fopen(path, "r")))
        return 0;
    while (n < max && fscanf(f, "%d", &child) == 1)
        out[n++] = child;
    fclose(f);
    return n;
}

typedef struct supervised {
    pid_t supervisor;
    pid_t workers[8];
    int   n;
} supervised;

static bool workers_up(void *arg)
{
    supervised *sv = arg;

    sv->n = children_of(sv->supervisor, sv->workers, 8);
    return sv->n == 2;     /* use_model: prefork of 2 */
}

/* A supervisor killed outright (SIGKILL: it can stop nobody) takes its
 * workers with it: each gets SIGTERM from the kernel, ends its idle
 * client at close_timeout and exits 0, and the port is closed. Without
 * that they would serve on unsupervised for ever. The test is their
 * subreaper, so the orphans come to it and are reaped. */
static void test_prefork_workers_stop_when_the_supervisor_dies(void **state)
{
    supervised sv = {0};
    int p[2], status, fd, i, exited = 0;
    char text[SS_ADDRESS_STRLEN + 1] = "", line[32];
    ss_address a;
    ssize_t got;
    pid_t rc;
    double end;

    (void)state;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    assert_int_equal(pipe(p), 0);
    sv.supervisor = fork();
    assert_true(sv.supervisor >= 0);
    if (sv.supervisor == 0) {
        close(p[0]);
        supervisor_child(p[1]);
    }
    close(p[1]);
    assert_true(read(p[0], text, sizeof text - 1) > 0);
    close(p[0]);
    *strchr(text, '\n') = '\0';
    assert_int_equal(ss_address_parse(&a, text), 0);
    expect_true(wait_for(workers_up, &sv, WAIT_LIMIT),
                "%d workers of 2", sv.n);

    /* A client in a worker's hands, idle, when the supervisor dies. */
    fd = client_connect(&a);
    assert_int_equal(send_all_fd(fd, "pid\n", 4), 0);
    assert_true(recv_line(fd, line, sizeof line) > 0);
    assert_true(known(sv.workers, sv.n, (pid_t)atoi(line)));

    kill(sv.supervisor, SIGKILL);
    assert_int_equal(waitpid(sv.supervisor, &status, 0), sv.supervisor);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    for (end = now() + WAIT_LIMIT; exited < sv.n && now() < end;) {
        for (i = 0; i < sv.n; i++) {
            if (sv.workers[i] == 0 ||
                (rc = waitpid(sv.workers[i], &status, WNOHANG)) == 0)
                continue;
            expect_true(rc == sv.workers[i] && WIFEXITED(status) &&
                        WEXITSTATUS(status) == 0,
                        "worker %d: waitpid %d, status 0x%x",
                        (int)sv.workers[i], (int)rc, status);
            sv.workers[i] = 0;
            exited++;
        }
        sleep_ms(5);
    }
    for (i = 0; i < sv.n; i++)      /* an orphan left serving: stop it */
        if (sv.workers[i] != 0) {
            kill(sv.workers[i], SIGKILL);
            waitpid(sv.workers[i], &status, 0);
        }
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    got = recv(fd, line, sizeof line, 0);
    close(fd);
    expect_true(exited == sv.n, "%d of %d workers still serving %.0f s "
                "after their supervisor died", sv.n - exited, sv.n,
                WAIT_LIMIT);
    assert_int_equal(got, 0);   /* EOF: the worker closed it */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    expect_true(connect(fd, (const struct sockaddr *)&a.storage, a.len) < 0 &&
                errno == ECONNREFUSED, "the port still takes connections");
    close(fd);
}

/* ---- a signal that another thread of a worker catches ------------------- */

/* A prefork worker stops on a SIGTERM that one of its pool threads catches:
 * the kernel hands a process's signal to any thread that does not block
 * it, and the serving thread blocks signals now and then (pthread_create
 * does, for one). Here the serving thread of the first worker to serve a
 * request sends its process SIGTERM while it blocks SIGTERM itself, waits
 * until another thread has taken it (or for a second, if none does), and
 * unblocks it. The worker must then end as its stop does, exit status 0,
 * and be replaced. ThreadSanitizer lost such a signal in a pool thread of
 * a worker forked from a multithreaded process: the worker served on, and
 * the supervisor's stop waited for it for ever. */
typedef struct self_signal {
    pid_t      test;        /* the test's process: the supervisor */
    atomic_int sent;        /* shared with the workers: sent once in all */
} self_signal;

static self_signal *selfsig;
static _Atomic double worker_served_at;     /* each worker's own copy */
static atomic_int  worker_exits_0;          /* the supervisor's log lines */

/* One line, one answer: not to the end of the stream, which a worker
 * forked while the test's client was connected would never see (it holds
 * the client's end too). */
static int pid_then_mark(ss_request *r, const ss_address *c, ss_server *s)
{
    char line[64];
    double none = 0;
    int rc = 0;

    (void)c, (void)s;
    if (ss_readline(r, line, sizeof line) > 0 &&
        ss_printf(r, "%d\n", (int)getpid()) < 0)
        rc = -EIO;
    atomic_compare_exchange_strong(&worker_served_at, &none, now());
    return rc;
}

static void sigterm_while_blocked_here(ss_server *s)
{
    sigset_t term, old, pending;
    int expected = 0;
    double end;

    ss_server_base_ops(s)->service_actions(s);
    /* (a moment after the request, so that the pool threads are back
     * asleep, where a signal they catch would wait longest) */
    if (getpid() == selfsig->test || atomic_load(&worker_served_at) == 0 ||
        now() < atomic_load(&worker_served_at) + 0.2 ||
        !atomic_compare_exchange_strong(&selfsig->sent, &expected, 1))
        return;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, &old);
    kill(getpid(), SIGTERM);
    for (end = now() + 1.0; now() < end; sleep_ms(1))
        if (sigpending(&pending) == 0 && !sigismember(&pending, SIGTERM))
            break;      /* another thread took it */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void count_exits(void *data, const char *line)
{
    (void)data;
    if (strstr(line, "exited with status 0"))
        atomic_fetch_add(&worker_exits_0, 1);
}

typedef struct replaced {
    pid_t first;            /* the worker that sent itself the signal */
    served sv;
} replaced;

static bool signal_sent(void *arg)
{
    (void)arg;
    return atomic_load(&selfsig->sent) == 1;
}

/* A worker other than the first answers, and the first's exit (status 0)
 * was logged. */
static bool another_worker_answers(void *arg)
{
    replaced *t = arg;
    char line[32] = "";
    int fd = client_connect(ss_server_address(t->sv.server));
    bool other = false;

    if (fd >= 0 && send_all_fd(fd, "pid\n", 4) == 0 &&
        recv_line(fd, line, sizeof line) > 0)
        other = (pid_t)atoi(line) != t->first;
    if (fd >= 0)
        close(fd);
    return other && atomic_load(&worker_exits_0) > 0;
}

static void test_prefork_worker_stops_on_a_signal_a_pool_thread_catches(
    void **state)
{
    static const ss_server_ops hooks = {
        .service_actions = sigterm_while_blocked_here};
    /* (close_timeout: a worker forked while a client of the test was
     * connected holds that client's end too, so its handler would never
     * see the end of the stream) */
    ss_server_options o = {.log = count_exits, .close_timeout = 0.5};
    ss_handler h = {.handle = pid_then_mark};
    replaced t = {0};
    char line[32];
    ss_server *s;
    int fd;

    (void)state;
    selfsig = mmap(NULL, sizeof *selfsig, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(selfsig != MAP_FAILED);
    selfsig->test = getpid();
    atomic_store(&selfsig->sent, 0);
    atomic_store(&worker_exits_0, 0);
    s = ss_tcp_server_new("127.0.0.1:0", &h, &o);
    assert_non_null(s);
    assert_int_equal(ss_server_use_thread_pool(s, 2, 4), 0);
    assert_int_equal(ss_server_use_prefork(s, 1), 0);
    assert_int_equal(ss_server_override(s, &hooks), 0);
    serve_in_thread(&t.sv, s, 0.05);

    fd = client_connect(ss_server_address(s));
    assert_int_equal(send_all_fd(fd, "pid\n", 4), 0);
    assert_true(recv_line(fd, line, sizeof line) > 0);
    close(fd);
    t.first = (pid_t)atoi(line);
    /* no request meanwhile: the pool threads sleep when it is sent */
    expect_true(wait_for(signal_sent, NULL, WAIT_LIMIT),
                "the worker did not send itself the signal");
    expect_true(wait_for(another_worker_answers, &t, WAIT_LIMIT),
                "worker %d still serving %.0f s after a SIGTERM that another "
                "of its threads caught (exits with status 0 logged: %d)",
                (int)t.first, WAIT_LIMIT, atomic_load(&worker_exits_0));
    stop_serving(&t.sv);
    ss_server_free(s);
    munmap(selfsig, sizeof *selfsig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_threading_handled),
        TEST(test_threading_not_handled),
        TEST(test_forking_handled),
        TEST(test_forking_not_handled),
        TEST(test_forking_close_immediately),
        TEST(test_shutdown_alone_does_not_cut_handler_threads),
        TEST(test_free_does_not_wait_for_idle_clients),
        TEST(test_close_bounds_a_blocked_datagram_reply),
        TEST(test_forking_child_view_of_its_server),
        TEST(test_forking_child_view_large_state),
        TEST(test_forking_datagrams_of_changing_sizes),
        TEST(test_forking_server_serves_after_the_process_forks),
        TEST(test_mixins_refuse_bad_combinations),
        TEST(test_sync_200_clients_50_requests),
        TEST(test_threading_200_clients_50_requests),
        TEST(test_forking_200_clients_50_requests),
        TEST(test_pool_200_clients_50_requests),
        TEST(test_prefork_200_clients_50_requests),
        TEST(test_prefork_threading_200_clients_50_requests),
        TEST(test_prefork_pool_200_clients_50_requests),
        TEST(test_threading_threads_back_to_baseline_after_1000_requests),
        TEST(test_pool_threads_back_to_baseline_after_1000_requests),
        TEST(test_prefork_threads_back_to_baseline_after_1000_requests),
        TEST(test_forking_no_zombies_after_1000_requests),
        TEST(test_threading_reaps_finished_threads_while_serving),
        TEST(test_forking_never_exceeds_max_children),
        TEST(test_pool_bounds_concurrency_and_refuses_nobody),
        TEST(test_pool_serves_datagrams),
        TEST(test_pool_serving_thread_does_not_preempt_handlers),
        TEST(test_pool_keeps_the_policy_the_application_chose),
        TEST(test_prefork_serves_from_several_workers_and_replaces_the_dead),
        TEST(test_sync_close_timeout_frees_idle_handler),
        TEST(test_threading_close_timeout_frees_idle_handler),
        TEST(test_forking_close_timeout_frees_idle_handler),
        TEST(test_pool_close_timeout_frees_idle_handler),
        TEST(test_prefork_close_timeout_frees_idle_handler),
        TEST(test_threading_shutdown_and_close_under_load),
        TEST(test_pool_shutdown_and_close_under_load),
        TEST(test_forking_shutdown_and_close_under_load),
        TEST(test_prefork_shutdown_and_close_under_load),
        TEST(test_broadcast_reaches_every_other_client_once_threading),
        TEST(test_broadcast_reaches_every_other_client_once_pool),
        TEST(test_broadcast_in_a_sync_server_reaches_nobody_else),
        TEST(test_broadcast_is_enotsup_for_forking_and_prefork),
        TEST(test_a_stalled_receiver_does_not_stall_the_broadcaster),
        TEST(test_failed_pthread_create_ends_that_request_only),
        TEST(test_sigterm_stops_a_threading_server_gracefully),
        TEST(test_sigint_stops_a_sync_server_gracefully),
        TEST(test_sigterm_stops_a_prefork_server_gracefully),
        TEST(test_sigint_stops_a_forking_server_gracefully),
        TEST(test_prefork_workers_stop_when_the_supervisor_dies),
        TEST(test_prefork_worker_stops_on_a_signal_a_pool_thread_catches),
    };

    if (getenv("SS_TEST"))      /* SS_TEST=pattern: only those tests */
        cmocka_set_test_filter(getenv("SS_TEST"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
