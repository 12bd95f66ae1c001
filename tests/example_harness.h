/*
 * Running the example programs as separate processes, the way users run
 * them, and driving them with real clients (nc, socat, curl, Python).
 * Every wait is bounded.
 */
#ifndef SS_EXAMPLE_HARNESS_H
#define SS_EXAMPLE_HARNESS_H

#include "helpers.h"

typedef struct example {
    pid_t pid;
    char  log_path[128];    /* the server's stdout and stderr */
    char  address[SS_ADDRESS_STRLEN];  /* from "listening on ADDRESS" */
    int   status;           /* wait status once stopped */
    char  command[256];     /* its command line, for failure messages */
} example;

/* The path of an example program (built next to the tests). */
const char *example_bin(const char *name);

/* Start example `name` with argv[1..] = args (NULL-terminated) and wait
 * (WAIT_LIMIT at most) for its first line, "listening on ADDRESS". */
void example_start(example *e, const char *name, const char *const *args);

/* The model of this pass (see example_run_per_model): example_start
 * passes "--model example_model" to an example whose arguments name no
 * model. NULL (the first pass): the examples' own default, threading. */
extern const char *example_model;

/* Run the group once per pass: the examples' default model (threading),
 * then async mode, so that every test of an example run under threading
 * runs under async too. Returns the number of failures. */
int example_run_per_model(const char *group, const struct CMUnitTest *tests,
                          size_t count, CMFixtureFunction setup,
                          CMFixtureFunction teardown);
#define example_run_tests_per_model(tests, setup, teardown)                  \
    example_run_per_model(#tests, tests, sizeof tests / sizeof tests[0],     \
                          setup, teardown)

/* For a test that goes through the models itself: it runs in the first
 * pass, and skips in the others, which it would only repeat. */
void example_models_tested_once(void);

/* Send `sig`, wait (WAIT_LIMIT at most) and assert it exited with status 0.
 * Returns the server's log (stdout + stderr), to be freed. */
char *example_stop(example *e, int sig);

/* A cmocka teardown: kill (SIGKILL) any example a failed test left
 * running and remove its log. */
int example_teardown(void **state);

/* The log so far, to be freed. */
char *example_log(const example *e);

/* Run argv with `input` on stdin; capture stdout into *out (NUL-terminated,
 * to be freed; may be NULL) and stderr into *err (likewise). Kills the
 * command after `timeout` seconds. Returns its exit status, or -1 when it
 * was killed or could not run. */
int run_command(const char *const *argv, const char *input, size_t input_len,
                char **out, size_t *out_len, char **err, double timeout);

/* The same, but stdin stays open until the command has written a whole
 * line to stdout: a client that stops waiting for replies a fixed time
 * after its input ends (socat -t with UDP) gets its reply first. */
int run_command_holding_stdin(const char *const *argv, const char *input,
                              size_t input_len, char **out, char **err,
                              double timeout);

/* Is a program on PATH? */
bool have_program(const char *name);

/* A fresh empty directory under the temporary directory; remove_tree
 * deletes it and everything in it. */
char *make_temp_dir(const char *tag);
void  remove_tree(const char *path);

/* Read a whole file (NULL if missing); *len gets its size. */
char *read_file(const char *path, size_t *len);

/* A client of the examples' own protocols, connected to an address text. */
int connect_text(const char *address);

#endif
