/*
 * The static-file HTTP server example (examples/http_server.c), run as a
 * separate process on port 0 and driven the way users drive it: curl for
 * ordinary requests, raw sockets for bytes no well-behaved client sends,
 * wrk for load. Each test starts its own server and stops it with a signal
 * (exit status 0, no sanitizer report); the per-test teardown kills one a
 * failed test left behind. Every test runs twice, with the server's
 * default model (threading) and then in async mode
 * (example_run_per_model); the tests of each model run once.
 *
 * The server's root is a fresh temporary directory, with a secret file
 * beside it that no request may ever read:
 *
 *   BASE/secret.txt                 "TOP-SECRET..." (outside the root)
 *   BASE/root/index.html, hello.txt, style.css, app.js, data.json,
 *            pixel.png, anim.gif, logo.svg, favicon.ico, photo.JPG,
 *            blob.xyz               one file per content type
 *   BASE/root/sub/index.html        a directory with an index
 *   BASE/root/empty/                a directory without one
 *   BASE/root/big.bin               64 MiB, sparse: more than the socket
 *                                   buffers hold, for the mid-reply test
 *   BASE/root/out -> ../secret.txt  symbolic links leading out of the root
 *   BASE/root/abs -> BASE/secret.txt
 *   BASE/root/up -> ..
 *   BASE/root/in -> hello.txt       a symbolic link staying inside
 *   BASE/root/fifo                  not a regular file
 */
#include "example_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

#define SECRET      "TOP-SECRET-beside-the-root"
#define HELLO       "hello, world\n"
#define MIB         (1024 * 1024)

static char *base_dir;
static char root_dir[256];
static example srv;
static bool srv_running;

/* ---- the file tree ------------------------------------------------------- */

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[512];
    int fd;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    expect_true(fd >= 0, "cannot create %s", path);
    expect_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text),
                "cannot write %s", path);
    close(fd);
}

static void make_link(const char *target, const char *name)
{
    char path[512];

    snprintf(path, sizeof path, "%s/%s", root_dir, name);
    expect_true(symlink(target, path) == 0, "cannot link %s", path);
}

static void make_dir(const char *name)
{
    char path[512];

    snprintf(path, sizeof path, "%s/%s", root_dir, name);
    expect_true(mkdir(path, 0755) == 0, "cannot create %s", path);
}

static int make_tree(void **state)
{
    static const char *const files[][2] = {
        {"index.html", "<h1>root index</h1>\n"}, {"hello.txt", HELLO},
        {"style.css", "h1 {}\n"},   {"app.js", "let x;\n"},
        {"data.json", "{}\n"},      {"pixel.png", "\x89PNG"},
        {"anim.gif", "GIF89a"},     {"logo.svg", "<svg/>\n"},
        {"favicon.ico", "ico"},     {"photo.JPG", "\xff\xd8\xff"},
        {"blob.xyz", "blob"},       {"sub/index.html", "<h1>sub</h1>\n"},
    };
    char path[512];
    size_t i;
    int fd;

    (void)state;
    base_dir = make_temp_dir("http");
    snprintf(root_dir, sizeof root_dir, "%s/root", base_dir);
    expect_true(mkdir(root_dir, 0755) == 0, "cannot create %s", root_dir);
    write_text(base_dir, "secret.txt", SECRET "\n");
    make_dir("sub");
    make_dir("empty");
    for (i = 0; i < sizeof files / sizeof files[0]; i++)
        write_text(root_dir, files[i][0], files[i][1]);
    snprintf(path, sizeof path, "%s/big.bin", root_dir);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    expect_true(fd >= 0 && ftruncate(fd, 64 * MIB) == 0,
                "cannot make %s", path);
    close(fd);
    make_link("../secret.txt", "out");
    snprintf(path, sizeof path, "%s/secret.txt", base_dir);
    make_link(path, "abs");
    make_link("..", "up");
    make_link("hello.txt", "in");
    snprintf(path, sizeof path, "%s/fifo", root_dir);
    expect_true(mkfifo(path, 0644) == 0, "cannot make %s", path);
    return 0;
}

static int remove_tree_fixture(void **state)
{
    (void)state;
    remove_tree(base_dir);
    free(base_dir);
    return 0;
}

/* ---- the server ---------------------------------------------------------- */

/* "threading", the server's default model, stands for the model of this
 * pass (example_run_per_model): a test that asks for it runs in async mode
 * too. The tests of the other models name theirs. */
static void start_server(const char *model, const char *timeout)
{
    const char *args[] = {"--root", root_dir, "--model",
                          example_model && strcmp(model, "threading") == 0
                              ? example_model : model,
                          "--timeout", timeout, "127.0.0.1:0", NULL};

    example_start(&srv, "http_server", args);
    srv_running = true;
}

static void start(void)
{
    start_server("threading", "5");
}

/* Stop with `sig`: exit status 0 (example_stop checks) and no sanitizer
 * report in the log. */
static void stop_with(int sig)
{
    char *log;

    srv_running = false;
    log = example_stop(&srv, sig);
    expect_true(!strstr(log, "Sanitizer") && !strstr(log, "runtime error"),
                "a sanitizer report in the server's log:\n%s", log);
    free(log);
}

static void stop(void)
{
    stop_with(SIGTERM);
}

/* After a failed test: do not leave its server running. */
static int kill_leftover_server(void **state)
{
    (void)state;
    if (srv_running) {
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
        unlink(srv.log_path);
        srv_running = false;
    }
    return 0;
}

/* Wait (WAIT_LIMIT at most) for the server's log to contain `needle`. */
static void expect_log(const char *needle)
{
    double end = now() + WAIT_LIMIT;
    char *log;

    for (;;) {
        log = example_log(&srv);
        if (strstr(log, needle) || now() > end)
            break;
        free(log);
        sleep_ms(10);
    }
    expect_true(strstr(log, needle) != NULL,
                "the server's log to contain '%s'; it is:\n%s", needle, log);
    free(log);
}

/* ---- responses ----------------------------------------------------------- */

typedef struct response {
    int status;
    const char *head;       /* status line and fields, with the empty line */
    size_t head_len;
    const char *body;
    size_t body_len;
} response;

/* The response at data[0 .. len) (NUL-terminated). head_only: an answer to
 * HEAD, whose Content-Length announces no body. Returns the bytes it takes,
 * or 0 when there is no complete response. */
static size_t parse_response(const char *data, size_t len, bool head_only,
                             response *r)
{
    const char *end = memmem(data, len, "\r\n\r\n", 4), *cl;
    size_t length = 0;

    memset(r, 0, sizeof *r);
    r->status = -1;
    if (!end || sscanf(data, "HTTP/1.1 %d ", &r->status) != 1)
        return 0;
    r->head = data;
    r->head_len = (size_t)(end + 4 - data);
    cl = memmem(data, r->head_len, "\r\nContent-Length: ", 18);
    if (cl && !head_only)
        length = (size_t)strtoull(cl + 18, NULL, 10);
    if (len - r->head_len < length)
        return 0;
    r->body = end + 4;
    r->body_len = length;
    return r->head_len + length;
}

/* Whether the head has the field line `line` ("Content-Length: 6"). */
static bool has_field(const response *r, const char *line)
{
    char want[512];

    snprintf(want, sizeof want, "\r\n%s\r\n", line);
    return memmem(r->head, r->head_len, want, strlen(want)) != NULL;
}

static bool body_is(const response *r, const char *text)
{
    return r->body_len == strlen(text) &&
           memcmp(r->body, text, r->body_len) == 0;
}

/* Nothing from outside the root: neither the secret nor /etc/passwd. */
static void expect_nothing_outside(const char *data, size_t len)
{
    expect_true(!memmem(data, len, SECRET, strlen(SECRET)) &&
                !memmem(data, len, "root:", 5),
                "no file from outside the root; the server sent:\n%.*s",
                (int)len, data);
}

/* ---- clients ------------------------------------------------------------- */

typedef struct fetched {
    int rc;                 /* curl's exit status */
    char *out, *err;        /* its stdout (heads and bodies: -i), stderr */
    size_t out_len;
    response r;             /* the first response in out */
} fetched;

static void fetched_free(fetched *f)
{
    free(f->out);
    free(f->err);
}

static void need(const char *program)
{
    if (!have_program(program)) {
        print_message("%s is not installed: skipping\n", program);
        skip();
    }
}

static char *url(const char *path)
{
    size_t size = strlen(srv.address) + strlen(path) + 16;
    char *u = malloc(size);

    assert_non_null(u);
    snprintf(u, size, "http://%s%s", srv.address, path);
    return u;
}

/* curl -sS -i with `opts` (NULL-terminated) and the URL of each path in
 * `paths` (NULL-terminated); --max-time is a hang guard, below the
 * WAIT_LIMIT that run_command gives curl. */
static void curl(fetched *f, const char *const *opts, const char *const *paths,
                 bool head_only)
{
    const char *argv[32] = {"curl", "-sS", "-i", "--max-time", "20"};
    char *urls[8];
    int n = 5, u = 0;

    while (opts && *opts)
        argv[n++] = *opts++;
    while (*paths && u < 8)
        argv[n++] = urls[u++] = url(*paths++);
    argv[n] = NULL;
    memset(f, 0, sizeof *f);
    f->rc = run_command(argv, NULL, 0, &f->out, &f->out_len, &f->err,
                        WAIT_LIMIT);
    while (u > 0)
        free(urls[--u]);
    parse_response(f->out, f->out_len, head_only, &f->r);
}

/* One GET with curl. */
static void get(fetched *f, const char *path)
{
    const char *paths[] = {path, NULL};

    need("curl");
    curl(f, NULL, paths, false);
}

/* How the last exchange ended: true when the server closed the
 * connection (EOF, or a reset when it left bytes unread), false when the
 * client gave up (its receive timeout, WAIT_LIMIT) or failed. */
static bool closed_by_server;

/* Send `len` bytes on a new connection and read until the server closes
 * it (WAIT_LIMIT at most: the client's receive timeout; closed_by_server
 * says which). Returns what arrived, NUL-terminated, to be freed; *got
 * its length. */
static char *exchange(const char *req, size_t len, size_t *got)
{
    int fd = connect_text(srv.address);
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    ssize_t r;

    expect_true(fd >= 0, "a connection to %s", srv.address);
    assert_non_null(buf);
    /* A server that answers before reading everything may make the rest
     * of the send fail: what it answered is still to be read. */
    (void)send_all_fd(fd, req, len);
    while ((r = recv(fd, buf + n, cap - n, 0)) > 0) {
        n += (size_t)r;
        if (n == cap) {
            buf = realloc(buf, (cap *= 2) + 1);
            assert_non_null(buf);
        }
    }
    closed_by_server = r == 0 || errno == ECONNRESET;
    close(fd);
    buf[n] = '\0';
    *got = n;
    return buf;
}

/* One raw request; expect a single response with `status`, then the
 * connection closed. Returns the raw bytes (to be freed). */
static char *raw_expect(const char *req, size_t len, int status,
                        response *r)
{
    size_t got;
    char *data = exchange(req, len, &got);

    expect_true(parse_response(data, got, false, r) == got &&
                r->status == status && closed_by_server,
                "one response with status %d, then the connection closed "
                "by the server%s; got %zu bytes:\n%.300s", status,
                closed_by_server ? "" : " (the client gave up waiting)", got,
                data);
    return data;
}

/* The server still answers a good request. */
static void expect_still_serving(void)
{
    static const char req[] = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n"
                              "Connection: close\r\n\r\n";
    response r;
    char *data = raw_expect(req, sizeof req - 1, 200, &r);

    expect_true(body_is(&r, HELLO), "hello.txt's content, got:\n%s", data);
    free(data);
}

/* ---- GET and HEAD -------------------------------------------------------- */

static void test_get_sends_the_file_with_length_and_type(void **state)
{
    fetched f;

    (void)state;
    start();
    get(&f, "/hello.txt");
    expect_true(f.rc == 0 && f.r.status == 200 && body_is(&f.r, HELLO),
                "200 with hello.txt's content; curl said %d:\n%s%s",
                f.rc, f.out, f.err);
    expect_true(has_field(&f.r, "Content-Length: 13") &&
                has_field(&f.r, "Content-Type: text/plain") &&
                has_field(&f.r, "Server: libsockserver-example") &&
                memmem(f.r.head, f.r.head_len, "\r\nDate: ", 8),
                "Content-Length, Content-Type, Server and Date; got:\n%.*s",
                (int)f.r.head_len, f.r.head);
    fetched_free(&f);
    expect_log("\"GET /hello.txt HTTP/1.1\" 200 13\n");
    stop();
}

static void test_head_sends_the_head_without_a_body(void **state)
{
    static const char req[] = "HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n"
                              "Connection: close\r\n\r\n";
    size_t got;
    char *data;
    response r;

    (void)state;
    start();
    data = exchange(req, sizeof req - 1, &got);
    expect_true(parse_response(data, got, true, &r) == got &&
                r.status == 200 && has_field(&r, "Content-Length: 13") &&
                has_field(&r, "Content-Type: text/plain"),
                "200 with GET's Content-Length and type and no body; "
                "got:\n%s", data);
    free(data);
    expect_log("\"HEAD /hello.txt HTTP/1.1\" 200 0\n");
    stop();
}

static void test_content_type_follows_the_extension(void **state)
{
    static const char *const types[][2] = {
        {"/index.html", "text/html"},  {"/style.css", "text/css"},
        {"/app.js", "text/javascript"}, {"/data.json", "application/json"},
        {"/pixel.png", "image/png"},   {"/photo.JPG", "image/jpeg"},
        {"/anim.gif", "image/gif"},    {"/logo.svg", "image/svg+xml"},
        {"/favicon.ico", "image/vnd.microsoft.icon"},
        {"/blob.xyz", "application/octet-stream"},
    };
    char line[128];
    fetched f;
    size_t i;

    (void)state;
    start();
    for (i = 0; i < sizeof types / sizeof types[0]; i++) {
        get(&f, types[i][0]);
        snprintf(line, sizeof line, "Content-Type: %s", types[i][1]);
        expect_true(f.r.status == 200 && has_field(&f.r, line),
                    "%s served with '%s'; got:\n%s", types[i][0], line,
                    f.out);
        fetched_free(&f);
    }
    stop();
}

/* ---- directories --------------------------------------------------------- */

static void test_directory_serves_its_index_html(void **state)
{
    fetched f;

    (void)state;
    start();
    get(&f, "/");
    expect_true(f.r.status == 200 && body_is(&f.r, "<h1>root index</h1>\n") &&
                has_field(&f.r, "Content-Type: text/html"),
                "/ served as /index.html; got:\n%s", f.out);
    fetched_free(&f);
    get(&f, "/sub/");
    expect_true(f.r.status == 200 && body_is(&f.r, "<h1>sub</h1>\n"),
                "/sub/ served as /sub/index.html; got:\n%s", f.out);
    fetched_free(&f);
    stop();
}

static void test_directory_without_slash_redirects(void **state)
{
    fetched f;

    (void)state;
    start();
    get(&f, "/sub?x=1");
    expect_true(f.r.status == 301 && has_field(&f.r, "Location: /sub/"),
                "301 to /sub/; got:\n%s", f.out);
    fetched_free(&f);
    stop();
}

static void test_directory_without_index_is_404(void **state)
{
    fetched f;

    (void)state;
    start();
    get(&f, "/empty/");
    expect_true(f.r.status == 404, "404 for a directory without "
                "index.html; got:\n%s", f.out);
    fetched_free(&f);
    expect_log("\"GET /empty/ HTTP/1.1\" 404");
    stop();
}

/* ---- keep-alive ---------------------------------------------------------- */

/* The port the server logged for the request line `request`. */
static int logged_port(const char *request)
{
    char *log = example_log(&srv), *line = strstr(log, request), *p;
    int port = -1;

    if (line) {
        *line = '\0';
        p = strrchr(log, '\n');
        p = p ? p + 1 : log;
        if ((p = strchr(p, ':')))
            port = atoi(p + 1);
    }
    free(log);
    return port;
}

static void test_curl_reuses_the_connection_for_two_urls(void **state)
{
    const char *opts[] = {"-v", NULL}, *paths[] = {"/hello.txt", "/sub/",
                                                   NULL};
    response second;
    fetched f;
    size_t first;

    (void)state;
    need("curl");
    start();
    curl(&f, opts, paths, false);
    first = parse_response(f.out, f.out_len, false, &f.r);
    expect_true(f.rc == 0 && first > 0 && body_is(&f.r, HELLO) &&
                parse_response(f.out + first, f.out_len - first, false,
                               &second) > 0 &&
                body_is(&second, "<h1>sub</h1>\n"),
                "both files, in order; got:\n%s", f.out);
    expect_true(strstr(f.err, "Re-using existing connection") != NULL,
                "curl to reuse its connection; its log:\n%s", f.err);
    fetched_free(&f);
    expect_log("\"GET /sub/ HTTP/1.1\" 200");
    expect_true(logged_port("\"GET /hello.txt") ==
                logged_port("\"GET /sub/"),
                "both requests logged from the same client port");
    stop();
}

static void test_pipelined_requests_are_answered_in_order(void **state)
{
    static const char req[] =
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        "HEAD /sub/ HTTP/1.1\r\nHost: t\r\n\r\n"
        "GET /sub/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    response a, b, c;
    size_t got, n1, n2, n3;
    char *data;

    (void)state;
    start();
    data = exchange(req, sizeof req - 1, &got);   /* one send, three heads */
    n1 = parse_response(data, got, false, &a);
    n2 = n1 ? parse_response(data + n1, got - n1, true, &b) : 0;
    n3 = n2 ? parse_response(data + n1 + n2, got - n1 - n2, false, &c) : 0;
    expect_true(n3 > 0 && n1 + n2 + n3 == got && body_is(&a, HELLO) &&
                b.status == 200 && b.body_len == 0 &&
                body_is(&c, "<h1>sub</h1>\n") &&
                has_field(&c, "Connection: close"),
                "three answers in order, the last closing; got:\n%s", data);
    free(data);
    stop();
}

static void test_head_arriving_in_pieces_is_parsed(void **state)
{
    static const char *const pieces[] = {
        "GET /hello.txt HT", "TP/1.1\r\nHo", "st: t\r\nConnection: cl",
        "ose\r", "\n\r\n"};
    char buf[1024];
    response r;
    ssize_t n;
    size_t i;
    int fd;

    (void)state;
    start();
    fd = connect_text(srv.address);
    expect_true(fd >= 0, "a connection to %s", srv.address);
    for (i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        expect_true(send_all_fd(fd, pieces[i], strlen(pieces[i])) == 0,
                    "to send piece %zu", i);
        sleep_ms(20);   /* each piece its own segment and its own read */
    }
    n = recv_exact(fd, buf, sizeof buf - 1);
    close(fd);
    expect_true(n > 0, "an answer");
    buf[n] = '\0';
    expect_true(parse_response(buf, (size_t)n, false, &r) == (size_t)n &&
                body_is(&r, HELLO), "hello.txt; got:\n%s", buf);
    stop();
}

/* Without an idle timeout (--timeout 0), only the answer itself can make
 * the server close: raw_expect checks that it did, before the client gave
 * up waiting. */
static void test_http10_request_is_answered_and_closed(void **state)
{
    static const char req[] = "GET /hello.txt HTTP/1.0\r\n\r\n";
    response r;
    char *data;

    (void)state;
    start_server("threading", "0");
    data = raw_expect(req, sizeof req - 1, 200, &r);
    expect_true(has_field(&r, "Connection: close"),
                "an HTTP/1.0 answer with Connection: close; got:\n%s", data);
    free(data);
    stop();
}

static void test_idle_keep_alive_connection_closes_after_timeout(void **state)
{
    static const char req[] = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    double start_time, took;
    response r;
    size_t got;
    char *data;

    (void)state;
    start_server("threading", "1");
    start_time = now();
    data = exchange(req, sizeof req - 1, &got);
    took = now() - start_time;
    /* closed by the server, and not before the timeout: not at once */
    expect_true(parse_response(data, got, false, &r) == got &&
                body_is(&r, HELLO) && closed_by_server && took > 0.8,
                "the answer, then the connection closed by the server after "
                "--timeout 1; %s after %.2f s with:\n%s", closed_by_server ?
                "closed" : "still open", took, data);
    free(data);
    stop();
}

/* ---- errors -------------------------------------------------------------- */

static void test_missing_file_is_404_and_keeps_the_connection(void **state)
{
    const char *opts[] = {"-v", NULL}, *paths[] = {"/nope.txt", "/hello.txt",
                                                   NULL};
    response second;
    fetched f;
    size_t first;

    (void)state;
    need("curl");
    start();
    curl(&f, opts, paths, false);
    first = parse_response(f.out, f.out_len, false, &f.r);
    expect_true(f.r.status == 404 && first > 0 &&
                parse_response(f.out + first, f.out_len - first, false,
                               &second) > 0 &&
                body_is(&second, HELLO) &&
                strstr(f.err, "Re-using existing connection"),
                "404, then hello.txt on the same connection; got:\n%s%s",
                f.out, f.err);
    fetched_free(&f);
    expect_log("\"GET /nope.txt HTTP/1.1\" 404");
    stop();
}

static void test_other_methods_get_405_with_allow(void **state)
{
    const char *del[] = {"-X", "DELETE", NULL}, *post[] = {"-d", "x=1", NULL};
    const char *paths[] = {"/hello.txt", NULL};
    fetched f;

    (void)state;
    need("curl");
    start();
    curl(&f, del, paths, false);
    expect_true(f.r.status == 405 && has_field(&f.r, "Allow: GET, HEAD"),
                "405 with Allow: GET, HEAD; got:\n%s", f.out);
    fetched_free(&f);
    curl(&f, post, paths, false);
    expect_true(f.r.status == 405 && has_field(&f.r, "Connection: close"),
                "405 closing the connection, whose body was not read; "
                "got:\n%s", f.out);
    fetched_free(&f);
    expect_log("\"POST /hello.txt HTTP/1.1\" 405");
    expect_still_serving();
    stop();
}

static void test_garbage_gets_400_and_a_close(void **state)
{
    static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03"
                                "\x03 a TLS client hello\r\n\r\n";
    response r;

    (void)state;
    start();
    free(raw_expect(hello, sizeof hello - 1, 400, &r));
    expect_log("\"-\" 400 ");
    expect_log("malformed request head");
    expect_still_serving();
    stop();
}

static void test_unsupported_version_gets_400(void **state)
{
    static const char req[] = "GET /hello.txt HTTP/2.0\r\nHost: t\r\n\r\n";
    response r;

    (void)state;
    start();
    free(raw_expect(req, sizeof req - 1, 400, &r));
    expect_log("malformed request head");
    stop();
}

static void test_missing_host_gets_400(void **state)
{
    static const char req[] = "GET /hello.txt HTTP/1.1\r\n\r\n";
    response r;

    (void)state;
    start();
    free(raw_expect(req, sizeof req - 1, 400, &r));
    expect_log("missing or repeated Host");
    stop();
}

static void test_transfer_encoding_gets_400(void **state)
{
    static const char req[] = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "0\r\n\r\n";
    response r;

    (void)state;
    start();
    free(raw_expect(req, sizeof req - 1, 400, &r));
    expect_log("bad body framing");
    stop();
}

static void test_get_with_a_body_gets_413(void **state)
{
    const char *opts[] = {"-X", "GET", "--data-binary", "a body", NULL};
    const char *paths[] = {"/hello.txt", NULL};
    fetched f;

    (void)state;
    need("curl");
    start();
    curl(&f, opts, paths, false);
    expect_true(f.r.status == 413 && has_field(&f.r, "Connection: close"),
                "413 and a close; got:\n%s", f.out);
    fetched_free(&f);
    expect_log("413");
    expect_still_serving();
    stop();
}

static void test_long_uri_gets_414(void **state)
{
    char path[10000];
    fetched f;

    (void)state;
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    start();
    get(&f, path);
    expect_true(f.r.status == 414, "414 for a 10000-byte target; got:\n%.300s",
                f.out);
    fetched_free(&f);
    expect_log("\"-\" 414 ");
    expect_still_serving();
    stop();
}

/* ---- confinement --------------------------------------------------------- */

/* curl --path-as-is each path; expect `status` and nothing from outside. */
static void expect_refused(const char *const *paths, int status)
{
    const char *opts[] = {"--path-as-is", NULL};
    const char *one[2] = {NULL, NULL};
    fetched f;

    need("curl");
    for (; *paths; paths++) {
        one[0] = *paths;
        curl(&f, opts, one, false);
        expect_true(f.r.status == status, "%d for %s; got:\n%s", status,
                    *paths, f.out);
        expect_nothing_outside(f.out, f.out_len);
        fetched_free(&f);
    }
}

static void test_dotdot_segments_get_400(void **state)
{
    const char *paths[] = {"/../../etc/passwd", "/../secret.txt",
                           "/sub/../../secret.txt", NULL};

    (void)state;
    start();
    expect_refused(paths, 400);
    expect_log("\"GET /../secret.txt HTTP/1.1\" 400");
    expect_still_serving();
    stop();
}

static void test_percent_encoded_dotdot_gets_400(void **state)
{
    const char *paths[] = {"/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e%2fsecret.txt",
                           "/sub/%2E%2E/%2E%2E/secret.txt", "/..%2Fsecret.txt",
                           NULL};

    (void)state;
    start();
    expect_refused(paths, 400);
    expect_log("\"GET /%2e%2e%2fsecret.txt HTTP/1.1\" 400");
    expect_still_serving();
    stop();
}

static void test_absolute_form_target_gets_400(void **state)
{
    static const char req[] = "GET http://x/etc/passwd HTTP/1.1\r\n"
                              "Host: x\r\n\r\n";
    response r;
    char *data;

    (void)state;
    start();
    data = raw_expect(req, sizeof req - 1, 400, &r);
    expect_nothing_outside(data, strlen(data));
    free(data);
    expect_log("\"GET http://x/etc/passwd HTTP/1.1\" 400");
    expect_still_serving();
    stop();
}

static void test_double_slash_stays_in_the_root(void **state)
{
    const char *paths[] = {"//etc/passwd", "//secret.txt", NULL};

    (void)state;
    start();
    expect_refused(paths, 404);
    expect_log("\"GET //etc/passwd HTTP/1.1\" 404");
    stop();
}

static void test_symlinks_out_of_the_root_are_404(void **state)
{
    const char *paths[] = {"/out", "/abs", "/up/secret.txt",
                           "/up/root/hello.txt", NULL};

    (void)state;
    start();
    expect_refused(paths, 404);
    expect_log("\"GET /out HTTP/1.1\" 404");
    expect_still_serving();
    stop();
}

static bool kernel_has_openat2(void)
{
#ifdef SYS_openat2
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC};
    long fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof how);

    if (fd >= 0)
        close((int)fd);
    return fd >= 0;
#else
    return false;
#endif
}

static void test_symlink_inside_the_root_is_followed(void **state)
{
    fetched f;

    (void)state;
    if (!kernel_has_openat2()) {
        print_message("no openat2: the server follows no symbolic link at "
                      "all; skipping\n");
        skip();
    }
    start();
    get(&f, "/in");
    expect_true(f.r.status == 200 && body_is(&f.r, HELLO),
                "/in -> hello.txt served; got:\n%s", f.out);
    fetched_free(&f);
    stop();
}

static void test_fifo_is_404_without_blocking(void **state)
{
    fetched f;

    (void)state;
    start();
    get(&f, "/fifo");
    expect_true(f.r.status == 404, "404 at once for a FIFO; got:\n%s%s",
                f.out, f.err);
    fetched_free(&f);
    expect_log("not a regular file");
    stop();
}

/* ---- hostile clients ----------------------------------------------------- */

/* "GET /" + n bytes of 'a' + " HTTP/1.1" ... */
static char *long_request(size_t n, bool in_header, size_t *len)
{
    char *req = malloc(n + 128);
    size_t at;

    assert_non_null(req);
    at = (size_t)sprintf(req, in_header ? "GET / HTTP/1.1\r\nHost: t\r\n"
                                          "X-Big: " : "GET /");
    memset(req + at, 'a', n);
    at += n;
    at += (size_t)sprintf(req + at, "%s", in_header ? "\r\n\r\n"
                          : " HTTP/1.1\r\nHost: t\r\n\r\n");
    *len = at;
    return req;
}

static void test_megabyte_request_line_gets_414(void **state)
{
    size_t len;
    char *req = long_request(MIB, false, &len);
    response r;

    (void)state;
    start();
    free(raw_expect(req, len, 414, &r));
    free(req);
    expect_log("\"-\" 414 ");
    expect_log("request line longer than 8192 bytes");
    expect_still_serving();
    stop();
}

static void test_megabyte_header_gets_431(void **state)
{
    size_t len;
    char *req = long_request(MIB, true, &len);
    response r;

    (void)state;
    start();
    free(raw_expect(req, len, 431, &r));
    free(req);
    expect_log("\"-\" 431 ");
    expect_log("request head longer than 8192 bytes");
    expect_still_serving();
    stop();
}

static void test_half_a_head_then_silence_gets_408_after_timeout(void **state)
{
    static const char req[] = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n";
    double start_time, took;
    char note[64];
    response r;
    char *data;

    (void)state;
    start_server("threading", "1");
    start_time = now();
    data = raw_expect(req, sizeof req - 1, 408, &r);   /* 408: timed out */
    took = now() - start_time;
    free(data);
    expect_true(took > 0.8, "closed after --timeout 1, not after %.2f s",
                took);
    snprintf(note, sizeof note, "timed out after %zu bytes of a request head",
             sizeof req - 1);
    expect_log(note);
    expect_still_serving();
    stop();
}

static void test_client_leaving_mid_reply_is_logged(void **state)
{
    static const char req[] = "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    char buf[4096];
    int fd;

    (void)state;
    start();
    fd = connect_text(srv.address);
    expect_true(fd >= 0, "a connection to %s", srv.address);
    expect_true(send_all_fd(fd, req, sizeof req - 1) == 0, "to send");
    expect_true(recv_exact(fd, buf, sizeof buf) == (ssize_t)sizeof buf,
                "the start of the 64 MiB answer");
    close(fd);  /* with unread bytes: the server's next sends fail */
    expect_log("\"GET /big.bin HTTP/1.1\" 200 ");
    expect_log("of 67108864 bytes, sending failed");
    expect_still_serving();
    stop();
}

/* ---- models, load and stopping ------------------------------------------- */

/* Two files on one kept-alive connection, then a 404. */
static void expect_model_serves(const char *model)
{
    const char *paths[] = {"/hello.txt", "/sub/", NULL};
    response second;
    fetched f;
    size_t first;

    example_models_tested_once();
    need("curl");
    start_server(model, "5");
    curl(&f, NULL, paths, false);
    first = parse_response(f.out, f.out_len, false, &f.r);
    expect_true(f.rc == 0 && body_is(&f.r, HELLO) && first > 0 &&
                parse_response(f.out + first, f.out_len - first, false,
                               &second) > 0 &&
                body_is(&second, "<h1>sub</h1>\n"),
                "--model %s: both files; got:\n%s%s", model, f.out, f.err);
    fetched_free(&f);
    get(&f, "/nope");
    expect_true(f.r.status == 404, "--model %s: 404; got:\n%s", model, f.out);
    fetched_free(&f);
    expect_log("\"GET /nope HTTP/1.1\" 404");
    stop();
}

static void test_model_sync_serves(void **state)
{
    (void)state;
    expect_model_serves("sync");
}

static void test_model_threading_serves(void **state)
{
    (void)state;
    expect_model_serves("threading");
}

static void test_model_forking_serves(void **state)
{
    (void)state;
    expect_model_serves("forking");
}

static void test_model_pool_serves(void **state)
{
    (void)state;
    expect_model_serves("pool");
}

static void test_model_prefork_serves(void **state)
{
    (void)state;
    expect_model_serves("prefork");
}

static void test_model_async_serves(void **state)
{
    (void)state;
    expect_model_serves("async");
}

static void test_wrk_gets_only_2xx_and_no_socket_errors(void **state)
{
    /* --timeout: a request wrk would count as failed, a hang guard */
    const char *argv[] = {"wrk", "-t2", "-c4", "-d1s", "--timeout", "20s",
                          NULL, NULL};
    char *out = NULL, *err = NULL, *u, *requests;
    int rc;

    (void)state;
    need("wrk");
    start();
    argv[6] = u = url("/hello.txt");
    rc = run_command(argv, NULL, 0, &out, NULL, &err, WAIT_LIMIT);
    requests = strstr(out, " requests in ");
    expect_true(rc == 0 && requests && !strstr(out, "Non-2xx") &&
                !strstr(out, "Socket errors"),
                "a wrk run with only 2xx answers and no socket errors; "
                "wrk said %d:\n%s%s", rc, out, err);
    while (requests > out && requests[-1] != '\n')
        requests--;
    expect_true(atol(requests) > 0, "wrk to complete requests:\n%s", out);
    free(u);
    free(out);
    free(err);
    stop();
}

/* Without an idle timeout (--timeout 0), only close_timeout (2 s in the
 * examples) can end the idle connection's handler: a server that waited
 * for the client would never exit, and stop_with's hang guard
 * (WAIT_LIMIT) fails the test. */
static void test_sigint_stops_the_server_with_an_idle_client(void **state)
{
    static const char req[] = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    char buf[1024];
    ssize_t n;
    int fd;

    (void)state;
    start_server("threading", "0");
    fd = connect_text(srv.address);
    expect_true(fd >= 0, "a connection to %s", srv.address);
    expect_true(send_all_fd(fd, req, sizeof req - 1) == 0, "to send");
    n = recv(fd, buf, sizeof buf, 0);
    expect_true(n > 0 && !memcmp(buf, "HTTP/1.1 200", 12), "an answer");
    expect_log("\"GET /hello.txt HTTP/1.1\" 200");
    stop_with(SIGINT);  /* the connection is still open, idle */
    close(fd);
}

/* Whether fd becomes readable within ms milliseconds. */
static bool wait_readable_ms(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, ms) > 0;
}

/* ---- deployment: --proxy and --max-connections --------------------------- */

/* The server with more options after the usual ones. */
static void start_with(const char *const *more)
{
    const char *args[16] = {"--root", root_dir, "--model",
                            example_model ? example_model : "threading",
                            "--timeout", "5"};
    size_t n = 6;

    while (*more && n < sizeof args / sizeof args[0] - 2)
        args[n++] = *more++;
    args[n++] = "127.0.0.1:0";
    args[n] = NULL;
    example_start(&srv, "http_server", args);
    srv_running = true;
}

#define GET_HELLO "GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

/* A PROXY v1 header written by hand, as HAProxy's send-proxy writes it:
 * the request is logged with the address the header carries, not the
 * TCP peer's. */
static void test_proxy_v1_header_names_the_client_in_the_log(void **state)
{
    static const char req[] = "PROXY TCP4 192.0.2.7 127.0.0.1 40001 80\r\n"
                              GET_HELLO;
    response r;
    char *data;

    (void)state;
    start_with((const char *const[]){"--proxy", NULL});
    data = raw_expect(req, sizeof req - 1, 200, &r);
    expect_true(body_is(&r, HELLO), "hello.txt's content, got:\n%s", data);
    free(data);
    expect_log("192.0.2.7:40001 \"GET /hello.txt HTTP/1.1\" 200");
    stop();
}

/* The same with a binary v2 header (send-proxy-v2), IPv6 this time. */
static void test_proxy_v2_header_names_the_client_in_the_log(void **state)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    unsigned char req[16 + 36 + sizeof GET_HELLO];
    size_t n = 0;
    response r;
    char *data;

    (void)state;
    memcpy(req, sig, 12);
    req[12] = 0x21;                 /* version 2, PROXY */
    req[13] = 0x21;                 /* AF_INET6, STREAM */
    req[14] = 0;
    req[15] = 36;                   /* two addresses, two ports */
    n = 16;
    memset(req + n, 0, 32);
    req[n + 0] = 0x20, req[n + 1] = 0x01, req[n + 2] = 0x0d,
    req[n + 3] = 0xb8, req[n + 15] = 0x09;          /* 2001:db8::9 */
    req[n + 31] = 1;                                /* ::1 */
    n += 32;
    req[n++] = 0x9c, req[n++] = 0x41;               /* 40001 */
    req[n++] = 0, req[n++] = 80;
    memcpy(req + n, GET_HELLO, sizeof GET_HELLO - 1);
    n += sizeof GET_HELLO - 1;
    start_with((const char *const[]){"--proxy", NULL});
    data = raw_expect((const char *)req, n, 200, &r);
    expect_true(body_is(&r, HELLO), "hello.txt's content, got:\n%s", data);
    free(data);
    expect_log("[2001:db8::9]:40001 \"GET /hello.txt HTTP/1.1\" 200");
    stop();
}

/* --proxy: a connection that does not begin with a header is closed
 * without an answer, and the server serves the next one. */
static void test_proxy_connection_without_a_header_is_closed(void **state)
{
    static const char good[] = "PROXY TCP4 192.0.2.8 127.0.0.1 40002 80\r\n"
                               GET_HELLO;
    size_t got;
    response r;
    char *data;

    (void)state;
    start_with((const char *const[]){"--proxy", NULL});
    data = exchange(GET_HELLO, sizeof GET_HELLO - 1, &got);
    expect_true(got == 0 && closed_by_server,
                "the connection closed with nothing answered%s; got %zu "
                "bytes:\n%.300s", closed_by_server ? ""
                : " (the client gave up waiting)", got, data);
    free(data);
    data = raw_expect(good, sizeof good - 1, 200, &r);
    free(data);
    expect_log("192.0.2.8:40002 \"GET /hello.txt HTTP/1.1\" 200");
    stop();
}

/* Read one response (headers and the hello.txt body) on fd. */
static void expect_hello_on(int fd, const char *who)
{
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    response resp;

    while (n < sizeof buf - 1 &&
           (r = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0) {
        n += (size_t)r;
        buf[n] = '\0';
        if (parse_response(buf, n, false, &resp) == n && n > 0)
            break;
    }
    buf[n] = '\0';
    expect_true(n > 0 && parse_response(buf, n, false, &resp) == n &&
                resp.status == 200 && body_is(&resp, HELLO),
                "%s: a 200 with hello.txt's content; got %zu bytes:\n%s",
                who, n, buf);
}

/* --max-connections 1: while the first client's connection is open (kept
 * alive, idle), a second client's request waits in the backlog without
 * an answer; once the first client leaves, the second is served. */
static void test_max_connections_1_second_client_waits(void **state)
{
    static const char keep[] = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    int a, b;

    (void)state;
    start_with((const char *const[]){"--max-connections", "1", NULL});
    a = connect_text(srv.address);
    expect_true(a >= 0, "a connection to %s", srv.address);
    expect_true(send_all_fd(a, keep, sizeof keep - 1) == 0, "to send");
    expect_hello_on(a, "the first client");
    b = connect_text(srv.address);
    expect_true(b >= 0, "a second connection to %s (the backlog)",
                srv.address);
    expect_true(send_all_fd(b, keep, sizeof keep - 1) == 0, "to send");
    /* Not served while the first is: a short look for an answer. (A
     * server that would answer later than this passes by luck; one that
     * waits never fails.) */
    expect_true(!wait_readable_ms(b, 300),
                "no answer for the second client while the first is "
                "connected");
    close(a);
    expect_hello_on(b, "the second client, once the first left");
    close(b);
    stop();
}

#define TEST(name) cmocka_unit_test_teardown(name, kill_leftover_server)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_get_sends_the_file_with_length_and_type),
        TEST(test_head_sends_the_head_without_a_body),
        TEST(test_content_type_follows_the_extension),
        TEST(test_directory_serves_its_index_html),
        TEST(test_directory_without_slash_redirects),
        TEST(test_directory_without_index_is_404),
        TEST(test_curl_reuses_the_connection_for_two_urls),
        TEST(test_pipelined_requests_are_answered_in_order),
        TEST(test_head_arriving_in_pieces_is_parsed),
        TEST(test_http10_request_is_answered_and_closed),
        TEST(test_idle_keep_alive_connection_closes_after_timeout),
        TEST(test_missing_file_is_404_and_keeps_the_connection),
        TEST(test_other_methods_get_405_with_allow),
        TEST(test_garbage_gets_400_and_a_close),
        TEST(test_unsupported_version_gets_400),
        TEST(test_missing_host_gets_400),
        TEST(test_transfer_encoding_gets_400),
        TEST(test_get_with_a_body_gets_413),
        TEST(test_long_uri_gets_414),
        TEST(test_dotdot_segments_get_400),
        TEST(test_percent_encoded_dotdot_gets_400),
        TEST(test_absolute_form_target_gets_400),
        TEST(test_double_slash_stays_in_the_root),
        TEST(test_symlinks_out_of_the_root_are_404),
        TEST(test_symlink_inside_the_root_is_followed),
        TEST(test_fifo_is_404_without_blocking),
        TEST(test_megabyte_request_line_gets_414),
        TEST(test_megabyte_header_gets_431),
        TEST(test_half_a_head_then_silence_gets_408_after_timeout),
        TEST(test_client_leaving_mid_reply_is_logged),
        TEST(test_model_sync_serves),
        TEST(test_model_threading_serves),
        TEST(test_model_forking_serves),
        TEST(test_model_pool_serves),
        TEST(test_model_prefork_serves),
        TEST(test_model_async_serves),
        TEST(test_wrk_gets_only_2xx_and_no_socket_errors),
        TEST(test_sigint_stops_the_server_with_an_idle_client),
        TEST(test_proxy_v1_header_names_the_client_in_the_log),
        TEST(test_proxy_v2_header_names_the_client_in_the_log),
        TEST(test_proxy_connection_without_a_header_is_closed),
        TEST(test_max_connections_1_second_client_waits),
    };

    return example_run_tests_per_model(tests, make_tree, remove_tree_fixture);
}
