/*
 * fuzz_proxy_parser.c - libFuzzer target for src/proxy.c, the PROXY
 * protocol header parser.
 *
 * Beyond "does not crash" (ASan catches any read outside the input, which
 * libFuzzer hands over in a buffer of exactly its size), it checks what
 * ss__proxy_parse() promises: the return value's range; that a parsed
 * header is what it claims (its bytes, its addresses, their families and
 * lengths, written back and parsed again); that *out is untouched unless
 * a header is complete; and that the input's prefixes, each copied into a
 * buffer of exactly its size, agree with the whole: partial before a
 * header's end and the same length after it, and, for refused input,
 * partial up to some byte and refused from it on. Build and run with
 * tests/fuzz/run.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* inet_ntop under -std=c11 */
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "proxy.h"

/* abort() so that libFuzzer saves the input that broke the invariant. */
#define CHECK(cond) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, \
                    __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#define SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)

static const unsigned char v2_signature[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};

/* Parse a copy of data[0 .. n) in a buffer of exactly n bytes, so that
 * ASan sees a read past n even when the input goes on; *out is prefilled
 * and must stay so unless a header is complete. */
static ssize_t parse_copy(const uint8_t *data, size_t n, ss__proxy_header *out)
{
    ss__proxy_header sentinel;
    uint8_t *copy = malloc(n ? n : 1);
    ssize_t rc;

    CHECK(copy != NULL);
    memset(&sentinel, 0xA5, sizeof sentinel);
    if (n > 0)
        memcpy(copy, data, n);
    *out = sentinel;
    rc = ss__proxy_parse(copy, n, out);
    free(copy);
    CHECK(rc == -EPROTO || rc == 0 || (rc > 0 && (size_t)rc <= n));
    if (rc <= 0)
        CHECK(memcmp(out, &sentinel, sizeof sentinel) == 0);
    return rc;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;

    while (n > 0)
        if (b[--n] != 0)
            return false;
    return true;
}

/* Field by field: the structs have padding, which no one sets. */
static bool same_address(const ss_address *a, const ss_address *b)
{
    return a->len == b->len &&
           memcmp(&a->storage, &b->storage, sizeof a->storage) == 0;
}

static bool same_header(const ss__proxy_header *a,
                        const ss__proxy_header *b)
{
    return a->version == b->version && a->local == b->local &&
           same_address(&a->source, &b->source) &&
           same_address(&a->destination, &b->destination);
}

/* A valid address of the family, nothing set past its length. */
static void check_address(const ss_address *a, int version)
{
    const unsigned char *bytes = (const unsigned char *)&a->storage;

    CHECK(a->len <= sizeof a->storage);
    CHECK(all_zero(bytes + a->len, sizeof a->storage - a->len));
    switch (a->storage.ss_family) {
    case AF_INET:
        CHECK(a->len == sizeof(struct sockaddr_in));
        CHECK(all_zero(((const struct sockaddr_in *)&a->storage)->sin_zero,
                       sizeof ((struct sockaddr_in *)0)->sin_zero));
        break;
    case AF_INET6:
        CHECK(a->len == sizeof(struct sockaddr_in6));
        CHECK(((const struct sockaddr_in6 *)&a->storage)->sin6_flowinfo == 0);
        CHECK(((const struct sockaddr_in6 *)&a->storage)->sin6_scope_id == 0);
        break;
    case AF_UNIX:
        CHECK(version == 2);
        CHECK(a->len >= SUN_PATH_OFFSET && a->len <= SUN_PATH_OFFSET + 108);
        break;
    default:
        CHECK(!"an address family other than INET, INET6 and UNIX");
    }
}

/* The line a version 1 sender writes for h. */
static void format_v1(const ss__proxy_header *h, char *line, size_t size)
{
    const ss_address *s = &h->source, *d = &h->destination;
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    unsigned sport, dport;

    if (s->storage.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)&s->storage;
        const struct sockaddr_in *b = (const void *)&d->storage;

        CHECK(inet_ntop(AF_INET, &a->sin_addr, src, sizeof src) != NULL);
        CHECK(inet_ntop(AF_INET, &b->sin_addr, dst, sizeof dst) != NULL);
        sport = ntohs(a->sin_port);
        dport = ntohs(b->sin_port);
    } else {
        const struct sockaddr_in6 *a = (const void *)&s->storage;
        const struct sockaddr_in6 *b = (const void *)&d->storage;

        CHECK(inet_ntop(AF_INET6, &a->sin6_addr, src, sizeof src) != NULL);
        CHECK(inet_ntop(AF_INET6, &b->sin6_addr, dst, sizeof dst) != NULL);
        sport = ntohs(a->sin6_port);
        dport = ntohs(b->sin6_port);
    }
    snprintf(line, size, "PROXY TCP%c %s %s %u %u\r\n",
             s->storage.ss_family == AF_INET ? '4' : '6', src, dst, sport,
             dport);
}

/* A version 1 line: one line of at most 107 bytes ending in its only LF,
 * after a CR. For TCP4, whose text has one form only, the line is exactly
 * what a sender writes for the addresses; for TCP6 that line (inet_ntop's
 * form) parses back to the same addresses. */
static void check_v1(const uint8_t *data, size_t n, const ss__proxy_header *h)
{
    char line[160];
    ss__proxy_header again;
    size_t len;

    CHECK(n <= SS__PROXY_V1_MAX && n >= 15);
    CHECK(memcmp(data, "PROXY ", 6) == 0);
    CHECK(data[n - 2] == '\r' && data[n - 1] == '\n');
    CHECK(memchr(data, '\n', n - 1) == NULL);
    if (h->local) {
        CHECK(memcmp(data + 6, "UNKNOWN", 7) == 0);
        return;
    }
    format_v1(h, line, sizeof line);
    len = strlen(line);
    if (h->source.storage.ss_family == AF_INET)
        CHECK(len == n && memcmp(line, data, n) == 0);
    if (len > SS__PROXY_V1_MAX)
        return;     /* a TCP6 line can read longer after inet_ntop */
    CHECK(parse_copy((const uint8_t *)line, len, &again) == (ssize_t)len);
    CHECK(same_header(&again, h));
}

/* The name in a Unix address is its 108-byte field: a path up to its NUL
 * (counted in len, if there is one), or an abstract name without the NULs
 * that pad it, or nothing for an all-NUL field. */
static void check_unix_name(const ss_address *a, const uint8_t *field)
{
    const struct sockaddr_un *sun = (const void *)&a->storage;
    size_t n = a->len - SUN_PATH_OFFSET;

    if (field[0] != 0) {
        size_t path = strnlen((const char *)field, 108);

        CHECK(n == path + (path < 108));
        n = path;
    } else {
        CHECK(all_zero(field + n, 108 - n));
        CHECK(n == 0 || field[n - 1] != 0);
    }
    CHECK(memcmp(sun->sun_path, field, n) == 0);
}

/* TLVs from off fill the header exactly: each head and value within n. */
static void check_tlvs(const uint8_t *data, size_t off, size_t n)
{
    while (off < n) {
        CHECK(n - off >= 3);
        off += 3 + ((size_t)data[off + 1] << 8 | data[off + 2]);
    }
    CHECK(off == n);
}

/* A version 2 header: its signature and length, addresses that are the
 * bytes of its block, and TLVs after it. */
static void check_v2(const uint8_t *data, size_t n, const ss__proxy_header *h)
{
    const ss_address *s = &h->source, *d = &h->destination;
    const uint8_t *block = data + 16;

    CHECK(n >= 16 && memcmp(data, v2_signature, 12) == 0);
    CHECK((data[12] >> 4) == 2 && (data[12] & 0xF) <= 1);
    CHECK(n == 16 + ((size_t)data[14] << 8 | data[15]));
    CHECK(h->local == ((data[12] & 0xF) == 0 || (data[13] >> 4) == 0 ||
                       (data[13] & 0xF) == 0));
    if (h->local)
        return;
    switch (s->storage.ss_family) {
    case AF_INET:
        CHECK(data[13] >> 4 == 1 && n >= 16 + 12);
        CHECK(memcmp(&((const struct sockaddr_in *)&s->storage)->sin_addr,
                     block, 4) == 0);
        CHECK(memcmp(&((const struct sockaddr_in *)&d->storage)->sin_addr,
                     block + 4, 4) == 0);
        CHECK(memcmp(&((const struct sockaddr_in *)&s->storage)->sin_port,
                     block + 8, 2) == 0);
        CHECK(memcmp(&((const struct sockaddr_in *)&d->storage)->sin_port,
                     block + 10, 2) == 0);
        check_tlvs(data, 16 + 12, n);
        break;
    case AF_INET6:
        CHECK(data[13] >> 4 == 2 && n >= 16 + 36);
        CHECK(memcmp(&((const struct sockaddr_in6 *)&s->storage)->sin6_addr,
                     block, 16) == 0);
        CHECK(memcmp(&((const struct sockaddr_in6 *)&d->storage)->sin6_addr,
                     block + 16, 16) == 0);
        CHECK(memcmp(&((const struct sockaddr_in6 *)&s->storage)->sin6_port,
                     block + 32, 2) == 0);
        CHECK(memcmp(&((const struct sockaddr_in6 *)&d->storage)->sin6_port,
                     block + 34, 2) == 0);
        check_tlvs(data, 16 + 36, n);
        break;
    default:
        CHECK(data[13] >> 4 == 3 && n >= 16 + 216);
        check_unix_name(s, block);
        check_unix_name(d, block + 108);
        check_tlvs(data, 16 + 216, n);
    }
}

static void check_header(const uint8_t *data, size_t n,
                         const ss__proxy_header *h)
{
    static const ss_address none;

    CHECK(h->version == 1 || h->version == 2);
    if (h->local) {
        CHECK(same_address(&h->source, &none));
        CHECK(same_address(&h->destination, &none));
    } else {
        check_address(&h->source, h->version);
        check_address(&h->destination, h->version);
        CHECK(h->source.storage.ss_family ==
              h->destination.storage.ss_family);
    }
    if (h->version == 1)
        check_v1(data, n, h);
    else
        check_v2(data, n, h);
}

/* What the first k bytes must give, the whole input having given rc. */
static void check_prefix(const uint8_t *data, size_t k, ssize_t rc,
                         const ss__proxy_header *whole)
{
    ss__proxy_header h;
    ssize_t got = parse_copy(data, k, &h);

    if (rc > 0) {
        CHECK(got == ((size_t)rc <= k ? rc : 0));
        if (got > 0)
            CHECK(same_header(&h, whole));
    } else if (rc == 0) {
        CHECK(got == 0);
    } else {
        CHECK(got == 0 || got == -EPROTO);
    }
}

/* For refused input: partial before some prefix, refused from it on. */
static void check_refused_from_one_byte_on(const uint8_t *data, size_t size)
{
    ss__proxy_header h;
    bool refused = false;
    size_t k;

    for (k = 0; k <= size; k++) {
        ssize_t got = parse_copy(data, k, &h);

        CHECK(got == (refused ? -EPROTO : got));
        CHECK(got == 0 || got == -EPROTO);
        refused = got == -EPROTO;
    }
    CHECK(refused);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ss__proxy_header h;
    ssize_t rc = parse_copy(data, size, &h);
    size_t k;

    if (rc > 0)
        check_header(data, (size_t)rc, &h);
    /* Every prefix while inputs are short (a v1 line, a v2 head), a few
     * chosen ones beyond. */
    if (size <= 128) {
        if (rc == -EPROTO)
            check_refused_from_one_byte_on(data, size);
        for (k = 0; k < size; k++)
            check_prefix(data, k, rc, &h);
        return 0;
    }
    if (rc > 0) {
        check_prefix(data, (size_t)rc - 1, rc, &h);
        check_prefix(data, (size_t)rc, rc, &h);
    }
    check_prefix(data, 16, rc, &h);
    check_prefix(data, data[0] % size, rc, &h);
    check_prefix(data, size / 2, rc, &h);
    check_prefix(data, size - 1, rc, &h);
    return 0;
}
