/*
 * Errors, log lines and time: the bottom of the library.
 */
#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char last_error[512];
static _Thread_local char strerror_buf[128];

const char *ss_version(void)
{
#define SS__STR2(x) #x
#define SS__STR(x) SS__STR2(x)
    return SS__STR(SS_VERSION_MAJOR) "." SS__STR(SS_VERSION_MINOR) "."
           SS__STR(SS_VERSION_PATCH);
}

const char *ss_strerror(int err)
{
    if (err < 0)
        err = -err;
    /* The GNU strerror_r returns a static string or fills the buffer. */
    return strerror_r(err, strerror_buf, sizeof strerror_buf);
}

const char *ss_last_error(void)
{
    return last_error;
}

void ss__clear_error(void)
{
    last_error[0] = '\0';
}

void ss__set_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

int ss__error(int err, const char *fmt, ...)
{
    char what[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(last_error, sizeof last_error, "%s: %s", what, ss_strerror(err));
    return err;
}

/* Best effort: a line that cannot be written is dropped. A stderr whose
 * reader has gone (a pipe into `head`, say) must not kill the server with
 * SIGPIPE: the signal is blocked in this thread for the write, and one
 * the write raised is taken back before the mask is restored. A SIGPIPE
 * that was pending before is left pending (this write's merges with it:
 * signals of one kind do not queue). errno is kept. */
static void write_stderr(const char *line, size_t len)
{
    static const struct timespec now = {0, 0};
    sigset_t pipe, old, pending;
    int saved = errno;      /* callers report their own errno after this */
    bool blocked, was_pending = false;
    ssize_t n;

    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    blocked = pthread_sigmask(SIG_BLOCK, &pipe, &old) == 0;
    if (blocked && sigpending(&pending) == 0)
        was_pending = sigismember(&pending, SIGPIPE);
    do
        n = write(STDERR_FILENO, line, len);
    while (n < 0 && errno == EINTR);
    if (blocked) {
        if (n < 0 && errno == EPIPE && !was_pending)
            while (sigtimedwait(&pipe, NULL, &now) < 0 && errno == EINTR)
                ;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    errno = saved;
}

/* The user's log gets one call per line, without the newline; stderr gets
 * the text in one write, so that lines from several threads or processes
 * do not interleave. */
void ss__log(const ss_server *s, const char *fmt, ...)
{
    char text[1024], *line, *nl;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof text - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof text - 2)
        n = sizeof text - 2;
    if (s && s->options.log) {
        text[n] = '\0';
        for (line = text; line; line = nl) {
            if ((nl = strchr(line, '\n')))
                *nl++ = '\0';
            s->options.log(s->options.data, line);
        }
        return;
    }
    text[n++] = '\n';
    write_stderr(text, (size_t)n);
}

int64_t ss__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void ss__abstime(struct timespec *ts, clockid_t clock, double seconds)
{
    clock_gettime(clock, ts);
    if (seconds <= 0)
        return;
    ts->tv_sec += (time_t)seconds;
    ts->tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

int ss__cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t ca;
    int rc;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
    return -rc;
}

double ss__now(void)
{
    return (double)ss__now_ns() / 1e9;
}

int ss__ms_until(double deadline)
{
    double left = deadline - ss__now();

    if (left <= 0)
        return 0;
    if (left > 86400.0)
        return 86400 * 1000;
    /* Round up: a poll that returns early would only loop again. */
    return (int)(left * 1000.0) + 1;
}
