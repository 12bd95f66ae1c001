/*
 * upload_header.h - a strict reader for the JSON header of the upload
 * protocol (the "FTP upload" example of the original socketserver articles).
 *
 * A command on the wire is
 *
 *   4-byte length   a native-endian int32, Python's struct.pack('i', n)
 *   n bytes         a JSON object written by json.dumps, for example
 *                   {"cmd": "put", "filename": "a.txt", "filesize": 123}
 *   filesize bytes  the file itself (put only)
 *
 * The server reads the length, refuses n <= 0 or n > UPLOAD_HEADER_MAX
 * before allocating or reading anything, reads exactly n bytes (recv() may
 * return fewer), and hands them to upload_header_parse().
 *
 * Like picohttpparser, the reader allocates nothing and keeps nothing: the
 * caller's buffer in, a caller-owned struct out. It never reads outside
 * [buf, buf + len) and does not need a terminating NUL. It is reentrant.
 */
#ifndef UPLOAD_HEADER_H
#define UPLOAD_HEADER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A suggested limit for the 4-byte length prefix. A header with a 255-byte
 * name fits many times over even when every character is a \uXXXX
 * surrogate pair; anything larger is a broken or hostile client. */
#define UPLOAD_HEADER_MAX 4096

#define UPLOAD_CMD_SIZE 16       /* sizeof cmd: 15 bytes and the NUL */
#define UPLOAD_FILENAME_SIZE 256 /* sizeof filename: 255 bytes and the NUL */

/* Bits of upload_header.present: which keys the object had. */
#define UPLOAD_HAVE_CMD      0x1u
#define UPLOAD_HAVE_FILENAME 0x2u
#define UPLOAD_HAVE_FILESIZE 0x4u

struct upload_header {
    /* "put", "get", "list", ... unescaped and NUL-terminated; "" when the
     * key is absent. Any string up to 15 bytes is accepted: the server
     * compares it with a fixed table (never looks a handler up by name as
     * the Python original does with getattr). */
    char cmd[UPLOAD_CMD_SIZE];

    /* UTF-8, unescaped, NUL-terminated; "" when absent. It can contain a
     * NUL byte written as \u0000, so filename_len, not strlen(), is its
     * length. Nothing about it is checked here: pass both to
     * upload_filename_ok() before it comes near a path. */
    char filename[UPLOAD_FILENAME_SIZE];
    size_t filename_len;

    /* 0 .. INT64_MAX, or -1 when the key is absent. A negative value in the
     * header is refused by the parser, so -1 always means "absent". */
    long long filesize;

    unsigned present;            /* UPLOAD_HAVE_* bits */

    /* When parsing fails: the offset in buf of the byte at fault, so that
     * "invalid escape" can be reported as "invalid escape at byte 17". */
    size_t error_offset;
};

/* Parse the header in [buf, buf + len).
 *
 * The whole buffer must be exactly one JSON object (RFC 8259), optionally
 * surrounded by whitespace. The object is flat: its values are strings,
 * numbers, true, false or null; a nested object or array is refused. Keys
 * are compared after unescaping ("cm\u0064" is "cmd"). Unknown keys are
 * skipped, but their values are validated like the rest. A known key given
 * twice is refused, since readers disagree about which one wins.
 * Strings must be valid UTF-8 without raw control characters; escapes
 * include \uXXXX and surrogate pairs, and a lone surrogate is refused.
 *
 * cmd and filename must be strings, filesize a JSON integer: no fraction,
 * no exponent, not negative ("-0" reads as 0), at most INT64_MAX.
 * Which keys a command requires (put needs all three, list only cmd) is
 * the server's decision, made with out->present.
 *
 * Returns 0 with *out filled in, or -1 with *why set to a static string
 * naming the problem ("duplicate key", "filename too long", ...) and
 * out->error_offset to where it is; the other fields of *out are then
 * unspecified. why may be NULL. */
int upload_header_parse(const char *buf, size_t len, struct upload_header *out,
                        const char **why);

/* Whether name[0 .. len) may be used as the name of a file in the upload
 * directory. Returns 0 if so, or -1 with *why (a static string, why may be
 * NULL) when the name is empty, "." or "..", contains '/', a NUL or a
 * control character (C0, DEL or C1), is longer than 255 bytes, or is not
 * valid UTF-8. A name that passes is a single path component, so joining
 * it to the directory cannot leave it. The server should still write to a
 * temporary name with openat(dirfd, ..., O_CREAT | O_EXCL | O_NOFOLLOW)
 * and renameat() it into place once filesize bytes have arrived, so that
 * neither a symlink planted in the directory nor a client that disconnects
 * mid-file can do harm. */
int upload_filename_ok(const char *name, size_t len, const char **why);

#ifdef __cplusplus
}
#endif

#endif /* UPLOAD_HEADER_H */
