/*
 * proxy.h - a parser for the PROXY protocol header (HAProxy's
 * doc/proxy-protocol.txt, versions 1 and 2), which a proxy or load balancer
 * puts in front of a connection's data to tell the server who the client
 * really is.
 *
 * Like picohttpparser, it allocates nothing and keeps nothing: the caller's
 * bytes in, a caller-owned struct out. It never reads outside
 * [buf, buf + len), needs no terminating NUL, is reentrant, and uses only
 * libc, so that tests and fuzz targets can compile proxy.c alone.
 *
 * The spec wants the receiver configured to expect the header, never to
 * guess whether it is there: a server that calls this parser must call it
 * on every connection of the listener it was configured for, and should
 * take connections there only from proxies it trusts (anyone else could
 * claim any address).
 *
 * A reader appends what each recv() brings to a buffer of up to
 * SS__PROXY_MAX bytes and calls ss__proxy_parse() on all of it: on 0 it
 * reads more, on -EPROTO it closes the connection, on n > 0 it takes the
 * header's source as the client's address (unless local) and hands the
 * bytes after n to the application, which must not miss them. The spec
 * asks the receiver to start nothing before the header is complete, and
 * suggests a timeout of a few seconds (no less than 3) for it to arrive.
 */
#ifndef SS_PROXY_H
#define SS_PROXY_H

#include "sockserver.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The most bytes a header can take: a version 2 header is 16 bytes plus a
 * 16-bit length (a version 1 line, at most 107 bytes, is far shorter). A
 * reader that buffers this much can always hold a complete header. */
#define SS__PROXY_MAX (16 + 65535)

/* The longest version 1 line, CRLF included (the spec's own worst case). */
#define SS__PROXY_V1_MAX 107

typedef struct ss__proxy_header {
    int        version;      /* 1 or 2 */
    bool       local;        /* the header carries no address to use: a v2
                                LOCAL command (the proxy's own health
                                check), v1 "UNKNOWN", or a v2 header with
                                the UNSPEC family or transport. The
                                connection's own peer address stays the
                                client's; source and destination are zeroed
                                (len 0) */
    ss_address source;       /* the real client (when !local) */
    ss_address destination;  /* the address the client connected to (when
                                !local) */
} ss__proxy_header;

/* Parse a PROXY protocol header at the start of buf[0 .. len). The version
 * is told by the first byte: "PROXY " starts version 1, the 12-byte binary
 * signature "\r\n\r\n\0\r\nQUIT\n" version 2.
 *
 * Returns
 *   > 0      the header's total length: it is complete and *out is filled
 *            in. The bytes after it are the application's.
 *   0        buf[0 .. len) is a proper prefix of what may still become a
 *            valid header (len 0 included): read more, then call again with
 *            the longer buffer (the bytes already read kept at its start).
 *   -EPROTO  no bytes appended to buf can make it a valid header.
 * *out is written only when the return value is > 0.
 *
 * Input is judged as it arrives, not once the line or the length is
 * complete: a byte that cannot belong to a valid header is refused at once
 * (an IPv6 address, read by inet_pton(3), at the latest when it ends). So
 * a client that sends something else (an HTTP request, a TLS hello) is
 * refused at its first byte, and a prefix of a valid header never gets
 * -EPROTO. A caller holding SS__PROXY_MAX bytes always gets > 0 or -EPROTO.
 *
 * Version 1 is one line of text, exactly as the spec writes it:
 *   "PROXY TCP4 " IPv4 " " IPv4 " " port " " port "\r\n"
 *   "PROXY TCP6 " IPv6 " " IPv6 " " port " " port "\r\n"
 *   "PROXY UNKNOWN" ["\r\n" | " " anything "\r\n"]
 * Single spaces; IPv4 as four decimal numbers 0-255 without leading zeros;
 * IPv6 as inet_pton(3) reads it (groups of one to four hex digits, one
 * "::", an optional dotted IPv4 tail, no zone), since senders write it with
 * inet_ntop(3); ports decimal 0-65535 without leading zeros. The line ends
 * at its first CRLF, within SS__PROXY_V1_MAX bytes; a lone LF anywhere,
 * which some reader could take for the end of the line, is refused (the
 * spec forbids a single LF or CR as the line end). After "UNKNOWN" the rest
 * of the line is ignored, a lone CR included.
 *
 * Version 2 is binary: the signature, the version (2) and command (LOCAL 0
 * or PROXY 1), the family (UNSPEC 0, INET 1, INET6 2, UNIX 3) and transport
 * (UNSPEC 0, STREAM 1, DGRAM 2), a big-endian 16-bit length of what
 * follows, the addresses (12, 36 or 216 bytes, which the length must hold)
 * and then TLVs up to the length. The TLVs are skipped, but their framing
 * is checked: each one's 3-byte head and its value must fit in the length,
 * and the last must end exactly where the header ends. Their values,
 * including a CRC32C checksum TLV, are not interpreted.
 * LOCAL ignores the family byte and skips the whole block unread, as the
 * spec says. A PROXY command with the UNSPEC family or transport is local
 * too and skips the block unread: where its addresses would end is not
 * defined, so there are no TLVs to find. Other families and transports are
 * refused.
 *
 * The transport (STREAM or DGRAM) is checked but not reported: what the
 * server serves is its own socket's type.
 *
 * Ports and addresses are stored in network byte order, with the length of
 * struct sockaddr_in or sockaddr_in6. A Unix address is the 108-byte field
 * as sent: a path ends at its first NUL (len counts the NUL, as
 * getsockname(2) does, unless the path fills all 108 bytes); an abstract
 * name (a leading NUL) ends at its last non-NUL byte, since senders pad the
 * field with NULs; an all-NUL field is an unnamed socket (len
 * sizeof(sa_family_t)). */
ssize_t ss__proxy_parse(const void *buf, size_t len, ss__proxy_header *out);

#endif /* SS_PROXY_H */
