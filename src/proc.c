/*
 * Child process helpers: a pollable descriptor per child (pidfd), so the
 * forking and prefork models can wait for their own children without
 * waitpid(-1), which would steal the exit status of a child the
 * application forked itself. And how the library starts its own threads.
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

#if SS__TSAN
void ss__async_signals(sigset_t *set)
{
    sigfillset(set);
    sigdelset(set, SIGSEGV);
    sigdelset(set, SIGBUS);
    sigdelset(set, SIGFPE);
    sigdelset(set, SIGILL);
    sigdelset(set, SIGTRAP);
    sigdelset(set, SIGSYS);
}

/* ThreadSanitizer runs a child of a multithreaded fork with interception
 * off in every thread, the ones started after the fork included. A signal
 * such a thread catches is kept on that thread until its next atomic
 * operation, and a pool worker asleep on its semaphore has none: the
 * SIGTERM with which a prefork supervisor stops its worker was lost when
 * the kernel gave it to a sleeping pool thread (it does whenever the
 * serving thread blocks signals for a moment, as pthread_create does), and
 * the supervisor waited for ever. So in a child the library forked, its
 * threads start with the asynchronous signals blocked, and the serving
 * thread, which never sleeps past its poll interval, takes them all. Only
 * this build: elsewhere any thread runs the handler at once. */
static bool forked_child;

void ss__forked(void)
{
    forked_child = true;
}

int ss__thread_create(pthread_t *thread, const pthread_attr_t *attr,
                      void *(*fn)(void *), void *arg)
{
    sigset_t async, old;
    int rc;

    if (!forked_child)
        return pthread_create(thread, attr, fn, arg);
    ss__async_signals(&async);
    pthread_sigmask(SIG_BLOCK, &async, &old);
    rc = pthread_create(thread, attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
#endif
