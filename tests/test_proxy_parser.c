/*
 * test_proxy_parser.c - what the PROXY protocol header parser (src/proxy.c)
 * accepts and refuses, and the addresses it reads.
 *
 * Every input is parsed from a copy that ends exactly where a PROT_NONE
 * page begins (picohttpparser's test.c does the same), so a read past the
 * end of any input below faults at once. Every header that parses is also
 * fed one byte at a time (each proper prefix must be partial) and followed
 * by application data (which must be left alone); every input that is
 * refused is refused from some byte on and partial before it, never the
 * other way round.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS; inet_pton */

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "proxy.h"
#include "parser_check.h"

#define SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)

/* What a client sends after the header, which the parser must not take. */
static const char app_data[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/* Parse the first n bytes of `bytes`, copied to end at g's guard page;
 * g must have room for n bytes. */
static ssize_t parse_guarded(struct guarded *g, size_t room, const void *bytes,
                             size_t n, ss__proxy_header *h)
{
    char *at = g->data + room - n;

    memcpy(at, bytes, n);
    return ss__proxy_parse(at, n, h);
}

static ssize_t parse(const void *bytes, size_t n, ss__proxy_header *h)
{
    struct guarded g = guarded_copy(NULL, n);
    ssize_t rc = parse_guarded(&g, n, bytes, n, h);

    guarded_free(&g);
    return rc;
}

/* `bytes` is a complete header of len bytes: every proper prefix is
 * partial, all of it parses into *h, and so it does with application data
 * after it, which is left as it was. */
static void parses_at(const char *file, int line, const void *bytes,
                      size_t len, ss__proxy_header *h)
{
    size_t room = len + sizeof app_data - 1, k;
    struct guarded g = guarded_copy(NULL, room);
    unsigned char *joined = (unsigned char *)g.data;
    ss__proxy_header scratch;
    ssize_t rc;

    for (k = 0; k < len; k++) {
        rc = parse_guarded(&g, room, bytes, k, &scratch);
        if (rc != 0)
            failed_at(file, line, "expected the first %zu of the %zu bytes "
                      "of %s to be partial (0), got %zd", k, len,
                      show(bytes, len), rc);
    }
    memcpy(joined, bytes, len);
    memcpy(joined + len, app_data, sizeof app_data - 1);
    rc = ss__proxy_parse(joined, room, &scratch);
    if (rc != (ssize_t)len)
        failed_at(file, line, "expected %s followed by application data to "
                  "parse as a %zu-byte header, got %zd", show(bytes, len),
                  len, rc);
    if (memcmp(joined + len, app_data, sizeof app_data - 1) != 0)
        failed_at(file, line, "expected the application data after %s to "
                  "be left untouched", show(bytes, len));
    rc = parse_guarded(&g, room, bytes, len, h);
    if (rc != (ssize_t)len)
        failed_at(file, line, "expected %s to parse as a %zu-byte header, "
                  "got %zd", show(bytes, len), len, rc);
    guarded_free(&g);
}

/* `bytes` is refused (-EPROTO) as a whole, and from some prefix on: the
 * prefixes before it are partial. Returns that prefix's length, the byte
 * count at which the parser gave up. */
static size_t refused_at(const char *file, int line, const void *bytes,
                         size_t len)
{
    struct guarded g = guarded_copy(NULL, len);
    ss__proxy_header h;
    size_t k, first = len + 1;
    ssize_t rc;

    for (k = 0; k <= len; k++) {
        rc = parse_guarded(&g, len, bytes, k, &h);
        if (rc == -EPROTO && first > len)
            first = k;
        else if (rc != (first > len ? 0 : -EPROTO))
            failed_at(file, line, "expected the first %zu bytes of %s to be "
                      "%s, got %zd", k, show(bytes, len),
                      first > len ? "partial (0) or refused (-EPROTO)" :
                                    "refused (-EPROTO) like a shorter prefix",
                      rc);
    }
    if (first > len)
        failed_at(file, line, "expected %s to be refused (-EPROTO), but it "
                  "was partial (0)", show(bytes, len));
    guarded_free(&g);
    return first;
}

static void partial_at(const char *file, int line, const void *bytes,
                       size_t len)
{
    ss__proxy_header h;
    ssize_t rc = parse(bytes, len, &h);

    if (rc != 0)
        failed_at(file, line, "expected %s to be partial (0), got %zd",
                  show(bytes, len), rc);
}

/* Literals, so that sizeof counts an embedded NUL. */
#define PARSES(lit, h) parses_at(__FILE__, __LINE__, lit, sizeof lit - 1, h)
#define REFUSED(lit) (void)refused_at(__FILE__, __LINE__, lit, sizeof lit - 1)
#define PARTIAL(lit) partial_at(__FILE__, __LINE__, lit, sizeof lit - 1)
#define PARSES_BYTES(b, n, h) parses_at(__FILE__, __LINE__, b, n, h)
#define REFUSED_BYTES(b, n) (void)refused_at(__FILE__, __LINE__, b, n)
#define PARTIAL_BYTES(b, n) partial_at(__FILE__, __LINE__, b, n)

/* Refused as soon as its first `at` bytes are there, partial before. */
#define REFUSED_AFTER(lit, at) do { \
        size_t got_ = refused_at(__FILE__, __LINE__, lit, sizeof lit - 1); \
        if (got_ != (at)) \
            failed_at(__FILE__, __LINE__, "expected %s to be refused once " \
                      "its first %zu bytes were there, but that took %zu", \
                      show(lit, sizeof lit - 1), (size_t)(at), got_); \
    } while (0)

/* ---- addresses: what was read, and what was expected --------------------- */

static const char *describe(const ss_address *a)
{
    static char text[2][256];
    static int which;
    char *t = text[which ^= 1], ip[INET6_ADDRSTRLEN];
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->storage;
    const struct sockaddr_in6 *sin6 =
        (const struct sockaddr_in6 *)&a->storage;
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->storage;

    switch (a->storage.ss_family) {
    case AF_INET:
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(t, sizeof text[0], "AF_INET %s port %u (len %u)", ip,
                 ntohs(sin->sin_port), (unsigned)a->len);
        break;
    case AF_INET6:
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        snprintf(t, sizeof text[0], "AF_INET6 %s port %u (len %u)", ip,
                 ntohs(sin6->sin6_port), (unsigned)a->len);
        break;
    case AF_UNIX:
        snprintf(t, sizeof text[0], "AF_UNIX %s (len %u)",
                 show(sun->sun_path, sizeof sun->sun_path), (unsigned)a->len);
        break;
    default:
        snprintf(t, sizeof text[0], "family %d (len %u)",
                 a->storage.ss_family, (unsigned)a->len);
    }
    return t;
}

static void same_address_at(const char *file, int line, const char *what,
                            const ss_address *got, const ss_address *want)
{
    if (got->len != want->len ||
        memcmp(&got->storage, &want->storage, sizeof want->storage) != 0)
        failed_at(file, line, "expected the %s to be %s, got %s", what,
                  describe(want), describe(got));
}

/* An IPv4 or IPv6 address (by the presence of ':') and a port. */
static ss_address inet_address(const char *ip, unsigned port)
{
    ss_address a;
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.storage;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.storage;

    memset(&a, 0, sizeof a);
    if (strchr(ip, ':') != NULL) {
        sin6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
        sin6->sin6_port = htons((uint16_t)port);
        a.len = sizeof *sin6;
    } else {
        sin->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
        sin->sin_port = htons((uint16_t)port);
        a.len = sizeof *sin;
    }
    return a;
}

static ss_address unix_address(const void *name, size_t n, size_t len)
{
    ss_address a;
    struct sockaddr_un *sun = (struct sockaddr_un *)&a.storage;

    memset(&a, 0, sizeof a);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, name, n);
    a.len = (socklen_t)len;
    return a;
}

static void proxied_at(const char *file, int line, const ss__proxy_header *h,
                       int version, const char *src, unsigned sport,
                       const char *dst, unsigned dport)
{
    ss_address want_src = inet_address(src, sport);
    ss_address want_dst = inet_address(dst, dport);

    if (h->version != version || h->local)
        failed_at(file, line, "expected a version %d header with addresses, "
                  "got version %d%s", version, h->version,
                  h->local ? ", local" : "");
    same_address_at(file, line, "source", &h->source, &want_src);
    same_address_at(file, line, "destination", &h->destination, &want_dst);
}

static void local_at(const char *file, int line, const ss__proxy_header *h,
                     int version)
{
    static const ss_address none;

    if (h->version != version || !h->local)
        failed_at(file, line, "expected a local version %d header (the "
                  "peer's address kept), got version %d%s", version,
                  h->version, h->local ? ", local" : " with addresses");
    same_address_at(file, line, "source", &h->source, &none);
    same_address_at(file, line, "destination", &h->destination, &none);
}

#define PROXIED(h, v, src, sport, dst, dport) \
    proxied_at(__FILE__, __LINE__, h, v, src, sport, dst, dport)
#define LOCAL(h, v) local_at(__FILE__, __LINE__, h, v)

/* ---- version 2 headers, built ------------------------------------------- */

#define V2_SIG "\r\n\r\n\0\r\nQUIT\n"

enum {
    LOCAL_CMD = 0x20, PROXY_CMD = 0x21,
    TCP4 = 0x11, UDP4 = 0x12, TCP6 = 0x21, UDP6 = 0x22,
    UNIX_STREAM = 0x31, UNIX_DGRAM = 0x32,
};

/* Room for the longest header, and for a few bytes more. */
static unsigned char v2buf[SS__PROXY_MAX + 64];

/* A version 2 header into v2buf: signature, ver_cmd, fam, the length field
 * `length` (which a test may make disagree with body_len), body. Returns
 * the bytes written. */
static size_t v2(unsigned ver_cmd, unsigned fam, size_t length,
                 const void *body, size_t body_len)
{
    assert_true(length <= 0xFFFF && 16 + body_len <= sizeof v2buf);
    memcpy(v2buf, V2_SIG, 12);
    v2buf[12] = (unsigned char)ver_cmd;
    v2buf[13] = (unsigned char)fam;
    v2buf[14] = (unsigned char)(length >> 8);
    v2buf[15] = (unsigned char)length;
    if (body_len > 0)
        memcpy(v2buf + 16, body, body_len);
    return 16 + body_len;
}

/* 192.0.2.1:1234 -> 198.51.100.2:80 */
static const unsigned char inet_block[12] = {
    192, 0, 2, 1, 198, 51, 100, 2, 0x04, 0xD2, 0x00, 0x50,
};

/* [2001:db8::1]:1234 -> [2001:db8::2]:443 */
static const unsigned char inet6_block[36] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    0x04, 0xD2, 0x01, 0xBB,
};

/* A block of `size` address bytes followed by tlv_len bytes of TLVs. */
static size_t v2_with_tlvs(unsigned fam, const void *block, size_t size,
                           const void *tlvs, size_t tlv_len)
{
    unsigned char body[256 + 64];

    assert_true(size + tlv_len <= sizeof body);
    memcpy(body, block, size);
    memcpy(body + size, tlvs, tlv_len);
    return v2(PROXY_CMD, fam, size + tlv_len, body, size + tlv_len);
}

/* ---- detection ----------------------------------------------------------- */

static void an_empty_buffer_is_partial(void **state)
{
    (void)state;
    PARTIAL("");
}

static void refuses_other_protocols_at_their_first_byte(void **state)
{
    (void)state;
    REFUSED_AFTER("GET / HTTP/1.1\r\n\r\n", 1);
    REFUSED_AFTER("\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03", 1);
    REFUSED_AFTER("SSH-2.0-OpenSSH_9.2\r\n", 1);
    REFUSED_AFTER("\n", 1);
    REFUSED_AFTER("\0", 1);
    REFUSED_AFTER(" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 1);
}

static void refuses_at_the_first_byte_off_the_version_1_signature(void **state)
{
    (void)state;
    REFUSED_AFTER("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 1);
    REFUSED_AFTER("PRXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 3);
    REFUSED_AFTER("POST / HTTP/1.1\r\n", 2);
    REFUSED_AFTER("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", 6);
    REFUSED_AFTER("PROXY\r\n", 6);
}

static void refuses_at_the_first_byte_off_the_version_2_signature(void **state)
{
    unsigned char bytes[16];
    size_t i;

    (void)state;
    for (i = 0; i < 12; i++) {
        size_t got;

        memcpy(bytes, V2_SIG "\x21\x11\x00\x0C", 16);
        bytes[i] ^= 0x20;
        got = refused_at(__FILE__, __LINE__, bytes, sizeof bytes);
        if (got != i + 1)
            failed_at(__FILE__, __LINE__, "expected a signature with byte %zu "
                      "changed to be refused once that byte was there, but "
                      "that took %zu bytes", i, got);
    }
}

/* ---- version 1 ----------------------------------------------------------- */

static void v1_reads_a_tcp4_line_as_the_spec_shows_it(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", &h);
    PROXIED(&h, 1, "192.168.0.1", 56324, "192.168.0.11", 443);
}

static void v1_reads_a_tcp6_line(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES("PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n", &h);
    PROXIED(&h, 1, "2001:db8::1", 56324, "2001:db8::2", 443);
}

static void v1_reads_ipv6_in_every_form_senders_write(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES("PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 "
           "2001:db8:0:0:0:0:0:2 1 2\r\n", &h);
    PROXIED(&h, 1, "2001:db8::1", 1, "2001:db8::2", 2);
    PARSES("PROXY TCP6 :: ::1 1 2\r\n", &h);
    PROXIED(&h, 1, "::", 1, "::1", 2);
    PARSES("PROXY TCP6 ::ffff:192.0.2.1 fe80:: 1 2\r\n", &h);
    PROXIED(&h, 1, "::ffff:192.0.2.1", 1, "fe80::", 2);
}

static void v1_accepts_the_longest_tcp6_line_of_the_spec(void **state)
{
    static const char line[] =
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    ss__proxy_header h;

    (void)state;
    assert_int_equal(sizeof line - 1, 104);
    PARSES(line, &h);
    PROXIED(&h, 1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
}

static void v1_accepts_ipv4_octets_from_0_to_255(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES("PROXY TCP4 0.0.0.0 255.255.255.255 1 2\r\n", &h);
    PROXIED(&h, 1, "0.0.0.0", 1, "255.255.255.255", 2);
    PARSES("PROXY TCP4 10.200.0.99 100.20.3.250 1 2\r\n", &h);
    PROXIED(&h, 1, "10.200.0.99", 1, "100.20.3.250", 2);
}

static void v1_accepts_ports_0_and_65535(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES("PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n", &h);
    PROXIED(&h, 1, "1.2.3.4", 0, "5.6.7.8", 65535);
    PARSES("PROXY TCP6 ::1 ::2 65535 0\r\n", &h);
    PROXIED(&h, 1, "::1", 65535, "::2", 0);
}

static void v1_refuses_ports_over_65535(void **state)
{
    (void)state;
    REFUSED_AFTER("PROXY TCP4 1.2.3.4 5.6.7.8 65536 1\r\n", 32);
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 4294967297\r\n");
}

static void v1_refuses_leading_zeros_in_ports(void **state)
{
    (void)state;
    REFUSED_AFTER("PROXY TCP4 1.2.3.4 5.6.7.8 00 1\r\n", 29);
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 080 1\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 01\r\n");
}

static void v1_refuses_ports_that_are_not_plain_decimal(void **state)
{
    (void)state;
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 2a\r\n");
}

static void v1_refuses_leading_zeros_in_ipv4_octets(void **state)
{
    (void)state;
    REFUSED_AFTER("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", 13);
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.00 1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.010 1 2\r\n");
}

static void v1_refuses_malformed_ipv4_addresses(void **state)
{
    (void)state;
    REFUSED_AFTER("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", 14);
    REFUSED("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 1..2.3 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3. 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4/8 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 0x7f.0.0.1 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 2130706433 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 localhost 5.6.7.8 1 2\r\n");
}

static void v1_refuses_malformed_ipv6_addresses(void **state)
{
    (void)state;
    REFUSED("PROXY TCP6 ::: ::1 1 2\r\n");
    REFUSED("PROXY TCP6 1::2::3 ::1 1 2\r\n");
    REFUSED("PROXY TCP6 12345:: ::1 1 2\r\n");
    REFUSED("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n");
    REFUSED("PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n");
    REFUSED("PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n");
    REFUSED("PROXY TCP6 [::1] ::1 1 2\r\n");
    REFUSED_AFTER("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", 19);
    REFUSED_AFTER("PROXY TCP6 g::1 ::1 1 2\r\n", 12);
    /* 46 characters: longer than any address, refused before it ends. */
    REFUSED_AFTER("PROXY TCP6 0000:0000:0000:0000:0000:0000:000.000.000.0000"
                  " ::1 1 2\r\n", 11 + 46);
}

static void v1_refuses_an_address_of_the_other_family(void **state)
{
    (void)state;
    REFUSED("PROXY TCP4 ::1 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 ::ffff:1.2.3.4 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 ::1 1 2\r\n");
    REFUSED("PROXY TCP6 1.2.3.4 ::1 1 2\r\n");
    REFUSED("PROXY TCP6 ::1 5.6.7.8 1 2\r\n");
}

static void v1_refuses_anything_but_single_spaces(void **state)
{
    (void)state;
    REFUSED("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n");
    REFUSED("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP6 ::1 ::2  1 2\r\n");
}

static void v1_refuses_missing_and_extra_fields(void **state)
{
    (void)state;
    REFUSED("PROXY TCP4\r\n");
    REFUSED("PROXY TCP4 1.2.3.4\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n");
    REFUSED("PROXY TCP6 ::1 ::2 1\r\n");
    REFUSED("PROXY \r\n");
}

static void v1_refuses_protocols_other_than_tcp4_tcp6_and_unknown(
    void **state)
{
    (void)state;
    REFUSED_AFTER("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 10);
    REFUSED_AFTER("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", 8);
    REFUSED_AFTER("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 7);
    REFUSED("PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP46 1.2.3.4 5.6.7.8 1 2\r\n");
    REFUSED("PROXY UNKNOW\r\n");
    REFUSED("PROXY UNKNOWNX\r\n");
    REFUSED("PROXY unknown\r\n");
}

static void v1_refuses_a_line_that_does_not_end_in_crlf(void **state)
{
    (void)state;
    REFUSED_AFTER("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 31);
    REFUSED_AFTER("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", 32);
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n");
    REFUSED("PROXY TCP6 ::1 ::2 1 2\n");
    REFUSED("PROXY UNKNOWN\n");
    REFUSED("PROXY UNKNOWN\r\r\n");
    REFUSED("PROXY UNKNOWN\rX\r\n");
}

static void v1_refuses_control_and_non_ascii_bytes_in_tcp_lines(void **state)
{
    (void)state;
    REFUSED("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1\0 2\r\n");
    REFUSED("PROXY TCP6 ::1\xC2\xA0 ::2 1 2\r\n");
    REFUSED("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n");
}

static void v1_waits_for_the_crlf_of_a_line_that_may_still_be_valid(
    void **state)
{
    (void)state;
    PARTIAL("PROXY TCP4 1.2.3.4 5.6.7.8 1 2");
    PARTIAL("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r");
    PARTIAL("PROXY TCP4 1.2.3.4 5.6.7.8 1 6553");
    PARTIAL("PROXY TCP4 1.2.3.4 5.6.7.8 1 65535");
    PARTIAL("PROXY UNKNOWN");
    PARTIAL("PROXY UNKNOWN ");
    PARTIAL("PROXY UNKNOWN anything\r");
}

static void v1_unknown_keeps_the_peer_address(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES("PROXY UNKNOWN\r\n", &h);
    LOCAL(&h, 1);
}

static void v1_unknown_ignores_the_rest_of_the_line(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES("PROXY UNKNOWN ffff:f::f 1.2.3.4 65535 65535\r\n", &h);
    LOCAL(&h, 1);
    PARSES("PROXY UNKNOWN 01.2.3.4 x 99999 -1\r\n", &h);
    LOCAL(&h, 1);
    PARSES("PROXY UNKNOWN \0\x80\xFF\t  \r\n", &h);
    LOCAL(&h, 1);
    PARSES("PROXY UNKNOWN \r\n", &h);
    LOCAL(&h, 1);
}

static void v1_unknown_takes_a_lone_cr_as_part_of_the_rest(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES("PROXY UNKNOWN a\rb\r\r\n", &h);
    LOCAL(&h, 1);
}

static void v1_unknown_refuses_a_lone_lf_in_the_rest(void **state)
{
    (void)state;
    REFUSED_AFTER("PROXY UNKNOWN a\nb\r\n", 16);
    REFUSED_AFTER("PROXY UNKNOWN \n", 15);
}

static void v1_ends_at_the_first_crlf(void **state)
{
    static const char two[] = "PROXY UNKNOWN a\r\nb\r\n";
    ss__proxy_header h;

    (void)state;
    assert_int_equal(parse(two, sizeof two - 1, &h), 17);
    assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n\r\n", 34, &h),
                     32);
}

/* "PROXY UNKNOWN " padded with 'x' to n bytes in all, CRLF included. */
static size_t unknown_line(char *out, size_t n)
{
    memcpy(out, "PROXY UNKNOWN ", 14);
    memset(out + 14, 'x', n - 16);
    memcpy(out + n - 2, "\r\n", 2);
    return n;
}

static void v1_accepts_a_line_of_107_bytes(void **state)
{
    static const char worst[] =
        "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    char line[107];
    ss__proxy_header h;

    (void)state;
    assert_int_equal(sizeof worst - 1, 107);
    PARSES(worst, &h);
    LOCAL(&h, 1);
    PARSES_BYTES(line, unknown_line(line, 107), &h);
    LOCAL(&h, 1);
}

static void v1_refuses_a_line_of_108_bytes(void **state)
{
    char line[108];

    (void)state;
    /* Refused at the 107th byte: the CRLF cannot end by then. */
    if (refused_at(__FILE__, __LINE__, line, unknown_line(line, 108)) != 107)
        fail_msg("expected a 108-byte line to be refused at its 107th byte");
}

static void v1_refuses_107_bytes_without_a_crlf(void **state)
{
    char line[107];

    (void)state;
    memcpy(line, "PROXY UNKNOWN ", 14);
    memset(line + 14, 'x', sizeof line - 14);
    REFUSED_BYTES(line, sizeof line);
    PARTIAL_BYTES(line, sizeof line - 1);
    line[sizeof line - 1] = '\r';
    REFUSED_BYTES(line, sizeof line);
}

/* ---- version 2 ----------------------------------------------------------- */

static void v2_reads_tcp_over_ipv4_as_haproxy_sends_it(void **state)
{
    /* HAProxy's header for 172.19.0.1:42578 -> 172.19.0.3:80. */
    static const char header[] =
        V2_SIG "\x21\x11\x00\x0C"
        "\xAC\x13\x00\x01\xAC\x13\x00\x03\xA6\x52\x00\x50";
    ss__proxy_header h;

    (void)state;
    PARSES(header, &h);
    PROXIED(&h, 2, "172.19.0.1", 42578, "172.19.0.3", 80);
}

static void v2_reads_udp_over_ipv4(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES_BYTES(v2buf, v2(PROXY_CMD, UDP4, 12, inet_block, 12), &h);
    PROXIED(&h, 2, "192.0.2.1", 1234, "198.51.100.2", 80);
}

static void v2_reads_tcp_and_udp_over_ipv6(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES_BYTES(v2buf, v2(PROXY_CMD, TCP6, 36, inet6_block, 36), &h);
    PROXIED(&h, 2, "2001:db8::1", 1234, "2001:db8::2", 443);
    PARSES_BYTES(v2buf, v2(PROXY_CMD, UDP6, 36, inet6_block, 36), &h);
    PROXIED(&h, 2, "2001:db8::1", 1234, "2001:db8::2", 443);
}

static void v2_reads_ports_0_and_65535(void **state)
{
    unsigned char block[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0xFF, 0xFF};
    ss__proxy_header h;

    (void)state;
    PARSES_BYTES(v2buf, v2(PROXY_CMD, TCP4, 12, block, 12), &h);
    PROXIED(&h, 2, "1.2.3.4", 0, "5.6.7.8", 65535);
}

/* A Unix block with the two 108-byte names given. */
static size_t v2_unix(unsigned fam, const void *src, size_t src_len,
                      const void *dst, size_t dst_len)
{
    unsigned char block[216] = {0};

    memcpy(block, src, src_len);
    memcpy(block + 108, dst, dst_len);
    return v2(PROXY_CMD, fam, sizeof block, block, sizeof block);
}

static void v2_reads_unix_paths_with_their_nul_counted(void **state)
{
    ss__proxy_header h;
    ss_address src = unix_address("/run/client", 11, SUN_PATH_OFFSET + 12);
    ss_address dst = unix_address("/run/app.sock", 13, SUN_PATH_OFFSET + 14);

    (void)state;
    PARSES_BYTES(v2buf, v2_unix(UNIX_STREAM, "/run/client", 11,
                                "/run/app.sock", 13), &h);
    assert_false(h.local);
    same_address_at(__FILE__, __LINE__, "source", &h.source, &src);
    same_address_at(__FILE__, __LINE__, "destination", &h.destination, &dst);
    PARSES_BYTES(v2buf, v2_unix(UNIX_DGRAM, "/run/client", 11,
                                "/run/app.sock", 13), &h);
    same_address_at(__FILE__, __LINE__, "source", &h.source, &src);
    same_address_at(__FILE__, __LINE__, "destination", &h.destination, &dst);
}

static void v2_ignores_the_bytes_after_a_unix_paths_nul(void **state)
{
    unsigned char name[108];
    ss__proxy_header h;
    ss_address want = unix_address("/a", 2, SUN_PATH_OFFSET + 3);

    (void)state;
    memset(name, 'z', sizeof name);
    memcpy(name, "/a\0", 3);
    PARSES_BYTES(v2buf, v2_unix(UNIX_STREAM, name, sizeof name, "/b", 2), &h);
    same_address_at(__FILE__, __LINE__, "source", &h.source, &want);
}

static void v2_reads_a_unix_path_of_all_108_bytes_without_a_nul(void **state)
{
    unsigned char name[108];
    ss__proxy_header h;
    ss_address want;

    (void)state;
    memset(name, 'p', sizeof name);
    name[0] = '/';
    want = unix_address(name, sizeof name, SUN_PATH_OFFSET + 108);
    PARSES_BYTES(v2buf, v2_unix(UNIX_STREAM, name, sizeof name, "/b", 2), &h);
    same_address_at(__FILE__, __LINE__, "source", &h.source, &want);
}

static void v2_reads_abstract_names_without_their_nul_padding(void **state)
{
    ss__proxy_header h;
    ss_address src = unix_address("\0client", 7, SUN_PATH_OFFSET + 7);
    ss_address dst = unix_address("\0a\0b", 4, SUN_PATH_OFFSET + 4);

    (void)state;
    PARSES_BYTES(v2buf, v2_unix(UNIX_STREAM, "\0client", 7, "\0a\0b", 4), &h);
    same_address_at(__FILE__, __LINE__, "source", &h.source, &src);
    same_address_at(__FILE__, __LINE__, "destination", &h.destination, &dst);
}

static void v2_reads_an_all_nul_unix_name_as_unnamed(void **state)
{
    ss__proxy_header h;
    ss_address unnamed = unix_address("", 0, SUN_PATH_OFFSET);

    (void)state;
    PARSES_BYTES(v2buf, v2_unix(UNIX_STREAM, "", 0, "/b", 2), &h);
    same_address_at(__FILE__, __LINE__, "source", &h.source, &unnamed);
}

static void v2_local_keeps_the_peer_address(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES(V2_SIG "\x20\x00\x00\x00", &h);
    LOCAL(&h, 2);
}

static void v2_local_skips_its_block_unread_whatever_the_family(void **state)
{
    /* Not a valid TLV after the addresses, nor a valid family: LOCAL
     * discards both. */
    static const unsigned char junk[20] = {
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4,
    };
    ss__proxy_header h;

    (void)state;
    PARSES_BYTES(v2buf, v2(LOCAL_CMD, TCP4, 20, junk, 20), &h);
    LOCAL(&h, 2);
    PARSES_BYTES(v2buf, v2(LOCAL_CMD, 0xFF, 3, junk, 3), &h);
    LOCAL(&h, 2);
    PARSES_BYTES(v2buf, v2(LOCAL_CMD, 0x00, 0, NULL, 0), &h);
    LOCAL(&h, 2);
}

static void v2_unspec_family_keeps_the_peer_address(void **state)
{
    static const unsigned char junk[5] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    ss__proxy_header h;

    (void)state;
    PARSES(V2_SIG "\x21\x00\x00\x00", &h);
    LOCAL(&h, 2);
    PARSES_BYTES(v2buf, v2(PROXY_CMD, 0x00, 5, junk, 5), &h);
    LOCAL(&h, 2);
    PARSES_BYTES(v2buf, v2(PROXY_CMD, 0x01, 5, junk, 5), &h);
    LOCAL(&h, 2);
    PARSES_BYTES(v2buf, v2(PROXY_CMD, 0x02, 0, NULL, 0), &h);
    LOCAL(&h, 2);
}

static void v2_unspec_transport_keeps_the_peer_address(void **state)
{
    ss__proxy_header h;

    (void)state;
    PARSES_BYTES(v2buf, v2(PROXY_CMD, 0x10, 12, inet_block, 12), &h);
    LOCAL(&h, 2);
    PARSES_BYTES(v2buf, v2(PROXY_CMD, 0x20, 0, NULL, 0), &h);
    LOCAL(&h, 2);
    PARSES_BYTES(v2buf, v2(PROXY_CMD, 0x30, 3, inet_block, 3), &h);
    LOCAL(&h, 2);
}

static void v2_refuses_versions_other_than_2(void **state)
{
    (void)state;
    REFUSED_AFTER(V2_SIG "\x11\x11\x00\x0C", 13);
    REFUSED_AFTER(V2_SIG "\x01\x11\x00\x0C", 13);
    REFUSED_AFTER(V2_SIG "\x31\x11\x00\x0C", 13);
    REFUSED_AFTER(V2_SIG "\xF1\x11\x00\x0C", 13);
    REFUSED_AFTER(V2_SIG "\x10\x00\x00\x00", 13);
}

static void v2_refuses_commands_other_than_local_and_proxy(void **state)
{
    unsigned char bytes[16];
    unsigned cmd;

    (void)state;
    for (cmd = 2; cmd <= 0xF; cmd++) {
        size_t at;

        memcpy(bytes, V2_SIG "\x20\x11\x00\x0C", 16);
        bytes[12] = (unsigned char)(0x20 | cmd);
        at = refused_at(__FILE__, __LINE__, bytes, sizeof bytes);
        if (at != 13)
            failed_at(__FILE__, __LINE__, "expected command %#x to be "
                      "refused at byte 13, but it took %zu bytes", cmd, at);
    }
}

static void v2_refuses_families_and_transports_out_of_range(void **state)
{
    static const unsigned bad[] = {0x03, 0x13, 0x1F, 0x23, 0x33, 0x40, 0x41,
                                   0x42, 0x51, 0xF1, 0xFF};
    unsigned char bytes[16];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t at;

        memcpy(bytes, V2_SIG "\x21\x11\x00\x0C", 16);
        bytes[13] = (unsigned char)bad[i];
        at = refused_at(__FILE__, __LINE__, bytes, sizeof bytes);
        if (at != 14)
            failed_at(__FILE__, __LINE__, "expected family/transport %#x to "
                      "be refused at byte 14, but it took %zu bytes", bad[i],
                      at);
    }
}

static void v2_accepts_a_length_of_exactly_the_address_block(void **state)
{
    unsigned char unix_block[216] = {'/', 'a'};
    ss__proxy_header h;

    (void)state;
    PARSES_BYTES(v2buf, v2(PROXY_CMD, TCP4, 12, inet_block, 12), &h);
    PARSES_BYTES(v2buf, v2(PROXY_CMD, TCP6, 36, inet6_block, 36), &h);
    PARSES_BYTES(v2buf, v2(PROXY_CMD, UNIX_STREAM, 216, unix_block, 216),
                 &h);
}

static void v2_refuses_a_length_shorter_than_the_address_block(void **state)
{
    unsigned char unix_block[216] = {'/', 'a'};

    (void)state;
    /* Refused at the length field, before the block arrives. */
    REFUSED_AFTER(V2_SIG "\x21\x11\x00\x0B" "\xC0\x00\x02\x01\xC6\x33\x64"
                  "\x02\x04\xD2\x00", 16);
    REFUSED_AFTER(V2_SIG "\x21\x11\x00\x00", 16);
    REFUSED_BYTES(v2buf, v2(PROXY_CMD, TCP6, 35, inet6_block, 35));
    REFUSED_BYTES(v2buf, v2(PROXY_CMD, UDP6, 0, NULL, 0));
    REFUSED_BYTES(v2buf, v2(PROXY_CMD, UNIX_STREAM, 215, unix_block, 215));
    REFUSED_BYTES(v2buf, v2(PROXY_CMD, UNIX_DGRAM, 12, unix_block, 12));
}

static void v2_waits_for_the_whole_length(void **state)
{
    (void)state;
    PARTIAL(V2_SIG "\x21\x11\x00\x0C\xC0\x00\x02\x01\xC6\x33\x64\x02\x04\xD2"
            "\x00");
    PARTIAL(V2_SIG "\x20\x00\xFF\xFF");
    PARTIAL(V2_SIG "\x21\x00\x00\x01");
}

static void v2_skips_tlvs_after_the_addresses(void **state)
{
    /* ALPN "h2", AUTHORITY "example.com", an empty NOOP, a CRC32C (not
     * checked), a UNIQUE_ID and a custom type. */
    static const char tlvs[] =
        "\x01\x00\x02h2"
        "\x02\x00\x0B" "example.com"
        "\x04\x00\x00"
        "\x03\x00\x04\xDE\xAD\xBE\xEF"
        "\x05\x00\x03" "abc"
        "\xE0\x00\x01" "z";
    ss__proxy_header h;

    (void)state;
    PARSES_BYTES(v2buf, v2_with_tlvs(TCP4, inet_block, 12, tlvs,
                                     sizeof tlvs - 1), &h);
    PROXIED(&h, 2, "192.0.2.1", 1234, "198.51.100.2", 80);
    PARSES_BYTES(v2buf, v2_with_tlvs(TCP6, inet6_block, 36, tlvs,
                                     sizeof tlvs - 1), &h);
    PROXIED(&h, 2, "2001:db8::1", 1234, "2001:db8::2", 443);
}

static void v2_skips_an_ssl_tlv_without_reading_its_sub_tlvs(void **state)
{
    /* PP2_TYPE_SSL: client, verify, then sub-TLVs whose lengths are
     * nonsense; they are the value's business, not the framing's. */
    static const char tlv[] = "\x20\x00\x08" "\x01\x00\x00\x00\x00"
                              "\x21\xFF\xFF";
    ss__proxy_header h;

    (void)state;
    PARSES_BYTES(v2buf, v2_with_tlvs(TCP4, inet_block, 12, tlv,
                                     sizeof tlv - 1), &h);
    PROXIED(&h, 2, "192.0.2.1", 1234, "198.51.100.2", 80);
}

static void v2_refuses_a_tlv_value_that_overruns_the_header(void **state)
{
    static const unsigned char unix_block[216] = {'/', 'a'};
    ss__proxy_header h;

    (void)state;
    /* One byte too long, refused as soon as its head is there. */
    REFUSED_BYTES(v2buf, v2_with_tlvs(TCP4, inet_block, 12, "\x01\x00\x03h2",
                                      5));
    assert_int_equal(parse(v2buf, 16 + 12 + 3, &h), -EPROTO);
    REFUSED_BYTES(v2buf, v2_with_tlvs(TCP4, inet_block, 12,
                                      "\x01\x00\x02h2\x04\xFF\xFF", 8));
    REFUSED_BYTES(v2buf, v2_with_tlvs(UNIX_STREAM, unix_block, 216,
                                      "\x04\x00\x01", 3));
}

static void v2_refuses_a_tlv_value_that_ends_short_of_the_header(
    void **state)
{
    (void)state;
    /* The bytes left after the last TLV cannot hold another head. */
    REFUSED_BYTES(v2buf, v2_with_tlvs(TCP4, inet_block, 12, "\x01\x00\x01hx",
                                      5));
    REFUSED_BYTES(v2buf, v2_with_tlvs(TCP4, inet_block, 12, "\x01", 1));
    REFUSED_BYTES(v2buf, v2_with_tlvs(TCP4, inet_block, 12, "\x01\x00", 2));
    REFUSED_BYTES(v2buf, v2_with_tlvs(TCP6, inet6_block, 36,
                                      "\x04\x00\x00\x04\x00", 5));
}

static void v2_accepts_the_longest_header(void **state)
{
    unsigned char *tlv = v2buf + 16 + 12;
    size_t value = 65535 - 12 - 3;
    ss__proxy_header h;

    (void)state;
    assert_int_equal(SS__PROXY_MAX, 16 + 65535);
    v2(PROXY_CMD, TCP4, 65535, inet_block, 12);
    tlv[0] = 0x04;
    tlv[1] = (unsigned char)(value >> 8);
    tlv[2] = (unsigned char)value;
    memset(tlv + 3, 0xAB, value);
    PARSES_BYTES(v2buf, SS__PROXY_MAX, &h);
    PROXIED(&h, 2, "192.0.2.1", 1234, "198.51.100.2", 80);
}

/* ---- the contract -------------------------------------------------------- */

static void is_partial_at_every_byte_boundary_until_complete(void **state)
{
    static const char v1[] = "PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 0 65535"
                             "\r\n";
    static const char v2h[] = V2_SIG "\x21\x21\x00\x2A"
        "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
        "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02"
        "\x04\xD2\x01\xBB" "\x01\x00\x03" "abc";
    ss__proxy_header h;
    size_t k;

    (void)state;
    for (k = 0; k < sizeof v1 - 1; k++)
        if (parse(v1, k, &h) != 0)
            failed_at(__FILE__, __LINE__, "expected %zu bytes of %s to be "
                      "partial", k, show(v1, sizeof v1 - 1));
    assert_int_equal(parse(v1, sizeof v1 - 1, &h), sizeof v1 - 1);
    for (k = 0; k < sizeof v2h - 1; k++)
        if (parse(v2h, k, &h) != 0)
            failed_at(__FILE__, __LINE__, "expected %zu bytes of %s to be "
                      "partial", k, show(v2h, sizeof v2h - 1));
    assert_int_equal(parse(v2h, sizeof v2h - 1, &h), sizeof v2h - 1);
}

static void leaves_the_application_data_after_the_header(void **state)
{
    static const char v1[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
                             "PROXY TCP4 9.9.9.9 9.9.9.9 9 9\r\n";
    static const char v2h[] = V2_SIG "\x20\x00\x00\x00" "\r\n\r\n\0\r\nQUIT";
    ss__proxy_header h;

    (void)state;
    assert_int_equal(parse(v1, sizeof v1 - 1, &h), 32);
    PROXIED(&h, 1, "1.2.3.4", 1, "5.6.7.8", 2);
    assert_int_equal(parse(v2h, sizeof v2h - 1, &h), 16);
    LOCAL(&h, 2);
}

static void writes_nothing_unless_the_header_is_complete(void **state)
{
#define INPUT(lit) {lit, sizeof lit - 1}
    static const struct {
        const char *bytes;
        size_t len;
    } inputs[] = {
        INPUT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"),
        INPUT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
        INPUT("PROXY UNKNOWN"),
        INPUT("GET"),
        INPUT(V2_SIG "\x21\x11\x00\x0C\x01"),
        INPUT(V2_SIG "\x21\x11\x00\x0B\x01"),
    };
#undef INPUT
    ss__proxy_header h, before;
    size_t i;

    (void)state;
    memset(&before, 0xA5, sizeof before);
    for (i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        memcpy(&h, &before, sizeof h);
        assert_true(parse(inputs[i].bytes, inputs[i].len, &h) <= 0);
        if (memcmp(&h, &before, sizeof h) != 0)
            failed_at(__FILE__, __LINE__, "expected *out to be left alone "
                      "after %s", show(inputs[i].bytes, inputs[i].len));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_empty_buffer_is_partial),
        cmocka_unit_test(refuses_other_protocols_at_their_first_byte),
        cmocka_unit_test(refuses_at_the_first_byte_off_the_version_1_signature),
        cmocka_unit_test(refuses_at_the_first_byte_off_the_version_2_signature),
        cmocka_unit_test(v1_reads_a_tcp4_line_as_the_spec_shows_it),
        cmocka_unit_test(v1_reads_a_tcp6_line),
        cmocka_unit_test(v1_reads_ipv6_in_every_form_senders_write),
        cmocka_unit_test(v1_accepts_the_longest_tcp6_line_of_the_spec),
        cmocka_unit_test(v1_accepts_ipv4_octets_from_0_to_255),
        cmocka_unit_test(v1_accepts_ports_0_and_65535),
        cmocka_unit_test(v1_refuses_ports_over_65535),
        cmocka_unit_test(v1_refuses_leading_zeros_in_ports),
        cmocka_unit_test(v1_refuses_ports_that_are_not_plain_decimal),
        cmocka_unit_test(v1_refuses_leading_zeros_in_ipv4_octets),
        cmocka_unit_test(v1_refuses_malformed_ipv4_addresses),
        cmocka_unit_test(v1_refuses_malformed_ipv6_addresses),
        cmocka_unit_test(v1_refuses_an_address_of_the_other_family),
        cmocka_unit_test(v1_refuses_anything_but_single_spaces),
        cmocka_unit_test(v1_refuses_missing_and_extra_fields),
        cmocka_unit_test(v1_refuses_protocols_other_than_tcp4_tcp6_and_unknown),
        cmocka_unit_test(v1_refuses_a_line_that_does_not_end_in_crlf),
        cmocka_unit_test(v1_refuses_control_and_non_ascii_bytes_in_tcp_lines),
        cmocka_unit_test(v1_waits_for_the_crlf_of_a_line_that_may_still_be_valid),
        cmocka_unit_test(v1_unknown_keeps_the_peer_address),
        cmocka_unit_test(v1_unknown_ignores_the_rest_of_the_line),
        cmocka_unit_test(v1_unknown_takes_a_lone_cr_as_part_of_the_rest),
        cmocka_unit_test(v1_unknown_refuses_a_lone_lf_in_the_rest),
        cmocka_unit_test(v1_ends_at_the_first_crlf),
        cmocka_unit_test(v1_accepts_a_line_of_107_bytes),
        cmocka_unit_test(v1_refuses_a_line_of_108_bytes),
        cmocka_unit_test(v1_refuses_107_bytes_without_a_crlf),
        cmocka_unit_test(v2_reads_tcp_over_ipv4_as_haproxy_sends_it),
        cmocka_unit_test(v2_reads_udp_over_ipv4),
        cmocka_unit_test(v2_reads_tcp_and_udp_over_ipv6),
        cmocka_unit_test(v2_reads_ports_0_and_65535),
        cmocka_unit_test(v2_reads_unix_paths_with_their_nul_counted),
        cmocka_unit_test(v2_ignores_the_bytes_after_a_unix_paths_nul),
        cmocka_unit_test(v2_reads_a_unix_path_of_all_108_bytes_without_a_nul),
        cmocka_unit_test(v2_reads_abstract_names_without_their_nul_padding),
        cmocka_unit_test(v2_reads_an_all_nul_unix_name_as_unnamed),
        cmocka_unit_test(v2_local_keeps_the_peer_address),
        cmocka_unit_test(v2_local_skips_its_block_unread_whatever_the_family),
        cmocka_unit_test(v2_unspec_family_keeps_the_peer_address),
        cmocka_unit_test(v2_unspec_transport_keeps_the_peer_address),
        cmocka_unit_test(v2_refuses_versions_other_than_2),
        cmocka_unit_test(v2_refuses_commands_other_than_local_and_proxy),
        cmocka_unit_test(v2_refuses_families_and_transports_out_of_range),
        cmocka_unit_test(v2_accepts_a_length_of_exactly_the_address_block),
        cmocka_unit_test(v2_refuses_a_length_shorter_than_the_address_block),
        cmocka_unit_test(v2_waits_for_the_whole_length),
        cmocka_unit_test(v2_skips_tlvs_after_the_addresses),
        cmocka_unit_test(v2_skips_an_ssl_tlv_without_reading_its_sub_tlvs),
        cmocka_unit_test(v2_refuses_a_tlv_value_that_overruns_the_header),
        cmocka_unit_test(v2_refuses_a_tlv_value_that_ends_short_of_the_header),
        cmocka_unit_test(v2_accepts_the_longest_header),
        cmocka_unit_test(is_partial_at_every_byte_boundary_until_complete),
        cmocka_unit_test(leaves_the_application_data_after_the_header),
        cmocka_unit_test(writes_nothing_unless_the_header_is_complete),
        cmocka_unit_test(guard_page_faults_on_a_read_past_the_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
