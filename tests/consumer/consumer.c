/* A small uppercase echo server and one client round trip, built against
 * the installed libsockserver. Prints "consumer ok" on success. */
#include <sockserver.h>

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int upper(ss_request *r, const ss_address *client, ss_server *server)
{
    char line[256];
    ssize_t n, i;

    (void)client, (void)server;
    while ((n = ss_readline(r, line, sizeof line)) > 0) {
        for (i = 0; i < n; i++)
            line[i] = (char)toupper((unsigned char)line[i]);
        if (ss_sendall(r, line, (size_t)n) < 0)
            return -1;
    }
    return (int)n;
}

static void *serve(void *server)
{
    ss_serve_forever(server, 0.5);
    return NULL;
}

int main(void)
{
    ss_handler handler = {.handle = upper};
    ss_server *server = ss_threading_tcp_server_new("127.0.0.1:0", &handler,
                                                    NULL);
    const ss_address *a;
    char reply[16] = "";
    pthread_t t;
    int fd;

    if (!server) {
        fprintf(stderr, "consumer: %s\n", ss_last_error());
        return 1;
    }
    pthread_create(&t, NULL, serve, server);
    a = ss_server_address(server);
    fd = socket(a->storage.ss_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)&a->storage, a->len) < 0 ||
        write(fd, "ping\n", 5) != 5 || read(fd, reply, 5) != 5) {
        perror("consumer client");
        return 1;
    }
    close(fd);
    ss_server_shutdown(server);
    pthread_join(t, NULL);
    ss_server_free(server);
    if (strncmp(reply, "PING\n", 5) != 0) {
        fprintf(stderr, "consumer: got '%s'\n", reply);
        return 1;
    }
    printf("consumer ok (libsockserver %s)\n", ss_version());
    return 0;
}
