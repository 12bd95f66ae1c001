/*
 * Test helpers: bounded waits, leak counters, loopback clients and servers
 * running in a thread. Every wait here is bounded; every failure says what
 * was expected.
 */
#ifndef SS_TEST_HELPERS_H
#define SS_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "sockserver.h"

#define TEST_STR "hello world\n"
/* The hang guard of every wait: the seconds any single wait may take
 * before the test fails. It is never a claim about speed: at least ten
 * times what the slowest build (ThreadSanitizer) needs on a busy two-core
 * machine for anything a test waits for, a library timeout of up to 2 s
 * (close_timeout of the examples) included. A test shows what happened by
 * order and content; the clock only stops it from hanging. */
#define WAIT_LIMIT 30.0

/* Assert with a message saying what was expected. */
#define expect_true(cond, ...)                                              \
    do {                                                                    \
        if (!(cond)) {                                                      \
            print_error(__VA_ARGS__);                                       \
            print_error("\n");                                              \
            fail_msg("expected: %s", #cond);                                \
        }                                                                   \
    } while (0)

/* A cmocka setup/teardown pair: the teardown fails the test when a
 * descriptor opened during it is still open (after a bounded wait). */
int setup_fds(void **state);
int check_fds(void **state);
#define FD_TEST(f) cmocka_unit_test_setup_teardown(f, setup_fds, check_fds)

double now(void);
void   sleep_ms(int ms);
/* Poll fn(arg) every millisecond until it is true or `seconds` pass. */
bool   wait_for(bool (*fn)(void *), void *arg, double seconds);

/* A hang guard for a wait that ends only when the code under test does its
 * part (close returns, shutdown wakes the loop): unless guard_end comes
 * first, after `seconds` a thread of its own (with every signal blocked)
 * runs action(arg), which ends the wait some other way (the client hangs
 * up, a connection wakes the server), and records that it had to.
 * guard_end stops and joins it: true when the action ran. `arg` must
 * outlive the guard. */
typedef struct hang_guard {
    pthread_t thread;
    int       stop[2];      /* a pipe: written to by guard_end */
    double    seconds;
    void    (*action)(void *arg);
    void     *arg;
    bool      fired;
} hang_guard;

void guard_start(hang_guard *g, double seconds, void (*action)(void *),
                 void *arg);
bool guard_end(hang_guard *g);

/* Leak counters. */
int count_fds(void);
int count_threads(void);
/* Wait (bounded) until the count returns to `baseline`; returns the count. */
int settle_fds(int baseline);
int settle_threads(int baseline);
/* This process's live children (those of every thread; zombies left
 * out): up to max pids to out; returns how many. */
int live_children(pid_t *out, int max);
/* Reap children already exited; count of children reaped. */
int reap_zombies(void);

/* A fresh Unix socket path in the temporary directory, removed by
 * unlink_path (the caller frees nothing: it is a static slot per call
 * site, up to 64 live paths). */
const char *temp_path(const char *tag);

/* Clients. Each has WAIT_LIMIT send and receive timeouts so nothing
 * hangs. */
int  client_connect(const ss_address *a);           /* stream */
int  client_dgram(const ss_address *a, char *bound_path, size_t size);
int  send_all_fd(int fd, const void *buf, size_t len);
/* Read until '\n' or EOF (or size-1 bytes): length read, -1 on error. */
ssize_t recv_line(int fd, char *buf, size_t size);
/* Read exactly len bytes: len, fewer at EOF, -1 on error. */
ssize_t recv_exact(int fd, void *buf, size_t len);

/* stream_examine / dgram_examine of CPython's test_socketserver. */
void stream_examine(const ss_address *a);
void dgram_examine(const ss_address *a);

/* A server serving in a thread of its own. */
typedef struct served {
    ss_server *server;
    pthread_t  thread;
    double     poll_interval;
    int        rc;              /* serve_forever's result */
} served;

void serve_in_thread(served *sv, ss_server *s, double poll_interval);
/* ss_server_shutdown + join; asserts serve_forever returned 0. */
void stop_serving(served *sv);

/* Capture what is written to stderr while `fn` runs. */
char *capture_stderr(void (*fn)(void *), void *arg);

/* CPython's MyHandler: read one line, write it back (stream and datagram
 * alike: rfile/wfile work on both). */
int echo_line_handle(ss_request *r, const ss_address *c, ss_server *s);

#endif
