/*
 * The uppercase echo server on a Unix socket, stream or (--datagram)
 * datagram. The socket file is removed when the server stops.
 *
 *   echo_unix_server [--datagram]
 *                    [--model sync|threading|forking|pool|prefork|async]
 *                    [--workers N] [--proxy] [--max-connections N] [PATH]
 *
 * --proxy (stream only): every connection begins with a PROXY protocol
 * header, as from HAProxy's send-proxy to a Unix socket server.
 *
 * The handlers are those of echo_tcp_server and echo_udp_server, and run
 * unchanged in async mode (see there).
 *
 * PATH may name an inherited socket instead: fd:N, or systemd for socket
 * activation (systemd-socket-activate -l /tmp/echo.sock echo_unix_server
 * systemd); the server then leaves its file in place, not having made it.
 */
#include "example.h"

#include <ctype.h>
#include <stdio.h>

static int handle_stream(ss_request *request, const ss_address *client,
                         ss_server *server)
{
    char data[1024], who[SS_ADDRESS_STRLEN];
    ssize_t n, i;
    int err;

    (void)server;
    ss_address_format(client, who, sizeof who);
    while ((n = ss_recv(request, data, sizeof data)) > 0) {
        printf("%s sent: %.*s%s", who, (int)n, data,
               data[n - 1] == '\n' ? "" : "\n");
        fflush(stdout);
        for (i = 0; i < n; i++)
            data[i] = (char)toupper((unsigned char)data[i]);
        if ((err = ss_sendall(request, data, (size_t)n)) < 0)
            return err;
    }
    return (int)n;
}

/* The reply is made a piece at a time: in async mode the handler runs on
 * a coroutine's stack (64 KiB by default), too small for a copy of a whole
 * datagram beside everything else. ss_write collects the pieces into one
 * reply datagram, sent after the handler returns. */
static int handle_datagram(ss_request *request, const ss_address *client,
                           ss_server *server)
{
    char who[SS_ADDRESS_STRLEN], piece[1024];
    const char *packet;
    size_t len, at, n, i;

    (void)server;
    packet = ss_request_packet(request, &len);
    printf("%s sent: %.*s%s", ss_address_format(client, who, sizeof who),
           (int)len, packet, len && packet[len - 1] == '\n' ? "" : "\n");
    fflush(stdout);
    for (at = 0; at < len; at += n) {
        n = len - at < sizeof piece ? len - at : sizeof piece;
        for (i = 0; i < n; i++)
            piece[i] = (char)toupper((unsigned char)packet[at + i]);
        if (ss_write(request, piece, n) < 0)
            return -EIO;
    }
    return 0;
}

int main(int argc, char **argv)
{
    example_args args = {.address = "/tmp/echo.sock"};
    ss_handler handler = {.handle = handle_stream};
    ss_server_options options;
    ss_server *server;

    example_parse(argc, argv, &args, "model datagram proxy max-connections",
                  "echo_unix_server [--datagram] [--model " EXAMPLE_MODELS
                  "] [--workers N]\n"
                  "                 [--proxy] [--max-connections N] [PATH]\n"
                  EXAMPLE_WORKERS_FORMS "\n" EXAMPLE_PROXY_FORMS
                  " Not with --datagram.\n" EXAMPLE_MAX_CONNECTIONS_FORMS
                  "\n" EXAMPLE_PATH_FORMS);
    options = example_server_options(&args, NULL);
    if (args.datagram) {
        handler.handle = handle_datagram;
        server = ss_unix_datagram_server_new(args.address, &handler, &options);
    } else {
        server = ss_unix_stream_server_new(args.address, &handler, &options);
    }
    if (!server)
        return example_fail("echo_unix_server");
    if (!(server = example_apply_model(server, &args)))
        return 1;
    return example_serve(server);
}
