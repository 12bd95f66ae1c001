/*
 * http_parser.c - a strict HTTP/1.1 request parser (RFC 9110, RFC 9112).
 *
 * Each step takes a cursor over the caller's buffer and returns PARSED,
 * MALFORMED or PARTIAL, PARTIAL meaning "the buffer ended before the step
 * could decide". Every byte is checked against the end before it is read.
 */
#include "http_parser.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

enum { PARSED = 0, MALFORMED = -1, PARTIAL = -2 };

struct cursor {
    const unsigned char *p;    /* the next unread byte */
    const unsigned char *end;  /* one past the last byte */
};

/* tchar of RFC 9110, section 5.6.2: what methods and field names are made
 * of. The NUL check keeps strchr() from matching the terminator. */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* A line ending: CRLF or a bare LF (RFC 9112, section 2.2). */
static int parse_eol(struct cursor *c)
{
    if (c->p == c->end)
        return PARTIAL;
    if (*c->p == '\n') {
        c->p++;
        return PARSED;
    }
    if (*c->p != '\r')
        return MALFORMED;
    if (c->end - c->p < 2)
        return PARTIAL;
    if (c->p[1] != '\n')
        return MALFORMED;  /* a bare CR: some parsers take it for a line end */
    c->p += 2;
    return PARSED;
}

/* A non-empty token followed by stop, which is consumed. */
static int parse_token(struct cursor *c, unsigned char stop, const char **tok,
                       size_t *len)
{
    const unsigned char *start = c->p;

    while (c->p != c->end && is_tchar(*c->p))
        c->p++;
    if (c->p == c->end)
        return PARTIAL;
    if (c->p == start || *c->p != stop)
        return MALFORMED;
    *tok = (const char *)start;
    *len = (size_t)(c->p - start);
    c->p++;
    return PARSED;
}

/* The request-target: visible ASCII up to a single space. Its form is
 * judged by http_decode_path(), not here. */
static int parse_target(struct cursor *c, struct http_request *req)
{
    const unsigned char *start = c->p;

    while (c->p != c->end && *c->p > 0x20 && *c->p < 0x7F)
        c->p++;
    if (c->p == c->end)
        return PARTIAL;
    if (c->p == start || *c->p != ' ')
        return MALFORMED;
    req->target = (const char *)start;
    req->target_len = (size_t)(c->p - start);
    c->p++;
    return PARSED;
}

/* "HTTP/1.0" or "HTTP/1.1", case-sensitive (RFC 9112, section 2.3). */
static int parse_version(struct cursor *c, int *minor)
{
    static const char prefix[] = "HTTP/1.";
    size_t i;

    for (i = 0; i < sizeof prefix - 1; i++, c->p++) {
        if (c->p == c->end)
            return PARTIAL;
        if (*c->p != (unsigned char)prefix[i])
            return MALFORMED;
    }
    if (c->p == c->end)
        return PARTIAL;
    if (*c->p != '0' && *c->p != '1')
        return MALFORMED;
    *minor = *c->p - '0';
    c->p++;
    return PARSED;
}

static int parse_request_line(struct cursor *c, struct http_request *req)
{
    int r;

    if ((r = parse_token(c, ' ', &req->method, &req->method_len)) != PARSED)
        return r;
    if ((r = parse_target(c, req)) != PARSED)
        return r;
    if ((r = parse_version(c, &req->minor_version)) != PARSED)
        return r;
    return parse_eol(c);
}

/* A field value and its line ending. The value may hold visible ASCII,
 * spaces, tabs and obs-text (0x80-0xFF); surrounding spaces and tabs are
 * not part of it (RFC 9110, section 5.5). */
static int parse_value(struct cursor *c, struct http_header *h)
{
    const unsigned char *start, *last;

    while (c->p != c->end && is_ows(*c->p))
        c->p++;
    start = c->p;
    while (c->p != c->end &&
           (*c->p == '\t' || (*c->p >= 0x20 && *c->p != 0x7F)))
        c->p++;
    if (c->p == c->end)
        return PARTIAL;
    if (*c->p != '\r' && *c->p != '\n')
        return MALFORMED;
    for (last = c->p; last > start && is_ows(last[-1]); last--)
        ;
    h->value = (const char *)start;
    h->value_len = (size_t)(last - start);
    return parse_eol(c);
}

/* Header lines up to and including the empty line that ends them. */
static int parse_headers(struct cursor *c, struct http_request *req)
{
    int r;

    req->num_headers = 0;
    for (;;) {
        struct http_header *h;

        if (c->p == c->end)
            return PARTIAL;
        if (*c->p == '\r' || *c->p == '\n')
            return parse_eol(c);
        /* Obsolete line folding, or white space after the request line:
         * RFC 9112, sections 2.2 and 5.2, allow refusing both. */
        if (is_ows(*c->p))
            return MALFORMED;
        if (req->num_headers == req->max_headers)
            return MALFORMED;
        h = &req->headers[req->num_headers];
        /* The name must end at the colon: "Host : x" is refused
         * (RFC 9112, section 5.1). */
        if ((r = parse_token(c, ':', &h->name, &h->name_len)) != PARSED)
            return r;
        if ((r = parse_value(c, h)) != PARSED)
            return r;
        req->num_headers++;
    }
}

static int parse_request(const char *buf, size_t len, struct http_request *req)
{
    struct cursor c = {(const unsigned char *)buf,
                       (const unsigned char *)buf + len};
    int r;

    /* A client may send CRLF after a body it thought the server wanted
     * (RFC 9112, section 2.2). Only one empty line is skipped, so that
     * a stream of them is refused instead of re-scanned on every call. */
    if (c.p != c.end && (*c.p == '\r' || *c.p == '\n'))
        if ((r = parse_eol(&c)) != PARSED)
            return r;
    if ((r = parse_request_line(&c, req)) != PARSED)
        return r;
    if ((r = parse_headers(&c, req)) != PARSED)
        return r;
    if (c.p - (const unsigned char *)buf > INT_MAX)
        return MALFORMED;
    return (int)(c.p - (const unsigned char *)buf);
}

/* Whether buf holds the empty line that ends a header section, looking
 * only where new bytes can complete one. The end is LF [CR] LF, so it can
 * begin at most two bytes before the first new byte at last_len. */
static bool has_end_of_headers(const char *buf, size_t len, size_t last_len)
{
    size_t i = last_len < 2 ? 0 : last_len - 2;
    const char *nl;

    while (i < len && (nl = memchr(buf + i, '\n', len - i)) != NULL) {
        i = (size_t)(nl - buf) + 1;
        if (i < len && buf[i] == '\n')
            return true;
        if (len - i >= 2 && buf[i] == '\r' && buf[i + 1] == '\n')
            return true;
    }
    return false;
}

int http_parse_request(const char *buf, size_t len, size_t last_len,
                       struct http_request *req)
{
    assert(buf != NULL || len == 0);
    assert(req->headers != NULL || req->max_headers == 0);
    assert(last_len <= len);
    if (last_len > len)
        last_len = 0;  /* a caller's mistake: a full parse is still right */
    /* Until the header section is complete a full parse would only
     * re-read the same bytes to return -2 again, which turns a slow
     * client into quadratic work. */
    if (last_len != 0 && !has_end_of_headers(buf, len, last_len))
        return PARTIAL;
    return parse_request(buf, len, req);
}

static unsigned char to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ASCII case-insensitive equality, whatever the locale. */
static bool equal_nocase(const char *a, size_t alen, const char *b,
                         size_t blen)
{
    size_t i;

    if (alen != blen)
        return false;
    for (i = 0; i < alen; i++)
        if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i]))
            return false;
    return true;
}

static bool is_named(const struct http_header *h, const char *name)
{
    return equal_nocase(h->name, h->name_len, name, strlen(name));
}

const struct http_header *http_find_header(const struct http_request *req,
                                           const char *name)
{
    size_t i;

    for (i = 0; i < req->num_headers; i++)
        if (is_named(&req->headers[i], name))
            return &req->headers[i];
    return NULL;
}

/* Whether the comma-separated list v[0 .. len) has the element token. */
static bool list_has(const char *v, size_t len, const char *token)
{
    const char *p = v, *end = v + len;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *s = p, *e = comma != NULL ? comma : end;

        while (s < e && is_ows((unsigned char)*s))
            s++;
        while (e > s && is_ows((unsigned char)e[-1]))
            e--;
        if (equal_nocase(s, (size_t)(e - s), token, strlen(token)))
            return true;
        p = comma != NULL ? comma + 1 : end;
    }
    return false;
}

bool http_keep_alive(const struct http_request *req)
{
    bool close = false, keep_alive = false;
    size_t i;

    for (i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];

        if (!is_named(h, "Connection"))
            continue;
        close = close || list_has(h->value, h->value_len, "close");
        keep_alive = keep_alive || list_has(h->value, h->value_len,
                                            "keep-alive");
    }
    if (close)
        return false;
    return req->minor_version >= 1 || keep_alive;
}

/* 1*DIGIT, at most INT64_MAX: no sign, no spaces, no list. */
static int parse_decimal(const char *s, size_t len, int64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0)
        return -1;
    for (i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - (unsigned)'0';

        if (d > 9 || v > ((uint64_t)INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = (int64_t)v;
    return 0;
}

int http_content_length(const struct http_request *req, int64_t *length)
{
    const struct http_header *cl = NULL;
    size_t i;

    *length = 0;
    for (i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];

        if (is_named(h, "Transfer-Encoding"))
            return -1;
        if (is_named(h, "Content-Length")) {
            if (cl != NULL)
                return -1;
            cl = h;
        }
    }
    if (cl == NULL)
        return 0;
    return parse_decimal(cl->value, cl->value_len, length);
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The path being written. n counts every byte of the result, but only the
 * bytes that fit with a NUL are stored: a path too long for out is still
 * checked to the end, so that traversal is refused as such, not as 414. */
struct path {
    char *out;
    size_t size;
    size_t n;        /* length of the result so far */
    size_t seg;      /* where the current segment starts */
    bool dots_only;  /* the current segment is made of '.' alone */
};

static void path_put(struct path *w, char c)
{
    if (w->n + 1 < w->size)
        w->out[w->n] = c;
    w->n++;
    w->dots_only = w->dots_only && c == '.';
}

/* End the current segment: refuse "..", drop "" and ".", and keep the rest
 * followed by a '/' unless it is the last one. */
static int path_end_segment(struct path *w, bool last)
{
    size_t len = w->n - w->seg;

    if (w->dots_only && len == 2)
        return -1;
    if (len == 0 || (w->dots_only && len == 1))
        w->n = w->seg;
    else if (!last)
        path_put(w, '/');
    w->seg = w->n;
    w->dots_only = true;
    return 0;
}

/* The byte at p[0 .. avail), decoding a %XX escape; the count of input
 * bytes it took, or -1. Only visible ASCII may appear raw, and no escape
 * may make a NUL or a control character. */
static int next_byte(const unsigned char *p, size_t avail, unsigned char *c)
{
    int hi, lo;

    if (*p != '%') {
        *c = *p;
        return *p > 0x20 && *p < 0x7F ? 1 : -1;
    }
    if (avail < 3 || (hi = hex_value(p[1])) < 0 || (lo = hex_value(p[2])) < 0)
        return -1;
    *c = (unsigned char)(hi << 4 | lo);
    return *c >= 0x20 && *c != 0x7F ? 3 : -1;
}

int http_decode_path(const char *target, size_t len, char *out,
                     size_t outsize)
{
    const unsigned char *p = (const unsigned char *)target, *end;
    struct path w = {.out = out, .size = outsize, .dots_only = true};
    size_t path_len;

    for (path_len = 0; path_len < len; path_len++)
        if (target[path_len] == '?' || target[path_len] == '#')
            break;
    if (path_len == 0 || *p != '/')
        return -1;  /* also absolute-form, authority-form and "*" */
    end = p + path_len;
    path_put(&w, '/');
    w.seg = w.n;
    w.dots_only = true;
    for (p++; p < end;) {
        unsigned char c;
        int took = next_byte(p, (size_t)(end - p), &c);

        if (took < 0)
            return -1;
        p += took;
        if (c != '/')
            path_put(&w, (char)c);
        else if (path_end_segment(&w, false) < 0)
            return -1;
    }
    if (path_end_segment(&w, true) < 0)
        return -1;
    if (w.n >= outsize || w.n > INT_MAX)
        return -2;
    out[w.n] = '\0';
    return (int)w.n;
}
