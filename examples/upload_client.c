/*
 * The project's own client for upload_server (its top comment describes
 * the protocol). Unlike the article's client it reads every reply, so it
 * can say what happened: one line per command on stdout, errors on stderr.
 *
 *   upload_client [ADDRESS] put FILE...       store each FILE under its
 *                                             base name
 *   upload_client [ADDRESS] get NAME [DEST]   fetch NAME into DEST (default
 *                                             NAME; "-" = standard output)
 *   upload_client [ADDRESS] list              the stored files and sizes
 *
 * All commands share one connection. Exit status 0 when every command
 * succeeded, 1 after the first that failed, 2 for a bad command line.
 */
#include "client.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_SIZE (64 * 1024)
/* Above the server's largest reply (a listing, 16 MiB at most): anything
 * longer is not from an upload_server. */
#define REPLY_MAX (17 * 1024 * 1024)
#define JSON_DEPTH_MAX 16

#define USAGE "usage: upload_client [ADDRESS] put FILE...\n"          \
              "       upload_client [ADDRESS] get NAME [DEST]\n"      \
              "       upload_client [ADDRESS] list\n"

/* ---- requests ----------------------------------------------------------- */

typedef struct text {
    char   buf[2048];   /* a header: a 255-byte name escaped is < 1600 */
    size_t len;
} text;

static void add(text *t, const char *s, size_t n)
{
    if (t->len + n < sizeof t->buf) {
        memcpy(t->buf + t->len, s, n);
        t->len += n;
    } else {
        t->len = sizeof t->buf;     /* marks the text as too long */
    }
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void add_string(text *t, const char *s)
{
    add(t, "\"", 1);
    for (; *s; s++) {
        char esc[8];

        if (*s == '"' || *s == '\\') {
            esc[0] = '\\';
            esc[1] = *s;
            add(t, esc, 2);
        } else if ((unsigned char)*s < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned char)*s);
            add(t, esc, 6);
        } else {
            add(t, s, 1);
        }
    }
    add(t, "\"", 1);
}

/* Send a header: the 4-byte native-endian length, then the JSON object
 * {"cmd": CMD, "filename": NAME, "filesize": SIZE}, without the name when
 * it is NULL and without the size when it is negative. */
static int send_header(int fd, const char *cmd, const char *name,
                       long long size)
{
    text t = {.len = 4};
    char number[48];
    int32_t n;

    add(&t, "{\"cmd\": ", 8);
    add_string(&t, cmd);
    if (name) {
        add(&t, ", \"filename\": ", 14);
        add_string(&t, name);
    }
    if (size >= 0) {
        snprintf(number, sizeof number, ", \"filesize\": %lld", size);
        add(&t, number, strlen(number));
    }
    add(&t, "}", 1);
    if (t.len >= sizeof t.buf) {
        fprintf(stderr, "%s: name too long\n", cmd);
        return -1;
    }
    n = (int32_t)(t.len - 4);
    memcpy(t.buf, &n, sizeof n);
    return client_send(fd, t.buf, t.len);
}

/* ---- replies: a small strict JSON reader -------------------------------- */

typedef struct cursor {
    const char *p, *end;
} cursor;

/* Whether ch is one of the characters of set (never the NUL). */
static bool one_of(char ch, const char *set)
{
    return ch != '\0' && strchr(set, ch) != NULL;
}

static void skip_ws(cursor *c)
{
    while (c->p < c->end && one_of(*c->p, " \t\r\n"))
        c->p++;
}

/* Skip whitespace, then consume ch if it is next. */
static bool take(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* Append n bytes to out[cap] at *len; out NULL only counts. */
static bool append(char *out, size_t cap, size_t *len, const char *b, size_t n)
{
    if (out && *len + n >= cap)
        return false;
    if (out)
        memcpy(out + *len, b, n);
    *len += n;
    return true;
}

static bool hex4(cursor *c, unsigned *v)
{
    int i;

    *v = 0;
    if (c->end - c->p < 4)
        return false;
    for (i = 0; i < 4; i++, c->p++) {
        char ch = *c->p;

        *v <<= 4;
        if (ch >= '0' && ch <= '9')
            *v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            *v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            *v |= (unsigned)(ch - 'A' + 10);
        else
            return false;
    }
    return true;
}

/* After "\u": a code point, joining a surrogate pair; a lone surrogate
 * or U+0000 (which would cut a C string short) is refused. */
static bool unicode_escape(cursor *c, unsigned *cp)
{
    unsigned lo;

    if (!hex4(c, cp) || *cp == 0 || (*cp >= 0xDC00 && *cp <= 0xDFFF))
        return false;
    if (*cp < 0xD800 || *cp > 0xDBFF)
        return true;
    if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u')
        return false;
    c->p += 2;
    if (!hex4(c, &lo) || lo < 0xDC00 || lo > 0xDFFF)
        return false;
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    return true;
}

static bool append_code_point(char *out, size_t cap, size_t *len, unsigned cp)
{
    char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18);
        b[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return append(out, cap, len, b, n);
}

/* After a backslash: one escape, appended to out. */
static bool escape(cursor *c, char *out, size_t cap, size_t *len)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit;
    unsigned cp;

    if (c->p == c->end)
        return false;
    if (*c->p == 'u') {
        c->p++;
        return unicode_escape(c, &cp) && append_code_point(out, cap, len, cp);
    }
    if (!one_of(*c->p, from))
        return false;
    hit = strchr(from, *c->p);
    c->p++;
    return append(out, cap, len, &to[hit - from], 1);
}

/* A string into out[cap], NUL-terminated; out NULL skips it. A string
 * that does not fit is an error, not a silent truncation. */
static bool read_string(cursor *c, char *out, size_t cap)
{
    size_t len = 0;

    if (!take(c, '"'))
        return false;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p++;

        if (ch < 0x20)
            return false;
        if (ch == '\\' ? !escape(c, out, cap, &len)
                       : !append(out, cap, &len, (const char *)&ch, 1))
            return false;
    }
    if (c->p == c->end)
        return false;
    c->p++;
    if (out)
        out[len] = '\0';
    return true;
}

/* A non-negative integer without fraction or exponent. */
static bool read_size(cursor *c, long long *v)
{
    const char *start;

    skip_ws(c);
    start = c->p;
    *v = 0;
    for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
        if (*v > (INT64_MAX - (*c->p - '0')) / 10)
            return false;
        *v = *v * 10 + (*c->p - '0');
    }
    return c->p > start && (c->p == c->end || !one_of(*c->p, ".eE"));
}

/* Any value, validated as far as this reader cares, and dropped: a newer
 * server may add keys. */
static bool skip_value(cursor *c, int depth)
{
    char closer;

    skip_ws(c);
    if (c->p == c->end || depth > JSON_DEPTH_MAX)
        return false;
    if (*c->p == '"')
        return read_string(c, NULL, 0);
    if (*c->p != '{' && *c->p != '[') {
        const char *start = c->p;

        while (c->p < c->end && one_of(*c->p, "-+.eE0123456789truefalsn"))
            c->p++;
        return c->p > start;
    }
    closer = *c->p++ == '{' ? '}' : ']';
    if (take(c, closer))
        return true;
    do {
        if (closer == '}' && (!read_string(c, NULL, 0) || !take(c, ':')))
            return false;
        if (!skip_value(c, depth + 1))
            return false;
    } while (take(c, ','));
    return take(c, closer);
}

typedef struct reply {
    char      status[16];       /* "ok", "error" */
    char      reason[256];      /* with "error" */
    long long filesize;         /* -1 when absent */
    long      files;            /* entries of "files", -1 when absent */
} reply;

/* Called for each entry of a listing. */
typedef void (*file_fn)(const char *name, long long size);

/* One {"name": ..., "size": ...} of a listing. */
static bool read_entry(cursor *c, reply *r, file_fn each)
{
    char key[16], name[1024] = "";
    long long size = -1;

    if (!take(c, '{'))
        return false;
    if (!take(c, '}')) {
        do {
            if (!read_string(c, key, sizeof key) || !take(c, ':'))
                return false;
            if (strcmp(key, "name") == 0 ? !read_string(c, name, sizeof name)
                : strcmp(key, "size") == 0 ? !read_size(c, &size)
                : !skip_value(c, 1))
                return false;
        } while (take(c, ','));
        if (!take(c, '}'))
            return false;
    }
    if (!name[0] || size < 0)
        return false;
    r->files++;
    if (each)
        each(name, size);
    return true;
}

static bool read_files(cursor *c, reply *r, file_fn each)
{
    r->files = 0;
    if (!take(c, '['))
        return false;
    if (take(c, ']'))
        return true;
    do {
        if (!read_entry(c, r, each))
            return false;
    } while (take(c, ','));
    return take(c, ']');
}

static bool read_member(cursor *c, reply *r, file_fn each)
{
    char key[16];

    if (!read_string(c, key, sizeof key) || !take(c, ':'))
        return false;
    if (strcmp(key, "status") == 0)
        return read_string(c, r->status, sizeof r->status);
    if (strcmp(key, "reason") == 0)
        return read_string(c, r->reason, sizeof r->reason);
    if (strcmp(key, "filesize") == 0)
        return read_size(c, &r->filesize);
    if (strcmp(key, "files") == 0)
        return read_files(c, r, each);
    return skip_value(c, 1);
}

/* Parse a reply object, calling each() for every listed file. */
static bool parse_reply(const char *buf, size_t len, reply *r, file_fn each)
{
    cursor c = {buf, buf + len};

    *r = (reply){.filesize = -1, .files = -1};
    if (!take(&c, '{'))
        return false;
    if (!take(&c, '}')) {
        do {
            if (!read_member(&c, r, each))
                return false;
        } while (take(&c, ','));
        if (!take(&c, '}'))
            return false;
    }
    skip_ws(&c);
    return c.p == c.end && r->status[0];
}

/* ---- talking to the server ---------------------------------------------- */

/* Read one reply and parse it. `what` names the command for messages.
 * Returns 0 for {"status": "ok"}, or 1 after printing why not; *raw and
 * *len keep the JSON text for a second pass (freed by the caller, NULL on
 * failure). */
static int get_reply(int fd, const char *what, reply *r, char **raw,
                     size_t *len)
{
    int32_t n;
    char *buf;

    *raw = NULL;
    if (client_recv_exact(fd, &n, sizeof n) < 0) {
        fprintf(stderr, "%s: no reply\n", what);
        return 1;
    }
    if (n <= 0 || n > REPLY_MAX) {
        fprintf(stderr, "%s: bad reply length %ld\n", what, (long)n);
        return 1;
    }
    if (!(buf = malloc((size_t)n))) {
        fprintf(stderr, "%s: out of memory\n", what);
        return 1;
    }
    if (client_recv_exact(fd, buf, (size_t)n) < 0) {
        fprintf(stderr, "%s: reply cut short\n", what);
        free(buf);
        return 1;
    }
    if (!parse_reply(buf, (size_t)n, r, NULL)) {
        fprintf(stderr, "%s: reply not understood\n", what);
        free(buf);
        return 1;
    }
    if (strcmp(r->status, "ok") != 0) {
        fprintf(stderr, "%s: error: %s\n", what,
                r->reason[0] ? r->reason : r->status);
        free(buf);
        return 1;
    }
    *raw = buf;
    *len = (size_t)n;
    return 0;
}

/* Like get_reply, for replies whose text is not needed again. */
static int expect_ok(int fd, const char *what, reply *r)
{
    char *raw;
    size_t len;
    int rc = get_reply(fd, what, r, &raw, &len);

    free(raw);
    return rc;
}

/* Send the first `size` bytes of file. Quiet on a send failure: the
 * server may have refused the upload and closed, and its reply says why. */
static int send_file(int fd, int file, long long size, const char *path)
{
    static char chunk[CHUNK_SIZE];
    long long sent = 0;

    while (sent < size) {
        size_t want = size - sent < CHUNK_SIZE ? (size_t)(size - sent)
                                               : CHUNK_SIZE;
        ssize_t n = read(file, chunk, want);
        size_t off;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "put %s: %s\n", path,
                    n < 0 ? strerror(errno) : "the file shrank while sent");
            return -1;
        }
        for (off = 0; off < (size_t)n;) {
            ssize_t w = send(fd, chunk + off, (size_t)n - off, MSG_NOSIGNAL);

            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return 1;
            off += (size_t)w;
        }
        sent += n;
    }
    return 0;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

static int put(int fd, const char *path)
{
    char what[600];
    struct stat st;
    reply r;
    int file, rc;

    snprintf(what, sizeof what, "put %s", path);
    file = open(path, O_RDONLY | O_CLOEXEC);
    if (file < 0 || fstat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: %s\n", what,
                file < 0 ? strerror(errno) : "not a regular file");
        if (file >= 0)
            close(file);
        return 1;
    }
    rc = send_header(fd, "put", base_name(path), (long long)st.st_size);
    if (rc == 0)
        rc = send_file(fd, file, (long long)st.st_size, path);
    close(file);
    if (rc < 0)
        return 1;
    /* Even when sending failed (rc 1), the reply may say why. */
    if (expect_ok(fd, what, &r) != 0)
        return 1;
    printf("%s: ok (%lld bytes)\n", what, r.filesize);
    return 0;
}

/* Where get writes: DEST itself for "-" (standard output), else a new
 * temporary next to it, renamed over it once every byte has arrived. */
static int open_destination(const char *dest, char **temp)
{
    mode_t mask;
    int fd;

    *temp = NULL;
    if (strcmp(dest, "-") == 0)
        return STDOUT_FILENO;
    if (!(*temp = malloc(strlen(dest) + 8)))
        return -1;
    sprintf(*temp, "%s.XXXXXX", dest);
    if ((fd = mkstemp(*temp)) < 0) {
        fprintf(stderr, "%s: %s\n", dest, strerror(errno));
        free(*temp);
        *temp = NULL;
        return -1;
    }
    mask = umask(0);    /* mkstemp makes 0600: give it a usual mode */
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    return fd;
}

/* Receive `size` bytes into out. */
static int receive_file(int fd, int out, long long size, const char *dest)
{
    static char chunk[CHUNK_SIZE];
    long long got = 0;
    int err;

    while (got < size) {
        size_t want = size - got < CHUNK_SIZE ? (size_t)(size - got)
                                              : CHUNK_SIZE;

        if (client_recv_exact(fd, chunk, want) < 0)
            return -1;
        if ((err = example_write_all(out, chunk, want)) < 0) {
            fprintf(stderr, "%s: %s\n", dest, strerror(-err));
            return -1;
        }
        got += (long long)want;
    }
    return 0;
}

static int get(int fd, const char *name, const char *dest)
{
    bool to_stdout = strcmp(dest, "-") == 0;
    char what[600], *temp;
    reply r;
    int out, rc;

    snprintf(what, sizeof what, "get %s", name);
    if (send_header(fd, "get", name, -1) < 0 || expect_ok(fd, what, &r) != 0)
        return 1;
    if (r.filesize < 0) {
        fprintf(stderr, "%s: the reply has no filesize\n", what);
        return 1;
    }
    if ((out = open_destination(dest, &temp)) < 0)
        return 1;
    rc = receive_file(fd, out, r.filesize, dest);
    if (temp) {
        if (close(out) < 0 && rc == 0) {
            fprintf(stderr, "%s: %s\n", dest, strerror(errno));
            rc = -1;
        }
        if (rc == 0 && rename(temp, dest) < 0) {
            fprintf(stderr, "%s: %s\n", dest, strerror(errno));
            rc = -1;
        }
        if (rc < 0)
            unlink(temp);
        free(temp);
    }
    if (rc < 0)
        return 1;
    /* With DEST "-" the data is on stdout: the report goes to stderr. */
    fprintf(to_stdout ? stderr : stdout, "%s: ok (%lld bytes)\n",
            what, r.filesize);
    return 0;
}

/* Print a listed name, control characters (which a hostile server could
 * send as escapes) shown as '?'. */
static void print_entry(const char *name, long long size)
{
    for (; *name; name++)
        putchar((unsigned char)*name < 0x20 || *name == 0x7F ? '?' : *name);
    printf(" %lld\n", size);
}

static int list(int fd)
{
    char *raw;
    size_t len;
    reply r;

    if (send_header(fd, "list", NULL, -1) < 0 ||
        get_reply(fd, "list", &r, &raw, &len) != 0)
        return 1;
    if (r.files < 0) {
        fprintf(stderr, "list: the reply has no files\n");
        free(raw);
        return 1;
    }
    printf("list: ok (%ld file%s)\n", r.files, r.files == 1 ? "" : "s");
    parse_reply(raw, len, &r, print_entry);     /* parsed once already */
    free(raw);
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static bool is_command(const char *s)
{
    return strcmp(s, "put") == 0 || strcmp(s, "get") == 0 ||
           strcmp(s, "list") == 0;
}

static void usage_exit(void)
{
    fputs(USAGE, stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *address = "127.0.0.1:8080", *cmd;
    int i = 1, fd, rc = 0, left;

    if (argc > 1 && argv[1][0] != '-' && !is_command(argv[1]))
        address = argv[i++];
    if (i >= argc || !is_command(argv[i]))
        usage_exit();
    cmd = argv[i++];
    left = argc - i;
    if ((strcmp(cmd, "put") == 0 && left < 1) ||
        (strcmp(cmd, "get") == 0 && (left < 1 || left > 2)) ||
        (strcmp(cmd, "list") == 0 && left != 0))
        usage_exit();
    if ((fd = client_open(address, SOCK_STREAM)) < 0)
        return 1;
    if (strcmp(cmd, "put") == 0)
        for (; i < argc && rc == 0; i++)
            rc = put(fd, argv[i]);
    else if (strcmp(cmd, "get") == 0)
        rc = get(fd, argv[i], left == 2 ? argv[i + 1] : argv[i]);
    else
        rc = list(fd);
    client_close(fd);
    return rc;
}
