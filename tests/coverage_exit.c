/*
 * Coverage builds only (tests/coverage preloads it into every test):
 * forked handler children and prefork workers end with _exit(), which
 * writes no gcov counts, so what only they run would show as never run.
 * This _exit() takes the place of libc's for every caller, writes the
 * counts of every instrumented object in the process (linked with libgcov,
 * whose __gcov_dump walks the process-wide list every instrumented object
 * registers with) and then ends the process as libc's would. In a process
 * with nothing instrumented it only ends it.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

void __gcov_dump(void);

void _exit(int status)
{
    __gcov_dump();
    for (;;)
        syscall(SYS_exit_group, status);
}
