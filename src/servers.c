/*
 * The twelve public constructors: four server types, each synchronous,
 * threading or forking.
 */
#include "internal.h"

static ss_server *with_model(ss_server *s, int (*use)(ss_server *),
                             const char *func)
{
    int err;

    if (!s)
        return NULL;
    if ((err = use(s)) < 0) {
        ss__activation_disown(s);   /* an inherited socket stays open */
        ss_server_free(s);
        ss__error(err, "%s", func);
        errno = -err;
        return NULL;
    }
    return s;
}

#define SS__CONSTRUCTORS(kind, type)                                         \
    ss_server *ss_##kind##_server_new(const char *address,                   \
                                      const ss_handler *handler,             \
                                      const ss_server_options *options)      \
    {                                                                        \
        return ss__server_new(&type, #kind "_server_new", address, handler,  \
                              options);                                      \
    }                                                                        \
    ss_server *ss_threading_##kind##_server_new(const char *address,         \
                                                const ss_handler *handler,   \
                                                const ss_server_options *o)  \
    {                                                                        \
        return with_model(ss__server_new(&type, "threading_" #kind           \
                                         "_server_new", address, handler, o),\
                          ss_server_use_threading,                           \
                          "threading_" #kind "_server_new");                 \
    }                                                                        \
    ss_server *ss_forking_##kind##_server_new(const char *address,           \
                                              const ss_handler *handler,     \
                                              const ss_server_options *o)    \
    {                                                                        \
        return with_model(ss__server_new(&type, "forking_" #kind             \
                                         "_server_new", address, handler, o),\
                          ss_server_use_forking,                             \
                          "forking_" #kind "_server_new");                   \
    }

SS__CONSTRUCTORS(tcp, ss__tcp_type)
SS__CONSTRUCTORS(udp, ss__udp_type)
SS__CONSTRUCTORS(unix_stream, ss__unix_stream_type)
SS__CONSTRUCTORS(unix_datagram, ss__unix_datagram_type)
