/*
 * test_http_parser.c - what the HTTP/1.1 request parser accepts and
 * refuses, and how requests become paths.
 *
 * Every request and target is parsed from a copy that ends exactly where a
 * PROT_NONE page begins, and every decoded path is written into a buffer
 * that does too (picohttpparser's test.c does the same), so a read or a
 * write past the end of any input below faults at once.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_parser.h"
#include "parser_check.h"

#define MAX_HEADERS 8

/* A parsed request and the guarded copy its pointers point into. */
struct parsed {
    struct guarded g;
    struct http_header headers[MAX_HEADERS];
    struct http_request req;
    int rc;
};

static void parse(struct parsed *p, const char *text, size_t len,
                  size_t max_headers)
{
    p->g = guarded_copy(text, len);
    p->req = (struct http_request){.headers = p->headers,
                                   .max_headers = max_headers};
    p->rc = http_parse_request(p->g.data, len, 0, &p->req);
}

static void complete_at(const char *file, int line, struct parsed *p,
                        const char *text, size_t len)
{
    parse(p, text, len, MAX_HEADERS);
    if (p->rc != (int)len)
        failed_at(file, line, "expected %s to parse as a complete request "
                  "of %zu bytes, got %d", show(text, len), len, p->rc);
}

static void result_at(const char *file, int line, const char *text,
                      size_t len, int want, const char *meaning)
{
    struct parsed p;

    parse(&p, text, len, MAX_HEADERS);
    guarded_free(&p.g);
    if (p.rc != want)
        failed_at(file, line, "expected %s to be %s (%d), got %d",
                  show(text, len), meaning, want, p.rc);
}

/* Literals, so that sizeof counts an embedded NUL. */
#define COMPLETE(p, lit) complete_at(__FILE__, __LINE__, p, lit, sizeof lit - 1)
#define MALFORMED(lit) \
    result_at(__FILE__, __LINE__, lit, sizeof lit - 1, -1, "malformed")
#define PARTIAL(lit) \
    result_at(__FILE__, __LINE__, lit, sizeof lit - 1, -2, "partial")

static void same_text_at(const char *file, int line, const char *what,
                         const char *got, size_t got_len, const char *want)
{
    if (got_len != strlen(want) || memcmp(got, want, got_len) != 0)
        failed_at(file, line, "expected %s to be \"%s\", got \"%s\"", what,
                  want, show(got, got_len));
}

#define SAME_TEXT(what, ptr, len, want) \
    same_text_at(__FILE__, __LINE__, what, ptr, len, want)
#define HEADER_IS(p, i, want_name, want_value) do { \
        assert_true((p)->req.num_headers > (i)); \
        SAME_TEXT("header name", (p)->headers[i].name, \
                  (p)->headers[i].name_len, want_name); \
        SAME_TEXT("header value", (p)->headers[i].value, \
                  (p)->headers[i].value_len, want_value); \
    } while (0)

/* http_decode_path with its input and its output each against a guard. */
static int decode(const char *target, size_t len, char *out, size_t outsize)
{
    struct guarded in = guarded_copy(target, len);
    struct guarded o = guarded_copy(NULL, outsize);
    int rc = http_decode_path(in.data, len, o.data, outsize);

    if (rc >= 0)
        memcpy(out, o.data, (size_t)rc + 1);
    guarded_free(&in);
    guarded_free(&o);
    return rc;
}

static void decodes_at(const char *file, int line, const char *target,
                       size_t len, const char *want)
{
    char out[256];
    int rc = decode(target, len, out, sizeof out);

    if (rc < 0)
        failed_at(file, line, "expected the target %s to become \"%s\", "
                  "but it was refused with %d", show(target, len), want, rc);
    if ((size_t)rc != strlen(want) || strcmp(out, want) != 0)
        failed_at(file, line, "expected the target %s to become \"%s\", "
                  "got \"%s\"", show(target, len), want, show(out, (size_t)rc));
}

static void refused_path_at(const char *file, int line, const char *target,
                            size_t len)
{
    char out[256];
    int rc = decode(target, len, out, sizeof out);

    if (rc != -1)
        failed_at(file, line, "expected the target %s to be a bad request "
                  "(-1), got %d%s%s", show(target, len), rc,
                  rc >= 0 ? ": " : "", rc >= 0 ? out : "");
}

#define DECODES(lit, want) \
    decodes_at(__FILE__, __LINE__, lit, sizeof lit - 1, want)
#define PATH_REFUSED(lit) \
    refused_path_at(__FILE__, __LINE__, lit, sizeof lit - 1)

/* A request for the helpers: headers is a string of header lines. */
static void request_with(struct parsed *p, int minor, const char *headers)
{
    char text[512];
    int n = snprintf(text, sizeof text, "GET / HTTP/1.%d\r\n%s\r\n", minor,
                     headers);

    assert_true(n > 0 && (size_t)n < sizeof text);
    complete_at(__FILE__, __LINE__, p, text, (size_t)n);
}

#define CURL_GET "GET /index.html HTTP/1.1\r\n" \
                 "Host: localhost:8080\r\n" \
                 "User-Agent: curl/7.88.1\r\n" \
                 "Accept: */*\r\n" \
                 "\r\n"

/* ---- the request line and headers -------------------------------------- */

static void parses_a_get_request_as_curl_sends_it(void **state)
{
    struct parsed p;

    (void)state;
    COMPLETE(&p, CURL_GET);
    SAME_TEXT("method", p.req.method, p.req.method_len, "GET");
    SAME_TEXT("target", p.req.target, p.req.target_len, "/index.html");
    assert_int_equal(p.req.minor_version, 1);
    assert_int_equal(p.req.num_headers, 3);
    HEADER_IS(&p, 0, "Host", "localhost:8080");
    HEADER_IS(&p, 1, "User-Agent", "curl/7.88.1");
    HEADER_IS(&p, 2, "Accept", "*/*");
    guarded_free(&p.g);
}

static void parses_a_head_request(void **state)
{
    struct parsed p;

    (void)state;
    COMPLETE(&p, "HEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    SAME_TEXT("method", p.req.method, p.req.method_len, "HEAD");
    guarded_free(&p.g);
}

static void parses_an_http_1_0_request_without_headers(void **state)
{
    struct parsed p;

    (void)state;
    COMPLETE(&p, "GET / HTTP/1.0\r\n\r\n");
    assert_int_equal(p.req.minor_version, 0);
    assert_int_equal(p.req.num_headers, 0);
    guarded_free(&p.g);
}

static void leaves_judging_the_method_to_the_server(void **state)
{
    struct parsed p;

    (void)state;
    /* Case-sensitive: "get" is another method, answered with 405. */
    COMPLETE(&p, "get / HTTP/1.1\r\n\r\n");
    SAME_TEXT("method", p.req.method, p.req.method_len, "get");
    guarded_free(&p.g);
    COMPLETE(&p, "M-SEARCH * HTTP/1.1\r\n\r\n");
    SAME_TEXT("target", p.req.target, p.req.target_len, "*");
    guarded_free(&p.g);
}

static void consumes_only_up_to_the_empty_line(void **state)
{
    static const char two[] = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
    struct http_header headers[4];
    struct http_request req = {.headers = headers, .max_headers = 4};
    struct guarded g = guarded_copy(two, sizeof two - 1);
    int first = http_parse_request(g.data, sizeof two - 1, 0, &req);

    (void)state;
    assert_int_equal(first, 19);
    assert_int_equal(http_parse_request(g.data + first, sizeof two - 1 - 19,
                                        0, &req), 19);
    SAME_TEXT("second target", req.target, req.target_len, "/2");
    guarded_free(&g);
}

static void accepts_bare_lf_line_endings(void **state)
{
    struct parsed p;

    (void)state;
    COMPLETE(&p, "GET / HTTP/1.1\nHost: x\nAccept: */*\n\n");
    assert_int_equal(p.req.num_headers, 2);
    HEADER_IS(&p, 1, "Accept", "*/*");
    guarded_free(&p.g);
    COMPLETE(&p, "GET / HTTP/1.1\r\nHost: x\n\r\n");
    guarded_free(&p.g);
    COMPLETE(&p, "GET / HTTP/1.1\nHost: x\r\n\n");
    guarded_free(&p.g);
}

static void skips_one_empty_line_before_the_request_line(void **state)
{
    struct parsed p;

    (void)state;
    COMPLETE(&p, "\r\nGET / HTTP/1.1\r\n\r\n");
    SAME_TEXT("method", p.req.method, p.req.method_len, "GET");
    guarded_free(&p.g);
    COMPLETE(&p, "\nGET / HTTP/1.1\n\n");
    guarded_free(&p.g);
    MALFORMED("\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    MALFORMED("\n\nGET / HTTP/1.1\r\n\r\n");
}

static void trims_spaces_and_tabs_around_header_values(void **state)
{
    struct parsed p;

    (void)state;
    COMPLETE(&p, "GET / HTTP/1.1\r\nA: \t one  two \t\r\nB:x\r\nC:\r\n"
                 "D:   \r\n\r\n");
    HEADER_IS(&p, 0, "A", "one  two");
    HEADER_IS(&p, 1, "B", "x");
    HEADER_IS(&p, 2, "C", "");
    HEADER_IS(&p, 3, "D", "");
    guarded_free(&p.g);
}

static void lets_obs_text_through_in_header_values(void **state)
{
    struct parsed p;

    (void)state;
    COMPLETE(&p, "GET / HTTP/1.1\r\nX-Name: caf\xC3\xA9\r\n\r\n");
    HEADER_IS(&p, 0, "X-Name", "caf\xC3\xA9");
    guarded_free(&p.g);
}

static void accepts_as_many_headers_as_the_array_holds(void **state)
{
    struct parsed p;
    static const char two[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";

    (void)state;
    parse(&p, two, sizeof two - 1, 2);
    assert_int_equal(p.rc, sizeof two - 1);
    assert_int_equal(p.req.num_headers, 2);
    guarded_free(&p.g);
}

static void refuses_more_headers_than_the_array_holds(void **state)
{
    struct parsed p;
    static const char three[] =
        "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";

    (void)state;
    parse(&p, three, sizeof three - 1, 2);
    if (p.rc != -1)
        fail_msg("expected a third header with room for two to be "
                 "malformed (-1), got %d", p.rc);
    guarded_free(&p.g);
    parse(&p, three, sizeof three - 1, 0);
    assert_int_equal(p.rc, -1);
    guarded_free(&p.g);
}

/* ---- incomplete requests ------------------------------------------------ */

/* Feed text one byte at a time as a server reading a slow client would:
 * every proper prefix must be partial, the whole must be complete. */
static void feed_byte_by_byte(const char *text, size_t len, bool use_last_len)
{
    size_t n, last = 0;

    for (n = 0; n <= len; n++) {
        struct http_header headers[MAX_HEADERS];
        struct http_request req = {.headers = headers,
                                   .max_headers = MAX_HEADERS};
        struct guarded g = guarded_copy(text, n);
        int rc = http_parse_request(g.data, n, use_last_len ? last : 0, &req);
        int want = n < len ? -2 : (int)len;

        guarded_free(&g);
        if (rc != want)
            fail_msg("expected the first %zu of %zu bytes of %s to give %d "
                     "(last_len %zu), got %d", n, len, show(text, len), want,
                     use_last_len ? last : 0, rc);
        last = n;
    }
}

static void is_partial_at_every_byte_boundary_until_complete(void **state)
{
    static const char lf[] = "\nHEAD /x HTTP/1.0\nConnection: keep-alive\n\n";

    (void)state;
    feed_byte_by_byte(CURL_GET, sizeof CURL_GET - 1, false);
    feed_byte_by_byte(lf, sizeof lf - 1, false);
}

static void is_partial_at_every_byte_boundary_with_last_len(void **state)
{
    static const char lf[] = "\nHEAD /x HTTP/1.0\nConnection: keep-alive\n\n";
    static const char mixed[] = "\r\nGET / HTTP/1.1\r\nA: b\n\r\n";

    (void)state;
    feed_byte_by_byte(CURL_GET, sizeof CURL_GET - 1, true);
    feed_byte_by_byte(lf, sizeof lf - 1, true);
    feed_byte_by_byte(mixed, sizeof mixed - 1, true);
}

static void is_partial_when_the_input_ends_in_a_cr(void **state)
{
    (void)state;
    PARTIAL("GET / HTTP/1.1\r");
    PARTIAL("GET / HTTP/1.1\r\nHost: x\r");
    PARTIAL("GET / HTTP/1.1\r\nHost: x\r\n\r");
    PARTIAL("\r");
}

/* Re-parsing from the start on every byte would take some 5 * 10^11 byte
 * steps here: hours. The parser resumes where it stopped (last_len), so
 * the whole mebibyte takes about a million steps: well under a second,
 * sanitizers and a busy machine included. LINEAR_GUARD is a hang guard
 * between the two, well below the test's ctest TIMEOUT (60 s): the loop
 * gives up there and the test fails, instead of running for hours. */
#define LINEAR_GUARD 30.0

static double monotonic_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void parses_a_mebibyte_fed_bytewise_in_linear_time(void **state)
{
    static const char head[] = "GET / HTTP/1.1\r\nX: ";
    size_t len = sizeof head - 1 + (1u << 20) + 4, n, last = 0;
    char *text = malloc(len);
    struct http_header headers[2];
    struct http_request req = {.headers = headers, .max_headers = 2};
    double end;
    int rc = -2;

    (void)state;
    assert_non_null(text);
    memcpy(text, head, sizeof head - 1);
    memset(text + sizeof head - 1, 'a', 1u << 20);
    memcpy(text + len - 4, "\r\n\r\n", 4);
    end = monotonic_seconds() + LINEAR_GUARD;
    for (n = 1; n <= len && rc == -2; last = n++) {
        if ((n & 1023) == 0 && monotonic_seconds() > end)
            fail_msg("expected 1 MiB fed byte by byte to parse in linear "
                     "time; after %.0f s it was at byte %zu of %zu",
                     LINEAR_GUARD, n, len);
        rc = http_parse_request(text, n, last, &req);
    }
    assert_int_equal(rc, (int)len);
    assert_int_equal(headers[0].value_len, 1u << 20);
    free(text);
}

/* The parser has no limit of its own: the server's buffer is the limit. */
static void parses_a_mebibyte_request_line(void **state)
{
    size_t len = (1u << 20) + 32, target_len = 1u << 20;
    char *text = malloc(len), out[8192];
    struct parsed p;
    int n;

    (void)state;
    assert_non_null(text);
    memcpy(text, "GET /", 5);
    memset(text + 5, 'a', target_len - 1);
    n = 4 + (int)target_len;
    n += snprintf(text + n, len - (size_t)n, " HTTP/1.1\r\n\r\n");
    parse(&p, text, (size_t)n, MAX_HEADERS);
    assert_int_equal(p.rc, n);
    assert_int_equal(p.req.target_len, target_len);
    if (http_decode_path(p.req.target, p.req.target_len, out, sizeof out) != -2)
        fail_msg("expected a 1 MiB path to be too long (-2) for 8 KiB");
    guarded_free(&p.g);
    free(text);
}

/* ---- what is malformed ------------------------------------------------- */

static void refuses_versions_other_than_1_0_and_1_1(void **state)
{
    (void)state;
    MALFORMED("GET / HTTP/1.2\r\n\r\n");
    MALFORMED("GET / HTTP/2.0\r\n\r\n");
    MALFORMED("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    MALFORMED("GET / HTTP/1.10\r\n\r\n");
    MALFORMED("GET / http/1.1\r\n\r\n");
    MALFORMED("GET / HTTP/1\r\n\r\n");
    MALFORMED("GET /\r\n\r\n");
}

static void refuses_a_request_line_without_single_spaces(void **state)
{
    (void)state;
    MALFORMED("GET  / HTTP/1.1\r\n\r\n");
    MALFORMED("GET /  HTTP/1.1\r\n\r\n");
    MALFORMED("GET / HTTP/1.1 \r\n\r\n");
    MALFORMED("GET\t/ HTTP/1.1\r\n\r\n");
    MALFORMED(" GET / HTTP/1.1\r\n\r\n");
    MALFORMED("GET HTTP/1.1\r\n\r\n");
}

static void refuses_invalid_token_characters_in_the_method(void **state)
{
    (void)state;
    MALFORMED("GE(T / HTTP/1.1\r\n\r\n");
    MALFORMED("G\"ET / HTTP/1.1\r\n\r\n");
    MALFORMED("G\xC3\x89T / HTTP/1.1\r\n\r\n");
    MALFORMED("GET/ HTTP/1.1\r\n\r\n");
}

static void refuses_invalid_token_characters_in_header_names(void **state)
{
    (void)state;
    MALFORMED("GET / HTTP/1.1\r\nHo@st: x\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nH\xC3\xB3st: x\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nHo st: x\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\n: x\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nHost\r\n\r\n");
}

static void refuses_white_space_before_the_colon(void **state)
{
    (void)state;
    MALFORMED("GET / HTTP/1.1\r\nHost : x\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n");
}

static void refuses_obsolete_line_folding(void **state)
{
    (void)state;
    MALFORMED("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\n Host: x\r\n\r\n");
}

static void refuses_a_nul_anywhere(void **state)
{
    (void)state;
    MALFORMED("G\0T / HTTP/1.1\r\n\r\n");
    MALFORMED("GET /\0 HTTP/1.1\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\0\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nHo\0st: x\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n");
}

static void refuses_a_bare_cr(void **state)
{
    (void)state;
    MALFORMED("GET / HTTP/1.1\rHost: x\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nHost: x\r\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nHost: x\r\n\r\r\n");
    MALFORMED("GET / HTTP/1.1\r\nHost: x\r\n\rX");
}

static void refuses_control_characters(void **state)
{
    (void)state;
    MALFORMED("GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nX: a\x7F\r\n\r\n");
    MALFORMED("GET / HTTP/1.1\r\nX: \x1B[31m\r\n\r\n");
    MALFORMED("GET /a\x7F HTTP/1.1\r\n\r\n");
    MALFORMED("GET /a\tb HTTP/1.1\r\n\r\n");
}

static void refuses_non_ascii_bytes_in_the_target(void **state)
{
    (void)state;
    MALFORMED("GET /caf\xC3\xA9 HTTP/1.1\r\n\r\n");
}

static void refuses_garbage_without_waiting_for_more(void **state)
{
    (void)state;
    /* The start of a TLS ClientHello sent to the plain-text port. */
    MALFORMED("\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03");
    MALFORMED("SSH-2.0-OpenSSH_9.2\r\n");
    MALFORMED("GET / FTP");
}

/* ---- http_find_header --------------------------------------------------- */

static void finds_a_header_ignoring_case(void **state)
{
    struct parsed p;
    const struct http_header *h;

    (void)state;
    request_with(&p, 1, "hOsT: example\r\nHost: second\r\n");
    h = http_find_header(&p.req, "Host");
    assert_non_null(h);
    SAME_TEXT("the first Host", h->value, h->value_len, "example");
    assert_null(http_find_header(&p.req, "Hos"));
    assert_null(http_find_header(&p.req, "Hosts"));
    guarded_free(&p.g);
}

/* ---- http_keep_alive ---------------------------------------------------- */

static void keep_alive_is(int minor, const char *headers, bool want)
{
    struct parsed p;

    request_with(&p, minor, headers);
    if (http_keep_alive(&p.req) != want)
        fail_msg("expected HTTP/1.%d with \"%s\" to %s the connection",
                 minor, show(headers, strlen(headers)),
                 want ? "keep" : "close");
    guarded_free(&p.g);
}

static void http_1_1_keeps_the_connection_by_default(void **state)
{
    (void)state;
    keep_alive_is(1, "", true);
    keep_alive_is(1, "Connection: keep-alive\r\n", true);
    keep_alive_is(1, "Connection: Upgrade\r\n", true);
}

static void http_1_1_closes_on_connection_close(void **state)
{
    (void)state;
    keep_alive_is(1, "Connection: close\r\n", false);
    keep_alive_is(1, "connection: CLOSE\r\n", false);
    keep_alive_is(1, "Connection: keep-alive, close\r\n", false);
    keep_alive_is(1, "Connection: foo,close ,bar\r\n", false);
    keep_alive_is(1, "Connection: ,, close\r\n", false);
}

static void http_1_0_closes_the_connection_by_default(void **state)
{
    (void)state;
    keep_alive_is(0, "", false);
    keep_alive_is(0, "Connection: close\r\n", false);
    keep_alive_is(0, "Connection: Upgrade\r\n", false);
}

static void http_1_0_keeps_the_connection_on_keep_alive(void **state)
{
    (void)state;
    keep_alive_is(0, "Connection: keep-alive\r\n", true);
    keep_alive_is(0, "Connection: Keep-Alive\r\n", true);
    keep_alive_is(0, "Connection: foo, keep-alive\r\n", true);
    keep_alive_is(0, "Connection: keep-alive, close\r\n", false);
}

static void keep_alive_matches_whole_tokens_only(void **state)
{
    (void)state;
    keep_alive_is(1, "Connection: closed\r\n", true);
    keep_alive_is(1, "Connection: \"close\"\r\n", true);
    keep_alive_is(0, "Connection: keep-alive-ish\r\n", false);
    keep_alive_is(0, "Keep-Alive: timeout=5\r\n", false);
}

static void keep_alive_reads_every_connection_field(void **state)
{
    (void)state;
    keep_alive_is(1, "Connection: foo\r\nConnection: close\r\n", false);
    keep_alive_is(0, "Connection: foo\r\nConnection: keep-alive\r\n", true);
}

/* ---- http_content_length ------------------------------------------------ */

static void content_length_is(const char *headers, int want_rc,
                              int64_t want_length)
{
    struct parsed p;
    int64_t length = -7;
    int rc;

    request_with(&p, 1, headers);
    rc = http_content_length(&p.req, &length);
    if (rc != want_rc || (rc == 0 && length != want_length))
        fail_msg("expected \"%s\" to give %d with length %lld, got %d with "
                 "length %lld", show(headers, strlen(headers)), want_rc,
                 (long long)want_length, rc, (long long)length);
    guarded_free(&p.g);
}

static void content_length_is_zero_without_the_field(void **state)
{
    (void)state;
    content_length_is("", 0, 0);
    content_length_is("Host: x\r\n", 0, 0);
}

static void content_length_reads_digits_up_to_int64_max(void **state)
{
    (void)state;
    content_length_is("Content-Length: 0\r\n", 0, 0);
    content_length_is("content-length: 123\r\n", 0, 123);
    content_length_is("Content-Length:  007 \r\n", 0, 7);
    content_length_is("Content-Length: 9223372036854775807\r\n", 0,
                      INT64_MAX);
}

static void content_length_refuses_anything_but_digits(void **state)
{
    (void)state;
    content_length_is("Content-Length:\r\n", -1, 0);
    content_length_is("Content-Length: +1\r\n", -1, 0);
    content_length_is("Content-Length: -1\r\n", -1, 0);
    content_length_is("Content-Length: 1 2\r\n", -1, 0);
    content_length_is("Content-Length: 0x10\r\n", -1, 0);
    content_length_is("Content-Length: 5, 5\r\n", -1, 0);
    content_length_is("Content-Length: 1.0\r\n", -1, 0);
}

static void content_length_refuses_overflow(void **state)
{
    (void)state;
    content_length_is("Content-Length: 9223372036854775808\r\n", -1, 0);
    content_length_is("Content-Length: 18446744073709551616\r\n", -1, 0);
    content_length_is("Content-Length: 99999999999999999999999999\r\n", -1, 0);
}

static void content_length_refuses_a_repeated_field(void **state)
{
    (void)state;
    content_length_is("Content-Length: 5\r\nContent-Length: 5\r\n", -1, 0);
    content_length_is("Content-Length: 5\r\ncontent-length: 6\r\n", -1, 0);
}

static void content_length_refuses_any_transfer_encoding(void **state)
{
    (void)state;
    content_length_is("Transfer-Encoding: chunked\r\n", -1, 0);
    content_length_is("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                      -1, 0);
    content_length_is("transfer-encoding: identity\r\n", -1, 0);
}

/* ---- http_decode_path --------------------------------------------------- */

static void decodes_escapes_and_drops_query_and_fragment(void **state)
{
    (void)state;
    DECODES("/a/b%20c.txt?x=1", "/a/b c.txt");
    DECODES("/a/b%20c.txt#top", "/a/b c.txt");
    DECODES("/%E6%96%87.txt", "/\xE6\x96\x87.txt");
    DECODES("/%41%6a", "/Aj");
    DECODES("/a?../../etc/passwd", "/a");
    DECODES("/?q", "/");
}

static void keeps_the_root_and_a_trailing_slash(void **state)
{
    (void)state;
    DECODES("/", "/");
    DECODES("/dir/", "/dir/");
    DECODES("/dir/.", "/dir/");
    DECODES("/dir//", "/dir/");
}

static void collapses_double_slashes_under_the_root(void **state)
{
    (void)state;
    DECODES("//etc/passwd", "/etc/passwd");
    DECODES("/a//b///c", "/a/b/c");
    DECODES("/%2fetc", "/etc");
}

static void collapses_dot_segments(void **state)
{
    (void)state;
    DECODES("/./a/./b", "/a/b");
    DECODES("/%2e/a", "/a");
    DECODES("/.", "/");
}

static void treats_a_decoded_slash_as_a_separator(void **state)
{
    (void)state;
    DECODES("/a%2Fb", "/a/b");
}

static void keeps_names_that_only_look_like_dots(void **state)
{
    (void)state;
    DECODES("/...", "/...");
    DECODES("/.hidden", "/.hidden");
    DECODES("/a..b/..c/d..", "/a..b/..c/d..");
    DECODES("/%2e%2e%2e", "/...");
}

static void refuses_every_form_of_dot_dot(void **state)
{
    (void)state;
    PATH_REFUSED("/..");
    PATH_REFUSED("/../");
    PATH_REFUSED("/../../etc/passwd");
    PATH_REFUSED("/%2e%2e/%2e%2e/etc/passwd");
    PATH_REFUSED("/%2E%2E/etc/passwd");
    PATH_REFUSED("/%2e%2e%2fetc%2fpasswd");
    PATH_REFUSED("/..%2fetc");
    PATH_REFUSED("/.%2e/etc");
    PATH_REFUSED("/%2e./etc");
    PATH_REFUSED("/a/../../b");
    PATH_REFUSED("/a/..");
    PATH_REFUSED("/a/b/..?x");
    PATH_REFUSED("//..//etc");
}

static void refuses_dot_dot_even_inside_the_root(void **state)
{
    (void)state;
    /* "/a/b/../c" stays under the root, but a server that never sees ".."
     * cannot be fooled by it: clients normalise before sending. */
    PATH_REFUSED("/a/b/../c");
}

static void refuses_invalid_percent_escapes(void **state)
{
    (void)state;
    PATH_REFUSED("/%");
    PATH_REFUSED("/%2");
    PATH_REFUSED("/a%2?x");
    PATH_REFUSED("/%zz");
    PATH_REFUSED("/%g0");
    PATH_REFUSED("/%%41");
}

static void refuses_nul_and_control_characters(void **state)
{
    (void)state;
    PATH_REFUSED("/%00");
    PATH_REFUSED("/a.txt%00.html");
    PATH_REFUSED("/a%0a");
    PATH_REFUSED("/a%0D%0AX:%20y");
    PATH_REFUSED("/%1f");
    PATH_REFUSED("/%7F");
}

static void refuses_raw_bytes_that_are_not_visible_ascii(void **state)
{
    (void)state;
    PATH_REFUSED("/a b");
    PATH_REFUSED("/a\tb");
    PATH_REFUSED("/caf\xC3\xA9");
    PATH_REFUSED("/a\0b");
}

static void refuses_targets_that_are_not_origin_form(void **state)
{
    (void)state;
    PATH_REFUSED("");
    PATH_REFUSED("http://x/y");
    PATH_REFUSED("x:80");
    PATH_REFUSED("*");
    PATH_REFUSED("?x=/a");
    PATH_REFUSED("#/a");
    PATH_REFUSED("a/b");
    PATH_REFUSED("%2fa");
}

static void reports_too_long_when_the_path_and_nul_do_not_fit(void **state)
{
    char out[8];

    (void)state;
    assert_int_equal(decode("/abcdef", 7, out, 8), 7);
    assert_string_equal(out, "/abcdef");
    if (decode("/abcdefg", 8, out, 8) != -2)
        fail_msg("expected \"/abcdefg\" to be too long (-2) for 8 bytes");
    assert_int_equal(decode("/", 1, out, 1), -2);
    assert_int_equal(decode("/", 1, out, 0), -2);
}

static void measures_the_path_after_decoding_and_collapsing(void **state)
{
    char out[8];
    const char *escaped = "/%41%42%43%44%45%46?long-query";
    const char *dotted = "/a/./././././b//////c";

    (void)state;
    assert_int_equal(decode(escaped, strlen(escaped), out, 8), 7);
    assert_string_equal(out, "/ABCDEF");
    assert_int_equal(decode(dotted, strlen(dotted), out, 8), 6);
    assert_string_equal(out, "/a/b/c");
}

static void refuses_traversal_as_a_bad_request_even_when_too_long(void **state)
{
    char out[4];

    (void)state;
    if (decode("/aaaaaaaa/../x", 14, out, sizeof out) != -1)
        fail_msg("expected a long path with \"..\" to be a bad request (-1)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_a_get_request_as_curl_sends_it),
        cmocka_unit_test(parses_a_head_request),
        cmocka_unit_test(parses_an_http_1_0_request_without_headers),
        cmocka_unit_test(leaves_judging_the_method_to_the_server),
        cmocka_unit_test(consumes_only_up_to_the_empty_line),
        cmocka_unit_test(accepts_bare_lf_line_endings),
        cmocka_unit_test(skips_one_empty_line_before_the_request_line),
        cmocka_unit_test(trims_spaces_and_tabs_around_header_values),
        cmocka_unit_test(lets_obs_text_through_in_header_values),
        cmocka_unit_test(accepts_as_many_headers_as_the_array_holds),
        cmocka_unit_test(refuses_more_headers_than_the_array_holds),
        cmocka_unit_test(is_partial_at_every_byte_boundary_until_complete),
        cmocka_unit_test(is_partial_at_every_byte_boundary_with_last_len),
        cmocka_unit_test(is_partial_when_the_input_ends_in_a_cr),
        cmocka_unit_test(parses_a_mebibyte_fed_bytewise_in_linear_time),
        cmocka_unit_test(parses_a_mebibyte_request_line),
        cmocka_unit_test(refuses_versions_other_than_1_0_and_1_1),
        cmocka_unit_test(refuses_a_request_line_without_single_spaces),
        cmocka_unit_test(refuses_invalid_token_characters_in_the_method),
        cmocka_unit_test(refuses_invalid_token_characters_in_header_names),
        cmocka_unit_test(refuses_white_space_before_the_colon),
        cmocka_unit_test(refuses_obsolete_line_folding),
        cmocka_unit_test(refuses_a_nul_anywhere),
        cmocka_unit_test(refuses_a_bare_cr),
        cmocka_unit_test(refuses_control_characters),
        cmocka_unit_test(refuses_non_ascii_bytes_in_the_target),
        cmocka_unit_test(refuses_garbage_without_waiting_for_more),
        cmocka_unit_test(finds_a_header_ignoring_case),
        cmocka_unit_test(http_1_1_keeps_the_connection_by_default),
        cmocka_unit_test(http_1_1_closes_on_connection_close),
        cmocka_unit_test(http_1_0_closes_the_connection_by_default),
        cmocka_unit_test(http_1_0_keeps_the_connection_on_keep_alive),
        cmocka_unit_test(keep_alive_matches_whole_tokens_only),
        cmocka_unit_test(keep_alive_reads_every_connection_field),
        cmocka_unit_test(content_length_is_zero_without_the_field),
        cmocka_unit_test(content_length_reads_digits_up_to_int64_max),
        cmocka_unit_test(content_length_refuses_anything_but_digits),
        cmocka_unit_test(content_length_refuses_overflow),
        cmocka_unit_test(content_length_refuses_a_repeated_field),
        cmocka_unit_test(content_length_refuses_any_transfer_encoding),
        cmocka_unit_test(decodes_escapes_and_drops_query_and_fragment),
        cmocka_unit_test(keeps_the_root_and_a_trailing_slash),
        cmocka_unit_test(collapses_double_slashes_under_the_root),
        cmocka_unit_test(collapses_dot_segments),
        cmocka_unit_test(treats_a_decoded_slash_as_a_separator),
        cmocka_unit_test(keeps_names_that_only_look_like_dots),
        cmocka_unit_test(refuses_every_form_of_dot_dot),
        cmocka_unit_test(refuses_dot_dot_even_inside_the_root),
        cmocka_unit_test(refuses_invalid_percent_escapes),
        cmocka_unit_test(refuses_nul_and_control_characters),
        cmocka_unit_test(refuses_raw_bytes_that_are_not_visible_ascii),
        cmocka_unit_test(refuses_targets_that_are_not_origin_form),
        cmocka_unit_test(reports_too_long_when_the_path_and_nul_do_not_fit),
        cmocka_unit_test(measures_the_path_after_decoding_and_collapsing),
        cmocka_unit_test(refuses_traversal_as_a_bad_request_even_when_too_long),
        cmocka_unit_test(guard_page_faults_on_a_read_past_the_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
