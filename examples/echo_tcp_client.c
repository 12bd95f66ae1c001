/*
 * A client for the echo servers: sends each line of stdin (or, with
 * --count N, N lines "hello N") and prints each reply.
 *
 *   echo_tcp_client [--count N] [ADDRESS]
 */
#include "example.h"
#include "client.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    example_args args = {.address = "127.0.0.1:8080", .count = -1};
    char line[1024], reply[1024];
    int fd, i;

    example_parse(argc, argv, &args, "count",
                  "echo_tcp_client [--count N] [ADDRESS]");
    if ((fd = client_open(args.address, SOCK_STREAM)) < 0)
        return 1;
    for (i = 0; client_next_line(&args, i, line, sizeof line); i++) {
        size_t len = strlen(line);

        if (client_send(fd, line, len) < 0 ||
            client_recv_exact(fd, reply, len) < 0) {
            client_close(fd);
            return 1;
        }
        printf("%.*s", (int)len, reply);
        fflush(stdout);
    }
    client_close(fd);
    return 0;
}
