/*
 * fuzz_http_parser.c - libFuzzer target for examples/http_parser.c.
 *
 * Beyond "does not crash" (ASan catches any read outside the input, which
 * libFuzzer hands over in a buffer of exactly its size), it checks what a
 * successful parse promises, that parsing in two steps with last_len gives
 * what parsing at once gives, and what http_decode_path() promises, both
 * for parsed targets and for the raw input. Build and run with
 * tests/fuzz/run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parser.h"

#define MAX_HEADERS 16

/* abort() so that libFuzzer saves the input that broke the invariant. */
#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, \
                    __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

static int parse(const char *buf, size_t len, size_t last_len,
                 struct http_request *req, struct http_header *headers)
{
    *req = (struct http_request){.headers = headers,
                                 .max_headers = MAX_HEADERS};
    return http_parse_request(buf, len, last_len, req);
}

/* p[0 .. len) lies within buf[0 .. end). */
static int within(const char *buf, size_t end, const char *p, size_t len)
{
    return p >= buf && p <= buf + end && len <= (size_t)(buf + end - p);
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_token(const char *s, size_t len)
{
    size_t i;

    CHECK(len > 0);
    for (i = 0; i < len; i++)
        CHECK(is_tchar((unsigned char)s[i]));
}

static void check_value(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        CHECK(c == '\t' || (c >= 0x20 && c != 0x7F));
    }
    CHECK(len == 0 || (s[0] != ' ' && s[0] != '\t'));
    CHECK(len == 0 || (s[len - 1] != ' ' && s[len - 1] != '\t'));
}

/* The header section: no NUL, every CR part of a CRLF, ends in LF. */
static void check_section(const char *buf, size_t n)
{
    size_t i;

    CHECK(n > 0 && buf[n - 1] == '\n');
    for (i = 0; i < n; i++) {
        CHECK(buf[i] != '\0');
        CHECK(buf[i] != '\r' || (i + 1 < n && buf[i + 1] == '\n'));
    }
}

/* Parsed in two steps with last_len, a request must give what it gives
 * parsed at once; split is where the first step stops. */
static void check_incremental(const char *buf, size_t size, int once,
                              size_t split)
{
    struct http_header headers[MAX_HEADERS];
    struct http_request req;
    int first = parse(buf, split, 0, &req, headers), second;

    if (once >= 0) {
        CHECK(first == ((size_t)once <= split ? once : -2));
        if (first == -2)
            CHECK(parse(buf, size, split, &req, headers) == once);
        return;
    }
    /* The parser reads no further than the empty line, so a prefix that
     * parses makes the whole parse the same. */
    CHECK(first < 0);
    if (first == -1)
        return;  /* a server would have stopped here */
    second = parse(buf, size, split, &req, headers);
    CHECK(once == -2 ? second == -2 : second == -1 || second == -2);
}

/* Whether the path has a segment that is empty (but the last), "." or "..". */
static int has_bad_segment(const char *path, size_t len)
{
    size_t i = 1, start = 1;

    for (; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        if (i - start == 0 && i < len)
            return 1;
        if (i - start == 1 && path[start] == '.')
            return 1;
        if (i - start == 2 && path[start] == '.' && path[start + 1] == '.')
            return 1;
        start = i + 1;
    }
    return 0;
}

/* Bytes that would read differently if the path were decoded again. */
static int decodes_to_itself(const char *path, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (path[i] == '%' || path[i] == '?' || path[i] == '#' ||
            (unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7F)
            return 0;
    return 1;
}

static void check_path(const char *target, size_t len)
{
    char small[32];
    size_t size = len + 1;   /* a path is never longer than its target */
    char *big = malloc(size), *again = malloc(size);
    int rc_small = http_decode_path(target, len, small, sizeof small);
    int rc = http_decode_path(target, len, big, size);

    CHECK(big != NULL && again != NULL);
    CHECK(rc >= -1);
    if (rc >= 0) {
        CHECK((size_t)rc < size && big[0] == '/');
        CHECK(strlen(big) == (size_t)rc);     /* no NUL inside */
        CHECK(!has_bad_segment(big, (size_t)rc));
        CHECK(rc_small == ((size_t)rc < sizeof small ? rc : -2));
        if (rc_small >= 0)
            CHECK(strcmp(small, big) == 0);
        if (decodes_to_itself(big, (size_t)rc)) {
            CHECK(http_decode_path(big, (size_t)rc, again, size) == rc);
            CHECK(strcmp(again, big) == 0);
        }
    } else {
        CHECK(rc_small == -1);
    }
    free(big);
    free(again);
}

/* Looking up header i by its name finds it, or an earlier namesake. */
static void check_find(const struct http_request *req, size_t i)
{
    static char name[8192];
    const struct http_header *h = &req->headers[i], *found;

    if (h->name_len >= sizeof name)
        return;
    memcpy(name, h->name, h->name_len);
    name[h->name_len] = '\0';
    found = http_find_header(req, name);
    CHECK(found != NULL && found <= h);
    CHECK(found->name_len == h->name_len);
}

static void check_request(const char *buf, int rc,
                          const struct http_request *req)
{
    size_t n = (size_t)rc, i;
    int64_t length = -1;

    check_section(buf, n);
    CHECK(within(buf, n, req->method, req->method_len));
    check_token(req->method, req->method_len);
    CHECK(within(buf, n, req->target, req->target_len));
    CHECK(req->target_len > 0);
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    CHECK(req->num_headers <= req->max_headers);
    for (i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];

        CHECK(within(buf, n, h->name, h->name_len));
        CHECK(within(buf, n, h->value, h->value_len));
        check_token(h->name, h->name_len);
        check_value(h->value, h->value_len);
        check_find(req, i);
    }
    if (http_content_length(req, &length) == 0)
        CHECK(length >= 0);
    (void)http_keep_alive(req);
    check_path(req->target, req->target_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct http_header headers[MAX_HEADERS];
    struct http_request req;
    int rc = parse(buf, size, 0, &req, headers);

    CHECK(rc == -1 || rc == -2 || (rc > 0 && (size_t)rc <= size));
    if (rc > 0)
        check_request(buf, rc, &req);
    if (size > 0)
        check_incremental(buf, size, rc, data[0] % size);
    check_path(buf, size);
    return 0;
}
