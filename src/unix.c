/*
 * Unix socket servers: the stream and datagram servers with a different
 * bind and close. A socket file left by a crashed server is replaced (only
 * once a connect to it is refused: nobody serves there); the file this
 * server created is removed by close, by the process that created it.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char *unix_path(const ss_server *s)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&s->address.storage;

    return sun->sun_path[0] ? sun->sun_path : NULL;     /* NULL: abstract */
}

/* Does nobody serve at the path? A refused connect says so; a full
 * backlog (EAGAIN) or a success means a live server. */
static bool is_stale(ss_server *s)
{
    int fd = ss__socket(AF_UNIX, s->type->socktype, true);
    int rc, err;

    if (fd < 0)
        return false;
    rc = connect(fd, (struct sockaddr *)&s->address.storage, s->address.len);
    err = errno;
    ss__close(fd);
    return rc < 0 && err == ECONNREFUSED;
}

static int replace_stale(ss_server *s, const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return ss__error(-EADDRINUSE, "bind %s (a file that is not a socket)",
                         path);
    if (!is_stale(s))
        return ss__error(-EADDRINUSE, "bind %s (a server is listening there)",
                         path);
    if (unlink(path) < 0 && errno != ENOENT)
        return ss__error(-errno, "remove stale socket %s", path);
    return ss__tcp_server_bind(s);
}

static int remember_path(ss_server *s, const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return ss__error(-errno, "stat %s", path);
    if (!(s->unix_path = strdup(path))) {
        /* The file bind just made would be nobody's to remove. */
        (void)unlink(path);
        return ss__error(-ENOMEM, "bind %s", path);
    }
    s->unix_dev = st.st_dev;
    s->unix_ino = st.st_ino;
    s->owner_pid = getpid();
    return 0;
}

static int unix_server_bind(ss_server *s)
{
    const char *path = unix_path(s);
    char copy[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
    int err;

    if (s->adopted)     /* inherited: bound already, its file not ours */
        return ss__activation_bind(s);
    if (path)
        snprintf(copy, sizeof copy, "%s", path);
    err = ss__tcp_server_bind(s);
    if (err == -EADDRINUSE && path)
        err = replace_stale(s, copy);
    if (err == 0 && path)
        err = remember_path(s, copy);
    return err;
}

static void unix_server_close(ss_server *s)
{
    struct stat st;

    ss__server_close_socket(s);
    if (!s->unix_path || getpid() != s->owner_pid)
        return;
    /* Remove the file only if it is still the one this server created. */
    if (lstat(s->unix_path, &st) == 0 && st.st_dev == s->unix_dev &&
        st.st_ino == s->unix_ino)
        (void)unlink(s->unix_path);
    free(s->unix_path);
    s->unix_path = NULL;
}

static const ss_server_ops unix_stream_ops = {
    .server_bind      = unix_server_bind,
    .server_activate  = ss__tcp_server_activate,
    .get_request      = ss__tcp_get_request,
    .verify_request   = ss__base_verify_request,
    .process_request  = ss__base_process_request,
    .finish_request   = ss__base_finish_request,
    .shutdown_request = ss__tcp_shutdown_request,
    .close_request    = ss__tcp_close_request,
    .handle_error     = ss__base_handle_error,
    .handle_timeout   = ss__base_nothing,
    .service_actions  = ss__base_nothing,
    .server_close     = unix_server_close,
};

static const ss_server_ops unix_datagram_ops = {
    .server_bind      = unix_server_bind,
    .server_activate  = ss__udp_server_activate,
    .get_request      = ss__udp_get_request,
    .verify_request   = ss__base_verify_request,
    .process_request  = ss__base_process_request,
    .finish_request   = ss__base_finish_request,
    .shutdown_request = ss__udp_shutdown_request,
    .close_request    = ss__udp_close_request,
    .handle_error     = ss__base_handle_error,
    .handle_timeout   = ss__base_nothing,
    .service_actions  = ss__base_nothing,
    .server_close     = unix_server_close,
};

const ss__type ss__unix_stream_type = {
    .name = "unix_stream_server", .socktype = SOCK_STREAM,
    .unix_family = true, .ops = &unix_stream_ops,
};

const ss__type ss__unix_datagram_type = {
    .name = "unix_datagram_server", .socktype = SOCK_DGRAM,
    .unix_family = true, .ops = &unix_datagram_ops,
};
