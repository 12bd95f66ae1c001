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

static _Atomic(ss_server *) target;     /* shut down by SIGINT/SIGTERM */
static _Atomic(ss_server *) worker_target;  /* a prefork worker's server */
static atomic_bool fired;
static bool installed;
static struct sigaction saved_int, saved_term;

static void on_shutdown_signal(int sig)
{
    ss_server *s = atomic_load(&target);

    if (atomic_exchange(&fired, true)) {
        /* The second signal: the default action, at once. */
        struct sigaction dfl;

        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, NULL);
        raise(sig);
        return;
    }
    if (s)
        ss_server_request_shutdown(s);
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
    atomic_store(&target, s);
    atomic_store(&fired, false);
    if ((err = set_handler(SIGINT, on_shutdown_signal,
                           installed ? NULL : &saved_int)) < 0)
        return err;
    if ((err = set_handler(SIGTERM, on_shutdown_signal,
                           installed ? NULL : &saved_term)) < 0)
        return err;
    installed = true;
    return 0;
}

void ss__signals_in_child(void)
{
    if (!installed)
        return;
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
}

int ss__signals_in_worker(ss_server *s)
{
    atomic_store(&worker_target, s);
    if (installed)
        signal(SIGINT, SIG_IGN);
    return set_handler(SIGTERM, on_worker_term, NULL);
}
