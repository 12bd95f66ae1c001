/*
 * The uppercase echo server of the original articles: every chunk a client
 * sends comes back in capitals, and the server logs "<client> sent: <data>".
 *
 *   echo_tcp_server [--model sync|threading|forking|pool|prefork|async]
 *                   [--workers N] [--proxy] [--max-connections N] [ADDRESS]
 *
 * --proxy: behind HAProxy (send-proxy or send-proxy-v2), every connection
 * begins with a PROXY protocol header, and "<client>" is the address it
 * carries. --max-connections N: at most N clients served at once.
 *
 * Every model runs the same handler: in async mode ss_recv and ss_sendall
 * yield to other connections instead of blocking, and the one other call,
 * a short log line to stdout, is fine on an event loop (stdout is a file or
 * a terminal; a pipe nobody reads would stall every model alike).
 *
 * ADDRESS may name an inherited socket: fd:N, or systemd for socket
 * activation, as in
 *   systemd-socket-activate -l 127.0.0.1:8080 echo_tcp_server systemd
 */
#include "example.h"

#include <ctype.h>
#include <stdio.h>

static int handle(ss_request *request, const ss_address *client,
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
    return (int)n;  /* 0 at EOF, or the error */
}

int main(int argc, char **argv)
{
    example_args args = {.address = "127.0.0.1:8080"};
    ss_handler handler = {.handle = handle};
    ss_server_options options;
    ss_server *server;

    example_parse(argc, argv, &args, "model proxy max-connections",
                  "echo_tcp_server [--model " EXAMPLE_MODELS "] "
                  "[--workers N] [--proxy]\n"
                  "                [--max-connections N] [ADDRESS]\n"
                  EXAMPLE_WORKERS_FORMS "\n" EXAMPLE_PROXY_FORMS "\n"
                  EXAMPLE_MAX_CONNECTIONS_FORMS "\n" EXAMPLE_ADDRESS_FORMS);
    options = example_server_options(&args, NULL);
    if (!(server = ss_tcp_server_new(args.address, &handler, &options)))
        return example_fail("echo_tcp_server");
    if (!(server = example_apply_model(server, &args)))
        return 1;
    return example_serve(server);
}
