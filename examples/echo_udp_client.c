/*
 * A UDP client for echo_udp_server: each line of stdin (or --count N
 * hellos) as one datagram; prints each reply.
 *
 *   echo_udp_client [--count N] [ADDRESS]
 */
#include "client.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    example_args args = {.address = "127.0.0.1:8080", .count = -1};
    char line[1024], reply[2048];
    int fd, i;

    example_parse(argc, argv, &args, "count",
                  "echo_udp_client [--count N] [ADDRESS]");
    if ((fd = client_open(args.address, SOCK_DGRAM)) < 0)
        return 1;
    for (i = 0; client_next_line(&args, i, line, sizeof line); i++) {
        ssize_t n;

        if (client_send(fd, line, strlen(line)) < 0)
            return 1;
        if ((n = recv(fd, reply, sizeof reply, 0)) < 0) {
            perror("recv");
            client_close(fd);
            return 1;
        }
        printf("%.*s", (int)n, reply);
        fflush(stdout);
    }
    client_close(fd);
    return 0;
}
