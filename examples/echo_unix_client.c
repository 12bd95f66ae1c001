/*
 * A client for echo_unix_server: stream by default, --datagram for the
 * datagram server (it binds a temporary path to get replies).
 *
 *   echo_unix_client [--datagram] [--count N] [PATH]
 */
#include "client.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    example_args args = {.address = "/tmp/echo.sock", .count = -1};
    char line[1024], reply[2048];
    int fd, i;

    example_parse(argc, argv, &args, "count datagram",
                  "echo_unix_client [--datagram] [--count N] [PATH]");
    if ((fd = client_open(args.address, args.datagram ? SOCK_DGRAM
                                                       : SOCK_STREAM)) < 0)
        return 1;
    for (i = 0; client_next_line(&args, i, line, sizeof line); i++) {
        size_t len = strlen(line);
        ssize_t n = (ssize_t)len;

        if (client_send(fd, line, len) < 0)
            goto fail;
        if (args.datagram ? (n = recv(fd, reply, sizeof reply, 0)) < 0
                          : client_recv_exact(fd, reply, len) < 0)
            goto fail;
        printf("%.*s", (int)n, reply);
        fflush(stdout);
    }
    client_close(fd);
    return 0;
fail:
    client_close(fd);
    return 1;
}
