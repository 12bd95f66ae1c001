/*
 * Child process helpers: a pollable descriptor per child (pidfd), so the
 * forking and prefork models can wait for their own children without
 * waitpid(-1), which would steal the exit status of a child the
 * application forked itself.
 */
#include "internal.h"

#include <sys/syscall.h>
#include <unistd.h>

int ss__pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0);

    if (fd < 0)
        return -errno;
    /* pidfds are created close-on-exec. */
    return (int)fd;
#else
    (void)pid;
    return -ENOSYS;
#endif
}
