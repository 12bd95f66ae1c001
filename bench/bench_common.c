/* Shared helpers of bench/: see bench_common.h. */
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

static int parse_unix(const char *path, int abstract,
                      struct sockaddr_storage *out, socklen_t *len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)out;
    size_t n = strlen(path);

    /* An abstract name starts with a NUL byte instead of the '@'. */
    if (n == 0 || n >= sizeof sun->sun_path) {
        fprintf(stderr, "address %s: Unix path empty or too long\n", path);
        return n == 0 ? -EINVAL : -ENAMETOOLONG;
    }
    memset(out, 0, sizeof *out);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    if (abstract)
        sun->sun_path[0] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                       (abstract ? 0 : 1));
    return 0;
}

static int parse_port(const char *text, in_port_t *port)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 0 || v > 65535)
        return -EINVAL;
    *port = htons((in_port_t)v);
    return 0;
}

static int parse_inet(const char *text, struct sockaddr_storage *out,
                      socklen_t *len)
{
    char host[BENCH_ADDRSTRLEN];
    const char *colon = strrchr(text, ':');
    size_t hlen;
    in_port_t port;

    if (colon == NULL || parse_port(colon + 1, &port) < 0)
        goto bad;
    hlen = (size_t)(colon - text);
    if (hlen >= sizeof host)
        goto bad;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    memset(out, 0, sizeof *out);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

        host[hlen - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) != 1)
            goto bad;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = port;
        *len = sizeof *sin6;
        return 0;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)out;

    /* Only numeric hosts, "localhost" and "" / "*" (all interfaces): the
     * benchmark never needs a resolver. */
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    else if (host[0] == '\0' || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        goto bad;
    sin->sin_family = AF_INET;
    sin->sin_port = port;
    *len = sizeof *sin;
    return 0;
bad:
    fprintf(stderr, "address %s: expected HOST:PORT, [V6]:PORT or a path\n",
            text);
    return -EINVAL;
}

int bench_parse_addr(const char *text, struct sockaddr_storage *out,
                     socklen_t *len)
{
    if (strncmp(text, "unix:", 5) == 0)
        text += 5;
    else if (text[0] != '/' && text[0] != '.' && text[0] != '@')
        return parse_inet(text, out, len);
    return parse_unix(text, text[0] == '@', out, len);
}

const char *bench_format_addr(const struct sockaddr *sa, socklen_t len,
                              char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path) : 0;

        if (n == 0)
            snprintf(buf, size, "(unnamed)");
        else if (sun->sun_path[0] == '\0')
            snprintf(buf, size, "@%.*s", (int)(n - 1), sun->sun_path + 1);
        else
            snprintf(buf, size, "%.*s", (int)strnlen(sun->sun_path, n),
                     sun->sun_path);
    } else {
        snprintf(buf, size, "(family %d)", sa->sa_family);
    }
    return buf;
}

static int prepare_socket(int fd, int family, int type,
                          const struct sockaddr_storage *ss, socklen_t len)
{
    int one = 1;

    if (family != AF_UNIX && type == SOCK_STREAM &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
        perror("setsockopt SO_REUSEADDR");
        return -1;
    }
    if (bind(fd, (const struct sockaddr *)ss, len) < 0) {
        perror("bind");
        return -1;
    }
    if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0) {
        perror("listen");
        return -1;
    }
    return 0;
}

int bench_listen(const char *text, int type, int nonblock)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd;

    if (bench_parse_addr(text, &ss, &len) < 0)
        return -1;
    fd = socket(ss.ss_family,
                type | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) {
        perror("socket");
        return -1;
    }
    if (prepare_socket(fd, ss.ss_family, type, &ss, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int bench_announce(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char buf[BENCH_ADDRSTRLEN];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        perror("getsockname");
        return -1;
    }
    bench_format_addr((struct sockaddr *)&ss, len, buf, sizeof buf);
    if (printf("listening on %s\n", buf) < 0 || fflush(stdout) != 0) {
        perror("stdout");
        return -1;
    }
    return 0;
}

int bench_raise_nofile(rlim_t want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        perror("getrlimit RLIMIT_NOFILE");
        return -1;
    }
    if (rl.rlim_cur >= want)
        return 0;
    if (rl.rlim_max < want) {
        struct rlimit raised = { want, want };

        /* Only a privileged process may raise the hard limit; otherwise
         * fall back to the hard limit and report the shortfall below. */
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            return 0;
        rl.rlim_cur = rl.rlim_max;
    } else {
        rl.rlim_cur = want;
    }
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        perror("setrlimit RLIMIT_NOFILE");
        return -1;
    }
    if (rl.rlim_cur < want) {
        fprintf(stderr, "RLIMIT_NOFILE is %llu, below the %llu needed\n",
                (unsigned long long)rl.rlim_cur, (unsigned long long)want);
        return -1;
    }
    return 0;
}

int bench_set_nodelay(int fd, int family)
{
    int one = 1;

    if (family != AF_INET && family != AF_INET6)
        return 0;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int bench_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int bench_echo_blocking(int fd)
{
    char buf[BENCH_BUFSZ];

    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);

        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (bench_write_all(fd, buf, (size_t)n) < 0)
            return -1;
    }
}
