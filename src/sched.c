/*
 * Thread scheduling hints. Linux's SCHED_BATCH is SCHED_OTHER without
 * wake-up preemption: a thread of that policy that wakes up waits for the
 * running thread's turn to end instead of taking the core at once. Where
 * the policy does not exist these do nothing.
 */
#include "internal.h"

#include <sched.h>

bool ss__sched_batch_begin(void)
{
#ifdef SCHED_BATCH
    struct sched_param param;
    int policy;

    if (pthread_getschedparam(pthread_self(), &policy, &param) != 0 ||
        policy != SCHED_OTHER)
        return false;   /* the application chose it: leave it alone */
    param.sched_priority = 0;
    return pthread_setschedparam(pthread_self(), SCHED_BATCH, &param) == 0;
#else
    return false;
#endif
}

void ss__sched_batch_end(void)
{
#ifdef SCHED_BATCH
    struct sched_param param = {.sched_priority = 0};

    /* Back from SCHED_BATCH is always allowed: the nice value is kept. */
    (void)pthread_setschedparam(pthread_self(), SCHED_OTHER, &param);
#endif
}
