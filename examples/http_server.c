/*
 * A small static-file HTTP/1.1 server on the stream handler, as Python's
 * http.server is built on socketserver: GET and HEAD, keep-alive and
 * pipelining, files confined to --root.
 *
 *   http_server [--model sync|threading|forking|pool|prefork|async]
 *               [--workers N] [--root DIR] [--timeout SECONDS] [--proxy]
 *               [--max-connections N] [ADDRESS]
 *
 * ADDRESS defaults to 127.0.0.1:8080, DIR to the current directory, the
 * model to threading. --timeout (default 10 s, 0 = none) bounds each read
 * and write on a connection: an idle keep-alive connection is closed
 * quietly after it, a client stuck in the middle of a request head gets
 * 408 and is closed, a client that stops reading is dropped.
 *
 * The decisions, in the order a request meets them:
 * - The request head (request line and header fields) is read into a
 *   buffer of 8 KiB per connection. When it fills before the head ends:
 *   414 URI Too Long if the request line has not ended, else 431 Request
 *   Header Fields Too Large. More than 64 header fields, a malformed head,
 *   an HTTP version other than 1.0 or 1.1, broken body framing (any
 *   Transfer-Encoding, a bad or repeated Content-Length) and a missing or
 *   repeated Host field (HTTP/1.1) get 400.
 * - Methods other than GET and HEAD get 405 with "Allow: GET, HEAD". A
 *   GET or HEAD with a body gets 413: its bytes are never read as the
 *   next request.
 * - The target must be origin-form ("/path?query"): absolute-form
 *   ("http://host/path"), which only proxies need, gets 400, as does any
 *   ".." segment, raw or percent-encoded (http_decode_path decodes before
 *   it checks). A decoded path over 4 KiB gets 414.
 * - The file is opened beneath a directory descriptor of the root with
 *   openat2(RESOLVE_BENEATH): a symbolic link that stays inside the root
 *   is followed, one that leads out of it (or is absolute) gives 404, as
 *   does a missing or unreadable file: the answer never tells a client
 *   what exists outside its view. On kernels without openat2 (before
 *   Linux 5.6) each path component is opened with O_NOFOLLOW instead, so
 *   no symbolic link is followed at all. Only regular files are served.
 * - A directory named with a trailing '/' gives its index.html, or 404
 *   when there is none (no listings); named without it, a 301 to the name
 *   with the '/', so that relative links in the page resolve.
 * - The connection stays open after 200, 301, 404 and 405 (when no body
 *   was announced) unless the client asked to close; every other error
 *   closes it with "Connection: close", after a short lingering read (see
 *   linger_close).
 *
 * Async mode runs the same handler on an event loop. Opening a file and
 * fstat look it up in the kernel's caches of a (small) root: done on the
 * loop, as a web server's open() is. Reading a file is done on the loop
 * for a file of one chunk (one short read); a larger file's chunks may
 * have to come from the disk, one by one, so they are read through
 * ss_run_blocking, and the other connections are served meanwhile.
 *
 * One line per request goes to the server's log callback
 * (ss_server_options.log, which also takes the library's own lines), here
 * one write to stdout per line, so that forked children lose nothing;
 * refused and broken requests say why:
 *   127.0.0.1:40312 "GET /index.html HTTP/1.1" 200 1234
 *   127.0.0.1:40312 "-" 414 239 - request line longer than 8192 bytes
 * The address is the client's: with --proxy (behind HAProxy's send-proxy
 * or send-proxy-v2), the one the PROXY protocol header carries.
 */
#include "example.h"
#include "http_parser.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

#define HEAD_MAX       8192     /* request line + header fields */
#define MAX_FIELDS     64       /* header fields per request */
#define PATH_MAX_LEN   4096     /* decoded path, as Linux's PATH_MAX */
#define INDEX_NAME     "index.html"
#define FILE_CHUNK     16384    /* bytes read from a file at a time */
#define WBUF_SIZE      65536    /* ss_write buffer: head and body together */
#define LINGER_SECONDS 2.0      /* lingering read after an error answer */
#define LOG_FIELD_MAX  200      /* longest method or target logged */

#define USAGE "http_server [--model " EXAMPLE_MODELS "] [--workers N] " \
              "[--root DIR] [--timeout SECONDS]\n"                       \
              "            [--proxy] [--max-connections N] [ADDRESS]\n"     \
              EXAMPLE_WORKERS_FORMS "\n" EXAMPLE_PROXY_FORMS "\n"          \
              EXAMPLE_MAX_CONNECTIONS_FORMS "\n" EXAMPLE_ADDRESS_FORMS

/* What every handler shares: ss_server_options.data. */
typedef struct site {
    int root;                       /* directory descriptor of --root */
    void (*log)(void *data, const char *line);  /* = options.log */
} site;

/* One connection: ss_handler.state_size bytes that the library allocates
 * zeroed for each request (here a connection) and frees after it. */
typedef struct conn {
    ss_request *request;
    site *site;
    int root;                       /* directory descriptor of --root */
    char peer[SS_ADDRESS_STRLEN];
    char head[HEAD_MAX];            /* this request's head, maybe followed
                                       by the start of the next one */
    size_t len;                     /* bytes in head */
    struct http_header fields[MAX_FIELDS];
    struct http_request req;        /* points into head */
    bool has_request;               /* req is parsed: log it */
    bool head_only;                 /* HEAD: no body in the answer */
    bool keep_alive;                /* read another request after this */
    bool linger;                    /* unread input may remain: see
                                       linger_close */
    char path[PATH_MAX_LEN + sizeof INDEX_NAME];
    char extra[HEAD_MAX + 64];      /* extra header fields of an answer */
    char chunk[FILE_CHUNK];         /* file data on its way: here, not on
                                       the stack, which is a coroutine's
                                       64 KiB in async mode */
} conn;

/* ---- logging ------------------------------------------------------------- */

static int clip(size_t len)
{
    return len > LOG_FIELD_MAX ? LOG_FIELD_MAX : (int)len;
}

/* One line per request: what was asked, the status and body bytes sent
 * ("-" when nothing was answered), and why when it went wrong. The method
 * and target are visible ASCII (the parser refuses anything else), so
 * they cannot forge a log line. */
static void log_request(const conn *c, int status, long long bytes,
                        const char *note)
{
    const struct http_request *q = &c->req;
    char answer[32] = "- -", line[1024];

    if (status)
        snprintf(answer, sizeof answer, "%d %lld", status, bytes);
    if (c->has_request)
        snprintf(line, sizeof line, "%s \"%.*s %.*s%s HTTP/1.%d\" %s%s%s",
                 c->peer, clip(q->method_len), q->method,
                 clip(q->target_len), q->target,
                 q->target_len > LOG_FIELD_MAX ? "..." : "",
                 q->minor_version, answer, note ? " - " : "",
                 note ? note : "");
    else
        snprintf(line, sizeof line, "%s \"-\" %s%s%s", c->peer, answer,
                 note ? " - " : "", note ? note : "");
    c->site->log(c->site, line);
}

/* ---- answers ------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    default:  return "Internal Server Error";
    }
}

/* An IMF-fixdate. The program never calls setlocale, so strftime writes
 * the English names HTTP requires. */
static void http_date(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;

    if (!gmtime_r(&t, &tm) ||
        strftime(buf, size, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        snprintf(buf, size, "Thu, 01 Jan 1970 00:00:00 GMT");
}

static const char *connection_field(const conn *c)
{
    if (!c->keep_alive)
        return "Connection: close\r\n";
    /* HTTP/1.0 closes by default: say that this connection stays open. */
    if (c->has_request && c->req.minor_version == 0)
        return "Connection: keep-alive\r\n";
    return "";
}

/* The status line and header fields, into the write buffer. `extra` is
 * NULL or more fields, each ending in CRLF. Returns 0 or -errno. */
static int send_head(conn *c, int status, const char *type, long long length,
                     const char *extra)
{
    char date[64];
    int n;

    http_date(date, sizeof date);
    n = ss_printf(c->request,
                  "HTTP/1.1 %d %s\r\n"
                  "Server: libsockserver-example\r\n"
                  "Date: %s\r\n"
                  "Content-Type: %s\r\n"
                  "Content-Length: %lld\r\n"
                  "%s%s\r\n",
                  status, reason(status), date, type, length,
                  extra ? extra : "", connection_field(c));
    return n < 0 ? n : 0;
}

/* A short HTML page for a status other than 200, sent at once and logged
 * with `note`. */
static void send_status(conn *c, int status, const char *extra,
                        const char *note)
{
    char body[256], why[256];
    int n, err;

    n = snprintf(body, sizeof body,
                 "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>"
                 "<body><h1>%d %s</h1></body></html>\n",
                 status, reason(status), status, reason(status));
    err = send_head(c, status, "text/html", n, extra);
    if (!err && !c->head_only && (err = ss_write(c->request, body,
                                                 (size_t)n)) > 0)
        err = 0;
    if (!err)
        err = ss_flush(c->request);
    if (err < 0) {
        c->keep_alive = false;
        snprintf(why, sizeof why, "%s%sanswer not delivered: %s",
                 note ? note : "", note ? "; " : "", ss_strerror(err));
        note = why;
    }
    log_request(c, status, err < 0 || c->head_only ? 0 : n, note);
}

/* Refuse a request and close the connection: the client may have sent
 * more than was read, and none of it can be trusted as a next request. */
static void refuse(conn *c, int status, const char *note)
{
    c->keep_alive = false;
    c->linger = true;
    send_status(c, status, NULL, note);
}

/* ---- reading the request head -------------------------------------------- */

/* The head did not fit in HEAD_MAX bytes: 414 while the request line has
 * not ended (one empty line before it aside, as the parser skips it),
 * 431 when the header fields are what is too long. */
static void refuse_long_head(conn *c)
{
    size_t skip = c->head[0] == '\n' ? 1
                  : c->head[0] == '\r' && c->head[1] == '\n' ? 2 : 0;
    char note[64];

    if (!memchr(c->head + skip, '\n', c->len - skip)) {
        snprintf(note, sizeof note, "request line longer than %d bytes",
                 HEAD_MAX);
        refuse(c, 414, note);
    } else {
        snprintf(note, sizeof note, "request head longer than %d bytes",
                 HEAD_MAX);
        refuse(c, 431, note);
    }
}

/* ss_recv returned n <= 0 with c->len bytes of a head buffered. Between
 * requests, the client closing, resetting, idling past the timeout or the
 * server shutting down is the normal end of a connection; in the middle
 * of a head it is a broken request. */
static void head_ended(conn *c, ssize_t n)
{
    char note[128];

    if (c->len == 0 && (n == 0 || n == -ETIMEDOUT || n == -ECONNRESET ||
                        n == -ESHUTDOWN))
        return;
    if (n == -ETIMEDOUT && c->len > 0) {
        snprintf(note, sizeof note, "timed out after %zu bytes of a request "
                 "head", c->len);
        c->keep_alive = false;  /* the client is silent: no linger */
        send_status(c, 408, NULL, note);
        return;
    }
    if (n == 0)
        snprintf(note, sizeof note, "connection closed after %zu bytes of a "
                 "request head", c->len);
    else
        snprintf(note, sizeof note, "receive failed after %zu bytes of a "
                 "request head: %s", c->len, ss_strerror((int)n));
    log_request(c, 0, 0, note);
}

/* Read until c->head starts with a whole request head. Returns its length,
 * or 0 when the connection is over (answered, logged, or ended quietly).
 * Bytes after the head stay in c->head for the next request. */
static size_t read_head(conn *c)
{
    size_t last_len = 0;
    ssize_t n;
    int parsed;

    for (;;) {
        if (c->len > 0) {
            /* last_len: after a -2, the parser only looks for the end of
             * the head in the new bytes, so a slow client costs linear
             * work, not quadratic. */
            parsed = http_parse_request(c->head, c->len, last_len, &c->req);
            if (parsed > 0)
                return (size_t)parsed;
            if (parsed == -1) {
                refuse(c, 400, "malformed request head");
                return 0;
            }
            if (c->len == HEAD_MAX) {
                refuse_long_head(c);
                return 0;
            }
            last_len = c->len;
        }
        n = ss_recv(c->request, c->head + c->len, HEAD_MAX - c->len);
        if (n <= 0) {
            head_ended(c, n);
            return 0;
        }
        c->len += (size_t)n;
    }
}

/* ---- opening files beneath the root -------------------------------------- */

/* Without openat2: open one component at a time, each with O_NOFOLLOW, so
 * no symbolic link is followed anywhere on the path. `rel` is relative and
 * has no empty, "." or ".." segment (http_decode_path saw to that). */
static int open_walk(int root, const char *rel)
{
    char name[NAME_MAX + 1];
    int dir = root, fd, err;

    for (;;) {
        const char *slash = strchr(rel, '/');
        size_t len = slash ? (size_t)(slash - rel) : strlen(rel);
        bool last = !slash || slash[1] == '\0';
        int flags = last ? O_RDONLY | O_NONBLOCK | O_NOCTTY
                         : O_PATH | O_DIRECTORY;

        if (len > NAME_MAX) {
            err = -ENAMETOOLONG;
            break;
        }
        memcpy(name, rel, len);
        name[len] = '\0';
        if (slash)
            flags |= O_DIRECTORY;   /* "dir/": a directory or nothing */
        fd = openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC);
        err = fd < 0 ? -errno : 0;
        if (dir != root)
            close(dir);
        if (err < 0 || last)
            return err < 0 ? err : fd;
        dir = fd;
        rel = slash + 1;
    }
    if (dir != root)
        close(dir);
    return err;
}

/* Open path ("/..." from http_decode_path) under the root directory fd,
 * never leaving it. Returns a descriptor or -errno: -EXDEV when a symbolic
 * link leads out of the root, -ELOOP when the fallback meets any link.
 * O_NONBLOCK keeps a FIFO under the root from blocking the open; it does
 * not change reads of regular files. */
static int open_beneath(int root, const char *path)
{
    const char *rel = path[1] != '\0' ? path + 1 : ".";
#ifdef SYS_openat2
    struct open_how how = {
        .flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, root, rel, &how, sizeof how);

    if (fd >= 0)
        return (int)fd;
    /* ENOSYS: a kernel before 5.6; EPERM: a seccomp filter that does not
     * know the call. The walk below is stricter, so falling back is safe. */
    if (errno != ENOSYS && errno != EPERM)
        return -errno;
#endif
    return open_walk(root, rel);
}

/* Open path as a regular file and fill *st. Returns the descriptor, or
 * -EISDIR for a directory, -ENODEV for any other kind of file, or the
 * -errno of the open. */
static int open_regular(int root, const char *path, struct stat *st)
{
    int fd = open_beneath(root, path), err = 0;

    if (fd < 0)
        return fd;
    if (fstat(fd, st) < 0)
        err = -errno;
    else if (S_ISDIR(st->st_mode))
        err = -EISDIR;
    else if (!S_ISREG(st->st_mode))
        err = -ENODEV;
    if (err < 0) {
        close(fd);
        return err;
    }
    return fd;
}

/* ---- serving files ------------------------------------------------------- */

static const char *content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {"html", "text/html"},       {"htm", "text/html"},
        {"txt", "text/plain"},       {"css", "text/css"},
        {"js", "text/javascript"},   {"json", "application/json"},
        {"png", "image/png"},        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},      {"gif", "image/gif"},
        {"svg", "image/svg+xml"},    {"ico", "image/vnd.microsoft.icon"},
    };
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    size_t i;

    if (dot && dot > slash)
        for (i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

typedef struct chunk_read {     /* one read of file data */
    int    fd;
    char  *buf;
    size_t len;
} chunk_read;

/* Bytes read (0 at the end of the file) or -errno; len <= FILE_CHUNK. */
static int read_chunk(void *arg)
{
    const chunk_read *rd = arg;
    ssize_t n;

    while ((n = read(rd->fd, rd->buf, rd->len)) < 0 && errno == EINTR)
        ;
    return n < 0 ? -errno : (int)n;
}

/* Copy size bytes of the file to the client in FILE_CHUNK pieces through
 * the write buffer, counting in *sent what was handed to the library.
 * A file of more than one chunk is read through ss_run_blocking (see the
 * top of the file). Returns 0 or -errno; *failed says which side failed. */
static int send_body(conn *c, int fd, long long size, long long *sent,
                     const char **failed)
{
    bool in_place = size <= FILE_CHUNK;
    int err;

    while (*sent < size) {
        size_t want = size - *sent < FILE_CHUNK ? (size_t)(size - *sent)
                                                : FILE_CHUNK;
        chunk_read rd = {fd, c->chunk, want};
        int n = in_place ? read_chunk(&rd)
                         : example_run_blocking(c->request, read_chunk, &rd);

        if (n <= 0) {
            *failed = "reading the file";
            return n < 0 ? n : -ENODATA;  /* it shrank meanwhile */
        }
        if ((err = ss_write(c->request, c->chunk, (size_t)n)) < 0) {
            *failed = "sending";
            return err;
        }
        *sent += n;
    }
    *failed = "sending";
    return ss_flush(c->request);
}

static void send_file(conn *c, int fd, const struct stat *st)
{
    long long size = st->st_size, sent = 0;
    const char *failed = "sending";
    char note[160];
    int err;

    err = send_head(c, 200, content_type(c->path), size, NULL);
    if (!err && !c->head_only)
        err = send_body(c, fd, size, &sent, &failed);
    else if (!err)
        err = ss_flush(c->request);
    if (err < 0) {
        /* The Content-Length promised is not met: the framing is lost. */
        c->keep_alive = false;
        snprintf(note, sizeof note, "cut short after %lld of %lld bytes, "
                 "%s failed: %s", sent, c->head_only ? 0 : size, failed,
                 ss_strerror(err));
    }
    log_request(c, 200, sent, err < 0 ? note : NULL);
}

/* "/dir" names a directory: send the client to "/dir/". The Location is
 * the target as received (visible ASCII, still percent-encoded) without
 * its query. */
static void redirect_to_directory(conn *c)
{
    const struct http_request *q = &c->req;
    size_t len = 0;

    while (len < q->target_len && q->target[len] != '?' &&
           q->target[len] != '#')
        len++;
    snprintf(c->extra, sizeof c->extra, "Location: %.*s/\r\n", (int)len,
             q->target);
    send_status(c, 301, c->extra, NULL);
}

static const char *why_not_found(int err)
{
    switch (err) {
    case -EXDEV:  return "a symbolic link leads out of the root";
    case -ELOOP:  return "a symbolic link was refused";
    case -EISDIR: return "directory without " INDEX_NAME;
    case -ENODEV: return "not a regular file";
    default:      return ss_strerror(err);
    }
}

/* c->path holds the decoded path, len bytes. */
static void serve_path(conn *c, size_t len)
{
    struct stat st;
    int fd = open_regular(c->root, c->path, &st);

    if (fd == -EISDIR && c->path[len - 1] != '/') {
        redirect_to_directory(c);
        return;
    }
    if (fd == -EISDIR) {
        memcpy(c->path + len, INDEX_NAME, sizeof INDEX_NAME);
        fd = open_regular(c->root, c->path, &st);
        if (fd == -ENOENT)
            fd = -EISDIR;   /* logged as "directory without index.html" */
    }
    if (fd < 0) {
        send_status(c, 404, NULL, why_not_found(fd));
        return;
    }
    send_file(c, fd, &st);
    close(fd);
}

/* ---- one request --------------------------------------------------------- */

static bool method_is(const struct http_request *q, const char *m)
{
    return q->method_len == strlen(m) &&
           memcmp(q->method, m, q->method_len) == 0;
}

/* RFC 9112, section 3.2: exactly one Host field; HTTP/1.0 may omit it. */
static bool host_ok(const struct http_request *q)
{
    size_t i, hosts = 0;

    for (i = 0; i < q->num_headers; i++)
        if (q->headers[i].name_len == 4 &&
            strncasecmp(q->headers[i].name, "Host", 4) == 0)
            hosts++;
    return hosts == 1 || (hosts == 0 && q->minor_version == 0);
}

/* Answer the parsed request in c->req. */
static void answer(conn *c)
{
    const struct http_request *q = &c->req;
    int64_t body;
    int n;

    c->has_request = true;
    c->head_only = method_is(q, "HEAD");
    c->keep_alive = http_keep_alive(q);
    if (http_content_length(q, &body) < 0) {
        refuse(c, 400, "bad body framing (Transfer-Encoding or "
                       "Content-Length)");
        return;
    }
    if (!host_ok(q)) {
        refuse(c, 400, "missing or repeated Host field");
        return;
    }
    if (!method_is(q, "GET") && !c->head_only) {
        if (body > 0) {         /* its body is not read: close after */
            c->keep_alive = false;
            c->linger = true;
        }
        send_status(c, 405, "Allow: GET, HEAD\r\n", NULL);
        return;
    }
    if (body > 0) {
        refuse(c, 413, "GET or HEAD with a body");
        return;
    }
    n = http_decode_path(q->target, q->target_len, c->path, PATH_MAX_LEN);
    if (n == -2)
        refuse(c, 414, "decoded path too long");
    else if (n < 0)
        refuse(c, 400, "bad target: not a path, or a '..' segment");
    else
        serve_path(c, (size_t)n);
}

/* ---- the connection ------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* After an error answer, bytes the client sent may still be unread:
 * closing a socket with unread input makes the kernel send a reset, and
 * a reset can destroy the answer before the client has read it. So, as
 * Apache and nginx do ("lingering close"), stop sending and read and drop
 * whatever still arrives, until the client closes or LINGER_SECONDS pass.
 * The wait is ss_wait_fd, not poll(): in async mode it lets the loop serve
 * other connections meanwhile, and in every model a shutdown ends it. */
static void linger_close(conn *c)
{
    int fd = ss_request_fd(c->request);
    double end = now() + LINGER_SECONDS;

    if (fd < 0 || shutdown(fd, SHUT_WR) < 0)
        return;
    for (;;) {
        double left = end - now();

        if (left <= 0 || ss_wait_fd(c->request, fd, POLLIN, left) <= 0)
            return;
        if (ss_recv(c->request, c->head, sizeof c->head) <= 0)
            return;
    }
}

/* The stream handler: requests one after another on the connection until
 * it closes, an answer closes it, or it stays idle past the timeout. Every
 * outcome is logged here, so it returns 0 and the library's handle_error
 * (a multi-line report) is kept for real surprises. */
static int handle(ss_request *request, const ss_address *client,
                  ss_server *server)
{
    conn *c = ss_request_state(request);
    size_t head_len;

    c->request = request;
    c->site = ss_server_data(server);
    c->root = c->site->root;
    ss_address_format(client, c->peer, sizeof c->peer);
    c->req.headers = c->fields;     /* the parser fills these in */
    c->req.max_headers = MAX_FIELDS;
    c->keep_alive = true;
    while (c->keep_alive && (head_len = read_head(c)) > 0) {
        answer(c);
        /* Pipelining: what follows the head is the next request's. */
        memmove(c->head, c->head + head_len, c->len - head_len);
        c->len -= head_len;
        c->has_request = false;
        c->head_only = false;
    }
    if (c->linger)
        linger_close(c);
    return 0;
}

int main(int argc, char **argv)
{
    example_args args = {.address = "127.0.0.1:8080", .root = ".",
                         .timeout = 10};
    ss_handler handler = {
        .handle = handle,
        .state_size = sizeof(conn),
        .wbufsize = WBUF_SIZE,  /* head and small bodies in one send */
        /* Each answer ends with ss_flush, so Nagle's algorithm would only
         * hold back the last piece of a response. */
        .disable_nagle_algorithm = true,
    };
    ss_server_options options;
    ss_server *server;
    site site = {.log = example_log_stdout};
    int root, rc;

    example_parse(argc, argv, &args,
                  "model root timeout proxy max-connections", USAGE);
    root = site.root = open(args.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        fprintf(stderr, "http_server: --root %s: %s\n", args.root,
                strerror(errno));
        return 1;
    }
    handler.timeout = args.timeout;
    options = example_server_options(&args, &site);
    options.log = site.log;     /* the library's lines join the access log */
    if (!(server = ss_tcp_server_new(args.address, &handler, &options))) {
        close(root);
        return example_fail("http_server");
    }
    if (!(server = example_apply_model(server, &args))) {
        close(root);
        return 1;
    }
    rc = example_serve(server);
    close(root);
    return rc;
}
