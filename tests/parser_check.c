#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "parser_check.h"

struct guarded guarded_copy(const void *bytes, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = (len + page - 1) / page * page;
    struct guarded g;

    g.size = span + page;
    g.base = mmap(NULL, g.size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.base != MAP_FAILED);
    assert_int_equal(mprotect(g.base + span, page, PROT_NONE), 0);
    g.data = g.base + span - len;
    if (len > 0 && bytes != NULL)
        memcpy(g.data, bytes, len);
    return g;
}

void guarded_free(struct guarded *g)
{
    munmap(g->base, g->size);
}

void failed_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprint_error(fmt, ap);
    va_end(ap);
    print_error("\n");
    _fail(file, line);
}

/* Input bytes with CR, LF and the like made visible, for messages. */
const char *show(const char *s, size_t len)
{
    static char text[2][512];
    static int which;
    char *t = text[which ^= 1];
    size_t i, n = 0;

    for (i = 0; i < len && n + 8 < sizeof text[0]; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\r')
            n += (size_t)snprintf(t + n, sizeof text[0] - n, "\\r");
        else if (c == '\n')
            n += (size_t)snprintf(t + n, sizeof text[0] - n, "\\n");
        else if (c >= 0x20 && c < 0x7F)
            t[n++] = (char)c;
        else
            n += (size_t)snprintf(t + n, sizeof text[0] - n, "\\x%02X", c);
    }
    if (i < len)
        n += (size_t)snprintf(t + n, sizeof text[0] - n, "...");
    t[n] = '\0';
    return t;
}

void guard_page_faults_on_a_read_past_the_input(void **state)
{
    int status;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct guarded g = guarded_copy("{}", 2);

        /* cmocka's handler would turn the fault into a test failure in
         * this copy of the runner; the default action is what we test. */
        signal(SIGSEGV, SIG_DFL);
        _exit(((volatile char *)g.data)[2]);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV)
        fail_msg("expected reading one byte past the input to die of "
                 "SIGSEGV; status was %#x", status);
}
