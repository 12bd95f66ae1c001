/*
 * The uppercase echo server over UDP: one datagram, one reply.
 *
 *   echo_udp_server [--model sync|threading|forking|pool|prefork|async]
 *                   [--workers N] [--max-connections N] [ADDRESS]
 *
 * In async mode each datagram is a coroutine on the loop, which receives
 * them in batches; the handler never waits (the reply goes out after it
 * returns), so it is the same code in every model.
 *
 * ADDRESS may name an inherited socket: fd:N, or systemd for socket
 * activation, as in
 *   systemd-socket-activate -d -l 127.0.0.1:8080 echo_udp_server systemd
 */
#include "example.h"

#include <ctype.h>
#include <stdio.h>

static int handle(ss_request *request, const ss_address *client,
                  ss_server *server)
{
    char who[SS_ADDRESS_STRLEN];
    const char *packet;
    size_t len, i;
    int err;

    (void)server;
    packet = ss_request_packet(request, &len);
    printf("%s sent: %.*s%s", ss_address_format(client, who, sizeof who),
           (int)len, packet, len && packet[len - 1] == '\n' ? "" : "\n");
    fflush(stdout);
    for (i = 0; i < len; i++) {
        char c = (char)toupper((unsigned char)packet[i]);

        if ((err = ss_write(request, &c, 1)) < 0)
            return err;
    }
    return 0;   /* the reply goes out after finish */
}

int main(int argc, char **argv)
{
    example_args args = {.address = "127.0.0.1:8080"};
    ss_handler handler = {.handle = handle};
    ss_server_options options;
    ss_server *server;

    example_parse(argc, argv, &args, "model max-connections",
                  "echo_udp_server [--model " EXAMPLE_MODELS "] "
                  "[--workers N] [--max-connections N]\n"
                  "                [ADDRESS]\n" EXAMPLE_WORKERS_FORMS "\n"
                  EXAMPLE_MAX_CONNECTIONS_FORMS "\n" EXAMPLE_ADDRESS_FORMS);
    options = example_server_options(&args, NULL);
    if (!(server = ss_udp_server_new(args.address, &handler, &options)))
        return example_fail("echo_udp_server");
    if (!(server = example_apply_model(server, &args)))
        return 1;
    return example_serve(server);
}
