/*
 * proxy.c - the PROXY protocol header, versions 1 and 2 (see proxy.h).
 *
 * Version 1 is read with a cursor, as examples/http_parser.c reads HTTP:
 * each step returns PARSED, MALFORMED or PARTIAL, PARTIAL meaning "the
 * bytes ran out before the step could decide", and every byte is checked
 * against the end before it is read. Version 2 checks each field of its
 * fixed head as soon as the field's bytes are there.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* inet_pton under -std=c11 */
#endif

#include "proxy.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

/* The spec's Unix addresses are 108 bytes, Linux's sun_path; a system with
 * a shorter one (the BSDs have 104) could not hold every name. */
#define V2_UNIX_NAME 108
_Static_assert(sizeof ((struct sockaddr_un *)0)->sun_path >= V2_UNIX_NAME,
               "sun_path cannot hold a PROXY v2 Unix address");

enum { PARSED = 0, MALFORMED = -1, PARTIAL = -2 };

struct cursor {
    const unsigned char *p;    /* the next unread byte */
    const unsigned char *end;  /* one past the last byte */
};

/* ---- version 1: one line of text ---------------------------------------- */

/* The n bytes of lit, compared one at a time so that a prefix of them is
 * PARTIAL and the first wrong byte MALFORMED. */
static int parse_literal(struct cursor *c, const char *lit, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++, c->p++) {
        if (c->p == c->end)
            return PARTIAL;
        if (*c->p != (unsigned char)lit[i])
            return MALFORMED;
    }
    return PARSED;
}

/* A decimal number up to max, without leading zeros (the spec forbids them
 * so that no one reads octal), ending at the first non-digit, which is left
 * for the caller. PARTIAL at the end of the bytes even after a number at
 * max: the next byte decides whether a digit follows. */
static int parse_decimal(struct cursor *c, unsigned max, unsigned *value)
{
    const unsigned char *start = c->p;
    unsigned v = 0;

    for (; c->p != c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
        if (c->p != start && v == 0)
            return MALFORMED;       /* "00", "01" */
        v = v * 10 + (unsigned)(*c->p - '0');
        if (v > max)
            return MALFORMED;
    }
    if (c->p == c->end)
        return PARTIAL;
    if (c->p == start)
        return MALFORMED;
    *value = v;
    return PARSED;
}

/* Four decimal numbers 0-255 separated by dots. Read here rather than by
 * inet_pton(3), whose treatment of leading zeros POSIX leaves open. */
static int parse_ipv4(struct cursor *c, struct in_addr *addr)
{
    uint32_t a = 0;
    unsigned octet;
    int i, rc;

    for (i = 0; i < 4; i++) {
        if (i > 0 && (rc = parse_literal(c, ".", 1)) != PARSED)
            return rc;
        if ((rc = parse_decimal(c, 255, &octet)) != PARSED)
            return rc;
        a = a << 8 | octet;
    }
    addr->s_addr = htonl(a);
    return PARSED;
}

static bool is_ipv6_char(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
           (ch >= 'A' && ch <= 'F') || ch == ':' || ch == '.';
}

/* An IPv6 address as inet_pton(3) reads it, which is also how senders
 * write it (inet_ntop(3)). Until the address ends only its characters and
 * its length can be judged. */
static int parse_ipv6(struct cursor *c, struct in6_addr *addr)
{
    char text[INET6_ADDRSTRLEN];    /* the longest address and a NUL */
    size_t n = 0;

    for (; c->p != c->end && is_ipv6_char(*c->p); c->p++) {
        if (n == sizeof text - 1)
            return MALFORMED;
        text[n++] = (char)*c->p;
    }
    if (c->p == c->end)
        return PARTIAL;
    text[n] = '\0';
    return inet_pton(AF_INET6, text, addr) == 1 ? PARSED : MALFORMED;
}

/* An address of the family, with the family and length set. */
static int parse_v1_address(struct cursor *c, int family, ss_address *a)
{
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a->storage;

        sin->sin_family = AF_INET;
        a->len = sizeof *sin;
        return parse_ipv4(c, &sin->sin_addr);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->storage;

        sin6->sin6_family = AF_INET6;
        a->len = sizeof *sin6;
        return parse_ipv6(c, &sin6->sin6_addr);
    }
}

/* A port 0-65535, into the address parse_v1_address() filled in. */
static int parse_v1_port(struct cursor *c, ss_address *a)
{
    unsigned v;
    int rc = parse_decimal(c, 65535, &v);

    if (rc != PARSED)
        return rc;
    if (a->storage.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->storage)->sin_port = htons((uint16_t)v);
    else
        ((struct sockaddr_in6 *)&a->storage)->sin6_port = htons((uint16_t)v);
    return PARSED;
}

/* What follows "TCP4 " or "TCP6 ":
 * ADDRESS " " ADDRESS " " PORT " " PORT "\r\n". */
static int parse_v1_tcp(struct cursor *c, int family, ss__proxy_header *h)
{
    int rc;

    if ((rc = parse_v1_address(c, family, &h->source)) != PARSED ||
        (rc = parse_literal(c, " ", 1)) != PARSED ||
        (rc = parse_v1_address(c, family, &h->destination)) != PARSED ||
        (rc = parse_literal(c, " ", 1)) != PARSED ||
        (rc = parse_v1_port(c, &h->source)) != PARSED ||
        (rc = parse_literal(c, " ", 1)) != PARSED ||
        (rc = parse_v1_port(c, &h->destination)) != PARSED)
        return rc;
    return parse_literal(c, "\r\n", 2);
}

/* What follows "UNKNOWN": the CRLF at once, or a space and anything up to
 * the first CRLF, which the spec tells the receiver to ignore. A lone CR
 * there is part of that anything; a lone LF is not, since it would end the
 * line for a reader that takes LF alone as a line end. */
static int parse_v1_unknown(struct cursor *c)
{
    if (c->p == c->end)
        return PARTIAL;
    if (*c->p != ' ')
        return parse_literal(c, "\r\n", 2);
    for (c->p++; c->p != c->end; c->p++) {
        if (*c->p == '\n') {
            /* c->p[-1] is at worst the space after "UNKNOWN". */
            if (c->p[-1] != '\r')
                return MALFORMED;
            c->p++;
            return PARSED;
        }
    }
    return PARTIAL;
}

/* "PROXY " and then "TCP4 ", "TCP6 " or "UNKNOWN" and the rest. */
static int parse_v1_line(struct cursor *c, ss__proxy_header *h)
{
    int rc = parse_literal(c, "PROXY ", 6), family;

    if (rc != PARSED)
        return rc;
    if (c->p == c->end)
        return PARTIAL;
    if (*c->p == 'U') {
        rc = parse_literal(c, "UNKNOWN", 7);
        if (rc == PARSED)
            rc = parse_v1_unknown(c);
        h->local = true;
        return rc;
    }
    if ((rc = parse_literal(c, "TCP", 3)) != PARSED)
        return rc;
    if (c->p == c->end)
        return PARTIAL;
    if (*c->p != '4' && *c->p != '6')
        return MALFORMED;
    family = *c->p++ == '4' ? AF_INET : AF_INET6;
    if ((rc = parse_literal(c, " ", 1)) != PARSED)
        return rc;
    return parse_v1_tcp(c, family, h);
}

static ssize_t parse_v1(const unsigned char *buf, size_t len,
                        ss__proxy_header *out)
{
    /* The CRLF must come within SS__PROXY_V1_MAX bytes: the line is read
     * no further, and running out there is the end of it. */
    size_t limit = len < SS__PROXY_V1_MAX ? len : SS__PROXY_V1_MAX;
    struct cursor c = {buf, buf + limit};
    ss__proxy_header h = {.version = 1};

    switch (parse_v1_line(&c, &h)) {
    case PARSED:
        *out = h;
        return c.p - buf;
    case PARTIAL:
        return limit < SS__PROXY_V1_MAX ? 0 : -EPROTO;
    default:
        return -EPROTO;
    }
}

/* ---- version 2: binary -------------------------------------------------- */

#define V2_HEAD 16              /* signature, ver_cmd, fam, len */

enum { CMD_LOCAL = 0x0, CMD_PROXY = 0x1 };
enum { FAM_UNSPEC = 0x0, FAM_INET = 0x1, FAM_INET6 = 0x2, FAM_UNIX = 0x3 };
enum { TRANS_UNSPEC = 0x0, TRANS_STREAM = 0x1, TRANS_DGRAM = 0x2 };

static const unsigned char v2_signature[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};

/* Whether the TLVs in p[off .. end) can be framed exactly: each 3-byte head
 * (type, big-endian value length) and its value within end, the last value
 * ending at end. Only p[0 .. have) is read (have <= end); a TLV whose head
 * has not arrived yet is not judged. */
static bool v2_tlvs_fit(const unsigned char *p, size_t off, size_t end,
                        size_t have)
{
    assert(have <= end);
    while (off < end) {
        if (end - off < 3)
            return false;       /* no room left for a head */
        if (off + 3 > have)
            return true;        /* the head is still to come */
        off += 3 + ((size_t)p[off + 1] << 8 | p[off + 2]);
        if (off > end)
            return false;       /* the value overruns the header */
    }
    return true;
}

/* A Unix address from its 108-byte field (see proxy.h for the lengths). */
static void v2_unix_address(ss_address *a, const unsigned char *field)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&a->storage;
    size_t n = V2_UNIX_NAME, extra = 0;

    if (field[0] != '\0') {
        const unsigned char *nul = memchr(field, '\0', V2_UNIX_NAME);

        if (nul != NULL) {
            n = (size_t)(nul - field);
            extra = 1;          /* getsockname(2) counts the NUL */
        }
    } else {
        while (n > 1 && field[n - 1] == '\0')
            n--;
        if (n == 1)
            n = 0;              /* unnamed */
    }
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, field, n);
    a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + extra);
}

/* The address block of a PROXY command: source address, destination
 * address, then for INET and INET6 source port and destination port, all
 * in network byte order, as struct sockaddr keeps them. */
static void v2_addresses(const unsigned char *b, unsigned family,
                         ss__proxy_header *h)
{
    if (family == FAM_INET) {
        struct sockaddr_in *src = (struct sockaddr_in *)&h->source.storage;
        struct sockaddr_in *dst =
            (struct sockaddr_in *)&h->destination.storage;

        src->sin_family = dst->sin_family = AF_INET;
        memcpy(&src->sin_addr, b, 4);
        memcpy(&dst->sin_addr, b + 4, 4);
        memcpy(&src->sin_port, b + 8, 2);
        memcpy(&dst->sin_port, b + 10, 2);
        h->source.len = h->destination.len = sizeof *src;
    } else if (family == FAM_INET6) {
        struct sockaddr_in6 *src = (struct sockaddr_in6 *)&h->source.storage;
        struct sockaddr_in6 *dst =
            (struct sockaddr_in6 *)&h->destination.storage;

        src->sin6_family = dst->sin6_family = AF_INET6;
        memcpy(&src->sin6_addr, b, 16);
        memcpy(&dst->sin6_addr, b + 16, 16);
        memcpy(&src->sin6_port, b + 32, 2);
        memcpy(&dst->sin6_port, b + 34, 2);
        h->source.len = h->destination.len = sizeof *src;
    } else {
        assert(family == FAM_UNIX);
        v2_unix_address(&h->source, b);
        v2_unix_address(&h->destination, b + V2_UNIX_NAME);
    }
}

static ssize_t parse_v2(const unsigned char *p, size_t len,
                        ss__proxy_header *out)
{
    static const size_t block[] = {
        [FAM_INET] = 2 * 4 + 2 * 2,
        [FAM_INET6] = 2 * 16 + 2 * 2,
        [FAM_UNIX] = 2 * V2_UNIX_NAME,
    };
    ss__proxy_header h = {.version = 2};
    unsigned command, family, transport;
    size_t total;

    if (memcmp(p, v2_signature, len < 12 ? len : 12) != 0)
        return -EPROTO;
    if (len < 13)
        return 0;
    command = p[12] & 0xF;
    if (p[12] >> 4 != 2 || command > CMD_PROXY)
        return -EPROTO;
    if (len < 14)
        return 0;
    family = p[13] >> 4;
    transport = p[13] & 0xF;
    /* LOCAL ignores the family byte: the spec has the receiver discard the
     * block "including the family". */
    if (command == CMD_PROXY && (family > FAM_UNIX || transport > TRANS_DGRAM))
        return -EPROTO;
    if (len < V2_HEAD)
        return 0;
    total = V2_HEAD + ((size_t)p[14] << 8 | p[15]);

    if (command == CMD_LOCAL || family == FAM_UNSPEC ||
        transport == TRANS_UNSPEC) {
        /* No address to use and, the block's layout being unknown, no
         * TLVs to find in it: it is skipped whole. */
        if (len < total)
            return 0;
        h.local = true;
        *out = h;
        return (ssize_t)total;
    }
    if (total - V2_HEAD < block[family] ||
        !v2_tlvs_fit(p, V2_HEAD + block[family], total,
                     len < total ? len : total))
        return -EPROTO;
    if (len < total)
        return 0;
    v2_addresses(p + V2_HEAD, family, &h);
    *out = h;
    return (ssize_t)total;
}

/* ---- both ---------------------------------------------------------------- */

ssize_t ss__proxy_parse(const void *buf, size_t len, ss__proxy_header *out)
{
    const unsigned char *p = buf;

    assert(out != NULL && (p != NULL || len == 0));
    if (len == 0)
        return 0;
    /* The two signatures differ in their first byte: 'P' or CR. */
    if (p[0] == 'P')
        return parse_v1(p, len, out);
    if (p[0] == v2_signature[0])
        return parse_v2(p, len, out);
    return -EPROTO;
}
