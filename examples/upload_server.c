/*
 * The "FTP upload" server of the original articles, made safe: it stores
 * the files a client sends under a root directory, and it interoperates
 * unchanged with the article's client.
 *
 *   upload_server [--model sync|threading|forking|pool|prefork|async]
 *                 [--workers N] [--root DIR] [--max-size BYTES]
 *                 [--timeout SECONDS] [ADDRESS]
 *
 * ADDRESS defaults to 127.0.0.1:8080, --root to the current directory,
 * --model to threading (the article's ThreadingTCPServer), --max-size to
 * 16 GiB and --timeout (each read or write on a connection) to 60 s, so
 * that a silent client cannot hold a handler forever.
 *
 * The protocol. A connection carries any number of commands, one after
 * another, until the client closes it. A command is
 *
 *   4 bytes    the header length n, a native-endian int32 (Python's
 *              struct.pack('i', n)); 1 <= n <= 65536
 *   n bytes    a JSON object, read by upload_header.h:
 *                {"cmd": "put", "filename": "a.txt", "filesize": 123}
 *                {"cmd": "get", "filename": "a.txt"}
 *                {"cmd": "list"}
 *   filesize   the file's bytes (put only)
 *
 * and every command gets a reply framed the same way, a 4-byte
 * native-endian length and then a JSON object, so that a client can read it
 * with the code that writes requests, and the article's client, which never
 * reads, can ignore it:
 *
 *   put   {"status": "ok", "filesize": 123}
 *   get   {"status": "ok", "filesize": 123} and then exactly 123 raw bytes
 *   list  {"status": "ok", "files": [{"name": "a.txt", "size": 123}, ...]}
 *         (regular files only, in directory order, temporaries hidden)
 *   any   {"status": "error", "reason": "filename contains '/'"}
 *
 * What the article's server got wrong, and what this one does instead:
 * - Every read is exact (ss_read), so a short recv() never cuts a header
 *   or eats the next command's header into the file.
 * - A header length outside 1..65536, a header that is not one flat JSON
 *   object, a put without a filesize or with one over --max-size, an
 *   unknown or missing cmd: an error reply, then the connection is closed,
 *   since what follows can no longer be told apart from the next command.
 * - A name that is empty, ".", "..", holds '/', a NUL or a control
 *   character (upload_filename_ok), starts with the temporary prefix, or
 *   names a directory or symbolic link in the root is refused. The file's
 *   bytes are then read and dropped, and the connection goes on.
 * - Nothing is written under the real name until every byte has arrived:
 *   the data goes to a new temporary file in the root (created O_EXCL |
 *   O_NOFOLLOW, relative to the root's descriptor) that is renamed into
 *   place at the end, and unlinked on any failure. rename() replaces a
 *   symbolic link itself, never what it points to, so nothing is ever
 *   written outside the root. There is no fsync: a file survives a crash
 *   of the server, not necessarily a crash of the machine.
 * - Commands are looked up in a fixed table, never by name on an object as
 *   the article's getattr() does.
 * - Files move in 64 KiB chunks through a per-connection buffer: a 1 GiB
 *   upload runs in constant memory.
 * Every refused or failed command is logged on stderr as one line,
 * "<client>: <command> refused|failed: <why>" (an idle connection closed
 * by the timeout: "<client>: closed: no command for 60 s"); successes go
 * to stdout. Both go through log callbacks: failures through the server's
 * ss_server_options.log (which takes the library's lines too, on
 * stderr), successes through one of the same kind on stdout. <client> is
 * the address handle() receives: with --proxy (behind HAProxy), the one
 * the PROXY protocol header carries.
 *
 * Known limits. The timeout bounds each read, not a whole command, so a
 * client trickling one byte a minute keeps its handler. A server killed
 * mid-upload (SIGKILL, or a forked child still busy when shutdown gives
 * up) leaves its temporary behind; list hides it, put and get refuse its
 * name.
 *
 * Async mode. The handler is the same in every model; in async mode the
 * connection's I/O yields to other connections, and the file work that
 * may sleep for long goes through ss_run_blocking (see "file work" below),
 * so that one slow disk does not stall every connection of the loop.
 *
 * Replies and the article's client. The article's client never reads the
 * replies, and a client that closes its socket with unread data makes
 * Linux reset the connection and drop whatever it had not sent yet (RFC
 * 2525, 2.17): a script uploading files back to back and closing at once
 * would lose the end of its last file. So put replies wait in the
 * connection's write buffer (ss_write with wbufsize) while the client is
 * already sending its next command, and go out when it pauses
 * (ss_wait_readable finds nothing for REPLY_GRACE): a client that waits for
 * its answer gets it, one that streams commands has nothing unread when it
 * closes. get and list answer at once: their client must read.
 */
#include "example.h"
#include "upload_header.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The longest header accepted. Any honest header fits in
 * upload_header.h's UPLOAD_HEADER_MAX (4 KiB); 64 KiB is the limit this
 * project's issue sets, still cheap to hold per connection. */
#define HEADER_MAX (64 * 1024)
#define CHUNK_SIZE (64 * 1024)          /* file data moves in these */
#define LIST_REPLY_MAX (16 * 1024 * 1024) /* a longer listing is refused */
#define DEFAULT_MAX_SIZE (16LL << 30)
#define DEFAULT_TIMEOUT 60.0
#define TEMP_PREFIX ".upload-"          /* temporaries: hidden, reserved */
#define REPLY_BUFFER (64 * 1024)        /* put replies held back, at most */
#define REPLY_GRACE 0.1                 /* a client quiet this long waits
                                           for its replies (longer than a
                                           delayed ACK holding its next
                                           segment back) */

#define USAGE "upload_server [--model " EXAMPLE_MODELS "] [--workers N] " \
              "[--root DIR] [--max-size BYTES] [--timeout SECONDS]\n"    \
              "              [--proxy] [--max-connections N] [ADDRESS]\n"   \
              EXAMPLE_WORKERS_FORMS "\n" EXAMPLE_PROXY_FORMS "\n"          \
              EXAMPLE_MAX_CONNECTIONS_FORMS "\n" EXAMPLE_ADDRESS_FORMS

/* What happens after a command. */
enum { NEXT, CLOSE };

typedef struct config {         /* shared by every handler, read only */
    int       root_fd;          /* every file operation is relative to it */
    long long max_size;
    double    timeout;
    void    (*log)(void *data, const char *line);     /* = options.log:
                                   failures, refusals, the library's lines */
    void    (*log_ok)(void *data, const char *line);  /* successes */
} config;

typedef struct session {        /* one connection: ss_handler.state_size */
    ss_request          *request;
    const config        *cfg;
    char                 who[SS_ADDRESS_STRLEN];
    char                 action[16 + 4 * UPLOAD_FILENAME_SIZE]; /* for logs */
    struct upload_header h;     /* the current command */
    char                 header[HEADER_MAX];
    char                 chunk[CHUNK_SIZE];
} session;

/* ---- replies: a JSON object behind a 4-byte length ---------------------- */

typedef struct reply {
    char  *buf;                 /* 4 bytes for the length, then the JSON */
    size_t len, cap;
    bool   failed;              /* out of memory: the reply is lost */
} reply;

static void put_bytes(reply *r, const char *s, size_t n)
{
    if (r->failed)
        return;
    if (r->len + n > r->cap) {
        size_t cap = (r->len + n) * 2;
        char *p = realloc(r->buf, cap);

        if (!p) {
            r->failed = true;
            return;
        }
        r->buf = p;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
}

static void put_text(reply *r, const char *s)
{
    put_bytes(r, s, strlen(s));
}

static void put_number(reply *r, long long v)
{
    char digits[24];

    snprintf(digits, sizeof digits, "%lld", v);
    put_text(r, digits);
}

/* A JSON string. s must be valid UTF-8 (file names that passed
 * upload_filename_ok, reasons written here); quotes, backslashes and
 * control characters are escaped, the rest is copied. */
static void put_string(reply *r, const char *s, size_t n)
{
    size_t i;

    put_text(r, "\"");
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put_bytes(r, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put_text(r, esc);
        } else {
            put_bytes(r, (const char *)&c, 1);
        }
    }
    put_text(r, "\"");
}

static void reply_begin(reply *r, const char *status)
{
    *r = (reply){0};
    put_bytes(r, "\0\0\0\0", 4);
    put_text(r, "{\"status\": ");
    put_string(r, status, strlen(status));
}

/* Close the object, fill in the length and send. Returns 0 or -errno. */
static int reply_send(session *s, reply *r)
{
    int32_t n;
    int err;

    put_text(r, "}");
    if (r->failed) {
        free(r->buf);
        return -ENOMEM;
    }
    n = (int32_t)(r->len - 4);
    memcpy(r->buf, &n, sizeof n);
    err = ss_write(s->request, r->buf, r->len);     /* buffered: see above */
    free(r->buf);
    return err < 0 ? err : 0;
}

static int send_ok_size(session *s, long long size)
{
    reply r;

    reply_begin(&r, "ok");
    put_text(&r, ", \"filesize\": ");
    put_number(&r, size);
    return reply_send(s, &r);
}

static void send_error(session *s, const char *reason)
{
    reply r;

    reply_begin(&r, "error");
    put_text(&r, ", \"reason\": ");
    put_string(&r, reason, strlen(reason));
    reply_send(s, &r);  /* a client that is gone misses nothing */
}

/* ---- logging ------------------------------------------------------------ */

/* s->action = "put 'name'": the command and, when name is not NULL, the
 * name quoted for a log line. Control characters, quotes and backslashes
 * are written \xHH, so a hostile name cannot forge or break a line. */
static void set_action(session *s, const char *cmd, const char *name,
                       size_t len)
{
    size_t i, at;

    /* Room for the longest case: 4 bytes for each of 255 name bytes. */
    assert(len < UPLOAD_FILENAME_SIZE);
    at = (size_t)snprintf(s->action, sizeof s->action, "%s", cmd);
    if (!name)
        return;
    s->action[at++] = ' ';
    s->action[at++] = '\'';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c < 0x20 || c == 0x7F || c == '\'' || c == '\\')
            at += (size_t)snprintf(s->action + at, sizeof s->action - at,
                                   "\\x%02x", c);
        else
            s->action[at++] = (char)c;
    }
    snprintf(s->action + at, sizeof s->action - at, "'");
}

static void log_ok(session *s, const char *fmt, ...) SS__PRINTF(2, 3);
static void log_ok(session *s, const char *fmt, ...)
{
    char what[128], line[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "%s: %s %s", s->who, s->action, what);
    s->cfg->log_ok((void *)s->cfg, line);
}

/* Log "<client>: <action> <outcome>: <reason>" and, when the client is
 * still there to read it, send the reason as an error reply. Returns
 * `then`, what the connection does next. */
static int complain(session *s, int then, bool reply_too, const char *outcome,
                    const char *fmt, va_list ap)
{
    char reason[256], line[2048];

    vsnprintf(reason, sizeof reason, fmt, ap);
    snprintf(line, sizeof line, "%s: %s %s: %s", s->who, s->action, outcome,
             reason);
    s->cfg->log((void *)s->cfg, line);
    if (reply_too)
        send_error(s, reason);
    return then;
}

/* The client asked for something it may not have. */
static int refuse(session *s, int then, const char *fmt, ...) SS__PRINTF(3, 4);
static int refuse(session *s, int then, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = complain(s, then, true, "refused", fmt, ap);
    va_end(ap);
    return rc;
}

/* The command could not be carried out; reply_too is false when the
 * connection itself failed and nobody would read a reply. */
static int failed(session *s, int then, bool reply_too, const char *fmt, ...)
    SS__PRINTF(4, 5);
static int failed(session *s, int then, bool reply_too, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = complain(s, then, reply_too, "failed", fmt, ap);
    va_end(ap);
    return rc;
}

/* Why a read from the client came up short: n is what ss_read returned. */
static const char *read_problem(const session *s, ssize_t n, char *buf,
                                size_t size)
{
    if (n == -ETIMEDOUT)
        snprintf(buf, size, "nothing received for %g s", s->cfg->timeout);
    else if (n == -ESHUTDOWN)
        snprintf(buf, size, "the server is shutting down");
    else if (n < 0)
        snprintf(buf, size, "%s", ss_strerror((int)n));
    else
        snprintf(buf, size, "the client closed the connection");
    return buf;
}

/* ---- file work ---------------------------------------------------------- */

/*
 * Which file calls go through example_run_blocking (another thread in
 * async mode, a plain call otherwise), decided call by call:
 * - creating, renaming, removing and closing the temporary change the
 *   directory: they may wait for the file system's journal, or for the
 *   server of a network file system.
 * - each 64 KiB write of an upload: quick while the page cache takes it,
 *   but a large upload fills the cache, and then the kernel makes the
 *   writer wait for the disk (dirty page throttling, up to 200 ms a call).
 * - a listing reads a directory of any size and stats every entry.
 * - a get of more than one chunk reads chunks that may have to come from
 *   the disk; a file of one chunk is one short read, done in place.
 * Looking a name up (fstatat, openat to read) finds it in the kernel's
 * caches of a small root, as a web server's open() does: done in place.
 */

typedef struct chunk_io {       /* one read or write of file data */
    int    fd;
    char  *buf;
    size_t len;
} chunk_io;

/* 0 or -errno. */
static int write_chunk(void *arg)
{
    const chunk_io *io = arg;

    return example_write_all(io->fd, io->buf, io->len);
}

/* Bytes read (0 at the end of the file) or -errno; len <= CHUNK_SIZE. */
static int read_chunk(void *arg)
{
    const chunk_io *io = arg;
    ssize_t n;

    while ((n = read(io->fd, io->buf, io->len)) < 0 && errno == EINTR)
        ;
    return n < 0 ? -errno : (int)n;
}

/* ---- file data ---------------------------------------------------------- */

typedef struct transfer {
    long long got;              /* bytes received */
    ssize_t   read_rc;          /* the failed ss_read, or 0 = EOF */
    int       write_err;        /* the first failed write, -errno */
} transfer;

/* Receive `size` bytes of file data and write them to fd, or drop them
 * when fd is -1. After a failed write the rest is still read, so the
 * connection stays in step with the client. Returns true when every byte
 * arrived. */
static bool receive_data(session *s, int fd, long long size, transfer *t)
{
    *t = (transfer){0};
    while (t->got < size) {
        size_t want = size - t->got < CHUNK_SIZE ? (size_t)(size - t->got)
                                                 : CHUNK_SIZE;
        ssize_t n = ss_read(s->request, s->chunk, want);

        if (n < (ssize_t)want) {
            t->read_rc = n < 0 ? n : 0;
            t->got += n > 0 ? n : 0;
            return false;
        }
        if (fd >= 0 && t->write_err == 0) {
            chunk_io io = {fd, s->chunk, want};

            t->write_err = example_run_blocking(s->request, write_chunk, &io);
        }
        t->got += n;
    }
    return true;
}

/* The data of a refused put: read and dropped. */
static int skip_data(session *s)
{
    char why[96];
    transfer t;

    if (receive_data(s, -1, s->h.filesize, &t))
        return NEXT;
    return failed(s, CLOSE, false, "%s after %lld of %lld bytes",
                  read_problem(s, t.read_rc, why, sizeof why), t.got,
                  s->h.filesize);
}

/* ---- names -------------------------------------------------------------- */

static bool is_temp_name(const char *name)
{
    return strncmp(name, TEMP_PREFIX, strlen(TEMP_PREFIX)) == 0;
}

/* Why the header's filename may not be used, or NULL. After this the name
 * is one path component without a NUL: a C string relative to root_fd. */
static const char *name_problem(const session *s)
{
    const char *why;

    if (!(s->h.present & UPLOAD_HAVE_FILENAME))
        return "no filename";
    if (upload_filename_ok(s->h.filename, s->h.filename_len, &why) < 0)
        return why;
    if (is_temp_name(s->h.filename))
        return "filename starts with " TEMP_PREFIX ", kept for temporaries";
    return NULL;
}

/* What would stop a put to the name: a directory or a symbolic link in its
 * place is refused rather than replaced. */
static const char *destination_problem(const session *s, char *buf,
                                       size_t size)
{
    const char *why = name_problem(s);
    struct stat st;

    if (why)
        return why;
    if (fstatat(s->cfg->root_fd, s->h.filename, &st,
                AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return NULL;
        snprintf(buf, size, "%s", ss_strerror(errno));
        return buf;
    }
    if (S_ISLNK(st.st_mode))
        return "filename is a symbolic link";
    if (S_ISDIR(st.st_mode))
        return "filename is a directory";
    if (!S_ISREG(st.st_mode))
        return "filename is not a regular file";
    return NULL;
}

typedef struct temp_file {      /* the temporary a put writes */
    int         root_fd;
    int         fd;             /* open for writing, or -1 */
    char        name[64];       /* ".upload-PID-N" */
    const char *target;         /* the real name it is renamed to */
    const char *failed;         /* what failed: "write", "rename into
                                   place" */
} temp_file;

/* A new empty file in the root under a name no one else uses:
 * ".upload-PID-N". O_EXCL | O_NOFOLLOW: never an existing file, never
 * through a symbolic link someone planted. Sets t->fd and t->name;
 * returns 0 or -errno. */
static int temp_create(void *arg)
{
    static atomic_ulong counter;
    temp_file *t = arg;
    int attempt;

    for (attempt = 0; attempt < 100; attempt++) {
        snprintf(t->name, sizeof t->name, TEMP_PREFIX "%ld-%lu",
                 (long)getpid(), atomic_fetch_add(&counter, 1));
        t->fd = openat(t->root_fd, t->name, O_WRONLY | O_CREAT | O_EXCL |
                       O_NOFOLLOW | O_CLOEXEC, 0644);
        if (t->fd >= 0 || errno != EEXIST)
            return t->fd >= 0 ? 0 : -errno;
    }
    return -EEXIST;
}

/* Close the temporary and remove it. Returns 0. */
static int temp_discard(void *arg)
{
    temp_file *t = arg;

    close(t->fd);
    t->fd = -1;
    unlinkat(t->root_fd, t->name, 0);
    return 0;
}

/* The temporary is complete: close it and rename it over the real name;
 * on failure remove it. Returns 0 or -errno, with t->failed set. */
static int temp_commit(void *arg)
{
    temp_file *t = arg;
    int err = 0;

    if (close(t->fd) < 0) {
        err = -errno;
        t->failed = "write";
    } else if (renameat(t->root_fd, t->name, t->root_fd, t->target) < 0) {
        err = -errno;
        t->failed = "rename into place";
    }
    t->fd = -1;
    if (err < 0)
        unlinkat(t->root_fd, t->name, 0);
    return err;
}

/* ---- the commands ------------------------------------------------------- */

static int commit(session *s, temp_file *t)
{
    int err = example_run_blocking(s->request, temp_commit, t);

    if (err < 0)
        return failed(s, NEXT, true, "cannot %s: %s", t->failed,
                      ss_strerror(err));
    log_ok(s, "ok (%lld bytes)", s->h.filesize);
    send_ok_size(s, s->h.filesize);  /* stored either way */
    return NEXT;
}

static int store(session *s)
{
    temp_file t = {.root_fd = s->cfg->root_fd, .fd = -1,
                   .target = s->h.filename};
    int err = example_run_blocking(s->request, temp_create, &t);
    transfer tr;
    char why[96];

    if (err < 0) {
        failed(s, NEXT, true, "cannot create a temporary file: %s",
               ss_strerror(err));
        return skip_data(s);
    }
    if (!receive_data(s, t.fd, s->h.filesize, &tr)) {
        example_run_blocking(s->request, temp_discard, &t);
        return failed(s, CLOSE, false, "%s after %lld of %lld bytes",
                      read_problem(s, tr.read_rc, why, sizeof why), tr.got,
                      s->h.filesize);
    }
    if (tr.write_err < 0) {
        example_run_blocking(s->request, temp_discard, &t);
        return failed(s, NEXT, true, "cannot write: %s",
                      ss_strerror(tr.write_err));
    }
    return commit(s, &t);
}

static int cmd_put(session *s)
{
    const char *why;
    char buf[96];

    set_action(s, "put", s->h.filename, s->h.filename_len);
    if (s->h.filesize < 0)
        return refuse(s, CLOSE, "no filesize");
    if (s->h.filesize > s->cfg->max_size)
        return refuse(s, CLOSE, "filesize %lld over the limit of %lld bytes",
                      s->h.filesize, s->cfg->max_size);
    if ((why = destination_problem(s, buf, sizeof buf)) != NULL) {
        refuse(s, NEXT, "%s", why);
        return skip_data(s);
    }
    return store(s);
}

/* Send the first `size` bytes of fd. A file that shrank under us breaks
 * the promised length: the connection cannot go on. */
static int send_data(session *s, int fd, long long size)
{
    bool in_place = size <= CHUNK_SIZE;     /* see "file work" */
    long long sent = 0;

    while (sent < size) {
        size_t want = size - sent < CHUNK_SIZE ? (size_t)(size - sent)
                                               : CHUNK_SIZE;
        chunk_io io = {fd, s->chunk, want};
        int n = in_place ? read_chunk(&io)
                         : example_run_blocking(s->request, read_chunk, &io);
        int err;

        if (n <= 0)
            return failed(s, CLOSE, false, "reading the file: %s",
                          n < 0 ? ss_strerror(n) : "it shrank while sent");
        if ((err = ss_sendall(s->request, s->chunk, (size_t)n)) < 0)
            return failed(s, CLOSE, false, "sending: %s", ss_strerror(err));
        sent += n;
    }
    log_ok(s, "ok (%lld bytes)", size);
    return NEXT;
}

static int cmd_get(session *s)
{
    const char *why;
    struct stat st;
    int fd, rc, err;

    set_action(s, "get", s->h.filename, s->h.filename_len);
    if ((why = name_problem(s)) != NULL)
        return refuse(s, NEXT, "%s", why);
    /* O_NOFOLLOW: a symbolic link is refused (ELOOP); O_NONBLOCK: opening
     * a FIFO does not wait for a writer before fstat refuses it. */
    fd = openat(s->cfg->root_fd, s->h.filename,
                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return refuse(s, NEXT, "%s", errno == ENOENT ? "no such file"
                      : errno == ELOOP ? "filename is a symbolic link"
                      : ss_strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return refuse(s, NEXT, "not a regular file");
    }
    if ((err = send_ok_size(s, st.st_size)) < 0)
        rc = failed(s, CLOSE, false, "sending: %s", ss_strerror(err));
    else
        rc = send_data(s, fd, st.st_size);
    close(fd);
    return rc;
}

/* Whether a directory entry is listed: a regular file (not followed
 * through a link) whose name get would accept. */
static bool listable(DIR *dir, const struct dirent *e, struct stat *st)
{
    return upload_filename_ok(e->d_name, strlen(e->d_name), NULL) == 0 &&
           !is_temp_name(e->d_name) &&
           fstatat(dirfd(dir), e->d_name, st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(st->st_mode);
}

typedef struct listing {
    int    root_fd;
    reply *r;                   /* the files are appended to it */
} listing;

/* Append the root's files to l->r; returns the count, or -errno. A fresh
 * descriptor per listing: concurrent listings must not share a position. */
static int list_files(void *arg)
{
    const listing *l = arg;
    int fd = openat(l->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    reply *r = l->r;
    struct dirent *e;
    struct stat st;
    int count = 0, err = 0;

    if (!dir) {
        err = -errno;
        if (fd >= 0)
            close(fd);
        return err;
    }
    for (errno = 0; (e = readdir(dir)) != NULL; errno = 0) {
        if (!listable(dir, e, &st))
            continue;
        put_text(r, count++ ? ", {\"name\": " : "{\"name\": ");
        put_string(r, e->d_name, strlen(e->d_name));
        put_text(r, ", \"size\": ");
        put_number(r, (long long)st.st_size);
        put_text(r, "}");
        if (r->len > LIST_REPLY_MAX)
            break;
    }
    err = e ? -EFBIG : -errno;  /* readdir sets errno only on failure */
    closedir(dir);
    return err < 0 ? err : count;
}

static int cmd_list(session *s)
{
    reply r;
    listing l = {s->cfg->root_fd, &r};
    int count, err;

    set_action(s, "list", NULL, 0);
    reply_begin(&r, "ok");
    put_text(&r, ", \"files\": [");
    count = example_run_blocking(s->request, list_files, &l);
    put_text(&r, "]");
    if (count >= 0 && r.failed)
        count = -ENOMEM;
    if (count < 0) {
        free(r.buf);
        return failed(s, NEXT, true, "%s", count == -EFBIG
                      ? "too many files to list" : ss_strerror(count));
    }
    if ((err = reply_send(s, &r)) < 0)
        return failed(s, CLOSE, false, "sending: %s", ss_strerror(err));
    log_ok(s, "ok (%d file%s)", count, count == 1 ? "" : "s");
    return NEXT;
}

static const struct command {
    const char *name;
    int (*run)(session *s);
    bool answer_now;    /* else the reply may wait for the client to pause */
} commands[] = {
    {"put", cmd_put, false},
    {"get", cmd_get, true},
    {"list", cmd_list, true},
};

/* Send the buffered replies now, or once the client pauses. */
static void answer(session *s, bool now)
{
    if (now || ss_wait_readable(s->request, REPLY_GRACE) == 0)
        ss_flush(s->request);
}

static int dispatch(session *s)
{
    size_t i;
    int then;

    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(s->h.cmd, commands[i].name) == 0) {
            if ((then = commands[i].run(s)) == NEXT)
                answer(s, commands[i].answer_now);
            return then;    /* CLOSE: flushed after the handler returns */
        }
    if (!(s->h.present & UPLOAD_HAVE_CMD))
        return refuse(s, CLOSE, "no cmd");
    /* At most 15 bytes and no NUL, but anything else: quote it. */
    set_action(s, "command", s->h.cmd, strlen(s->h.cmd));
    return refuse(s, CLOSE, "unknown command");
}

/* ---- the connection ----------------------------------------------------- */

/* Read one header into s->h. Returns NEXT with a command to run, or CLOSE
 * (the client finished, or something was wrong and has been reported). */
static int read_header(session *s)
{
    char why[96];
    const char *problem;
    int32_t len;
    ssize_t n;

    set_action(s, "header", NULL, 0);
    n = ss_read(s->request, &len, sizeof len);
    if (n == 0 || n == -ECONNRESET || n == -ESHUTDOWN)
        return CLOSE;   /* between commands: the client or server is done */
    if (n == -ETIMEDOUT) {
        char line[SS_ADDRESS_STRLEN + 64];

        snprintf(line, sizeof line, "%s: closed: no command for %g s",
                 s->who, s->cfg->timeout);
        s->cfg->log((void *)s->cfg, line);
        return CLOSE;
    }
    if (n < (ssize_t)sizeof len)
        return failed(s, CLOSE, false, "reading the length: %s",
                      read_problem(s, n < 0 ? n : 0, why, sizeof why));
    if (len <= 0 || len > HEADER_MAX)
        return refuse(s, CLOSE, "header length %" PRId32 " not in 1..%d",
                      len, HEADER_MAX);
    n = ss_read(s->request, s->header, (size_t)len);
    if (n < len)
        return failed(s, CLOSE, false, "reading %" PRId32 " bytes: %s", len,
                      read_problem(s, n < 0 ? n : 0, why, sizeof why));
    if (upload_header_parse(s->header, (size_t)len, &s->h, &problem) < 0)
        return refuse(s, CLOSE, "invalid header: %s at byte %zu", problem,
                      s->h.error_offset);
    return NEXT;
}

static int handle(ss_request *request, const ss_address *client,
                  ss_server *server)
{
    session *s = ss_request_state(request);

    s->request = request;
    s->cfg = ss_server_data(server);
    ss_address_format(client, s->who, sizeof s->who);
    while (read_header(s) == NEXT && dispatch(s) == NEXT)
        ;
    return 0;   /* every problem has been logged already */
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    example_args args = {.address = "127.0.0.1:8080", .root = ".",
                         .max_size = DEFAULT_MAX_SIZE,
                         .timeout = DEFAULT_TIMEOUT};
    ss_handler handler = {.handle = handle, .state_size = sizeof(session),
                          .wbufsize = REPLY_BUFFER};
    ss_server_options options;
    ss_server *server;
    config cfg;
    int rc;

    example_parse(argc, argv, &args,
                  "model root max-size timeout proxy max-connections", USAGE);
    cfg.root_fd = open(args.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cfg.root_fd < 0) {
        fprintf(stderr, "upload_server: --root %s: %s\n", args.root,
                strerror(errno));
        return 1;
    }
    cfg.max_size = args.max_size;
    cfg.timeout = args.timeout;
    cfg.log = example_log_stderr;
    cfg.log_ok = example_log_stdout;
    handler.timeout = args.timeout;
    options = example_server_options(&args, &cfg);
    options.log = cfg.log;
    if (!(server = ss_tcp_server_new(args.address, &handler, &options))) {
        close(cfg.root_fd);
        return example_fail("upload_server");
    }
    if ((server = example_apply_model(server, &args)) == NULL) {
        close(cfg.root_fd);
        return 1;
    }
    rc = example_serve(server);
    close(cfg.root_fd);
    return rc;
}
