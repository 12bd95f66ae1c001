/*
 * Thread scheduling hints. Linux's SCHED_BATCH is SCHED_OTHER without
 * wake-up preemption: a thread of that policy that wakes up waits for the
 * running thread's turn to end instead of taking the core at once. Where
 * the policy does not exist these do nothing.
 *
 * The policy is read from the kernel (sched_getscheduler): glibc's
 * pthread_getschedparam answers from a copy that sched_setscheduler and
 * chrt do not update, so it could mistake a real-time or idle thread for
 * a default one. It is set with pthread_setschedparam, which keeps that
 * copy right.
 */
#include "internal.h"

#include <sched.h>

bool ss__sched_batch_begin(void)
{
#ifdef SCHED_BATCH
    struct sched_param param = {.sched_priority = 0};

    if (sched_getscheduler(0) != SCHED_OTHER)
        return false;   /* the application chose it: leave it alone */
    return pthread_setschedparam(pthread_self(), SCHED_BATCH, &param) == 0;
#else
    return false;
#endif
}

void ss__sched_batch_end(void)
{
#ifdef SCHED_BATCH
    struct sched_param param = {.sched_priority = 0};

    /* Only if nobody changed it meanwhile. Back from SCHED_BATCH is
     * always allowed, and the nice value is kept. */
    if (sched_getscheduler(0) == SCHED_BATCH)
        (void)pthread_setschedparam(pthread_self(), SCHED_OTHER, &param);
#endif
}
