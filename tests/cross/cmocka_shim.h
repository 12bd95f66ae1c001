/*
 * The part of cmocka's API that tests/test_switch.c uses, for a build with
 * a cross compiler that has no cmocka: a failed assertion prints where and
 * exits 1.
 */
#ifndef SS_CMOCKA_SHIM_H
#define SS_CMOCKA_SHIM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct CMUnitTest {
    const char *name;
    void (*fn)(void **state);
};

#define cmocka_unit_test(f) {#f, f}

#define shim_fail(what)                                                     \
    (fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, what), exit(1))
#define assert_true(c) ((c) ? (void)0 : shim_fail("expected: " #c))
#define assert_int_equal(a, b)                                              \
    ((long long)(a) == (long long)(b) ? (void)0                             \
                                      : shim_fail(#a " == " #b))
#define assert_string_equal(a, b)                                           \
    (strcmp((a), (b)) == 0 ? (void)0 : shim_fail(#a " == " #b))

static inline int shim_run(const struct CMUnitTest *t, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        t[i].fn(NULL);
        printf("[       OK ] %s\n", t[i].name);
    }
    printf("[  PASSED  ] %zu test(s).\n", n);
    return 0;
}

#define cmocka_run_group_tests(t, setup, teardown)                          \
    shim_run(t, sizeof t / sizeof t[0])

#endif
