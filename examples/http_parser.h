/*
 * http_parser.h - a strict HTTP/1.1 request parser for the static-file
 * server example, in the manner of picohttpparser.
 *
 * It allocates nothing and keeps nothing: the caller's buffer in, pointers
 * into that buffer out. The pointers live as long as the caller keeps the
 * bytes where they are; none is NUL-terminated. Nothing here reads outside
 * [buf, buf + len) or needs a terminating NUL, and everything is reentrant.
 *
 * Limits belong to the caller. The parser takes a request line or header
 * section of any length, in time linear in it (see last_len below); the
 * server decides how much it buffers. It should keep at most 8 KiB: when
 * the buffer is full and http_parse_request() still returns -2, answer
 * 414 URI Too Long if the request line has not ended (no '\n' in the
 * buffer, a leading empty line aside), otherwise 431 Request Header Fields
 * Too Large (or 400), and close the connection.
 */
#ifndef HTTP_PARSER_H
#define HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct http_header {
    const char *name;   /* a token, as sent: compare case-insensitively */
    size_t name_len;
    const char *value;  /* without leading and trailing spaces and tabs; */
    size_t value_len;   /* may be empty; bytes 0x80-0xFF are let through */
};

struct http_request {
    /* Set by the caller before parsing: */
    struct http_header *headers;  /* an array of max_headers entries */
    size_t max_headers;

    /* Set by a successful parse: */
    const char *method;           /* a token, case-sensitive: "GET" */
    size_t method_len;
    const char *target;           /* the raw request-target: "/a%20b?x" */
    size_t target_len;
    int minor_version;            /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    size_t num_headers;           /* entries of headers[] filled in */
};

/* Parse the request line and header section at the start of buf.
 *
 * Returns the number of bytes they take, up to and including the empty
 * line that ends them (a body or a pipelined request may follow); -2 when
 * the bytes so far are a valid beginning but the section is incomplete
 * (read more and call again); -1 when the request is malformed (answer 400
 * and close). On -1 and -2 the output fields of *req are unspecified.
 *
 * Strict where being lenient lets two parsers disagree about one request:
 * the request line is METHOD SP TARGET SP HTTP/1.x with single spaces, a
 * token method, a target of visible ASCII and x either 0 or 1. Lines end
 * in CRLF or a bare LF; a CR elsewhere, a NUL, other control characters,
 * a header line starting with white space (obsolete folding), white space
 * before the colon, and a header name that is not a token are refused. One
 * empty line before the request line is skipped (RFC 9112, section 2.2).
 * More than req->max_headers header fields is an error too (-1).
 *
 * last_len makes incremental parsing linear, as picohttpparser's does:
 * pass 0 on the first call for a request and, after a -2, the len of the
 * previous call. Then the parser only looks for the end of the header
 * section in the new bytes and parses once when it appears; a first call
 * (last_len 0) parses at once, so garbage such as a TLS handshake is
 * refused without waiting for an empty line that never comes.
 *
 * What the request means is the server's to judge: the methods it serves
 * (405 for the others), the Host field that HTTP/1.1 requires (RFC 9112,
 * section 3.2: 400 when missing or repeated), the body (see
 * http_content_length()) and the target (see http_decode_path()).
 *
 * A header section longer than INT_MAX bytes is reported as malformed;
 * the caller's limit is far below that. */
int http_parse_request(const char *buf, size_t len, size_t last_len,
                       struct http_request *req);

/* The first header field called name (ASCII, compared case-insensitively),
 * or NULL when there is none. */
const struct http_header *http_find_header(const struct http_request *req,
                                           const char *name);

/* Whether the connection stays open after the response: for HTTP/1.1 yes
 * unless a Connection field lists "close"; for HTTP/1.0 no unless one lists
 * "keep-alive" (and none "close"). Connection fields are comma-separated
 * token lists, compared case-insensitively; all of them are read. */
bool http_keep_alive(const struct http_request *req);

/* The framing of the request body (RFC 9112, section 6).
 *
 * Returns 0 and sets *length to the Content-Length, or to 0 when there is
 * none; -1 when the framing is invalid or unsupported: a Content-Length
 * that is empty, not all digits, over INT64_MAX, a list or repeated; or
 * any Transfer-Encoding field (chunked bodies are not decoded here, and
 * Transfer-Encoding next to Content-Length is how requests are smuggled).
 *
 * GET and HEAD have no use for a body, but one may still be sent, and its
 * bytes must not be read as the next request. So a GET/HEAD server should
 * answer 400 and close on -1, and for a *length above 0 either answer 413
 * Content Too Large and close, or read and discard exactly *length bytes
 * before parsing the next request. */
int http_content_length(const struct http_request *req, int64_t *length);

/* Turn an origin-form request-target into a path under the server's root.
 *
 * target[0 .. len) is taken as received ("/a/b%20c.txt?x=1"). The query
 * and fragment are dropped and %XX escapes decoded, then the path is
 * normalised: "//" and "/./" collapse, a trailing '/' is kept ("/dir/"),
 * and any ".." segment is refused. The test for ".." comes after decoding,
 * so "/%2e%2e/etc/passwd" and "/..%2fetc" are refused as "/../etc" is: a
 * decoded %2F separates segments like '/'.
 *
 * Refused as bad requests (-1): an empty target; anything not starting
 * with '/', that is absolute-form ("http://x/y"), authority-form ("x:80")
 * and "*"; a byte that is not visible ASCII; a '%' not followed by two hex
 * digits; an escape decoding to NUL or another control character; a ".."
 * segment. Returns -2 (answer 414) when the result with its NUL does not
 * fit in outsize bytes.
 *
 * Otherwise writes the path, which starts with '/', has no ".." segment
 * and no NUL, NUL-terminated into out, and returns its length.
 *
 * A parser cannot see the file system: a symlink under the root may still
 * point out of it. The server must open the path relative to the root and
 * refuse links that leave it, with openat2(RESOLVE_BENEATH), with O_NOFOLLOW
 * on each component, or by checking realpath() against the root. */
int http_decode_path(const char *target, size_t len, char *out,
                     size_t outsize);

#ifdef __cplusplus
}
#endif

#endif /* HTTP_PARSER_H */
