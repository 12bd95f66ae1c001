/*
 * A chat room: the articles' wish for handlers that talk to each other.
 * Connect with nc; the first line a client sends is its name, every later
 * line goes to everyone else as "alice: hi", and the room hears "* alice
 * joined" and "* alice left".
 *
 *   chat_server [--model threading|pool|async|sync] [--workers N] [--proxy]
 *               [--max-connections N] [ADDRESS]
 *
 * Each client's handler lives as long as its connection, so the model must
 * run handlers side by side in one process: threading, a pool with a
 * worker per client, or async mode, where every client is a coroutine and
 * one event loop (or --workers N loops) holds the whole room;
 * ss_server_broadcast reaches the handlers of every loop, but not those in
 * other processes (forking, prefork). A client that stops reading does not
 * stall the room: when it cannot take a message within a second, the
 * library drops its connection.
 */
#include "example.h"

#include <stdio.h>
#include <string.h>

#define NAME_MAX_LEN 32
#define LINE_MAX_LEN 1024

typedef struct member {
    char name[NAME_MAX_LEN + 1];
} member;

/* Strip the line ending and control characters; false when nothing is
 * left. */
static bool clean(char *line)
{
    char *w = line;
    const char *r;

    for (r = line; *r; r++)
        if ((unsigned char)*r >= 0x20 && *r != 0x7f)
            *w++ = *r;
    *w = '\0';
    return w != line;
}

static void announce(ss_server *server, ss_request *from, const char *fmt,
                     const char *name, const char *text)
{
    char message[NAME_MAX_LEN + LINE_MAX_LEN + 8];
    int n = snprintf(message, sizeof message, fmt, name, text);

    if (n > 0)
        ss_server_broadcast(server, message, strlen(message), from);
}

static int handle(ss_request *request, const ss_address *client,
                  ss_server *server)
{
    member *me = ss_request_state(request);
    char line[LINE_MAX_LEN], who[SS_ADDRESS_STRLEN];
    ssize_t n;

    n = ss_readline(request, line, sizeof line);
    if (n <= 0)
        return (int)n;      /* gone before saying a name */
    if (!clean(line))
        strcpy(line, "anonymous");
    snprintf(me->name, sizeof me->name, "%.*s", NAME_MAX_LEN, line);
    announce(server, request, "* %s joined%s\n", me->name, "");
    printf("%s joined from %s\n", me->name,
           ss_address_format(client, who, sizeof who));
    fflush(stdout);
    while ((n = ss_readline(request, line, sizeof line)) > 0)
        if (clean(line))
            announce(server, request, "%s: %s\n", me->name, line);
    announce(server, request, "* %s left%s\n", me->name, "");
    printf("%s left\n", me->name);
    fflush(stdout);
    return n < 0 && n != -ECONNRESET ? (int)n : 0;
}

int main(int argc, char **argv)
{
    example_args args = {.address = "127.0.0.1:8080"};
    ss_handler handler = {.handle = handle, .state_size = sizeof(member)};
    ss_server_options options;
    ss_server *server;
    const char *usage = "chat_server [--model threading|pool|async|sync] "
                        "[--workers N] [--proxy]\n"
                        "            [--max-connections N] [ADDRESS]\n"
                        EXAMPLE_WORKERS_FORMS "\n" EXAMPLE_PROXY_FORMS "\n"
                        EXAMPLE_MAX_CONNECTIONS_FORMS "\n"
                        EXAMPLE_ADDRESS_FORMS;

    example_parse(argc, argv, &args, "model proxy max-connections", usage);
    options = example_server_options(&args, NULL);
    if (args.model && (strcmp(args.model, "forking") == 0 ||
                       strcmp(args.model, "prefork") == 0)) {
        fprintf(stderr, "chat_server: --model %s runs handlers in separate "
                "processes, which cannot broadcast to each other; use "
                "threading, pool or async\n", args.model);
        return 2;
    }
    if (!(server = ss_tcp_server_new(args.address, &handler, &options)))
        return example_fail("chat_server");
    if (!(server = example_apply_model(server, &args)))
        return 1;
    return example_serve(server);
}
