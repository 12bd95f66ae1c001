#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "guard.h"

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
