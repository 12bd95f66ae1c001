/*
 * Inherited sockets: "fd:N" (a descriptor the process was started with)
 * and "systemd" / "systemd:NAME" (systemd socket activation: LISTEN_PID,
 * LISTEN_FDS, LISTEN_FDNAMES; the sockets start at descriptor 3), read
 * without libsystemd.
 *
 * A constructor finds the socket and checks that it fits the server type
 * (family, SOCK_STREAM or SOCK_DGRAM, listening or bound and unconnected)
 * before it changes anything; the server then takes the descriptor over
 * without binding it again, and makes it non-blocking and close-on-exec
 * only once nothing else can fail. A construction that fails gives the
 * descriptor back as it found it.
 *
 * The systemd variables are read once per process, under a mutex, and
 * remembered with which of the sockets servers took. A forked child has
 * its own process id: it does not inherit the parent's remembered sockets
 * and reads the environment again, where the variables are gone once the
 * parent read them (it then finds no sockets) or still name the parent
 * (LISTEN_PID is not the child). (A child forked while another thread
 * held the lock, reading them, must not construct: it is a fork of a
 * multi-threaded process, which may only exec.)
 */
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTEN_FDS_START 3          /* SD_LISTEN_FDS_START */
#define LISTEN_FDS_MAX   65536      /* more is a corrupt environment */

/* ---- what a descriptor is ---------------------------------------------- */

typedef struct sock_info {
    int        family, socktype;
    bool       listening, connected, bound;
    ss_address address;             /* getsockname */
} sock_info;

static const char *file_kind(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a pipe";
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "not a socket";
}

/* "a UDP socket", "a Unix stream socket", ... */
static const char *sock_kind(const sock_info *si, char *buf, size_t size)
{
    bool ip = si->family == AF_INET || si->family == AF_INET6;
    const char *type = si->socktype == SOCK_STREAM ? "stream"
                       : si->socktype == SOCK_DGRAM ? "datagram"
                       : si->socktype == SOCK_SEQPACKET ? "seqpacket" : NULL;

    if (ip && si->socktype == SOCK_STREAM)
        snprintf(buf, size, "a TCP socket");
    else if (ip && si->socktype == SOCK_DGRAM)
        snprintf(buf, size, "a UDP socket");
    else if (si->family == AF_UNIX && type)
        snprintf(buf, size, "a Unix %s socket", type);
    else
        snprintf(buf, size, "a socket of address family %d and type %d",
                 si->family, si->socktype);
    return buf;
}

/* "tcp server" for the type "tcp_server" */
static const char *server_kind(const ss__type *type, char *buf, size_t size)
{
    size_t i;

    snprintf(buf, size, "%s", type->name);
    for (i = 0; buf[i]; i++)
        if (buf[i] == '_')
            buf[i] = ' ';
    return buf;
}

/* Read what fd is without changing anything. `label` ("fd:7") names it in
 * messages. */
static int inspect(int fd, const char *label, sock_info *si)
{
    struct stat st;
    socklen_t len;
    ss_address peer;
    int v;

    memset(si, 0, sizeof *si);
    if (fstat(fd, &st) < 0)
        return errno == EBADF
               ? ss__error(-EBADF, "%s is not an open descriptor", label)
               : ss__error(-errno, "%s: fstat", label);
    if (!S_ISSOCK(st.st_mode))
        return ss__error(-EINVAL, "%s is %s, not a socket", label,
                         file_kind(st.st_mode));
    len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
        return ss__error(-errno, "%s: getsockopt SO_TYPE", label);
    si->socktype = v;
    si->address.len = sizeof si->address.storage;
    if (getsockname(fd, (struct sockaddr *)&si->address.storage,
                    &si->address.len) < 0)
        return ss__error(-errno, "%s: getsockname", label);
    si->family = si->address.storage.ss_family;
    if (si->family == AF_UNIX)
        si->bound = si->address.len > offsetof(struct sockaddr_un, sun_path);
    else
        si->bound = ss_address_port(&si->address) > 0;
#ifdef SO_ACCEPTCONN
    len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0)
        si->listening = v != 0;
#endif
    peer.len = sizeof peer.storage;
    si->connected = !si->listening &&
        getpeername(fd, (struct sockaddr *)&peer.storage, &peer.len) == 0;
    return 0;
}

/* Does the socket fit a server of `type`? The message says why not. */
static int check_fit(const ss__type *type, const sock_info *si,
                     const char *label)
{
    char what[96], server[64];
    bool ip = si->family == AF_INET || si->family == AF_INET6;
    bool stream = type->socktype == SOCK_STREAM;

    sock_kind(si, what, sizeof what);
    server_kind(type, server, sizeof server);
    if (type->unix_family && si->family != AF_UNIX)
        return ss__error(-EINVAL, "%s is %s; the %s needs a Unix (AF_UNIX) "
                         "socket", label, what, server);
    if (!type->unix_family && !ip)
        return ss__error(-EINVAL, "%s is %s; the %s needs an IPv4 or IPv6 "
                         "socket", label, what, server);
    if (si->socktype != type->socktype)
        return ss__error(-EINVAL, "%s is %s; the %s needs a %s socket", label,
                         what, server, stream ? "SOCK_STREAM" : "SOCK_DGRAM");
    if (si->connected)
        return ss__error(-EINVAL, stream
                         ? "%s is a connected %s (one end of a connection); "
                           "the %s needs a listening socket, or a bound one "
                           "to listen on"
                         : "%s is a connected %s, which hears from its peer "
                           "only; the %s needs an unconnected one",
                         label, what + 2, server);
    if (!si->listening && !si->bound)
        return ss__error(-EINVAL, "%s is %s bound to no address; the %s "
                         "does not bind an inherited socket", label, what,
                         server);
    return 0;
}

/* ---- the systemd variables, once per process --------------------------- */

static struct {
    pid_t  pid;         /* the process that read them; 0: none did */
    int    err;         /* 0, or why they are unusable (message in why) */
    char   why[200];
    int    count;       /* sockets at LISTEN_FDS_START.. */
    char  *names_buf;   /* LISTEN_FDNAMES, split at the colons */
    char **names;       /* count entries; "unknown" where none is given */
    bool  *taken;       /* count entries: a server has (or is taking) it */
} listen_state;

static pthread_mutex_t listen_lock = PTHREAD_MUTEX_INITIALIZER;

static void forget_state(void)
{
    free(listen_state.names_buf);
    free(listen_state.names);
    free(listen_state.taken);
    memset(&listen_state, 0, sizeof listen_state);
}

/* Remember a failure for this process (the variables are consumed). */
static int remember_error(int err, const char *fmt, ...) SS__PRINTF(2, 3);
static int remember_error(int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(listen_state.why, sizeof listen_state.why, fmt, ap);
    va_end(ap);
    listen_state.err = err;
    return ss__error(err, "%s", listen_state.why);
}

static int parse_count(const char *text)
{
    char *end;
    long v;

    if (!text || !*text)
        return remember_error(-EINVAL, "systemd: LISTEN_PID is set but "
                              "LISTEN_FDS is not");
    errno = 0;
    v = strtol(text, &end, 10);
    if (*end || errno || v < 0 || !(text[0] >= '0' && text[0] <= '9'))
        return remember_error(-EINVAL, "systemd: LISTEN_FDS '%s' is not a "
                              "number of sockets", text);
    if (v == 0)
        return remember_error(-EINVAL, "systemd: LISTEN_FDS is 0: no sockets "
                              "passed");
    if (v > LISTEN_FDS_MAX)
        return remember_error(-EINVAL, "systemd: LISTEN_FDS %ld is more than "
                              "%d sockets", v, LISTEN_FDS_MAX);
    return (int)v;
}

/* Split LISTEN_FDNAMES: a name for each socket, "unknown" for those it
 * does not name (as systemd says when it has none). -ENOMEM is not
 * remembered: the caller forgets what was allocated. */
static int parse_names(const char *text, int count)
{
    char *p;
    int i;

    listen_state.names_buf = strdup(text ? text : "");
    listen_state.names = calloc((size_t)count, sizeof *listen_state.names);
    listen_state.taken = calloc((size_t)count, sizeof *listen_state.taken);
    if (!listen_state.names_buf || !listen_state.names || !listen_state.taken)
        return ss__error(-ENOMEM, "systemd: reading LISTEN_FDNAMES");
    p = text ? listen_state.names_buf : NULL;
    for (i = 0; i < count; i++) {
        char *colon = p ? strchr(p, ':') : NULL;

        if (colon)
            *colon = '\0';
        listen_state.names[i] = p ? p : "unknown";
        p = colon ? colon + 1 : NULL;
    }
    return 0;
}

/* Read the variables (listen_lock held): the number of sockets, or -errno
 * with the message. Only variables for this process are consumed and
 * remembered; absent or foreign ones are looked at again next time. */
static int read_environment(void)
{
    const char *pid_text = getenv("LISTEN_PID");
    char *end;
    pid_t self = getpid();
    long pid;
    int n;

    if (listen_state.pid == self) {
        if (listen_state.err)
            ss__error(listen_state.err, "%s", listen_state.why);
        return listen_state.err ? listen_state.err : listen_state.count;
    }
    forget_state();     /* a parent's, copied by fork: not this process's */
    if (!pid_text)
        return ss__error(-EINVAL, "systemd: no sockets passed to this process "
                         "(LISTEN_PID is not set)");
    errno = 0;
    pid = strtol(pid_text, &end, 10);
    if (!*pid_text || *end || errno || pid <= 0)
        return ss__error(-EINVAL, "systemd: LISTEN_PID '%s' is not a process "
                         "id", pid_text);
    if (pid != (long)self)
        return ss__error(-EINVAL, "systemd: LISTEN_PID is not this process "
                         "(LISTEN_PID=%ld, this process is %ld)", pid,
                         (long)self);
    /* Ours: read them, then consume them, so children never see them.
     * Running out of memory consumes nothing: the next constructor reads
     * them again (what is wrong with them is remembered). */
    n = parse_count(getenv("LISTEN_FDS"));
    if (n > 0 && parse_names(getenv("LISTEN_FDNAMES"), n) < 0) {
        forget_state();
        return -ENOMEM;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    listen_state.pid = self;
    if (n > 0)
        listen_state.count = n;
    return listen_state.err ? listen_state.err : n;
}

/* Find the socket "systemd" or "systemd:NAME" (name NULL for the first)
 * names for `type`, and mark it taken. listen_lock held. */
static int find_systemd(const ss__type *type, const char *text,
                        const char *name, ss__adoption *out, sock_info *si)
{
    char label[320], server[64];
    int n = read_environment(), i, named = 0, err = 0;
    char why[512] = "";

    if (n < 0)
        return n;
    for (i = 0; i < n; i++) {
        int fd = LISTEN_FDS_START + i;

        if (name && strcmp(listen_state.names[i], name) != 0)
            continue;
        named++;
        if (listen_state.taken[i]) {
            if (!err) {
                err = -EBUSY;   /* only said when nothing else is wrong */
                snprintf(why, sizeof why, "%s: the socket of that name (fd "
                         "%d) is taken by another server already", text, fd);
            }
            continue;
        }
        snprintf(label, sizeof label, "%s (fd %d)", text, fd);
        if ((err = inspect(fd, label, si)) == 0 &&
            (err = check_fit(type, si, label)) == 0) {
            listen_state.taken[i] = true;
            out->fd = fd;
            out->slot = i;
            return 0;
        }
        snprintf(why, sizeof why, "%s", ss_last_error());
    }
    if (name && named == 0)
        return ss__error(-EINVAL, "%s: no such name in LISTEN_FDNAMES", text);
    if (name) {     /* the one named does not fit: say why */
        ss__set_error("%s", why);
        return -EINVAL;
    }
    server_kind(type, server, sizeof server);
    if (n == 1)
        return ss__error(-EINVAL, "%s: the one socket passed (fd %d) is not "
                         "a free one that fits the %s", text,
                         LISTEN_FDS_START, server);
    return ss__error(-EINVAL, "%s: none of the %d sockets passed (fds %d-%d) "
                     "is a free one that fits the %s", text, n,
                     LISTEN_FDS_START, LISTEN_FDS_START + n - 1, server);
}

/* "fd:N" naming one of the systemd sockets: a later "systemd" must not
 * hand it out again, so the variables are read now if they are this
 * process's (what is wrong with them is for "systemd" to say). The socket
 * fits: the caller's message is kept. listen_lock held. */
static void reserve_if_passed(ss__adoption *a)
{
    char message[512];
    int i = a->fd - LISTEN_FDS_START;

    snprintf(message, sizeof message, "%s", ss_last_error());
    (void)read_environment();
    ss__set_error("%s", message);
    if (listen_state.pid == getpid() && i >= 0 && i < listen_state.count &&
        !listen_state.taken[i]) {
        listen_state.taken[i] = true;
        a->slot = i;
    }
}

/* ---- the hooks --------------------------------------------------------- */

bool ss__activation_is_ref(const char *text)
{
    return text && (strncmp(text, "fd:", 3) == 0 ||
                    strcmp(text, "systemd") == 0 ||
                    strncmp(text, "systemd:", 8) == 0);
}

static int parse_fd(const char *text)
{
    const char *digits = text + 3;
    char *end;
    long v;

    errno = 0;
    v = strtol(digits, &end, 10);
    if (!(digits[0] >= '0' && digits[0] <= '9') || *end || errno ||
        v > INT_MAX)
        return ss__error(-EINVAL, "address '%s': '%s' is not a descriptor "
                         "number", text, digits);
    return (int)v;
}

int ss__activation_find(const ss__type *type, const char *text,
                        ss__adoption *out, ss_address *address)
{
    sock_info si;
    int err;

    memset(out, 0, sizeof *out);
    out->fd = out->slot = -1;
    if (strncmp(text, "fd:", 3) == 0) {
        int fd = parse_fd(text);

        if (fd < 0)
            return fd;
        if ((err = inspect(fd, text, &si)) < 0 ||
            (err = check_fit(type, &si, text)) < 0)
            return err;
        out->fd = fd;
        pthread_mutex_lock(&listen_lock);
        reserve_if_passed(out);
        pthread_mutex_unlock(&listen_lock);
    } else {
        const char *name = text[7] == ':' ? text + 8 : NULL;

        if (name && !*name)
            return ss__error(-EINVAL, "address '%s': empty socket name", text);
        pthread_mutex_lock(&listen_lock);
        err = find_systemd(type, text, name, out, &si);
        pthread_mutex_unlock(&listen_lock);
        if (err < 0)
            return err;
    }
    /* Their state as the caller left it, given back if construction fails. */
    out->fd_flags = fcntl(out->fd, F_GETFD);
    out->fl_flags = fcntl(out->fd, F_GETFL);
    if (out->fd_flags < 0 || out->fl_flags < 0) {
        err = ss__error(-errno, "%s: fcntl", text);
        ss__activation_cancel(out);
        return err;
    }
    *address = si.address;
    return 0;
}

void ss__activation_cancel(ss__adoption *a)
{
    if (a->slot < 0)
        return;
    pthread_mutex_lock(&listen_lock);
    if (listen_state.pid == getpid() && a->slot < listen_state.count)
        listen_state.taken[a->slot] = false;
    pthread_mutex_unlock(&listen_lock);
    a->slot = -1;
}

void ss__activation_adopt(ss_server *s, const ss__adoption *a)
{
    struct stat st;

    s->adoption = *a;
    s->adopted = true;
    atomic_store(&s->fd, a->fd);
    s->sock_ino = fstat(a->fd, &st) == 0 ? st.st_ino : 0;
}

int ss__activation_bind(ss_server *s)
{
    char a[SS_ADDRESS_STRLEN];
    ss_address real;

    /* Bound already: only record where. */
    real.len = sizeof real.storage;
    if (getsockname(atomic_load(&s->fd), (struct sockaddr *)&real.storage,
                    &real.len) < 0)
        return ss__error(-errno, "getsockname %s",
                         ss_address_format(&s->address, a, sizeof a));
    s->address = real;
    return 0;
}

bool ss__activation_listening(const ss_server *s)
{
#ifdef SO_ACCEPTCONN
    socklen_t len = sizeof(int);
    int v = 0;

    return getsockopt(atomic_load(&s->fd), SOL_SOCKET, SO_ACCEPTCONN, &v,
                      &len) == 0 && v != 0;
#else
    (void)s;
    return false;   /* listen() again only sets the backlog */
#endif
}

/* Put back the flags the caller left (only those changed). */
static void restore_flags(const ss_server *s)
{
    int fd = atomic_load(&s->fd);

    if (fcntl(fd, F_GETFL) != s->adoption.fl_flags)
        (void)fcntl(fd, F_SETFL, s->adoption.fl_flags);
    if (fcntl(fd, F_GETFD) != s->adoption.fd_flags)
        (void)fcntl(fd, F_SETFD, s->adoption.fd_flags);
}

int ss__activation_finish(ss_server *s)
{
    int fd = atomic_load(&s->fd);

    if (fcntl(fd, F_SETFL, s->adoption.fl_flags | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, s->adoption.fd_flags | FD_CLOEXEC) < 0) {
        int err = -errno;

        restore_flags(s);
        return ss__error(err, "fd %d: fcntl", fd);
    }
    return 0;
}

void ss__activation_disown(ss_server *s)
{
    if (!s->adopted)
        return;
    if (atomic_load(&s->fd) >= 0) {
        restore_flags(s);
        atomic_store(&s->fd, -1);   /* the caller's again: not closed */
    }
    ss__activation_cancel(&s->adoption);
    s->adopted = false;
}
