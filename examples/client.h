/* Small blocking client helpers shared by the example clients. */
#ifndef SS_EXAMPLE_CLIENT_H
#define SS_EXAMPLE_CLIENT_H

#include "example.h"

#include <stddef.h>
#include <sys/socket.h>

/* Connect a socket of `type` to the address text (host:port or a Unix
 * path). A Unix datagram client binds a temporary path of its own so it can
 * get replies; client_close removes it. Prints why and returns -1 on
 * failure. Sockets get a 10 s receive timeout. */
int  client_open(const char *address, int type);
void client_close(int fd);
/* The i-th line to send: "hello i\n" with --count, else a line of stdin.
 * false when there is no more. */
bool client_next_line(const example_args *args, int i, char *buf,
                      size_t size);
int  client_send(int fd, const void *buf, size_t len);
int  client_recv_exact(int fd, void *buf, size_t len);

#endif
