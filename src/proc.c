/*
 * Child process helpers: a pollable descriptor per child (pidfd), so the
 * forking and prefork models can wait for their own children without
 * waitpid(-1), which would steal the exit status of a child the
 * application forked itself.
 */
#include "internal.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

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

bool ss__die_with_parent(pid_t parent, int sig)
{
#ifdef __linux__
    (void)prctl(PR_SET_PDEATHSIG, sig);
#else
    (void)sig;
#endif
    /* A parent that died before the prctl sent nothing: the child was
     * reparented already. */
    return getppid() != parent;
}

/* MADV_WIPEONFORK (Linux 4.14): fork does not share the range with the
 * child, which sees zeros there, so fork leaves the parent's pages
 * writable. Elsewhere the memory is ordinary: correct, only slower. */
void *ss__map_parent_only(size_t size, bool *wiped)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    *wiped = false;
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_WIPEONFORK
    *wiped = madvise(p, size, MADV_WIPEONFORK) == 0;
#endif
    return p;
}

void ss__unmap_parent_only(void *p, size_t size)
{
    if (p)
        (void)munmap(p, size);
}
