/*
 * Helpers shared by the load generator and the reference servers in bench/.
 *
 * The reference servers are deliberately independent of libsockserver (they
 * are what it is measured against), so they get their addresses, listening
 * sockets and start-up line from here instead.
 *
 * Addresses are written as the library writes them:
 *   "127.0.0.1:8080", "[::1]:8080", "localhost:8080"   TCP / UDP
 *   "/tmp/x.sock", "./x.sock", "unix:NAME"              Unix socket path
 *   "@NAME"                                             Linux abstract name
 * Port 0 asks the kernel for a free port; bench_announce() prints the real one.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* Every echo in bench/ reads into a buffer of this size: big enough for the
 * largest message of the scenarios (16 KiB) in one call, and the same for
 * every server so none gets an advantage from its buffer. */
#define BENCH_BUFSZ 16384

/* Formatted addresses never need more than this. */
#define BENCH_ADDRSTRLEN 128

/* Parse `text` (see above) into *out / *len. Returns 0 or -EINVAL /
 * -ENAMETOOLONG, with a message on stderr. */
int bench_parse_addr(const char *text, struct sockaddr_storage *out,
                     socklen_t *len);

/* Write a socket address as above into buf; returns buf. */
const char *bench_format_addr(const struct sockaddr *sa, socklen_t len,
                              char *buf, size_t size);

/* Create a socket of `type` (SOCK_STREAM or SOCK_DGRAM, close-on-exec, plus
 * SOCK_NONBLOCK when `nonblock`), bound to `text` and, for streams,
 * listening with a SOMAXCONN backlog. TCP gets SO_REUSEADDR so a restarted
 * server rebinds at once. Returns the descriptor, or -1 after a message on
 * stderr. */
int bench_listen(const char *text, int type, int nonblock);

/* Print "listening on ADDRESS" (the bound address, port 0 resolved) as the
 * first line of stdout and flush it, so bench/run can start servers on
 * port 0. Returns 0 or -1 after a message on stderr. */
int bench_announce(int fd);

/* Raise the soft RLIMIT_NOFILE to at least `want` descriptors (and the hard
 * limit too when allowed, as for root). Returns 0, or -1 after a message on
 * stderr when the limit stays below `want`. */
int bench_raise_nofile(rlim_t want);

/* TCP_NODELAY on a socket of `family` (the caller knows it: no
 * getsockname() per connection); a no-op returning 0 unless AF_INET or
 * AF_INET6. Every server and the load generator set it: a request-response
 * protocol does not want Nagle's delay, and a fair comparison needs all of
 * them alike. 0 or -1 with errno set. */
int bench_set_nodelay(int fd, int family);

/* Write all of buf to a blocking descriptor, across partial writes and
 * EINTR, without SIGPIPE for sockets. Returns 0 or -1 with errno set. */
int bench_write_all(int fd, const void *buf, size_t len);

/* The blocking echo loop of the thread- and fork-per-connection references:
 * read up to BENCH_BUFSZ bytes, write them back, until EOF or an error.
 * Returns 0 at EOF, -1 with errno set on an error. */
int bench_echo_blocking(int fd);

#endif /* BENCH_COMMON_H */
