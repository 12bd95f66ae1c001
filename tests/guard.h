/*
 * Inputs placed right before a PROT_NONE page (picohttpparser's test.c does
 * the same), so that a parser reading one byte past its input faults at
 * once instead of passing unnoticed. Used by the parser tests.
 */
#ifndef SS_TEST_GUARD_H
#define SS_TEST_GUARD_H

#include <stddef.h>

struct guarded {
    char  *base;    /* the mapping */
    size_t size;    /* its size, guard page included */
    char  *data;    /* len bytes, ending at the guard page */
};

/* A copy of len bytes (or, with bytes NULL, len writable bytes) that ends
 * exactly where an inaccessible page begins. Fails the test if it cannot
 * map one. */
struct guarded guarded_copy(const void *bytes, size_t len);
void guarded_free(struct guarded *g);

#endif
