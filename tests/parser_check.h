/*
 * What the parser tests share: inputs placed right before a PROT_NONE page
 * (picohttpparser's test.c does the same), so that a parser reading one
 * byte past its input faults at once instead of passing unnoticed; and
 * failures that say what was expected, with the input made readable.
 */
#ifndef SS_TEST_PARSER_CHECK_H
#define SS_TEST_PARSER_CHECK_H

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

/* Fail the current test at file:line with a formatted sentence. */
void failed_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* len input bytes with CR, LF and other bytes outside printable ASCII
 * written as escapes, for messages; two calls' results stay valid at once. */
const char *show(const char *s, size_t len);

/* A test of the harness itself: reading one byte past a guarded copy
 * kills a child with SIGSEGV. */
void guard_page_faults_on_a_read_past_the_input(void **state);

#endif
