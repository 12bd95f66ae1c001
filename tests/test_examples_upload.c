/*
 * upload_server and upload_client, run as separate processes and driven by
 * the article's Python client, by upload_client, and by raw sockets that
 * speak the protocol badly on purpose.
 *
 * Every test gets a server whose --root is a fresh directory inside another
 * fresh directory: "nothing was written outside the root" is then a check
 * that the parent holds the root and nothing else, made when the server
 * stops. Hostile cases then check that the server answered, logged one
 * line saying who, what and why, wrote nothing, and still serves a good
 * request.
 *
 * Every test runs twice: with the server's default model (threading), then
 * in async mode (example_run_per_model), where uploads and listings go
 * through ss_run_blocking; the test that goes through every model runs
 * once.
 *
 * SS_TEST_SKIP_LARGE=1 skips the 1 GiB upload, should a build be too slow
 * for it (it takes 1 to 3 s optimised, under ASan and under TSan alike) or
 * the temporary directory lack the 1 GiB it needs for a moment.
 */
#include "example_harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define ARTICLE_CLIENT SS_TEST_CLIENTS_DIR "/article_upload_client.py"

static const char *models[] = {"sync", "threading", "forking", "pool",
                               "prefork", "async"};

/* ---- the fixture: a server and its directories -------------------------- */

typedef struct fixture {
    char   *parent;         /* fresh; must only ever hold "root" */
    char    root[160];      /* the server's --root */
    char   *scratch;        /* the clients' own files, elsewhere */
    example server;
    bool    running;
    char    host[64], port[16];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    f->parent = make_temp_dir("upload");
    snprintf(f->root, sizeof f->root, "%s/root", f->parent);
    assert_int_equal(mkdir(f->root, 0755), 0);
    f->scratch = make_temp_dir("upload-files");
    *state = f;
    return 0;
}

/* Also after a failed test: no server, no directory is left behind. */
static int teardown(void **state)
{
    fixture *f = *state;

    if (f->running) {
        kill(f->server.pid, SIGKILL);
        waitpid(f->server.pid, NULL, 0);
        unlink(f->server.log_path);
    }
    remove_tree(f->parent);
    remove_tree(f->scratch);
    free(f->parent);
    free(f->scratch);
    free(f);
    return 0;
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* Start upload_server --root ROOT [extra...] 127.0.0.1:0. */
static void start(fixture *f, const char *const *extra)
{
    const char *args[24];
    const char *colon;
    int n = 0;

    args[n++] = "--root";
    args[n++] = f->root;
    while (extra && *extra && n < 22)
        args[n++] = *extra++;
    args[n++] = "127.0.0.1:0";
    args[n] = NULL;
    example_start(&f->server, "upload_server", args);
    f->running = true;
    colon = strrchr(f->server.address, ':');
    assert_non_null(colon);
    snprintf(f->host, sizeof f->host, "%.*s",
             (int)(colon - f->server.address), f->server.address);
    snprintf(f->port, sizeof f->port, "%s", colon + 1);
}

static void expect_nothing_outside_the_root(const fixture *f)
{
    DIR *d = opendir(f->parent);
    struct dirent *e;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        expect_true(strcmp(e->d_name, ".") == 0 ||
                    strcmp(e->d_name, "..") == 0 ||
                    strcmp(e->d_name, "root") == 0,
                    "%s/%s was written outside the root", f->parent,
                    e->d_name);
    closedir(d);
}

/* The names in the root, space-separated into names for messages;
 * returns how many there are. */
static int root_entries(const fixture *f, char *names, size_t size)
{
    DIR *d = opendir(f->root);
    struct dirent *e;
    size_t at = 0;
    int n = 0;

    assert_non_null(d);
    names[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        at += (size_t)snprintf(names + at, at < size ? size - at : 0, "%s%s",
                               n ? " " : "", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static void expect_root_empty(const fixture *f)
{
    char names[1024];

    expect_true(root_entries(f, names, sizeof names) == 0,
                "the root should be empty, it holds: %s", names);
}

/* Stop with SIGTERM (exit status 0 is checked), check nothing escaped the
 * root and return the log, to be freed. */
static char *stop(fixture *f)
{
    char *log;

    f->running = false;
    log = example_stop(&f->server, SIGTERM);
    expect_nothing_outside_the_root(f);
    return log;
}

/* Wait (bounded) for a log line containing `text`; it must start with the
 * client's address. */
static void expect_log_from(const fixture *f, const char *client,
                            const char *text)
{
    double end = now() + WAIT_LIMIT;
    char *log = NULL, *hit = NULL;

    while (now() < end) {
        free(log);
        log = example_log(&f->server);
        if ((hit = strstr(log, text)) != NULL)
            break;
        sleep_ms(5);
    }
    expect_true(hit != NULL, "the server should log '%s'; its log:\n%s", text,
                log);
    while (hit > log && hit[-1] != '\n')
        hit--;
    expect_true(strncmp(hit, client, strlen(client)) == 0, "the line should "
                "start with the client's address %s: %.*s", client,
                (int)strcspn(hit, "\n"), hit);
    free(log);
}

static void expect_log(const fixture *f, const char *text)
{
    expect_log_from(f, "127.0.0.1:", text);
}

/* ---- files -------------------------------------------------------------- */

/* n bytes of a pattern that differs with the seed and has newlines, so the
 * article's client sends it in many lines of many lengths. */
static char *make_data(size_t n, unsigned seed)
{
    char *p = malloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    size_t i;

    assert_non_null(p);
    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (char)(x >> 24);
    }
    return p;
}

static void write_path(const char *path, const char *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    expect_true(fd >= 0, "cannot create %s", path);
    expect_true(write(fd, data, n) == (ssize_t)n, "cannot write %s", path);
    close(fd);
}

/* A file in the scratch directory; returns its path (static per slot). */
static const char *scratch_file(const fixture *f, const char *name,
                                const char *data, size_t n)
{
    static char paths[8][256];
    static int next;
    char *path = paths[next++ % 8];

    snprintf(path, sizeof paths[0], "%s/%s", f->scratch, name);
    write_path(path, data, n);
    return path;
}

static void expect_file(const char *path, const char *data, size_t n)
{
    size_t len = 0;
    char *got = read_file(path, &len);

    expect_true(got != NULL, "%s should exist", path);
    expect_true(len == n && memcmp(got, data, n) == 0,
                "%s should hold the %zu bytes sent, it holds %zu bytes%s",
                path, n, len, len == n ? " that differ" : "");
    free(got);
}

static void expect_stored(const fixture *f, const char *name, const char *data,
                          size_t n)
{
    char path[256];

    snprintf(path, sizeof path, "%s/%s", f->root, name);
    expect_file(path, data, n);
}

/* ---- running clients ---------------------------------------------------- */

/* Run upload_client ADDRESS args...; returns its exit status, with stdout
 * and stderr in *out and *err (to be freed). */
static int upload_client(const fixture *f, const char *const *args, char **out,
                         char **err)
{
    const char *argv[16];
    int n = 0;

    argv[n++] = example_bin("upload_client");
    argv[n++] = f->server.address;
    while (*args && n < 15)
        argv[n++] = *args++;
    argv[n] = NULL;
    return run_command(argv, NULL, 0, out, NULL, err, WAIT_LIMIT);
}

/* upload_client must exit 0 and print exactly `want`. */
static void expect_client_output(const fixture *f, const char *const *args,
                                 const char *want)
{
    char *out, *err;
    int rc = upload_client(f, args, &out, &err);

    expect_true(rc == 0 && strcmp(out, want) == 0,
                "upload_client %s exited %d and printed '%s' (stderr '%s'); "
                "expected '%s'", args[0], rc, out, err, want);
    free(out);
    free(err);
}

/* ---- raw sockets -------------------------------------------------------- */

static int raw_connect(const fixture *f)
{
    int fd = connect_text(f->server.address);

    expect_true(fd >= 0, "cannot connect to %s", f->server.address);
    return fd;
}

/* A header: the 4-byte native-endian length `len` (which may lie), then
 * json_len bytes of JSON. Send errors are ignored: a server that closes
 * early is what some tests expect. */
static void send_header(int fd, int32_t len, const char *json, size_t json_len)
{
    send_all_fd(fd, &len, sizeof len);
    if (json_len > 0)
        send_all_fd(fd, json, json_len);
}

static void send_json(int fd, const char *json)
{
    send_header(fd, (int32_t)strlen(json), json, strlen(json));
}

/* A put of `name_json` (a JSON string literal) with n bytes of data. */
static void send_put(int fd, const char *name_json, const char *data,
                     size_t n)
{
    char json[512];

    snprintf(json, sizeof json,
             "{\"cmd\": \"put\", \"filename\": %s, \"filesize\": %zu}",
             name_json, n);
    send_json(fd, json);
    if (n > 0)
        send_all_fd(fd, data, n);
}

/* Read one reply into buf (NUL-terminated): false at EOF or on error. */
static bool read_reply(int fd, char *buf, size_t size)
{
    int32_t len;

    if (recv_exact(fd, &len, sizeof len) != (ssize_t)sizeof len || len <= 0 ||
        (size_t)len >= size || recv_exact(fd, buf, (size_t)len) != len)
        return false;
    buf[len] = '\0';
    return true;
}

static void expect_reply(int fd, const char *want)
{
    char reply[4096] = "";

    expect_true(read_reply(fd, reply, sizeof reply) &&
                strcmp(reply, want) == 0,
                "the reply should be '%s', it was '%s'", want, reply);
}

static void expect_error_reply(int fd, const char *reason)
{
    char want[512];

    snprintf(want, sizeof want, "{\"status\": \"error\", \"reason\": \"%s\"}",
             reason);
    expect_reply(fd, want);
}

static void expect_ok_size(int fd, size_t n)
{
    char want[64];

    snprintf(want, sizeof want, "{\"status\": \"ok\", \"filesize\": %zu}", n);
    expect_reply(fd, want);
}

/* The server closed the connection: EOF, or a reset when it left bytes
 * unread. Not a timeout (the client's, WAIT_LIMIT). */
static void expect_closed(int fd)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, 0);

    expect_true(n == 0 || (n < 0 && errno == ECONNRESET),
                "the server should have closed the connection: recv "
                "returned %zd (%s)", n, n < 0 ? strerror(errno) : "data");
}

/* A good put on a fresh connection is stored and acknowledged; the file
 * is then removed, leaving the root as it was. */
static void expect_server_still_works(const fixture *f)
{
    char path[256];
    int fd = raw_connect(f);

    send_put(fd, "\"good.txt\"", "still here\n", 11);
    expect_ok_size(fd, 11);
    close(fd);
    expect_stored(f, "good.txt", "still here\n", 11);
    snprintf(path, sizeof path, "%s/good.txt", f->root);
    unlink(path);
}

/* ---- the article's client ----------------------------------------------- */

static void test_article_client_uploads_several_files_over_one_connection(
    void **state)
{
    fixture *f = *state;
    const size_t sizes[] = {1000, 300 * 1024, 0};
    const char *names[] = {"notes.txt", "photo.bin", "empty"};
    char *data[3], *log;
    const char *argv[8] = {"python3", ARTICLE_CLIENT};
    int i, rc;

    if (!have_program("python3")) {
        print_message("python3 is not installed: skipped\n");
        skip();
    }
    start(f, NULL);
    argv[2] = f->host;
    argv[3] = f->port;
    for (i = 0; i < 3; i++) {
        data[i] = make_data(sizes[i], (unsigned)i);
        argv[4 + i] = scratch_file(f, names[i], data[i], sizes[i]);
    }
    rc = run_command(argv, NULL, 0, NULL, NULL, NULL, WAIT_LIMIT);
    expect_true(rc == 0, "the article's client exited %d", rc);
    expect_log(f, ": put 'empty' ok (0 bytes)");
    for (i = 0; i < 3; i++) {
        expect_stored(f, names[i], data[i], sizes[i]);
        free(data[i]);
    }
    log = stop(f);
    expect_true(strstr(log, "put 'photo.bin' ok (307200 bytes)") != NULL,
                "log:\n%s", log);
    free(log);
}

static bool exists(void *path)
{
    return access(path, F_OK) == 0;
}

/* The article's client never reads the replies and closes right after its
 * last send. Replies it left unread would make Linux reset the connection
 * and drop the end of its last file; the server holds put replies back
 * while the client streams, so every run stores every file. */
static void test_article_client_closing_at_once_loses_nothing(void **state)
{
    fixture *f = *state;
    const size_t sizes[] = {6, 3000, 5000};
    const char *names[] = {"a.txt", "s1", "s2"};
    const char *argv[8] = {"python3", ARTICLE_CLIENT};
    char *data[3];
    int i, run, rc;

    if (!have_program("python3")) {
        print_message("python3 is not installed: skipped\n");
        skip();
    }
    start(f, NULL);
    argv[2] = f->host;
    argv[3] = f->port;
    for (i = 0; i < 3; i++) {
        data[i] = make_data(sizes[i], (unsigned)i + 7);
        argv[4 + i] = scratch_file(f, names[i], data[i], sizes[i]);
    }
    for (run = 0; run < 10; run++) {
        char path[256];

        for (i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s", f->root, names[i]);
            unlink(path);
        }
        rc = run_command(argv, NULL, 0, NULL, NULL, NULL, WAIT_LIMIT);
        expect_true(rc == 0, "run %d: the article's client exited %d", run,
                    rc);
        /* the last file is stored (or cut short and discarded) once the
         * server has read the connection to its end */
        snprintf(path, sizeof path, "%s/s2", f->root);
        wait_for(exists, path, WAIT_LIMIT);
        for (i = 0; i < 3; i++)
            expect_stored(f, names[i], data[i], sizes[i]);
    }
    for (i = 0; i < 3; i++)
        free(data[i]);
    free(stop(f));
}

/* ---- upload_client ------------------------------------------------------ */

static void test_upload_client_puts_and_gets_files_byte_for_byte(void **state)
{
    fixture *f = *state;
    char *a = make_data(5000, 1), *b = make_data(200000, 2);
    const char *pa = scratch_file(f, "a.txt", a, 5000);
    const char *pb = scratch_file(f, "b.bin", b, 200000);
    char want[1024], dest[256];

    start(f, NULL);
    snprintf(want, sizeof want, "put %s: ok (5000 bytes)\nput %s: ok "
             "(200000 bytes)\n", pa, pb);
    expect_client_output(f, (const char *[]){"put", pa, pb, NULL}, want);
    expect_stored(f, "a.txt", a, 5000);
    expect_stored(f, "b.bin", b, 200000);
    snprintf(dest, sizeof dest, "%s/b.copy", f->scratch);
    expect_client_output(f, (const char *[]){"get", "b.bin", dest, NULL},
                         "get b.bin: ok (200000 bytes)\n");
    expect_file(dest, b, 200000);
    free(stop(f));
    free(a);
    free(b);
}

static void test_upload_client_get_to_stdout(void **state)
{
    fixture *f = *state;
    char path[256];

    snprintf(path, sizeof path, "%s/hello.txt", f->root);
    write_path(path, "hello, world\n", 13);
    start(f, NULL);
    expect_client_output(f, (const char *[]){"get", "hello.txt", "-", NULL},
                         "hello, world\n");
    free(stop(f));
}

static void test_list_shows_regular_files_and_their_sizes_only(void **state)
{
    fixture *f = *state;
    char path[256], *out, *err;
    int rc;

    snprintf(path, sizeof path, "%s/one.txt", f->root);
    write_path(path, "1", 1);
    snprintf(path, sizeof path, "%s/two words.txt", f->root);
    write_path(path, "22", 2);
    snprintf(path, sizeof path, "%s/.upload-1-1", f->root); /* a temporary */
    write_path(path, "333", 3);
    snprintf(path, sizeof path, "%s/subdir", f->root);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/link", f->root);
    assert_int_equal(symlink("one.txt", path), 0);
    snprintf(path, sizeof path, "%s/fifo", f->root);
    assert_int_equal(mkfifo(path, 0644), 0);
    start(f, NULL);
    rc = upload_client(f, (const char *[]){"list", NULL}, &out, &err);
    expect_true(rc == 0 && strncmp(out, "list: ok (2 files)\n", 19) == 0 &&
                strstr(out, "\none.txt 1\n") &&
                strstr(out, "\ntwo words.txt 2\n") &&
                strlen(out) == 19 + 10 + 16,
                "list exited %d and printed '%s' (stderr '%s'); expected the "
                "two regular files and nothing else", rc, out, err);
    free(out);
    free(err);
    free(stop(f));
}

static void test_list_escapes_names_as_json(void **state)
{
    fixture *f = *state;
    char path[256];
    int fd;

    snprintf(path, sizeof path, "%s/say \"hi\" \\ bye", f->root);
    write_path(path, "x", 1);
    start(f, NULL);
    fd = raw_connect(f);
    send_json(fd, "{\"cmd\": \"list\"}");
    expect_reply(fd, "{\"status\": \"ok\", \"files\": [{\"name\": "
                 "\"say \\\"hi\\\" \\\\ bye\", \"size\": 1}]}");
    close(fd);
    free(stop(f));
}

static void test_get_of_a_missing_file_fails_with_the_reason(void **state)
{
    fixture *f = *state;
    char *out, *err;
    int rc;

    start(f, NULL);
    rc = upload_client(f, (const char *[]){"get", "nothere", NULL}, &out,
                       &err);
    expect_true(rc == 1 && strcmp(err, "get nothere: error: no such file\n")
                == 0, "upload_client exited %d, stderr '%s'", rc, err);
    expect_log(f, ": get 'nothere' refused: no such file");
    free(out);
    free(err);
    free(stop(f));
}

static void test_put_replaces_an_existing_file_whole(void **state)
{
    fixture *f = *state;
    int fd;

    start(f, NULL);
    fd = raw_connect(f);
    send_put(fd, "\"v.txt\"", "version one, the longer\n", 24);
    expect_ok_size(fd, 24);
    send_put(fd, "\"v.txt\"", "version two\n", 12);
    expect_ok_size(fd, 12);
    close(fd);
    expect_stored(f, "v.txt", "version two\n", 12);
    free(stop(f));
}

static void test_every_model_stores_and_returns_a_file(void **state)
{
    fixture *f = *state;
    char dest[256], want[512], *data;
    const char *path;
    size_t i;

    example_models_tested_once();
    data = make_data(100000, 7);
    path = scratch_file(f, "m.bin", data, 100000);
    snprintf(dest, sizeof dest, "%s/m.copy", f->scratch);
    snprintf(want, sizeof want, "put %s: ok (100000 bytes)\n", path);
    for (i = 0; i < sizeof models / sizeof *models; i++) {
        start(f, (const char *[]){"--model", models[i], NULL});
        expect_client_output(f, (const char *[]){"put", path, NULL}, want);
        expect_client_output(f, (const char *[]){"get", "m.bin", dest, NULL},
                             "get m.bin: ok (100000 bytes)\n");
        expect_file(dest, data, 100000);
        free(stop(f));
        unlink(dest);
    }
    free(data);
}

/* ---- concurrency -------------------------------------------------------- */

#define UPLOADERS 8
#define UPLOAD_SIZE (1024 * 1024)

typedef struct uploader {
    const char        *address;
    char               name[32];
    char              *data;
    pthread_barrier_t *go;
    char               reply[128];  /* what the server answered */
} uploader;

/* One client thread: connect, wait for the others, put. No cmocka calls
 * here: the main thread checks the replies. */
static void *upload_thread(void *arg)
{
    uploader *u = arg;
    char json[256];
    int fd = connect_text(u->address);
    size_t off;

    pthread_barrier_wait(u->go);
    if (fd < 0)
        return NULL;
    snprintf(json, sizeof json, "{\"cmd\": \"put\", \"filename\": \"%s\", "
             "\"filesize\": %d}", u->name, UPLOAD_SIZE);
    send_json(fd, json);
    for (off = 0; off < UPLOAD_SIZE; off += 64 * 1024)   /* interleave */
        send_all_fd(fd, u->data + off, 64 * 1024);
    read_reply(fd, u->reply, sizeof u->reply);
    close(fd);
    return NULL;
}

/* UPLOADERS clients at once, to distinct names or all to one. */
static void run_uploaders(fixture *f, uploader *u, bool same_name)
{
    pthread_t threads[UPLOADERS];
    pthread_barrier_t go;
    int i;

    pthread_barrier_init(&go, NULL, UPLOADERS);
    for (i = 0; i < UPLOADERS; i++) {
        u[i] = (uploader){.address = f->server.address, .go = &go};
        snprintf(u[i].name, sizeof u[i].name, same_name ? "same.bin"
                 : "file-%d.bin", i);
        u[i].data = make_data(UPLOAD_SIZE, 100 + (unsigned)i);
        assert_int_equal(pthread_create(&threads[i], NULL, upload_thread,
                                        &u[i]), 0);
    }
    for (i = 0; i < UPLOADERS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&go);
    for (i = 0; i < UPLOADERS; i++)
        expect_true(strcmp(u[i].reply, "{\"status\": \"ok\", \"filesize\": "
                           "1048576}") == 0, "uploader %d got '%s'", i,
                    u[i].reply);
}

static void test_eight_concurrent_uploads_to_distinct_names(void **state)
{
    fixture *f = *state;
    uploader u[UPLOADERS];
    char names[1024];
    int i;

    start(f, NULL);
    run_uploaders(f, u, false);
    for (i = 0; i < UPLOADERS; i++) {
        expect_stored(f, u[i].name, u[i].data, UPLOAD_SIZE);
        free(u[i].data);
    }
    expect_true(root_entries(f, names, sizeof names) == UPLOADERS,
                "the root should hold the %d files and nothing else: %s",
                UPLOADERS, names);
    free(stop(f));
}

static void test_eight_concurrent_uploads_to_one_name_leave_one_whole_file(
    void **state)
{
    fixture *f = *state;
    uploader u[UPLOADERS];
    char path[256], names[1024], *got;
    size_t len = 0;
    int i, matches = 0;

    start(f, NULL);
    run_uploaders(f, u, true);
    snprintf(path, sizeof path, "%s/same.bin", f->root);
    got = read_file(path, &len);
    expect_true(got && len == UPLOAD_SIZE, "same.bin should hold %d bytes",
                UPLOAD_SIZE);
    for (i = 0; i < UPLOADERS; i++) {
        matches += memcmp(got, u[i].data, UPLOAD_SIZE) == 0;
        free(u[i].data);
    }
    free(got);
    expect_true(matches == 1, "same.bin should be one upload, whole; it "
                "matches %d of them", matches);
    expect_true(root_entries(f, names, sizeof names) == 1,
                "only same.bin should be left, not temporaries: %s", names);
    free(stop(f));
}

/* ---- names that are refused --------------------------------------------- */

/* A put of name_json is refused with `reason`, its data is skipped, and
 * the same connection then stores a good file. */
static void expect_name_refused(fixture *f, const char *name_json,
                                const char *reason, const char *logged)
{
    char line[512];
    int fd;

    start(f, NULL);
    fd = raw_connect(f);
    send_put(fd, name_json, "evil data\n", 10);
    expect_error_reply(fd, reason);
    send_put(fd, "\"after.txt\"", "fine\n", 5);
    expect_ok_size(fd, 5);
    close(fd);
    snprintf(line, sizeof line, ": put %s refused: %s", logged, reason);
    expect_log(f, line);
    expect_stored(f, "after.txt", "fine\n", 5);
    snprintf(line, sizeof line, "%s/after.txt", f->root);
    unlink(line);
    expect_root_empty(f);
    expect_server_still_works(f);
    free(stop(f));
}

static void test_refuses_a_name_with_a_slash(void **state)
{
    expect_name_refused(*state, "\"sub/x\"", "filename contains '/'",
                        "'sub/x'");
}

static void test_refuses_dot_dot(void **state)
{
    expect_name_refused(*state, "\"..\"", "filename is . or ..", "'..'");
}

static void test_refuses_a_path_that_climbs_out_of_the_root(void **state)
{
    expect_name_refused(*state, "\"../../etc/passwd\"",
                        "filename contains '/'", "'../../etc/passwd'");
}

static void test_refuses_an_absolute_path(void **state)
{
    fixture *f = *state;
    char name[300], logged[300];

    /* A path the server could write, were it to follow it. */
    snprintf(name, sizeof name, "\"%s/escaped\"", f->parent);
    snprintf(logged, sizeof logged, "'%s/escaped'", f->parent);
    expect_name_refused(f, name, "filename contains '/'", logged);
}

static void test_refuses_a_name_with_a_nul(void **state)
{
    expect_name_refused(*state, "\"a\\u0000b\"", "filename contains NUL",
                        "'a\\x00b'");
}

static void test_refuses_an_empty_name(void **state)
{
    expect_name_refused(*state, "\"\"", "filename is empty", "''");
}

static void test_refuses_the_temporary_files_prefix(void **state)
{
    expect_name_refused(*state, "\".upload-1-1\"", "filename starts with "
                        ".upload-, kept for temporaries", "'.upload-1-1'");
}

static void test_refuses_to_replace_a_directory(void **state)
{
    fixture *f = *state;
    char path[256];
    int fd;

    snprintf(path, sizeof path, "%s/dir", f->root);
    assert_int_equal(mkdir(path, 0755), 0);
    start(f, NULL);
    fd = raw_connect(f);
    send_put(fd, "\"dir\"", "data", 4);
    expect_error_reply(fd, "filename is a directory");
    close(fd);
    expect_log(f, ": put 'dir' refused: filename is a directory");
    expect_server_still_works(f);
    free(stop(f));
}

static void test_refuses_a_symlink_and_never_writes_through_it(void **state)
{
    fixture *f = *state;
    char link[256], target[256];
    int fd;

    snprintf(target, sizeof target, "%s/target", f->scratch);
    write_path(target, "original\n", 9);
    snprintf(link, sizeof link, "%s/link", f->root);
    assert_int_equal(symlink(target, link), 0);
    start(f, NULL);
    fd = raw_connect(f);
    send_put(fd, "\"link\"", "overwritten\n", 12);
    expect_error_reply(fd, "filename is a symbolic link");
    send_json(fd, "{\"cmd\": \"get\", \"filename\": \"link\"}");
    expect_error_reply(fd, "filename is a symbolic link");
    close(fd);
    expect_log(f, ": put 'link' refused: filename is a symbolic link");
    expect_file(target, "original\n", 9);
    expect_server_still_works(f);
    free(stop(f));
}

/* ---- broken headers: an error reply, then the connection is closed ------ */

/* Send raw header bytes; expect the error reply, the close, the log line,
 * an untouched root and a server that still works. */
static void expect_header_refused(fixture *f, int32_t len, const char *json,
                                  const char *reason, const char *logged)
{
    int fd = raw_connect(f);

    send_header(fd, len, json, json ? strlen(json) : 0);
    expect_error_reply(fd, reason);
    expect_closed(fd);
    close(fd);
    expect_log(f, logged);
    expect_root_empty(f);
    expect_server_still_works(f);
}

static void test_a_header_length_over_64_kib_is_refused(void **state)
{
    fixture *f = *state;

    start(f, NULL);
    expect_header_refused(f, 64 * 1024 + 1, NULL,
                          "header length 65537 not in 1..65536",
                          ": header refused: header length 65537 not in "
                          "1..65536");
    free(stop(f));
}

static void test_a_header_length_of_zero_or_less_is_refused(void **state)
{
    fixture *f = *state;

    start(f, NULL);
    expect_header_refused(f, 0, NULL, "header length 0 not in 1..65536",
                          ": header refused: header length 0 not in");
    expect_header_refused(f, -1, NULL, "header length -1 not in 1..65536",
                          ": header refused: header length -1 not in");
    free(stop(f));
}

/* The length is refused before a byte of the header is read or stored. */
static void test_a_1_mib_header_is_refused_unread(void **state)
{
    fixture *f = *state;
    size_t n = 1024 * 1024;
    char *junk = make_data(n, 3);
    int fd;

    start(f, NULL);
    fd = raw_connect(f);
    send_header(fd, (int32_t)n, junk, n);
    expect_error_reply(fd, "header length 1048576 not in 1..65536");
    expect_closed(fd);
    close(fd);
    free(junk);
    expect_log(f, ": header refused: header length 1048576 not in 1..65536");
    expect_root_empty(f);
    expect_server_still_works(f);
    free(stop(f));
}

static void test_invalid_json_is_refused(void **state)
{
    fixture *f = *state;
    const char *json = "{'cmd': 'put', 'filename': 'a', 'filesize': 1}";

    start(f, NULL);
    expect_header_refused(f, (int32_t)strlen(json), json,
                          "invalid header: expected a string key at byte 1",
                          ": header refused: invalid header: expected a "
                          "string key at byte 1");
    free(stop(f));
}

static void test_a_put_without_filesize_is_refused(void **state)
{
    fixture *f = *state;
    const char *json = "{\"cmd\": \"put\", \"filename\": \"a.txt\"}";

    start(f, NULL);
    expect_header_refused(f, (int32_t)strlen(json), json, "no filesize",
                          ": put 'a.txt' refused: no filesize");
    free(stop(f));
}

static void test_a_negative_filesize_is_refused(void **state)
{
    fixture *f = *state;
    const char *json = "{\"cmd\": \"put\", \"filename\": \"a.txt\", "
                       "\"filesize\": -5}";

    start(f, NULL);
    expect_header_refused(f, (int32_t)strlen(json), json,
                          "invalid header: filesize is negative at byte 48",
                          ": header refused: invalid header: filesize is "
                          "negative");
    free(stop(f));
}

static void test_a_filesize_over_max_size_is_refused(void **state)
{
    fixture *f = *state;
    const char *json = "{\"cmd\": \"put\", \"filename\": \"big\", "
                       "\"filesize\": 1001}";

    start(f, (const char *[]){"--max-size", "1000", NULL});
    expect_header_refused(f, (int32_t)strlen(json), json,
                          "filesize 1001 over the limit of 1000 bytes",
                          ": put 'big' refused: filesize 1001 over the limit "
                          "of 1000 bytes");
    free(stop(f));
}

/* The article's server would getattr(self, cmd)() whatever cmd names. */
static void test_an_unknown_command_is_refused(void **state)
{
    fixture *f = *state;
    const char *json = "{\"cmd\": \"handle\", \"filename\": \"a\"}";

    start(f, NULL);
    expect_header_refused(f, (int32_t)strlen(json), json, "unknown command",
                          ": command 'handle' refused: unknown command");
    json = "{\"filename\": \"a\", \"filesize\": 1}";
    expect_header_refused(f, (int32_t)strlen(json), json, "no cmd",
                          ": header refused: no cmd");
    free(stop(f));
}

/* ---- behind a proxy ----------------------------------------------------- */

/* --proxy: after a PROXY v1 header (as HAProxy's send-proxy writes it), the
 * commands work as ever, and both log lines, the success (stdout) and the
 * refusal (stderr), name the client the header carries. */
static void test_proxy_header_names_the_client_in_every_log_line(void **state)
{
    static const char header[] = "PROXY TCP4 192.0.2.9 127.0.0.1 40003 9000"
                                 "\r\n";
    fixture *f = *state;
    int fd;

    start(f, (const char *const[]){"--proxy", NULL});
    fd = raw_connect(f);
    expect_true(send_all_fd(fd, header, sizeof header - 1) == 0, "to send");
    send_put(fd, "\"proxied.txt\"", "behind haproxy\n", 15);
    expect_ok_size(fd, 15);
    send_json(fd, "{\"cmd\": \"get\", \"filename\": \"missing.txt\"}");
    expect_error_reply(fd, "no such file");
    close(fd);
    expect_stored(f, "proxied.txt", "behind haproxy\n", 15);
    expect_log_from(f, "192.0.2.9:40003", ": put 'proxied.txt' ok (15 bytes)");
    expect_log_from(f, "192.0.2.9:40003",
                    ": get 'missing.txt' refused: no such file");
    free(stop(f));
}

/* ---- clients that stop talking ------------------------------------------ */

/* The server closes the connection (not the client's receive timeout,
 * WAIT_LIMIT, which expect_closed tells apart), not before the timeout
 * (t0 is taken before the server can start waiting), and says why: its
 * 1 s timeout. */
static void test_half_a_header_then_silence_is_closed_after_the_timeout(
    void **state)
{
    fixture *f = *state;
    double t0, waited;
    int fd;

    start(f, (const char *[]){"--timeout", "1", NULL});
    fd = raw_connect(f);
    t0 = now();
    send_header(fd, 100, "{\"cmd\": \"pu", 11);
    expect_closed(fd);
    waited = now() - t0;
    close(fd);
    expect_true(waited > 0.5, "the server should close after its 1 s "
                "timeout, it closed after %.2f s", waited);
    expect_log(f, ": header failed: reading 100 bytes: nothing received for "
               "1 s");
    expect_server_still_works(f);
    free(stop(f));
}

static void test_a_client_gone_mid_file_leaves_no_file_and_no_temporary(
    void **state)
{
    fixture *f = *state;
    char *data = make_data(100 * 1024, 4);
    int fd;

    start(f, NULL);
    fd = raw_connect(f);
    send_json(fd, "{\"cmd\": \"put\", \"filename\": \"partial.bin\", "
              "\"filesize\": 1048576}");
    send_all_fd(fd, data, 100 * 1024);
    close(fd);
    free(data);
    expect_log(f, ": put 'partial.bin' failed: the client closed the "
               "connection after 102400 of 1048576 bytes");
    expect_root_empty(f);
    expect_server_still_works(f);
    free(stop(f));
}

/* ---- a large upload ----------------------------------------------------- */

/* The server's peak resident memory, in KiB. */
static long peak_kib(pid_t pid)
{
    char path[64], *status, *line;
    long kib = -1;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    status = read_file(path, NULL);
    if (status && (line = strstr(status, "VmHWM:")) != NULL)
        kib = strtol(line + 6, NULL, 10);
    free(status);
    return kib;
}

#define GIB (1024LL * 1024 * 1024)
#define BLOCK (256 * 1024)

/* Block i of the generated stream: a pattern stamped with its index, so
 * that a block out of place shows. */
static void fill_block(char *block, long long i)
{
    memset(block, (int)(i & 0xFF), BLOCK);
    memcpy(block, &i, sizeof i);
}

static void expect_block(int fd, long long i)
{
    static char want[BLOCK], got[BLOCK];

    fill_block(want, i);
    expect_true(pread(fd, got, BLOCK, i * BLOCK) == BLOCK &&
                memcmp(got, want, BLOCK) == 0,
                "block %lld of the stored file differs", i);
}

static void test_a_1_gib_upload_streams_in_constant_memory(void **state)
{
    fixture *f = *state;
    const char *skip_large = getenv("SS_TEST_SKIP_LARGE");
    static char block[BLOCK];
    long before, after;
    char path[256];
    long long i;
    int fd, file;

    if (skip_large && strcmp(skip_large, "0") != 0) {
        print_message("SS_TEST_SKIP_LARGE is set: skipped\n");
        skip();
    }
    start(f, NULL);
    expect_server_still_works(f);   /* a first request: the baseline */
    before = peak_kib(f->server.pid);
    fd = raw_connect(f);
    send_json(fd, "{\"cmd\": \"put\", \"filename\": \"huge.bin\", "
              "\"filesize\": 1073741824}");
    for (i = 0; i < GIB / BLOCK; i++) {
        fill_block(block, i);
        expect_true(send_all_fd(fd, block, BLOCK) == 0, "sending block %lld: "
                    "%s", i, strerror(errno));
    }
    expect_ok_size(fd, (size_t)GIB);
    close(fd);
    after = peak_kib(f->server.pid);
    expect_true(before > 0 && after - before < 16 * 1024,
                "the server's peak memory grew from %ld KiB to %ld KiB",
                before, after);
    expect_true(SANITIZED || after < 64 * 1024, "the server's peak memory "
                "was %ld KiB", after);
    snprintf(path, sizeof path, "%s/huge.bin", f->root);
    file = open(path, O_RDONLY | O_CLOEXEC);
    expect_true(file >= 0, "huge.bin should be stored");
    expect_true(lseek(file, 0, SEEK_END) == GIB, "huge.bin should be 1 GiB");
    expect_block(file, 0);
    expect_block(file, GIB / BLOCK / 2 + 1);
    expect_block(file, GIB / BLOCK - 1);
    close(file);
    unlink(path);
    free(stop(f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_article_client_uploads_several_files_over_one_connection),
        TEST(test_article_client_closing_at_once_loses_nothing),
        TEST(test_upload_client_puts_and_gets_files_byte_for_byte),
        TEST(test_upload_client_get_to_stdout),
        TEST(test_list_shows_regular_files_and_their_sizes_only),
        TEST(test_list_escapes_names_as_json),
        TEST(test_get_of_a_missing_file_fails_with_the_reason),
        TEST(test_put_replaces_an_existing_file_whole),
        TEST(test_every_model_stores_and_returns_a_file),
        TEST(test_eight_concurrent_uploads_to_distinct_names),
        TEST(test_eight_concurrent_uploads_to_one_name_leave_one_whole_file),
        TEST(test_refuses_a_name_with_a_slash),
        TEST(test_refuses_dot_dot),
        TEST(test_refuses_a_path_that_climbs_out_of_the_root),
        TEST(test_refuses_an_absolute_path),
        TEST(test_refuses_a_name_with_a_nul),
        TEST(test_refuses_an_empty_name),
        TEST(test_refuses_the_temporary_files_prefix),
        TEST(test_refuses_to_replace_a_directory),
        TEST(test_refuses_a_symlink_and_never_writes_through_it),
        TEST(test_a_header_length_over_64_kib_is_refused),
        TEST(test_a_header_length_of_zero_or_less_is_refused),
        TEST(test_a_1_mib_header_is_refused_unread),
        TEST(test_invalid_json_is_refused),
        TEST(test_a_put_without_filesize_is_refused),
        TEST(test_a_negative_filesize_is_refused),
        TEST(test_a_filesize_over_max_size_is_refused),
        TEST(test_an_unknown_command_is_refused),
        TEST(test_half_a_header_then_silence_is_closed_after_the_timeout),
        TEST(test_a_client_gone_mid_file_leaves_no_file_and_no_temporary),
        TEST(test_a_1_gib_upload_streams_in_constant_memory),
        TEST(test_proxy_header_names_the_client_in_every_log_line),
    };

    return example_run_tests_per_model(tests, NULL, NULL);
}
