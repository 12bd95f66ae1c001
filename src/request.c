/*
 * Requests and their I/O: Python's rfile (buffered reads), wfile (buffered
 * or unbuffered writes), and the datagram packet and reply. Every wait goes
 * through wait.c.
 */
#include "runtime.h"
#include "proxy.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SS_RBUFSIZE_DEFAULT 8192

/* Zeroed request memory: the model's, if it keeps some, else calloc's. */
static void *request_memory(ss_server *s, size_t size)
{
    void *m = NULL;

    if (s->model && s->model->request_alloc)
        m = s->model->request_alloc(s, size);
    return m ? m : calloc(1, size);
}

static void request_memory_release(ss_server *s, void *m)
{
    if (!s->model || !s->model->request_release ||
        !s->model->request_release(s, m))
        free(m);
}

/* The handler state, rounded so the packet after it stays aligned. */
static size_t state_bytes(const ss_server *s)
{
    return ss__round_up(s->handler.state_size, _Alignof(max_align_t));
}

size_t ss__request_size(const ss_server *s, size_t extra)
{
    return sizeof(ss_request) + state_bytes(s) + extra;
}

/* Datagram requests of models without memory of their own: a few
 * finished ones are kept for the next (all of one size, room for
 * max_packet_size), with their reply buffer. A burst of datagrams then
 * allocates nothing. Lock-free: any thread may take or give one. */
static ss_request *spare_take(ss_server *s)
{
    int i;

    for (i = 0; i < SS__SPARES; i++)
        if (atomic_load_explicit(&s->spares[i], memory_order_relaxed)) {
            ss_request *r = atomic_exchange(&s->spares[i], NULL);

            if (r)
                return r;
        }
    return NULL;
}

static bool spare_put(ss_server *s, ss_request *r)
{
    int i;

    for (i = 0; i < SS__SPARES; i++) {
        ss_request *none = NULL;

        if (atomic_compare_exchange_strong(&s->spares[i], &none, r))
            return true;
    }
    return false;
}

void ss__request_spares_free(ss_server *s)
{
    ss_request *r;

    while ((r = spare_take(s))) {
        free(r->wbuf);
        free(r);
    }
}

/* A spare, with its header and state zeroed (the packet room is not). */
static ss_request *reuse_spare(ss_server *s, size_t state)
{
    ss_request *r = spare_take(s);
    char *wbuf;
    size_t wcap;

    if (!r)
        return NULL;
    wbuf = r->wbuf;
    wcap = r->wcap;
    memset(r, 0, sizeof *r + state);
    r->wbuf = wbuf;
    r->wcap = wcap;
    return r;
}

ss_request *ss__request_new(ss_server *s, int fd, size_t extra)
{
    size_t state = state_bytes(s);
    bool spare = extra && !(s->model && s->model->request_alloc);
    ss_request *r = NULL;

    if (spare) {
        extra = s->max_packet_size + 1;
        r = reuse_spare(s, state);
    }
    if (!r && !(r = request_memory(s, ss__request_size(s, extra))))
        return NULL;
    r->server = s;
    r->fd = fd;
    r->spare = spare;
    atomic_init(&r->refs, 1);
    atomic_init(&r->forced, false);
    /* Only a stream request of a thread model can be sent to by a
     * broadcast from another thread while its handler sends. */
    r->has_wlock = !extra && (!s->model || (s->model->same_process &&
                                            !s->model->nonblocking));
    if (r->has_wlock)
        pthread_mutex_init(&r->wlock, NULL);
    r->timeout = s->handler.timeout;
    r->what = "handle";
    r->state = state ? (void *)r->data : NULL;
    if (extra) {    /* the packet of a datagram request */
        r->rbuf = (char *)r->data + state;
        r->rcap = extra;
    }
    if (s->model && s->model->request_init)
        s->model->request_init(s, r);
    ss__stats_request_begin(s, r);
    return r;
}

void ss__request_ref(ss_request *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void ss__request_unref(ss_request *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* A hook that did not close the connection does not leak it. */
    ss__request_close_fd(r);
    ss__stats_request_end(r->server, r);
    if (r->rbuf_owned)
        free(r->rbuf);
    if (r->has_wlock)
        pthread_mutex_destroy(&r->wlock);
    if (r->spare && spare_put(r->server, r))
        return;
    free(r->wbuf);
    request_memory_release(r->server, r);
}

void ss__request_close_fd(ss_request *r)
{
    int fd;

    if (!r->owns_fd)
        return;
    ss__registry_remove(r->server, r);
    if (r->has_wlock)
        pthread_mutex_lock(&r->wlock);
    fd = r->fd;
    r->fd = -1;
    if (r->has_wlock)
        pthread_mutex_unlock(&r->wlock);
    if (fd < 0)
        return;
    /* Async: the loop forgets the descriptor, so that its number, reused,
     * is not taken for this connection. */
    if (r->loop && ss__loop_running() == r->loop)
        ss__loop_forget_fd(r->loop, fd);
    ss__close(fd);
}

int ss__request_begin(ss_request *r)
{
    int one = 1, family = r->server->address.storage.ss_family, err;

    if (r->datagram)
        return 0;
    /* Async requests wait in the loop, not in the kernel. */
    if (r->timeout > 0 && !r->loop &&
        (err = ss__io_set_timeout(r->fd, r->timeout)) < 0) {
        r->what = "setsockopt SO_RCVTIMEO";
        return err;
    }
    if (r->server->handler.disable_nagle_algorithm &&
        (family == AF_INET || family == AF_INET6) &&
        setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
        r->what = "setsockopt TCP_NODELAY";
        return -errno;
    }
    return 0;
}

/* ---- wfile ------------------------------------------------------------ */

/* Send what ss_write buffered, as part of the call x. */
static int flush_buffer(ss_request *r, ss__sending *x)
{
    int err;

    if (r->datagram || r->wlen == 0)
        return 0;
    err = ss__io_sendall(r, r->wbuf, r->wlen, x);
    /* After an error the stream is broken anyway: drop what was buffered
     * rather than send it again later. */
    r->wlen = 0;
    return err;
}

int ss_flush(ss_request *r)
{
    ss__sending x = {0};

    if (!r)
        return -EINVAL;
    return flush_buffer(r, &x);
}

/* Append to wbuf, growing it to at least need bytes. */
static int append(ss_request *r, const void *buf, size_t len)
{
    if (r->wlen + len > r->wcap) {
        size_t cap = r->wcap ? r->wcap : 256;
        char *p;

        while (cap < r->wlen + len)
            cap *= 2;
        if (!(p = realloc(r->wbuf, cap)))
            return -ENOMEM;
        r->wbuf = p;
        r->wcap = cap;
    }
    memcpy(r->wbuf + r->wlen, buf, len);
    r->wlen += len;
    return 0;
}

int ss_sendall(ss_request *r, const void *buf, size_t len)
{
    ss__sending x = {0};
    int err;

    if (!r || (!buf && len))
        return -EINVAL;
    if (r->datagram)
        return ss__io_sendto(r, buf, len);
    if ((err = flush_buffer(r, &x)) < 0)
        return err;
    return ss__io_sendall(r, buf, len, &x);
}

int ss_write(ss_request *r, const void *buf, size_t len)
{
    ss__sending x = {0};
    size_t size;
    int err;

    if (!r || (!buf && len))
        return -EINVAL;
    if (len > INT_MAX)
        return -EOVERFLOW;
    if (r->datagram)
        return (err = append(r, buf, len)) < 0 ? err : (int)len;
    size = r->server->handler.wbufsize;
    if (size == 0)
        return (err = ss__io_sendall(r, buf, len, &x)) < 0 ? err : (int)len;
    if (r->wlen + len > size && (err = flush_buffer(r, &x)) < 0)
        return err;
    if (len >= size)    /* too big to buffer: straight out */
        return (err = ss__io_sendall(r, buf, len, &x)) < 0 ? err : (int)len;
    if (!r->wbuf && !(r->wbuf = malloc(size)))
        return -ENOMEM;
    r->wcap = size;
    memcpy(r->wbuf + r->wlen, buf, len);
    r->wlen += len;
    if (r->wlen == size && (err = flush_buffer(r, &x)) < 0) /* full: out */
        return err;
    return (int)len;
}

int ss_vprintf(ss_request *r, const char *fmt, va_list ap)
{
    char small[1024], *p = small;
    va_list copy;
    int n, err;

    if (!r || !fmt)
        return -EINVAL;
    va_copy(copy, ap);
    n = vsnprintf(small, sizeof small, fmt, copy);
    va_end(copy);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof small) {
        if (!(p = malloc((size_t)n + 1)))
            return -ENOMEM;
        vsnprintf(p, (size_t)n + 1, fmt, ap);
    }
    err = ss_write(r, p, (size_t)n);
    if (p != small)
        free(p);
    return err;
}

int ss_printf(ss_request *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = ss_vprintf(r, fmt, ap);
    va_end(ap);
    return n;
}

int ss__request_end_io(ss_request *r)
{
    int err;

    if (!r->datagram)
        return ss_flush(r);
    if (r->wlen == 0)
        return 0;   /* unlike Python, no empty reply datagram */
    err = ss__io_sendto(r, r->wbuf, r->wlen);
    r->wlen = 0;
    return err;
}

/* ---- rfile ------------------------------------------------------------ */

/* Read more into rbuf after rend: >0, 0 at EOF (always for a datagram's
 * packet), or -errno. Buffered bytes are kept: the buffer is compacted, and
 * grown up to `want` bytes of unread data. */
static ssize_t fill(ss_request *r, size_t want)
{
    ssize_t n;

    if (r->datagram)
        return 0;
    if (r->rpos == r->rend)
        r->rpos = r->rend = 0;
    if (r->rend == r->rcap && r->rpos > 0) {
        memmove(r->rbuf, r->rbuf + r->rpos, r->rend - r->rpos);
        r->rend -= r->rpos;
        r->rpos = 0;
    }
    if (r->rend == r->rcap) {   /* full even after compaction: grow */
        size_t cap = r->rcap == 0 ? r->server->handler.rbufsize
                     : r->rcap * 2 < want ? r->rcap * 2 : want;
        char *p;

        if (cap == 0)
            cap = SS_RBUFSIZE_DEFAULT;
        if (cap <= r->rcap)
            cap = r->rcap * 2;
        if (!(p = realloc(r->rbuf, cap)))
            return -ENOMEM;
        r->rbuf = p;
        r->rcap = cap;
        r->rbuf_owned = true;
    }
    n = ss__io_recv(r, r->rbuf + r->rend, r->rcap - r->rend);
    if (n > 0)
        r->rend += (size_t)n;
    return n;
}

/* Move up to len buffered bytes to buf. */
static size_t take(ss_request *r, void *buf, size_t len)
{
    size_t n = r->rend - r->rpos;

    if (n > len)
        n = len;
    if (n == 0)
        return 0;
    memcpy(buf, r->rbuf + r->rpos, n);
    r->rpos += n;
    return n;
}

ssize_t ss_recv(ss_request *r, void *buf, size_t len)
{
    if (!r || (!buf && len))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (r->rpos < r->rend)
        return (ssize_t)take(r, buf, len);
    if (r->datagram)
        return 0;
    return ss__io_recv(r, buf, len);
}

int ss_wait_readable(ss_request *r, double timeout)
{
    if (!r)
        return -EINVAL;
    if (r->rpos < r->rend)
        return 1;
    if (r->datagram)
        return 0;
    return ss__io_wait_readable(r, timeout);
}

ssize_t ss_read(ss_request *r, void *buf, size_t len)
{
    size_t got, chunk;
    ssize_t n;

    if (!r || (!buf && len))
        return -EINVAL;
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    got = take(r, buf, len);
    chunk = r->rcap ? r->rcap : r->server->handler.rbufsize;
    if (chunk == 0)
        chunk = SS_RBUFSIZE_DEFAULT;
    while (got < len && !r->datagram) {
        if (len - got >= chunk) {   /* large: no copy through rbuf */
            n = ss__io_recv(r, (char *)buf + got, len - got);
            if (n > 0)
                got += (size_t)n;
        } else if ((n = fill(r, chunk)) > 0) {
            got += take(r, (char *)buf + got, len - got);
        }
        if (n == 0)
            break;
        if (n < 0)
            return n;
    }
    return (ssize_t)got;
}

ssize_t ss_readline(ss_request *r, char *buf, size_t size)
{
    size_t max, scanned = 0, avail, n;
    const char *nl;
    ssize_t got;

    if (!r || !buf || size < 2)
        return -EINVAL;
    max = size - 1;
    if (max > SSIZE_MAX)
        max = SSIZE_MAX;
    /* Scan without consuming until a '\n' or max bytes are buffered, so a
     * timeout in the middle of a line loses nothing. */
    for (;;) {
        avail = r->rend - r->rpos;
        n = avail < max ? avail : max;
        nl = scanned < n ? memchr(r->rbuf + r->rpos + scanned, '\n',
                                  n - scanned) : NULL;
        if (nl) {
            n = (size_t)(nl - (r->rbuf + r->rpos)) + 1;
            break;
        }
        if (avail >= max)
            break;
        scanned = avail;
        got = fill(r, max);
        if (got == 0) {
            n = avail;  /* EOF: the last line as it is, then 0 */
            break;
        }
        if (got < 0)
            return got;
    }
    take(r, buf, n);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* ---- PROXY protocol ---------------------------------------------------- */

int ss__request_read_proxy(ss_request *r, double timeout)
{
    double deadline = ss__now() + timeout;
    ss__proxy_header h;
    ssize_t n;
    int rc;

    for (;;) {
        n = ss__proxy_parse(r->rbuf + r->rpos, r->rend - r->rpos, &h);
        if (n < 0)
            return -EPROTO;
        if (n > 0)
            break;
        rc = ss_wait_fd(r, r->fd, POLLIN, deadline - ss__now());
        if (rc == 0)
            return -ETIMEDOUT;
        if (rc < 0)
            return rc;
        /* Room for the longest header; what follows it stays buffered. */
        if ((n = fill(r, SS__PROXY_MAX)) == 0)
            return -EPROTO;     /* the connection ended inside it */
        if (n < 0)
            return (int)n;
    }
    r->rpos += (size_t)n;
    r->bytes_in -= (unsigned long long)n;   /* not request I/O */
    if (!h.local) {
        r->peer = r->client;
        r->client = h.source;
        r->proxied = true;
    }
    return 0;
}

/* ---- accessors -------------------------------------------------------- */

int ss_request_fd(const ss_request *r)
{
    return r ? r->fd : -1;
}

const ss_address *ss_request_client_address(const ss_request *r)
{
    return r ? &r->client : NULL;
}

const ss_address *ss_request_peer_address(const ss_request *r)
{
    return !r ? NULL : r->proxied ? &r->peer : &r->client;
}

ss_server *ss_request_server(const ss_request *r)
{
    return r ? r->server : NULL;
}

void *ss_request_state(ss_request *r)
{
    return r ? r->state : NULL;
}

const void *ss_request_packet(const ss_request *r, size_t *len)
{
    if (!r || !r->datagram) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = r->rcap;
    return r->rbuf;
}
