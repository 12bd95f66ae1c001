/*
 * upload_header.c - a strict reader for the upload protocol's JSON header.
 *
 * A hand-written RFC 8259 reader cut down to what the header needs: one
 * object whose values are scalars. Because nesting is refused rather than
 * followed, there is no recursion and no stack to bound. Every read goes
 * through a cursor that is checked against the end of the buffer first.
 */
#include "upload_header.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct reader {
    const unsigned char *start;  /* the caller's buffer, for error offsets */
    const unsigned char *p;      /* the next unread byte */
    const unsigned char *end;    /* one past the last byte */
    const char *why;             /* the first error, or NULL */
    const unsigned char *where;  /* where it is */
};

/* What a value turned out to be. Strings are decoded into the buffer the
 * caller of read_value() supplies; numbers are summarised. */
enum value_type { VALUE_STRING, VALUE_NUMBER, VALUE_LITERAL };

struct value {
    enum value_type type;
    size_t len;         /* string: decoded length, even past the buffer */
    bool negative;      /* number: had a leading '-' */
    bool integer;       /* number: no fraction and no exponent */
    bool overflow;      /* number: magnitude above INT64_MAX */
    uint64_t magnitude; /* number: |value| when integer and not overflow */
};

static int fail(struct reader *r, const unsigned char *at, const char *why)
{
    if (r->why == NULL) {
        r->why = why;
        r->where = at;
    }
    return -1;
}

static bool at_end(const struct reader *r)
{
    return r->p == r->end;
}

/* RFC 8259 whitespace is exactly these four; a NUL or a form feed is not. */
static void skip_ws(struct reader *r)
{
    while (!at_end(r) && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' ||
                          *r->p == '\r'))
        r->p++;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629, table 3-7
 * of Unicode), or 0 if there is none: overlong forms, UTF-16 surrogates,
 * code points past U+10FFFF and sequences cut short are all refused. */
static size_t utf8_sequence_len(const unsigned char *p,
                                const unsigned char *end)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF; /* range of byte 2 */
    size_t n, i;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;          /* below is overlong */
        else if (c == 0xED)
            hi = 0x9F;          /* above are the surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;          /* below is overlong */
        else if (c == 0xF4)
            hi = 0x8F;          /* above is past U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* Append bytes to a string being decoded. Bytes past cap are counted but
 * not stored, so the caller learns the full length of an oversized string
 * while the reader goes on validating it. */
static void put_bytes(char *out, size_t cap, size_t *len,
                      const unsigned char *bytes, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++, (*len)++)
        if (*len < cap)
            out[*len] = (char)bytes[i];
}

static void put_code_point(char *out, size_t cap, size_t *len, uint32_t cp)
{
    unsigned char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | cp >> 18);
        b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    put_bytes(out, cap, len, b, n);
}

/* Read "\uXXXX" at p into *unit; -1 if it is not there in full. */
static int read_u_escape(const unsigned char *p, const unsigned char *end,
                         uint32_t *unit)
{
    int i;

    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
        return -1;
    *unit = 0;
    for (i = 2; i < 6; i++) {
        unsigned char c = p[i];
        uint32_t d;

        if (is_digit(c))
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        *unit = *unit << 4 | d;
    }
    return 0;
}

/* Read a \u escape, or a surrogate pair of two, into a code point. JSON
 * strings are UTF-16 underneath: json.dumps writes U+1F600 as
 * "\ud83d\ude00". Half a pair has no UTF-8 form and is refused. */
static int read_unicode_escape(struct reader *r, uint32_t *cp)
{
    const unsigned char *at = r->p;
    uint32_t hi, lo;

    if (read_u_escape(r->p, r->end, &hi) < 0)
        return fail(r, at, "invalid \\u escape");
    r->p += 6;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return fail(r, at, "lone surrogate");
    if (hi < 0xD800 || hi > 0xDBFF) {
        *cp = hi;
        return 0;
    }
    if (read_u_escape(r->p, r->end, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
        return fail(r, at, "lone surrogate");
    r->p += 6;
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return 0;
}

/* Read the escape sequence at r->p (a backslash) into a code point. */
static int read_escape(struct reader *r, uint32_t *cp)
{
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    const char *hit;

    if (r->end - r->p < 2)
        return fail(r, r->p, "unterminated string");
    if (r->p[1] == 'u')
        return read_unicode_escape(r, cp);
    hit = r->p[1] != '\0' ? strchr(from, r->p[1]) : NULL;
    if (hit == NULL)
        return fail(r, r->p, "invalid escape");
    *cp = (unsigned char)to[hit - from];
    r->p += 2;
    return 0;
}

/* Read the string at r->p (a quote), decoding it into out[0 .. cap) and
 * its full decoded length into *len. out is not NUL-terminated here. */
static int read_string(struct reader *r, char *out, size_t cap, size_t *len)
{
    assert(!at_end(r) && *r->p == '"');
    r->p++;
    *len = 0;
    for (;;) {
        uint32_t cp = 0;
        size_t n;

        if (at_end(r))
            return fail(r, r->p, "unterminated string");
        if (*r->p == '"')
            break;
        if (*r->p == '\\') {
            if (read_escape(r, &cp) < 0)
                return -1;
            put_code_point(out, cap, len, cp);
            continue;
        }
        if (*r->p < 0x20)
            return fail(r, r->p, "control character in string");
        n = utf8_sequence_len(r->p, r->end);
        if (n == 0)
            return fail(r, r->p, "invalid UTF-8");
        put_bytes(out, cap, len, r->p, n);
        r->p += n;
    }
    r->p++;
    return 0;
}

/* Consume a run of digits, accumulating it into v->magnitude; a value past
 * INT64_MAX sets v->overflow instead of wrapping. */
static void read_digits(struct reader *r, struct value *v)
{
    for (; !at_end(r) && is_digit(*r->p); r->p++) {
        unsigned d = *r->p - '0';

        if (v->overflow || v->magnitude > ((uint64_t)INT64_MAX - d) / 10)
            v->overflow = true;
        else
            v->magnitude = v->magnitude * 10 + d;
    }
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and nothing else: no
 * leading '+', no leading zeros, no bare '.', no NaN or Infinity. */
static int read_number(struct reader *r, struct value *v)
{
    const unsigned char *at = r->p;
    struct value discard = {0};

    *v = (struct value){.type = VALUE_NUMBER, .integer = true};
    if (*r->p == '-') {
        v->negative = true;
        r->p++;
    }
    if (at_end(r) || !is_digit(*r->p))
        return fail(r, at, "invalid number");
    if (*r->p == '0') {
        r->p++;
        if (!at_end(r) && is_digit(*r->p))
            return fail(r, at, "invalid number");
    } else {
        read_digits(r, v);
    }
    if (!at_end(r) && *r->p == '.') {
        v->integer = false;
        r->p++;
        if (at_end(r) || !is_digit(*r->p))
            return fail(r, at, "invalid number");
        read_digits(r, &discard);
    }
    if (!at_end(r) && (*r->p == 'e' || *r->p == 'E')) {
        v->integer = false;
        r->p++;
        if (!at_end(r) && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (at_end(r) || !is_digit(*r->p))
            return fail(r, at, "invalid number");
        read_digits(r, &discard);
    }
    return 0;
}

static int read_literal(struct reader *r, struct value *v)
{
    static const char *const words[] = {"true", "false", "null"};
    size_t i;

    v->type = VALUE_LITERAL;
    for (i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);

        if ((size_t)(r->end - r->p) >= n && memcmp(r->p, words[i], n) == 0) {
            r->p += n;
            return 0;
        }
    }
    return fail(r, r->p, "invalid value");
}

/* Read one value. A string is decoded into out[0 .. cap), which may be
 * NULL with cap 0 when only its validity matters. */
static int read_value(struct reader *r, struct value *v, char *out, size_t cap)
{
    if (at_end(r))
        return fail(r, r->p, "unexpected end of input");
    switch (*r->p) {
    case '"':
        *v = (struct value){.type = VALUE_STRING};
        return read_string(r, out, cap, &v->len);
    case '{':
    case '[':
        return fail(r, r->p, "nested value not allowed");
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return read_number(r, v);
    default:
        return read_literal(r, v);
    }
}

/* A string value into a fixed-size field, NUL-terminated. */
static int store_string(struct reader *r, const unsigned char *at,
                        char *field, size_t size, size_t *len,
                        const char *not_string, const char *too_long)
{
    struct value v = {0};

    if (read_value(r, &v, field, size - 1) < 0)
        return -1;
    if (v.type != VALUE_STRING)
        return fail(r, at, not_string);
    if (v.len > size - 1)
        return fail(r, at, too_long);
    field[v.len] = '\0';
    *len = v.len;
    return 0;
}

static int store_cmd(struct reader *r, struct upload_header *out)
{
    const unsigned char *at = r->p;
    size_t len = 0;

    if (store_string(r, at, out->cmd, sizeof out->cmd, &len,
                     "cmd is not a string", "cmd too long") < 0)
        return -1;
    /* "put\u0000x" would compare equal to "put" with strcmp(). */
    if (memchr(out->cmd, '\0', len) != NULL)
        return fail(r, at, "cmd contains NUL");
    return 0;
}

static int store_filename(struct reader *r, struct upload_header *out)
{
    return store_string(r, r->p, out->filename, sizeof out->filename,
                        &out->filename_len, "filename is not a string",
                        "filename too long");
}

static int store_filesize(struct reader *r, struct upload_header *out)
{
    const unsigned char *at = r->p;
    struct value v = {0};

    if (read_value(r, &v, NULL, 0) < 0)
        return -1;
    if (v.type != VALUE_NUMBER || !v.integer)
        return fail(r, at, "filesize is not an integer");
    if (v.negative && v.magnitude != 0)
        return fail(r, at, "filesize is negative");
    if (v.overflow)
        return fail(r, at, "filesize too large");
    out->filesize = (long long)v.magnitude;
    return 0;
}

/* Read one "key": value member and store it if the key is known. */
static int read_member(struct reader *r, struct upload_header *out)
{
    static const struct {
        const char *name;
        unsigned bit;
        int (*store)(struct reader *, struct upload_header *);
    } keys[] = {
        {"cmd", UPLOAD_HAVE_CMD, store_cmd},
        {"filename", UPLOAD_HAVE_FILENAME, store_filename},
        {"filesize", UPLOAD_HAVE_FILESIZE, store_filesize},
    };
    const unsigned char *at = r->p;
    char key[8];  /* the longest known key; longer ones are unknown */
    size_t len, i;
    struct value v;

    if (at_end(r) || *r->p != '"')
        return fail(r, r->p, at_end(r) ? "unexpected end of input"
                                       : "expected a string key");
    if (read_string(r, key, sizeof key, &len) < 0)
        return -1;
    skip_ws(r);
    if (at_end(r) || *r->p != ':')
        return fail(r, r->p, at_end(r) ? "unexpected end of input"
                                       : "expected ':' after key");
    r->p++;
    skip_ws(r);
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (len != strlen(keys[i].name) || memcmp(key, keys[i].name, len) != 0)
            continue;
        if (out->present & keys[i].bit)
            return fail(r, at, "duplicate key");
        out->present |= keys[i].bit;
        return keys[i].store(r, out);
    }
    return read_value(r, &v, NULL, 0);
}

static int read_object(struct reader *r, struct upload_header *out)
{
    if (at_end(r))
        return fail(r, r->p, "unexpected end of input");
    if (*r->p != '{')
        return fail(r, r->p, "header is not a JSON object");
    r->p++;
    skip_ws(r);
    if (!at_end(r) && *r->p == '}') {
        r->p++;
        return 0;
    }
    for (;;) {
        if (read_member(r, out) < 0)
            return -1;
        skip_ws(r);
        if (at_end(r))
            return fail(r, r->p, "unexpected end of input");
        if (*r->p == '}')
            break;
        if (*r->p != ',')
            return fail(r, r->p, "expected ',' or '}'");
        r->p++;
        skip_ws(r);
    }
    r->p++;
    return 0;
}

int upload_header_parse(const char *buf, size_t len, struct upload_header *out,
                        const char **why)
{
    struct reader r = {
        .start = (const unsigned char *)buf,
        .p = (const unsigned char *)buf,
        .end = (const unsigned char *)buf + len,
    };

    assert(buf != NULL || len == 0);
    memset(out, 0, sizeof *out);
    out->filesize = -1;
    skip_ws(&r);
    if (read_object(&r, out) == 0) {
        skip_ws(&r);
        if (at_end(&r))
            return 0;
        fail(&r, r.p, "data after the object");
    }
    out->error_offset = (size_t)(r.where - r.start);
    if (why != NULL)
        *why = r.why;
    return -1;
}

/* What is wrong with the character at p, or NULL. *n is set to its length
 * in bytes (1 when it is not valid UTF-8). */
static const char *name_char_problem(const unsigned char *p,
                                     const unsigned char *end, size_t *n)
{
    *n = utf8_sequence_len(p, end);
    if (*n == 0) {
        *n = 1;
        return "filename is not valid UTF-8";
    }
    if (*p == '\0')
        return "filename contains NUL";
    if (*p == '/')
        return "filename contains '/'";
    /* C0 controls, DEL, and the C1 controls U+0080..U+009F (C2 80..9F). */
    if (*p < 0x20 || *p == 0x7F || (*n == 2 && p[0] == 0xC2 && p[1] < 0xA0))
        return "filename contains a control character";
    return NULL;
}

int upload_filename_ok(const char *name, size_t len, const char **why)
{
    const unsigned char *p = (const unsigned char *)name, *end = p + len;
    const char *problem = NULL;
    size_t n;

    if (len == 0)
        problem = "filename is empty";
    else if (len > UPLOAD_FILENAME_SIZE - 1)
        problem = "filename too long";
    else if ((len == 1 && p[0] == '.') || (len == 2 && !memcmp(p, "..", 2)))
        problem = "filename is . or ..";
    for (; problem == NULL && p < end; p += n)
        problem = name_char_problem(p, end, &n);
    if (problem != NULL && why != NULL)
        *why = problem;
    return problem == NULL ? 0 : -1;
}
