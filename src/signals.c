/*
 * Graceful shutdown on SIGINT and SIGTERM, in one call. The handler only
 * does async-signal-safe things: ss_server_request_shutdown (an atomic flag
 * and a write to the wake-up descriptor). It is installed without
 * SA_RESTART, so a synchronous handler blocked in I/O on the interrupted
 * thread sees EINTR and wait.c applies the drain (close_timeout).
 */
#include "internal.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static _Atomic(ss_server *) target;     /* shut down by SIGINT/SIGTERM */
static atomic_int target_pid;           /* the process that installed it */
static _Atomic(ss_server *) worker_target;  /* a prefork worker's server */
static atomic_bool fired;
static bool installed;
static struct sigaction saved_int, saved_term;

static void default_action(int sig)
{
    struct sigaction dfl;

    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

static void on_shutdown_signal(int sig)
{
    ss_server *s = atomic_load(&target);
    int saved = errno;

    /* In a forked handler child (which inherits this handler, and which
     * resetting on every fork would cost copy-on-write faults): SIGINT from
     * the terminal is the parent's to handle; SIGTERM, which close_timeout
     * sends, ends the child. */
    if (getpid() != atomic_load(&target_pid)) {
        if (sig == SIGTERM)
            default_action(sig);
        errno = saved;
        return;
    }
    if (atomic_exchange(&fired, true))
        default_action(sig);    /* the second signal: at once */
    else if (s)
        ss_server_request_shutdown(s);
    errno = saved;
}

static void on_worker_term(int sig)
{
    ss_server *s = atomic_load(&worker_target);

    (void)sig;
    if (s)
        ss_server_request_shutdown(s);
}

static int set_handler(int sig, void (*fn)(int), struct sigaction *old)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;    /* no SA_RESTART: blocking calls see EINTR */
    return sigaction(sig, &sa, old) < 0 ? -errno : 0;
}

int ss_server_shutdown_on_signals(ss_server *s)
{
    ss_server *old;
    int err;

    if (!s) {
        atomic_store(&target, NULL);
        if (installed) {
            sigaction(SIGINT, &saved_int, NULL);
            sigaction(SIGTERM, &saved_term, NULL);
            installed = false;
        }
        return 0;
    }
    old = atomic_exchange(&target, s);
    atomic_store(&target_pid, (int)getpid());
    atomic_store(&fired, false);
    if ((err = set_handler(SIGINT, on_shutdown_signal,
                           installed ? NULL : &saved_int)) < 0 ||
        (err = set_handler(SIGTERM, on_shutdown_signal,
                           installed ? NULL : &saved_term)) < 0) {
        /* As before the call: the former target, the former handlers. */
        if (!installed)
            sigaction(SIGINT, &saved_int, NULL);
        atomic_store(&target, old);
        return err;
    }
    installed = true;
    return 0;
}

void ss__signals_forget(ss_server *s)
{
    ss_server *expected = s;

    if (atomic_compare_exchange_strong(&target, &expected, NULL))
        (void)ss_server_shutdown_on_signals(NULL);
}

int ss__signals_in_worker(ss_server *s)
{
    atomic_store(&worker_target, s);
    if (installed)
        signal(SIGINT, SIG_IGN);
    return set_handler(SIGTERM, on_worker_term, NULL);
}
