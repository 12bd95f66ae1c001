/*
 * Addresses: "127.0.0.1:8080", "[::1]:8080", "localhost:8080", ":8080",
 * "*:8080", Unix paths and Linux abstract names, parsed into a
 * sockaddr_storage and formatted back.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)

/* A Unix path or "@abstract" name; `text` is what the user wrote, for
 * messages. */
static int parse_unix(ss_address *out, const char *path, const char *text)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->storage;
    size_t n = strlen(path);

    if (n == 0 || (path[0] == '@' && n == 1))
        return ss__error(-EINVAL, "address '%s': empty Unix socket path",
                         text);
    if (n >= sizeof sun->sun_path)
        return ss__error(-ENAMETOOLONG,
                         "address '%s': Unix socket path of %zu bytes "
                         "(at most %zu)", text, n, sizeof sun->sun_path - 1);
    memset(out, 0, sizeof *out);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    if (path[0] == '@') {
        /* Abstract namespace: a leading NUL, and the length counts. */
        sun->sun_path[0] = '\0';
        out->len = (socklen_t)(SUN_PATH_OFFSET + n);
    } else {
        out->len = (socklen_t)(SUN_PATH_OFFSET + n + 1);
    }
    return 0;
}

int ss__address_parse_unix(ss_address *out, const char *text)
{
    const char *path = text;

    if (strncmp(path, "unix:", 5) == 0)
        path += 5;
    return parse_unix(out, path, text);
}

static int parse_port(const char *port, const char *text)
{
    char *end;
    long v;

    if (*port == '\0')
        return ss__error(-EINVAL, "address '%s': missing port", text);
    errno = 0;
    v = strtol(port, &end, 10);
    if (*end != '\0' || !(isdigit((unsigned char)port[0]) || port[0] == '-'))
        return ss__error(-EINVAL, "address '%s': port '%s' is not a number",
                         text, port);
    if (errno == ERANGE || v < 0 || v > 65535)
        return ss__error(-EINVAL, "address '%s': port %s out of range 0-65535",
                         text, port);
    return (int)v;
}

static void set_inet4(ss_address *out, const struct in_addr *ip, int port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->storage;

    memset(out, 0, sizeof *out);
    sin->sin_family = AF_INET;
    sin->sin_addr = *ip;
    sin->sin_port = htons((uint16_t)port);
    out->len = sizeof *sin;
}

static void set_inet6(ss_address *out, const struct in6_addr *ip,
                      uint32_t scope, int port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->storage;

    memset(out, 0, sizeof *out);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = *ip;
    sin6->sin6_scope_id = scope;
    sin6->sin6_port = htons((uint16_t)port);
    out->len = sizeof *sin6;
}

/* Resolve a host name; an IPv4 result is preferred, as Python's AF_INET
 * servers resolve "localhost" to 127.0.0.1. */
static int resolve(ss_address *out, const char *host, int port,
                   const char *text)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai, *pick;
    int rc = getaddrinfo(host, NULL, &hints, &res);

    if (rc != 0) {
        int err = rc == EAI_AGAIN ? -EAGAIN
                  : rc == EAI_SYSTEM ? -errno : -ENXIO;

        ss__set_error("resolve '%s' in address '%s': %s", host, text,
                      rc == EAI_SYSTEM ? ss_strerror(err) : gai_strerror(rc));
        return err;
    }
    pick = NULL;
    for (ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || (!pick && ai->ai_family == AF_INET6))
            if (!pick || pick->ai_family != AF_INET)
                pick = ai;
    if (pick && pick->ai_family == AF_INET)
        set_inet4(out, &((struct sockaddr_in *)pick->ai_addr)->sin_addr, port);
    else if (pick)
        set_inet6(out, &((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr,
                  ((struct sockaddr_in6 *)pick->ai_addr)->sin6_scope_id, port);
    freeaddrinfo(res);
    if (!pick)
        return ss__error(-ENXIO, "resolve '%s' in address '%s'", host, text);
    return 0;
}

static int parse_host(ss_address *out, const char *host, int port,
                      const char *text)
{
    struct in_addr ip4;
    struct in6_addr ip6;

    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        set_inet6(out, &in6addr_any, 0, port);
        return 0;
    }
    if (inet_pton(AF_INET, host, &ip4) == 1) {
        set_inet4(out, &ip4, port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &ip6) == 1)
        return ss__error(-EINVAL, "address '%s': write an IPv6 address in "
                         "brackets, as [%s]:PORT", text, host);
    return resolve(out, host, port, text);
}

/* "[v6addr%scope]:port" */
static int parse_bracketed(ss_address *out, const char *text)
{
    const char *close = strchr(text, ']');
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    struct in6_addr ip6;
    uint32_t scope = 0;
    size_t n;
    char *pct;
    int port;

    if (!close || close[1] != ':')
        return ss__error(-EINVAL, "address '%s': expected [IPV6]:PORT", text);
    n = (size_t)(close - text - 1);
    if (n >= sizeof host)
        return ss__error(-EINVAL, "address '%s': not an IPv6 address", text);
    memcpy(host, text + 1, n);
    host[n] = '\0';
    if ((pct = strchr(host, '%'))) {
        *pct = '\0';
        scope = if_nametoindex(pct + 1);
        if (scope == 0)
            scope = (uint32_t)strtoul(pct + 1, NULL, 10);
    }
    if (inet_pton(AF_INET6, host, &ip6) != 1)
        return ss__error(-EINVAL, "address '%s': '%s' is not an IPv6 address",
                         text, host);
    if ((port = parse_port(close + 2, text)) < 0)
        return port;
    set_inet6(out, &ip6, scope, port);
    return 0;
}

int ss_address_parse(ss_address *out, const char *text)
{
    const char *colon;
    char host[256];
    size_t n;
    int port;

    ss__clear_error();
    if (!out)
        return ss__error(-EINVAL, "address: no output");
    if (!text || !*text)
        return ss__error(-EINVAL, "address: empty");
    if (ss__activation_is_ref(text))
        return ss__error(-EINVAL, "address '%s' names a socket, not an "
                         "address: only the server constructors take it",
                         text);
    if (strncmp(text, "unix:", 5) == 0 || text[0] == '/' || text[0] == '.' ||
        text[0] == '@')
        return ss__address_parse_unix(out, text);
    if (text[0] == '[')
        return parse_bracketed(out, text);
    colon = strrchr(text, ':');
    if (!colon)
        return ss__error(-EINVAL, "address '%s': expected HOST:PORT, :PORT "
                         "or a Unix socket path", text);
    n = (size_t)(colon - text);
    if (n >= sizeof host)
        return ss__error(-EINVAL, "address '%s': host name too long", text);
    memcpy(host, text, n);
    host[n] = '\0';
    if ((port = parse_port(colon + 1, text)) < 0)
        return port;
    return parse_host(out, host, port, text);
}

bool ss__address_is_unix(const ss_address *a)
{
    return a->storage.ss_family == AF_UNIX;
}

bool ss__address_is_any6(const ss_address *a)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->storage;

    return a->storage.ss_family == AF_INET6 &&
           IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
}

void ss__address_unmap(ss_address *a)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->storage;
    struct sockaddr_in sin = {.sin_family = AF_INET};

    if (a->storage.ss_family != AF_INET6 || a->len < sizeof *sin6 ||
        !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
        return;
    sin.sin_port = sin6->sin6_port;
    memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], sizeof sin.sin_addr);
    memset(&a->storage, 0, sizeof a->storage);
    memcpy(&a->storage, &sin, sizeof sin);
    a->len = sizeof sin;
}

const ss_address *ss__address_for_socket(const ss_address *a, int family,
                                         ss_address *tmp)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->storage;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&tmp->storage;

    if (a->storage.ss_family != AF_INET || family != AF_INET6)
        return a;
    memset(tmp, 0, sizeof *tmp);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = sin->sin_port;
    sin6->sin6_addr.s6_addr[10] = 0xff;
    sin6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&sin6->sin6_addr.s6_addr[12], &sin->sin_addr, sizeof sin->sin_addr);
    tmp->len = sizeof *sin6;
    return tmp;
}

static void format_unix(const ss_address *a, char *buf, size_t size)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->storage;
    size_t n;

    if (a->len <= SUN_PATH_OFFSET) {
        snprintf(buf, size, "(unnamed)");
        return;
    }
    n = a->len - SUN_PATH_OFFSET;
    if (n > sizeof sun->sun_path)
        n = sizeof sun->sun_path;
    if (sun->sun_path[0] == '\0')   /* abstract: '@' then n-1 bytes */
        snprintf(buf, size, "@%.*s", (int)(n - 1), sun->sun_path + 1);
    else
        snprintf(buf, size, "%.*s", (int)strnlen(sun->sun_path, n),
                 sun->sun_path);
}

const char *ss_address_format(const ss_address *a, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];

    if (!buf || size == 0)
        return buf;
    if (!a) {
        snprintf(buf, size, "(null)");
        return buf;
    }
    switch (a->storage.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->storage;

        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(buf, size, "%s:%u", ip, ntohs(sin->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->storage;

        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        if (s6->sin6_scope_id)
            snprintf(buf, size, "[%s%%%u]:%u", ip, s6->sin6_scope_id,
                     ntohs(s6->sin6_port));
        else
            snprintf(buf, size, "[%s]:%u", ip, ntohs(s6->sin6_port));
        break;
    }
    case AF_UNIX:
        format_unix(a, buf, size);
        break;
    default:
        snprintf(buf, size, "(address family %d)", a->storage.ss_family);
    }
    return buf;
}

int ss_address_port(const ss_address *a)
{
    if (!a)
        return -1;
    if (a->storage.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->storage)->sin_port);
    if (a->storage.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->storage)->sin6_port);
    return -1;
}
