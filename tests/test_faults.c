/*
 * Fault injection: every allocation and every resource-creating system call
 * the library makes is made to fail, in turn, site by site, and the test
 * checks what follows: no crash, nothing leaked (memory, descriptors,
 * threads, child processes, socket files), the failure reported
 * (handle_error, the return of ss_serve_forever or of a mix-in, a
 * constructor's NULL with errno and ss_last_error(), or a line on stderr
 * when no request was there to report it to), and the server then serving
 * the next request normally.
 *
 * How: this program links the library's objects itself, with the linker's
 * --wrap for each function below (tests/CMakeLists.txt), so the shipped
 * library is untouched. Each __wrap_X looks at its return address: a call
 * made from the library's code (its functions are found in the
 * executable's symbol table: the static functions of its source files and
 * the ss_* globals) is a fault site, named by that return address and the
 * library frame that called the function making the call (so the
 * eventfd that ss__wakeup_open makes for a server and the one it makes
 * for an event loop are two sites). A recording run of a scenario collects
 * the sites it reaches and how often; then each site's first and second
 * call (a third for thread and process starts) fails in a run of its
 * own, and pairs of sites fail in one request. The state lives in shared
 * memory, so forked children (forking handlers, prefork workers) fail and
 * record like the parent.
 *
 * Memory is accounted for by the wrappers themselves: every block and
 * mapping the library allocates in a run must be released by the end of
 * that run (and AddressSanitizer checks the whole program at exit).
 *
 * SS_FAULTS_VERBOSE=1 lists every run; SS_FAULTS_SCENARIO=NAME runs the
 * scenarios whose name contains NAME; SS_FAULTS_HANG=stop freezes a run
 * that hung for a debugger (see on_alarm).
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <unwind.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#ifndef SS_LIB_OBJECTS
#error "SS_LIB_OBJECTS: the library's object files, colon-separated"
#endif

/* ---- the wrapped functions ------------------------------------------------ */

#define FUNCTIONS(X)                                                       \
    X(malloc, ENOMEM) X(calloc, ENOMEM) X(realloc, ENOMEM)                 \
    X(strdup, ENOMEM) X(socket, EMFILE) X(accept4, EMFILE)                 \
    X(eventfd, EMFILE) X(pipe2, EMFILE) X(epoll_create1, EMFILE)           \
    X(epoll_ctl, ENOMEM) X(timerfd_create, EMFILE) X(mmap, ENOMEM)         \
    X(mprotect, ENOMEM) X(pthread_create, EAGAIN) X(fork, EAGAIN)          \
    X(setsockopt, ENOBUFS) X(send, ENOBUFS) X(sendto, ENOBUFS)             \
    X(recvmsg, ENOMEM) X(recvmmsg, ENOMEM) X(sigaltstack, ENOMEM)          \
    X(sigaction, EINVAL) X(pidfd_open, EMFILE) X(bind, ENOMEM)             \
    X(listen, ENOBUFS) X(getsockname, ENOBUFS)                             \
    X(pthread_key_create, EAGAIN)

enum {
#define X(f, e) F_##f,
    FUNCTIONS(X)
#undef X
    F_COUNT
};

static const char *const fn_name[] = {
#define X(f, e) #f,
    FUNCTIONS(X)
#undef X
};

static const int fn_errno[] = {
#define X(f, e) e,
    FUNCTIONS(X)
#undef X
};

/* ---- the library's code: which return addresses are its ------------------ */

typedef struct func {
    uintptr_t start, end;
    const char *name;
    const char *file;       /* the library's source file, NULL: not its */
} func;

static func *funcs;
static size_t nfuncs;
static uintptr_t load_base;
static char *symbol_file;   /* the executable's image: names point into it */

/* The library's global functions (hidden: local in the executable, and
 * listed apart from their files' locals) and the files defining them,
 * from its objects' symbol tables. */
typedef struct global {
    char name[96];
    char file[32];
} global;

static global *globals;
static size_t nglobals;

static int find_base(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size, (void)arg;
    load_base = info->dlpi_addr;    /* the first object is the program */
    return 1;
}

static int cmp_func(const void *a, const void *b)
{
    const func *x = a, *y = b;

    return x->start < y->start ? -1 : x->start > y->start;
}

/* "/x/y/server.c.o" -> "server.c" */
static void object_source(const char *path, size_t len, char *out,
                          size_t size)
{
    const char *base = path;
    size_t i, n;

    for (i = 0; i < len; i++)
        if (path[i] == '/')
            base = path + i + 1;
    n = len - (size_t)(base - path);
    if (n > 2 && strncmp(base + n - 2, ".o", 2) == 0)
        n -= 2;
    snprintf(out, size, "%.*s", (int)n, base);
}

static void load_globals(void)
{
    const char *list = SS_LIB_OBJECTS;
    size_t cap = 0;

    while (*list) {
        const char *end = strchr(list, ':');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        char cmd[4200], file[32], line[512];
        FILE *f;

        object_source(list, len, file, sizeof file);
        snprintf(cmd, sizeof cmd, "nm -P --defined-only '%.*s' 2>/dev/null", (int)len,
                 list);
        if ((f = popen(cmd, "r"))) {
            while (fgets(line, sizeof line, f)) {
                char name[96], type;

                if (sscanf(line, "%95s %c", name, &type) != 2 ||
                    type != 'T')
                    continue;
                if (nglobals == cap) {
                    cap = cap ? cap * 2 : 256;
                    globals = realloc(globals, cap * sizeof *globals);
                }
                snprintf(globals[nglobals].name, sizeof globals->name,
                         "%s", name);
                snprintf(globals[nglobals].file, sizeof globals->file,
                         "%s", file);
                nglobals++;
            }
            pclose(f);
        }
        if (!end)
            break;
        list = end + 1;
    }
    if (nglobals == 0) {
        fprintf(stderr, "test_faults: no symbols from the library's "
                "objects (nm)\n");
        abort();
    }
}

/* The library's file named like `path`, or NULL. */
static const char *lib_file(const char *path)
{
    const char *base = strrchr(path, '/');
    size_t i;

    base = base ? base + 1 : path;
    for (i = 0; i < nglobals; i++)
        if (strcmp(globals[i].file, base) == 0)
            return globals[i].file;
    return NULL;
}

static const char *global_file(const char *name)
{
    size_t i;

    for (i = 0; i < nglobals; i++)
        if (strcmp(globals[i].name, name) == 0)
            return globals[i].file;
    return NULL;
}

/* Read the executable's .symtab: every function, and the library's
 * source file of each that is the library's. */
static void load_symbols(void)
{
    FILE *f = fopen("/proc/self/exe", "rb");
    long size;
    const Elf64_Ehdr *eh;
    const Elf64_Shdr *sh;
    const char *file = "";
    int i;

    load_globals();
    dl_iterate_phdr(find_base, NULL);
    if (!f || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) <= 0)
        abort();
    symbol_file = malloc((size_t)size);
    rewind(f);
    if (!symbol_file || fread(symbol_file, 1, (size_t)size, f) != (size_t)size)
        abort();
    fclose(f);
    eh = (const Elf64_Ehdr *)symbol_file;
    sh = (const Elf64_Shdr *)(symbol_file + eh->e_shoff);
    for (i = 0; i < eh->e_shnum; i++) {
        const Elf64_Sym *sym;
        const char *str;
        size_t j, n;

        if (sh[i].sh_type != SHT_SYMTAB)
            continue;
        sym = (const Elf64_Sym *)(symbol_file + sh[i].sh_offset);
        str = symbol_file + sh[sh[i].sh_link].sh_offset;
        n = sh[i].sh_size / sizeof *sym;
        funcs = calloc(n, sizeof *funcs);
        for (j = 0; j < n; j++) {
            const char *name = str + sym[j].st_name;
            int type = ELF64_ST_TYPE(sym[j].st_info);
            func *fn;

            if (type == STT_FILE) {
                file = name;
                continue;
            }
            if (type != STT_FUNC || sym[j].st_shndx == SHN_UNDEF ||
                sym[j].st_value == 0)
                continue;
            fn = &funcs[nfuncs++];
            fn->start = load_base + sym[j].st_value;
            fn->end = fn->start + (sym[j].st_size ? sym[j].st_size : 1);
            fn->name = name;
            /* A global of the library's objects, else a local of one of
             * its files (the test's own functions are not named ss_*). */
            fn->file = strncmp(name, "ss_", 3) == 0 ? global_file(name)
                                                    : NULL;
            if (!fn->file && ELF64_ST_BIND(sym[j].st_info) == STB_LOCAL)
                fn->file = lib_file(file);
        }
        break;
    }
    if (!nfuncs) {
        fprintf(stderr, "test_faults: the executable has no symbol table\n");
        abort();
    }
    qsort(funcs, nfuncs, sizeof *funcs, cmp_func);
}

static const func *func_at(uintptr_t addr)
{
    size_t lo = 0, hi = nfuncs;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (funcs[mid].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || addr >= funcs[lo - 1].end)
        return NULL;
    return &funcs[lo - 1];
}

/* The library's function a return address is in (ra - 1 is in the call),
 * or NULL. */
static const func *lib_func(uintptr_t ra)
{
    const func *fn = ra ? func_at(ra - 1) : NULL;

    return fn && fn->file ? fn : NULL;
}

static bool lib_address(uintptr_t ra)
{
    return lib_func(ra) != NULL;
}

/* ---- shared state: sites, the plan, what the handlers saw --------------- */

#define MAX_SITES 1024
#define MAX_PLAN  2
#define CHAIN     8

typedef struct site {
    uintptr_t  ra, ra2;         /* the call, and the first library frame
                                   above it in another file */
    uintptr_t  chain[CHAIN];    /* the library frames from ra up */
    int        fn;
    atomic_int hits;            /* calls in this run */
    atomic_int first;           /* order of its first call in this run */
    atomic_int window;          /* window of its first call */
    atomic_bool in_child;       /* reached in a forked process */
} site;

enum { MODE_OFF, MODE_RECORD, MODE_ARMED };

typedef struct shared {
    atomic_flag lock;
    atomic_int  nsites;
    site        sites[MAX_SITES];
    atomic_int  mode;
    atomic_int  window;         /* which part of the scenario runs */
    atomic_int  seq;
    int         plan_site[MAX_PLAN], plan_nth[MAX_PLAN], plan_len;
    atomic_int  injected[MAX_PLAN];
    atomic_int  handle_errors;  /* handle_error calls, any process */
    atomic_int  last_error;
} shared;

static shared *sh;
static pid_t main_pid;
static pid_t accounting_pid;    /* whose allocations are tracked: the test's,
                                   or a systemd run's own process */
static _Thread_local bool in_hook;

/* The library's frames from the return address `ra` up. */
typedef struct unwind_state {
    uintptr_t ra;
    uintptr_t *chain;
    int n, frames;
} unwind_state;

static _Unwind_Reason_Code unwind_step(struct _Unwind_Context *ctx, void *arg)
{
    unwind_state *u = arg;
    uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);

    if (++u->frames > 32 || u->n == CHAIN)
        return _URC_NORMAL_STOP;
    if (u->n == 0 && ip != u->ra)
        return _URC_NO_REASON;  /* the wrapper's own frames */
    if (!lib_address(ip))
        return _URC_NORMAL_STOP;
    u->chain[u->n++] = ip;
    return _URC_NO_REASON;
}

/* Fill chain (CHAIN entries, 0 after the last) and return the site's
 * second key: the first frame in a file other than ra's (so that helpers
 * of one file, inlined or not, make no difference), or 0. */
static uintptr_t unwind(uintptr_t ra, uintptr_t *chain)
{
    unwind_state u = {.ra = ra, .chain = chain};
    const func *first = lib_func(ra);
    int i;

    memset(chain, 0, CHAIN * sizeof *chain);
    _Unwind_Backtrace(unwind_step, &u);
    if (u.n == 0)
        chain[u.n++] = ra;
    for (i = 1; i < u.n; i++)
        if (strcmp(lib_func(chain[i])->file, first->file) != 0)
            return chain[i];
    return 0;
}

static int site_index(int fn, uintptr_t ra, uintptr_t ra2,
                      const uintptr_t *chain)
{
    int i, n = atomic_load(&sh->nsites);

    for (i = 0; i < n; i++)
        if (sh->sites[i].ra == ra && sh->sites[i].ra2 == ra2 &&
            sh->sites[i].fn == fn)
            return i;
    while (atomic_flag_test_and_set(&sh->lock))
        ;
    n = atomic_load(&sh->nsites);
    for (i = 0; i < n; i++)
        if (sh->sites[i].ra == ra && sh->sites[i].ra2 == ra2 &&
            sh->sites[i].fn == fn)
            break;
    if (i == n && n < MAX_SITES) {
        sh->sites[n].ra = ra;
        sh->sites[n].ra2 = ra2;
        sh->sites[n].fn = fn;
        memcpy(sh->sites[n].chain, chain, sizeof sh->sites[n].chain);
        atomic_store(&sh->nsites, n + 1);
    }
    atomic_flag_clear(&sh->lock);
    return i < MAX_SITES ? i : -1;
}

/* Called by every wrapper: count the call if the library made it, and say
 * whether it is to fail. */
static bool inject(int fn, void *ret)
{
    uintptr_t ra = (uintptr_t)ret, ra2, chain[CHAIN];
    int mode, i, k, n;
    bool fail = false;
    site *st;

    if (!sh ||
        (mode = atomic_load_explicit(&sh->mode, memory_order_acquire)) ==
        MODE_OFF || in_hook || !lib_address(ra))
        return false;
    in_hook = true;
    ra2 = unwind(ra, chain);
    if ((i = site_index(fn, ra, ra2, chain)) >= 0) {
        int none = 0;

        st = &sh->sites[i];
        n = atomic_fetch_add(&st->hits, 1) + 1;
        if (atomic_compare_exchange_strong(&st->first, &none,
                                           atomic_fetch_add(&sh->seq, 1) + 1))
            atomic_store(&st->window, atomic_load(&sh->window));
        if (getpid() != main_pid)
            atomic_store(&st->in_child, true);
        if (mode == MODE_ARMED)
            for (k = 0; k < sh->plan_len; k++)
                if (sh->plan_site[k] == i && sh->plan_nth[k] == n) {
                    atomic_fetch_add(&sh->injected[k], 1);
                    fail = true;
                }
    }
    in_hook = false;
    if (fail)
        errno = fn_errno[fn];
    return fail;
}

/* ---- what the library allocates: every block and mapping of a run -------- */

#define TRACK_SLOTS (1 << 16)

typedef struct block {
    uintptr_t p;            /* 0 empty, 1 deleted */
    uintptr_t ra, ra2;
    int       fn, run;
} block;

static block tracked[TRACK_SLOTS];
static atomic_flag track_lock = ATOMIC_FLAG_INIT;
static atomic_int run_id;   /* 0: not tracking */

static bool tracking(void)
{
    return atomic_load_explicit(&run_id, memory_order_relaxed) != 0 &&
           getpid() == accounting_pid;
}

static size_t slot_of(uintptr_t p)
{
    return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> 48) & (TRACK_SLOTS - 1);
}

static void track_add(void *p, int fn, void *ret)
{
    uintptr_t ra = (uintptr_t)ret, ra2, chain[CHAIN];
    size_t i;

    if (!p || !tracking() || in_hook || !lib_address(ra))
        return;
    in_hook = true;
    ra2 = unwind(ra, chain);
    while (atomic_flag_test_and_set(&track_lock))
        ;
    for (i = slot_of((uintptr_t)p); tracked[i].p > 1; i = (i + 1) & (TRACK_SLOTS - 1))
        ;
    tracked[i] = (block){(uintptr_t)p, ra, ra2, fn,
                         atomic_load(&run_id)};
    atomic_flag_clear(&track_lock);
    in_hook = false;
}

static void track_remove(void *p)
{
    size_t i;

    if (!p || !tracking())
        return;
    while (atomic_flag_test_and_set(&track_lock))
        ;
    for (i = slot_of((uintptr_t)p); tracked[i].p != 0; i = (i + 1) & (TRACK_SLOTS - 1))
        if (tracked[i].p == (uintptr_t)p) {
            tracked[i].p = 1;
            break;
        }
    atomic_flag_clear(&track_lock);
}

/* ---- forks and AddressSanitizer's allocator ------------------------------ */

/* glibc's malloc takes its locks around fork, so a child never inherits
 * one held by another thread. AddressSanitizer's allocator (GCC 12's and
 * Clang 14's runtimes) does not: a library fork (a prefork worker's start
 * or restart, a forking handler) taken while the test's own thread is
 * inside malloc or free leaves the child blocked for ever on that lock,
 * at its first allocation. Here every wrapped allocation runs under the
 * gate's read side and the fork under its write side, so no allocation is
 * in progress in this process when it forks. Only in the ASan build: the
 * gate would order the threads' allocations for ThreadSanitizer and hide
 * the races it is there to find. */
#if defined(__SANITIZE_ADDRESS__)
static pthread_rwlock_t heap_gate;

static void gate_init(void)
{
    pthread_rwlockattr_t a;

    pthread_rwlockattr_init(&a);
    /* a fork waits for the allocations in progress, not for all to come */
    pthread_rwlockattr_setkind_np(&a,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&heap_gate, &a);
    pthread_rwlockattr_destroy(&a);
}

#define GATE_ENTER() pthread_rwlock_rdlock(&heap_gate)
#define GATE_LEAVE() pthread_rwlock_unlock(&heap_gate)
#define FORK_ENTER() pthread_rwlock_wrlock(&heap_gate)
/* The child's only thread holds the write side under the parent's thread
 * id: it starts a new gate. */
#define FORK_LEAVE(pid) ((pid) == 0 ? gate_init() : (void)GATE_LEAVE())
#else
static void gate_init(void) {}
#define GATE_ENTER() ((void)0)
#define GATE_LEAVE() ((void)0)
#define FORK_ENTER() ((void)0)
#define FORK_LEAVE(pid) ((void)(pid))
#endif

/* ---- the wrappers ------------------------------------------------------- */

#define RA __builtin_return_address(0)

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void  __real_free(void *p);
char *__real_strdup(const char *s);
int   __real_socket(int domain, int type, int protocol);
int   __real_accept4(int fd, struct sockaddr *a, socklen_t *len, int flags);
int   __real_eventfd(unsigned int initval, int flags);
int   __real_pipe2(int fds[2], int flags);
int   __real_epoll_create1(int flags);
int   __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int   __real_timerfd_create(int clock, int flags);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
int   __real_munmap(void *addr, size_t len);
int   __real_mprotect(void *addr, size_t len, int prot);
int   __real_pthread_create(pthread_t *t, const pthread_attr_t *a,
                            void *(*fn)(void *), void *arg);
pid_t __real_fork(void);
int   __real_setsockopt(int fd, int level, int name, const void *v,
                        socklen_t len);
ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __real_sendto(int fd, const void *buf, size_t len, int flags,
                      const struct sockaddr *a, socklen_t alen);
ssize_t __real_recvmsg(int fd, struct msghdr *msg, int flags);
int   __real_recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags,
                      struct timespec *t);
int   __real_sigaltstack(const stack_t *ss, stack_t *old);
int   __real_sigaction(int sig, const struct sigaction *sa,
                       struct sigaction *old);
long  __real_syscall(long number, ...);
int   __real_bind(int fd, const struct sockaddr *a, socklen_t len);
int   __real_listen(int fd, int backlog);
int   __real_getsockname(int fd, struct sockaddr *a, socklen_t *len);
int   __real_pthread_key_create(pthread_key_t *key, void (*d)(void *));

void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n)
{
    void *p;

    GATE_ENTER();
    if (inject(F_malloc, RA))
        p = NULL;
    else {
        p = __real_malloc(n);
        track_add(p, F_malloc, RA);
    }
    GATE_LEAVE();
    return p;
}

void *__wrap_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size)
{
    void *p;

    GATE_ENTER();
    if (inject(F_calloc, RA))
        p = NULL;
    else {
        p = __real_calloc(n, size);
        track_add(p, F_calloc, RA);
    }
    GATE_LEAVE();
    return p;
}

void *__wrap_realloc(void *old, size_t n);
void *__wrap_realloc(void *old, size_t n)
{
    void *p;

    GATE_ENTER();
    if (inject(F_realloc, RA))
        p = NULL;
    else if ((p = __real_realloc(old, n))) {
        track_remove(old);
        track_add(p, F_realloc, RA);
    }
    GATE_LEAVE();
    return p;
}

void __wrap_free(void *p);
void __wrap_free(void *p)
{
    GATE_ENTER();
    track_remove(p);
    __real_free(p);
    GATE_LEAVE();
}

char *__wrap_strdup(const char *s);
char *__wrap_strdup(const char *s)
{
    char *p;

    GATE_ENTER();
    if (inject(F_strdup, RA))
        p = NULL;
    else {
        p = __real_strdup(s);
        track_add(p, F_strdup, RA);
    }
    GATE_LEAVE();
    return p;
}

#define WRAP_INT(f, params, args)                                           \
    int __wrap_##f params;                                                  \
    int __wrap_##f params                                                   \
    {                                                                       \
        if (inject(F_##f, RA))                                              \
            return -1;                                                      \
        return __real_##f args;                                             \
    }

WRAP_INT(socket, (int domain, int type, int protocol), (domain, type, protocol))
WRAP_INT(accept4, (int fd, struct sockaddr *a, socklen_t *len, int flags),
         (fd, a, len, flags))
WRAP_INT(eventfd, (unsigned int initval, int flags), (initval, flags))
WRAP_INT(pipe2, (int fds[2], int flags), (fds, flags))
WRAP_INT(epoll_create1, (int flags), (flags))
WRAP_INT(epoll_ctl, (int epfd, int op, int fd, struct epoll_event *ev),
         (epfd, op, fd, ev))
WRAP_INT(timerfd_create, (int clock, int flags), (clock, flags))
WRAP_INT(mprotect, (void *addr, size_t len, int prot), (addr, len, prot))
WRAP_INT(setsockopt, (int fd, int level, int name, const void *v,
                      socklen_t len), (fd, level, name, v, len))
WRAP_INT(recvmmsg, (int fd, struct mmsghdr *v, unsigned int n, int flags,
                    struct timespec *t), (fd, v, n, flags, t))
WRAP_INT(sigaltstack, (const stack_t *ss, stack_t *old), (ss, old))
WRAP_INT(sigaction, (int sig, const struct sigaction *sa,
                     struct sigaction *old), (sig, sa, old))
WRAP_INT(bind, (int fd, const struct sockaddr *a, socklen_t len), (fd, a, len))
WRAP_INT(listen, (int fd, int backlog), (fd, backlog))
WRAP_INT(getsockname, (int fd, struct sockaddr *a, socklen_t *len),
         (fd, a, len))

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
    if (inject(F_send, RA))
        return -1;
    return __real_send(fd, buf, len, flags);
}

ssize_t __wrap_sendto(int fd, const void *buf, size_t len, int flags,
                      const struct sockaddr *a, socklen_t alen);
ssize_t __wrap_sendto(int fd, const void *buf, size_t len, int flags,
                      const struct sockaddr *a, socklen_t alen)
{
    if (inject(F_sendto, RA))
        return -1;
    return __real_sendto(fd, buf, len, flags, a, alen);
}

ssize_t __wrap_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t __wrap_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (inject(F_recvmsg, RA))
        return -1;
    return __real_recvmsg(fd, msg, flags);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off)
{
    void *p;

    if (inject(F_mmap, RA))
        return MAP_FAILED;
    p = __real_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED)
        track_add(p, F_mmap, RA);
    return p;
}

int __wrap_munmap(void *addr, size_t len);
int __wrap_munmap(void *addr, size_t len)
{
    track_remove(addr);
    return __real_munmap(addr, len);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
                          void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a,
                          void *(*fn)(void *), void *arg)
{
    int rc;

    /* (the sanitizer's thread registry has a lock of its own) */
    GATE_ENTER();
    rc = inject(F_pthread_create, RA) ? EAGAIN
                                      : __real_pthread_create(t, a, fn, arg);
    GATE_LEAVE();
    return rc;
}

int __wrap_pthread_key_create(pthread_key_t *key, void (*d)(void *));
int __wrap_pthread_key_create(pthread_key_t *key, void (*d)(void *))
{
    if (inject(F_pthread_key_create, RA))
        return EAGAIN;
    return __real_pthread_key_create(key, d);
}

pid_t __wrap_fork(void);
pid_t __wrap_fork(void)
{
    pid_t pid;

    FORK_ENTER();
    pid = inject(F_fork, RA) ? -1 : __real_fork();
    FORK_LEAVE(pid);
    return pid;
}

/* The library calls syscall(2) for pidfd_open only. */
long __wrap_syscall(long number, ...);
long __wrap_syscall(long number, ...)
{
    long a[6];
    va_list ap;
    int i;

    va_start(ap, number);
    for (i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
#ifdef SYS_pidfd_open
    if (number == SYS_pidfd_open && inject(F_pidfd_open, RA))
        return -1;
#endif
    return __real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ---- naming sites ----------------------------------------------------------- */

static void describe_address(uintptr_t a, char *buf, size_t size)
{
    const func *fn = a ? func_at(a - 1) : NULL;

    if (fn)
        snprintf(buf, size, "%s+0x%lx", fn->name,
                 (unsigned long)(a - fn->start));
    else
        snprintf(buf, size, "0x%lx", (unsigned long)a);
}

static void describe_site(int i, char *buf, size_t size)
{
    const site *st = &sh->sites[i];
    char a[150], b[150];

    describe_address(st->ra, a, sizeof a);
    if (st->ra2) {
        describe_address(st->ra2, b, sizeof b);
        snprintf(buf, size, "%s in %s <- %s", fn_name[st->fn], a, b);
    } else {
        snprintf(buf, size, "%s in %s", fn_name[st->fn], a);
    }
}

/* ---- problems ---------------------------------------------------------------- */

static char *problems;
static size_t problems_len, problems_cap;
static int problem_count;
static int saved_stdout = -1;
static int problem_pipe = -1;   /* in a run's own process: to the test's */
static bool verbose;

static void say(const char *fmt, ...) SS__PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(saved_stdout >= 0 ? saved_stdout : STDOUT_FILENO, line,
                     (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void problem(const char *fmt, ...) SS__PRINTF(1, 2);
static void problem(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = sizeof line - 2;
    if (problem_pipe >= 0) {    /* the test's process reports it */
        (void)!write(problem_pipe, line, (size_t)n + 1);    /* with its NUL */
        return;
    }
    line[n++] = '\n';
    if (problems_len + (size_t)n + 1 > problems_cap) {
        problems_cap = (problems_len + (size_t)n + 1) * 2;
        problems = realloc(problems, problems_cap);
    }
    memcpy(problems + problems_len, line, (size_t)n);
    problems_len += (size_t)n;
    problems[problems_len] = '\0';
    problem_count++;
    say("PROBLEM: %.*s", n, line);
}

/* ---- scenarios ------------------------------------------------------------ */

typedef enum { T_TCP, T_UDP, T_UNIX_STREAM, T_UNIX_DGRAM } type_id;
typedef enum {
    M_SYNC, M_THREADING, M_FORKING, M_POOL, M_PREFORK, M_PREFORK_POOL,
    M_ASYNC1, M_ASYNC2, M_SIGNALS
} model_id;
typedef enum {
    K_CONSTRUCT,        /* a constructor (and a mix-in) */
    K_REQUEST,          /* serve, one request, shutdown, close, free */
    K_BROADCAST,        /* the handler answers through a broadcast */
    K_BLOCKING,         /* the handler calls ss_run_blocking */
    K_RESTART,          /* a prefork worker dies and is started again */
    K_HELD,             /* K_REQUEST, then closed while a handler runs */
    K_EMBED,            /* K_REQUEST, driven by the test's own poll() */
} kind_id;
typedef enum {
    C_PLAIN, C_THREADING, C_FORKING,
    C_FD,               /* the plain one, on "fd:N": a socket the test made */
    C_SYSTEMD,          /* the plain one, on sockets passed as systemd passes
                           them, in a process of the run's own (the library
                           reads them once per process): TCP on
                           "systemd:web", UDP on "systemd" (no names) */
} ctor_id;

typedef struct scenario {
    const char *name;
    kind_id     kind;
    type_id     type;
    model_id    model;
    ctor_id     ctor;       /* K_CONSTRUCT: which constructor, on what */
} scenario;

static const scenario scenarios[] = {
    /* construction: every constructor, then every mix-in */
    {"construct tcp", K_CONSTRUCT, T_TCP, M_SYNC, C_PLAIN},
    {"construct udp", K_CONSTRUCT, T_UDP, M_SYNC, C_PLAIN},
    {"construct unix stream", K_CONSTRUCT, T_UNIX_STREAM, M_SYNC, C_PLAIN},
    {"construct unix datagram", K_CONSTRUCT, T_UNIX_DGRAM, M_SYNC, C_PLAIN},
    {"construct threading tcp", K_CONSTRUCT, T_TCP, M_SYNC, C_THREADING},
    {"construct threading udp", K_CONSTRUCT, T_UDP, M_SYNC, C_THREADING},
    {"construct threading unix stream", K_CONSTRUCT, T_UNIX_STREAM, M_SYNC,
     C_THREADING},
    {"construct threading unix datagram", K_CONSTRUCT, T_UNIX_DGRAM, M_SYNC,
     C_THREADING},
    {"construct forking tcp", K_CONSTRUCT, T_TCP, M_SYNC, C_FORKING},
    {"construct forking udp", K_CONSTRUCT, T_UDP, M_SYNC, C_FORKING},
    {"construct forking unix stream", K_CONSTRUCT, T_UNIX_STREAM, M_SYNC,
     C_FORKING},
    {"construct forking unix datagram", K_CONSTRUCT, T_UNIX_DGRAM, M_SYNC,
     C_FORKING},
    {"construct + threading", K_CONSTRUCT, T_TCP, M_THREADING, C_PLAIN},
    {"construct + forking", K_CONSTRUCT, T_TCP, M_FORKING, C_PLAIN},
    {"construct + pool", K_CONSTRUCT, T_TCP, M_POOL, C_PLAIN},
    {"construct + prefork", K_CONSTRUCT, T_TCP, M_PREFORK, C_PLAIN},
    {"construct + prefork+pool", K_CONSTRUCT, T_TCP, M_PREFORK_POOL, C_PLAIN},
    {"construct + async", K_CONSTRUCT, T_UDP, M_ASYNC1, C_PLAIN},
    {"construct + shutdown_on_signals", K_CONSTRUCT, T_TCP, M_SIGNALS,
     C_PLAIN},
    /* on inherited sockets */
    {"construct tcp fd:N", K_CONSTRUCT, T_TCP, M_SYNC, C_FD},
    {"construct tcp systemd:NAME", K_CONSTRUCT, T_TCP, M_SYNC, C_SYSTEMD},
    {"construct udp systemd", K_CONSTRUCT, T_UDP, M_SYNC, C_SYSTEMD},
    /* a stream request and a datagram request in every model */
    {"tcp sync", K_REQUEST, T_TCP, M_SYNC, C_PLAIN},
    {"udp sync", K_REQUEST, T_UDP, M_SYNC, C_PLAIN},
    {"unix stream sync", K_REQUEST, T_UNIX_STREAM, M_SYNC, C_PLAIN},
    {"unix datagram sync", K_REQUEST, T_UNIX_DGRAM, M_SYNC, C_PLAIN},
    {"tcp threading", K_REQUEST, T_TCP, M_THREADING, C_PLAIN},
    {"udp threading", K_REQUEST, T_UDP, M_THREADING, C_PLAIN},
    {"tcp forking", K_REQUEST, T_TCP, M_FORKING, C_PLAIN},
    {"udp forking", K_REQUEST, T_UDP, M_FORKING, C_PLAIN},
    {"tcp pool", K_REQUEST, T_TCP, M_POOL, C_PLAIN},
    {"udp pool", K_REQUEST, T_UDP, M_POOL, C_PLAIN},
    {"tcp prefork", K_REQUEST, T_TCP, M_PREFORK, C_PLAIN},
    {"udp prefork", K_REQUEST, T_UDP, M_PREFORK, C_PLAIN},
    {"tcp prefork+pool", K_REQUEST, T_TCP, M_PREFORK_POOL, C_PLAIN},
    {"tcp async", K_REQUEST, T_TCP, M_ASYNC1, C_PLAIN},
    {"udp async", K_REQUEST, T_UDP, M_ASYNC1, C_PLAIN},
    {"tcp async(loops=2)", K_REQUEST, T_TCP, M_ASYNC2, C_PLAIN},
    {"udp async(loops=2)", K_REQUEST, T_UDP, M_ASYNC2, C_PLAIN},
    /* an application's loop polls ss_server_loop_fd, calls run_once */
    {"tcp async embedded", K_EMBED, T_TCP, M_ASYNC1, C_PLAIN},
    /* broadcast, ss_run_blocking, a prefork worker's restart */
    {"broadcast sync", K_BROADCAST, T_TCP, M_SYNC, C_PLAIN},
    {"broadcast threading", K_BROADCAST, T_TCP, M_THREADING, C_PLAIN},
    {"broadcast pool", K_BROADCAST, T_TCP, M_POOL, C_PLAIN},
    {"broadcast async", K_BROADCAST, T_TCP, M_ASYNC1, C_PLAIN},
    {"broadcast async(loops=2)", K_BROADCAST, T_TCP, M_ASYNC2, C_PLAIN},
    {"run_blocking async", K_BLOCKING, T_TCP, M_ASYNC1, C_PLAIN},
    {"run_blocking async(loops=2)", K_BLOCKING, T_UDP, M_ASYNC2, C_PLAIN},
    {"prefork restart", K_RESTART, T_TCP, M_PREFORK, C_PLAIN},
    {"close forking, a handler running", K_HELD, T_TCP, M_FORKING, C_PLAIN},
};

#define NSCENARIOS (sizeof scenarios / sizeof scenarios[0])

static const scenario *current;

static bool is_datagram(type_id t)
{
    return t == T_UDP || t == T_UNIX_DGRAM;
}

/* ---- the handler ------------------------------------------------------------ */

static int blocking_work(void *arg)
{
    (void)arg;
    return 42;
}

/* Echo one line; a line longer than ss_printf's stack buffer, read
 * through a small rbufsize and written through wbufsize, so that every
 * buffer of the request's I/O is allocated. */
static int fault_handle(ss_request *r, const ss_address *c, ss_server *s)
{
    static _Thread_local char line[4096];
    ssize_t n = ss_readline(r, line, sizeof line);
    int err;

    (void)c;
    if (n < 0)
        return (int)n;
    if (n == 0)
        return -ENODATA;
    if (current->kind == K_BLOCKING) {
        int v = ss_run_blocking(r, blocking_work, NULL);

        if (v != 42)
            return v < 0 ? v : -EIO;
    }
    if (current->kind == K_BROADCAST) {
        err = ss_server_broadcast(s, line, (size_t)n, NULL);
        return err < 0 ? err : err == 1 ? 0 : -EIO;
    }
    err = ss_printf(r, "%s", line);
    return err < 0 ? err : 0;
}

static void fault_handle_error(ss_server *s, ss_request *r,
                               const ss_address *c, int err)
{
    atomic_fetch_add(&sh->handle_errors, 1);
    atomic_store(&sh->last_error, err);
    ss_server_base_ops(s)->handle_error(s, r, c, err);
}

static const ss_handler handler = {
    .handle = fault_handle,
    .timeout = 10,                      /* a hang guard */
    .disable_nagle_algorithm = true,
    .rbufsize = 512,
    .wbufsize = 4096,
};

/* ---- building servers ---------------------------------------------------------- */

static char unix_path_buf[128];

static const char *address_for(type_id t)
{
    if (t == T_TCP || t == T_UDP)
        return "127.0.0.1:0";
    snprintf(unix_path_buf, sizeof unix_path_buf, "%s", temp_path("fault"));
    return unix_path_buf;
}

static ss_server *construct(const scenario *sc, const char *address)
{
    static ss_server *(*const ctors[3][4])(const char *, const ss_handler *,
                                          const ss_server_options *) = {
        {ss_tcp_server_new, ss_udp_server_new, ss_unix_stream_server_new,
         ss_unix_datagram_server_new},
        {ss_threading_tcp_server_new, ss_threading_udp_server_new,
         ss_threading_unix_stream_server_new,
         ss_threading_unix_datagram_server_new},
        {ss_forking_tcp_server_new, ss_forking_udp_server_new,
         ss_forking_unix_stream_server_new,
         ss_forking_unix_datagram_server_new},
    };
    /* K_HELD: close waits a little for the handler, then ends it. */
    ss_server_options o = {.close_timeout = sc->kind == K_HELD ? 0.05 : 0};

    return ctors[sc->ctor >= C_FD ? C_PLAIN : sc->ctor][sc->type](
        address, &handler, &o);
}

static int use_model(ss_server *s, model_id m)
{
    ss_async_options ao = {0};
    int err;

    switch (m) {
    case M_SYNC: return 0;
    case M_THREADING: return ss_server_use_threading(s);
    case M_FORKING: return ss_server_use_forking(s);
    case M_POOL: return ss_server_use_thread_pool(s, 2, 2);
    case M_PREFORK: return ss_server_use_prefork(s, 2);
    case M_PREFORK_POOL:
        /* Applied again after prefork failed: the pool is there. */
        if ((err = ss_server_use_thread_pool(s, 2, 2)) < 0 && err != -EBUSY)
            return err;
        return ss_server_use_prefork(s, 2);
    case M_ASYNC1:
    case M_ASYNC2:
        ao.loops = m == M_ASYNC2 ? 2 : 1;
        ao.blocking_threads = 2;
        return ss_server_use_async(s, &ao);
    case M_SIGNALS:
        /* (not a model: what a server's main adds; free takes it back) */
        return ss_server_shutdown_on_signals(s);
    }
    return -EINVAL;
}

static void install_hooks(ss_server *s)
{
    ss_server_ops o = {.handle_error = fault_handle_error};

    ss_server_override(s, &o);
}

/* ---- serving in a thread ----------------------------------------------------- */

typedef struct server_thread {
    ss_server  *s;
    pthread_t   thread;
    atomic_bool done;
    int         rc;
    bool        running;
} server_thread;

static void *serve_main(void *arg)
{
    server_thread *st = arg;

    st->rc = ss_serve_forever(st->s, 0.05);
    atomic_store(&st->done, true);
    return NULL;
}

static void serve_start(server_thread *st, ss_server *s)
{
    st->s = s;
    st->rc = 0;
    atomic_store(&st->done, false);
    st->running = pthread_create(&st->thread, NULL, serve_main, st) == 0;
    if (!st->running)
        problem("%s: the test could not start its serving thread",
                current->name);
}

/* Join a serving thread that returned; its error is reported. */
static int serve_reap(server_thread *st)
{
    if (!st->running || !atomic_load(&st->done))
        return 0;
    pthread_join(st->thread, NULL);
    st->running = false;
    return st->rc;
}

static void serve_stop(server_thread *st)
{
    if (!st->running)
        return;
    ss_server_shutdown(st->s);
    pthread_join(st->thread, NULL);
    st->running = false;
}

/* ---- clients ------------------------------------------------------------------ */

typedef enum { R_SERVED, R_REFUSED, R_TIMEOUT } reply;

typedef struct exchange {
    int    fd;
    char   path[108];      /* a Unix datagram client's own socket */
    char   msg[2048];
    size_t len;
    char   got[2048];
    size_t have;
} exchange;

static int msg_counter;

static void make_message(exchange *x)
{
    int n = snprintf(x->msg, sizeof x->msg, "fault %d ", ++msg_counter);

    memset(x->msg + n, 'x', 1500);
    x->msg[n + 1500] = '\n';
    x->msg[n + 1501] = '\0';
    x->len = (size_t)n + 1501;
}

static bool send_request(exchange *x, const ss_address *a, type_id t)
{
    memset(x, 0, sizeof *x);
    make_message(x);
    if (is_datagram(t)) {
        x->fd = client_dgram(a, x->path, sizeof x->path);
        if (x->fd < 0)
            return false;
        fcntl(x->fd, F_SETFL, O_NONBLOCK);
        return sendto(x->fd, x->msg, x->len, 0,
                      (const struct sockaddr *)&a->storage, a->len) ==
               (ssize_t)x->len;
    }
    x->fd = client_connect(a);
    if (x->fd < 0)
        return false;
    fcntl(x->fd, F_SETFL, O_NONBLOCK);
    if (send_all_fd(x->fd, x->msg, x->len) == 0)
        return true;
    /* A server that failed right after accepting may have closed already
     * (a Unix stream send then fails at once): the reply's poll sees the
     * connection ended, and the failure must have been reported. */
    return errno == EPIPE || errno == ECONNRESET;
}

/* One look at the reply: R_SERVED when it is all there, R_REFUSED when the
 * connection ended without it (or the reply is wrong), R_TIMEOUT when
 * more may come. */
static reply poll_reply(exchange *x, int ms)
{
    struct pollfd p = {.fd = x->fd, .events = POLLIN};
    ssize_t n;

    if (poll(&p, 1, ms) <= 0)
        return R_TIMEOUT;
    n = recv(x->fd, x->got + x->have, sizeof x->got - x->have, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? R_TIMEOUT : R_REFUSED;
    if (n == 0)
        return R_REFUSED;
    x->have += (size_t)n;
    if (x->have < x->len)
        return R_TIMEOUT;
    return x->have == x->len && memcmp(x->got, x->msg, x->len) == 0
           ? R_SERVED : R_REFUSED;
}

static void end_exchange(exchange *x)
{
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
    if (x->path[0])
        unlink(x->path);
    x->path[0] = '\0';
}

/* ---- leak accounting ------------------------------------------------------ */

typedef struct baseline {
    int fds, threads;
} baseline;

static bool no_children(void)
{
    return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static bool no_children_fn(void *arg)
{
    (void)arg;
    return no_children();
}

/* The systemd variables, once read, are the process's for good (a socket
 * taken stays taken): the blocks holding them (activation.c allocates
 * nothing else) are no leak, when they are all there or none is. */
#define SYSTEMD_STATE_BLOCKS 3

static bool systemd_state(const block *bl)
{
    const func *fn = lib_func(bl->ra);

    return current->ctor == C_SYSTEMD && fn &&
           strcmp(fn->file, "activation.c") == 0;
}

/* Every block and mapping tracked in this run is gone. */
static int check_blocks(const char *what)
{
    int run = atomic_load(&run_id), left = 0, kept = 0;
    size_t i;

    while (atomic_flag_test_and_set(&track_lock))
        ;
    for (i = 0; i < TRACK_SLOTS; i++)
        if (tracked[i].p > 1 && tracked[i].run == run &&
            systemd_state(&tracked[i])) {
            kept++;
        } else if (tracked[i].p > 1 && tracked[i].run == run) {
            char a[160], b[160];

            describe_address(tracked[i].ra, a, sizeof a);
            describe_address(tracked[i].ra2, b, sizeof b);
            if (left++ < 4)
                problem("%s: leaked a %s block from %s <- %s", what,
                        fn_name[tracked[i].fn], a, b);
            tracked[i].p = 1;   /* reported once */
        }
    atomic_flag_clear(&track_lock);
    if (kept != 0 && kept != SYSTEMD_STATE_BLOCKS)
        problem("%s: %d blocks of the systemd state kept, not %d or none",
                what, kept, SYSTEMD_STATE_BLOCKS);
    return left;
}

static void check_leaks(const char *what, const baseline *b,
                        const char *unix_path)
{
    int fds = settle_fds(b->fds), threads = settle_threads(b->threads);
    struct stat st;

    if (fds != b->fds)
        problem("%s: %d descriptors open, %d before", what, fds, b->fds);
    if (threads != b->threads)
        problem("%s: %d threads, %d before", what, threads, b->threads);
    if (!wait_for(no_children_fn, NULL, WAIT_LIMIT)) {
        problem("%s: child processes left", what);
        reap_zombies();
    }
    if (unix_path && unix_path[0] && lstat(unix_path, &st) == 0) {
        problem("%s: the socket file %s was left behind", what, unix_path);
        unlink(unix_path);
    }
    check_blocks(what);
}

/* ---- stderr of a run ---------------------------------------------------------- */

static int saved_stderr = -1;
static int capture_fd = -1;

static void capture_begin(void)
{
    char path[] = "/tmp/ss-faults-XXXXXX";

    fflush(stderr);
    capture_fd = mkstemp(path);
    if (capture_fd < 0)
        return;
    unlink(path);
    dup2(capture_fd, STDERR_FILENO);
}

/* What the run wrote on stderr (the caller frees it). */
static char *capture_end(void)
{
    char *out;
    off_t size;

    if (capture_fd < 0)
        return strdup("");
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    size = lseek(capture_fd, 0, SEEK_END);
    out = calloc(1, (size_t)(size > 0 ? size : 0) + 1);
    if (size > 0 && pread(capture_fd, out, (size_t)size, 0) < 0)
        out[0] = '\0';
    close(capture_fd);
    capture_fd = -1;
    return out;
}

/* Bytes written to stderr so far in this run. */
static off_t captured_bytes(void)
{
    struct stat st;

    return capture_fd >= 0 && fstat(capture_fd, &st) == 0 ? st.st_size : 0;
}

static bool sanitizer_report(const char *log)
{
    return strstr(log, "ERROR: AddressSanitizer") ||
           strstr(log, "ERROR: LeakSanitizer") ||
           strstr(log, "WARNING: ThreadSanitizer") ||
           strstr(log, "runtime error:") ||
           /* a child that crashed (the restart test kills with SIGKILL) */
           strstr(log, "killed by signal 11") ||
           strstr(log, "killed by signal 6 ") ||
           strstr(log, "killed by signal 7 ") ||
           strstr(log, "killed by signal 4 ") ||
           strstr(log, "killed by signal 8 ");
}

/* ---- inherited sockets ------------------------------------------------------- */

#define LISTEN_FDS_START 3      /* SD_LISTEN_FDS_START */

/* An inheritable socket on 127.0.0.1, port 0, bound (and listening, for a
 * stream one), as a parent process or systemd passes it; -1 on failure. */
static int passed_socket(int type)
{
    struct sockaddr_in in = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, type, 0);

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&in, sizeof in) < 0 ||
        (type == SOCK_STREAM && listen(fd, 16) < 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Move *fd to a descriptor above those systemd passes. */
static void move_up(int *fd)
{
    int moved;

    if (*fd < 0 || *fd >= 10 || (moved = fcntl(*fd, F_DUPFD_CLOEXEC, 10)) < 0)
        return;
    close(*fd);
    *fd = moved;
}

/* In a systemd run's process: the sockets at 3 and 4, as systemd passes
 * them (3 a UDP socket, 4 a listening TCP socket), and the variables
 * naming them, set again in every run's process (the library removes them
 * once read); with `named`, LISTEN_FDNAMES names them "dns" and "web". The
 * test's own descriptors there move up first. Returns the socket of
 * `type`, or -1. */
static int pass_as_systemd(type_id type, bool named)
{
    int dns = passed_socket(SOCK_DGRAM), web = passed_socket(SOCK_STREAM);
    char pid[16];

    move_up(&saved_stdout);
    move_up(&saved_stderr);
    move_up(&problem_pipe);
    move_up(&dns);
    move_up(&web);
    if (dns < 10 || web < 10 || dup2(dns, LISTEN_FDS_START) < 0 ||
        dup2(web, LISTEN_FDS_START + 1) < 0)
        return -1;
    close(dns);
    close(web);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    if (named)
        setenv("LISTEN_FDNAMES", "dns:web", 1);
    return LISTEN_FDS_START + (type == T_TCP);
}

/* The descriptor flags and the file status flags of fd, in one number to
 * compare; -1 when fd is not open. */
static long fd_state(int fd)
{
    int d = fcntl(fd, F_GETFD), l = fcntl(fd, F_GETFL);

    return d < 0 || l < 0 ? -1 : (long)d << 32 | (unsigned)l;
}

/* ---- plans and runs ------------------------------------------------------------ */

typedef struct plan {
    int n;
    int site[MAX_PLAN], nth[MAX_PLAN];
} plan;

enum { W_CONSTRUCT = 1, W_SERVE = 2, W_CLOSE = 3 };

typedef struct run_result {
    bool injected[MAX_PLAN];
    bool served_first;      /* the request under faults was answered */
    bool reported;
} run_result;

static void arm(const plan *p, int mode)
{
    int i, n = atomic_load(&sh->nsites);

    for (i = 0; i < n; i++) {
        atomic_store(&sh->sites[i].hits, 0);
        atomic_store(&sh->sites[i].first, 0);
        atomic_store(&sh->sites[i].window, 0);
    }
    atomic_store(&sh->seq, 0);
    sh->plan_len = p ? p->n : 0;
    for (i = 0; i < MAX_PLAN; i++) {
        sh->plan_site[i] = p && i < p->n ? p->site[i] : -1;
        sh->plan_nth[i] = p && i < p->n ? p->nth[i] : 0;
        atomic_store(&sh->injected[i], 0);
    }
    atomic_store(&sh->handle_errors, 0);
    atomic_store(&sh->last_error, 0);
    atomic_store_explicit(&sh->mode, mode, memory_order_release);
}

static void set_mode(int mode, int window)
{
    if (window)
        atomic_store(&sh->window, window);
    atomic_store_explicit(&sh->mode, mode, memory_order_release);
}

static char run_name[512];

static void name_run(const scenario *sc, const plan *p)
{
    size_t n = (size_t)snprintf(run_name, sizeof run_name, "[%s]", sc->name);
    int i;

    for (i = 0; p && i < p->n && n < sizeof run_name; i++) {
        char d[400];

        describe_site(p->site[i], d, sizeof d);
        n += (size_t)snprintf(run_name + n, sizeof run_name - n,
                              " %s#%d %s", i ? "and" : "failing", p->nth[i], d);
    }
}

/* The library's children (prefork workers, forking handlers) die with a
 * run that hung: left behind, they would hold ctest's output pipe open
 * and make it wait its own timeout too. live_children neither allocates
 * nor uses stdio. */
static void kill_children(void)
{
    pid_t pids[64];
    int i, n = live_children(pids, 64);

    for (i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
}

/* SS_FAULTS_HANG=stop: a run that hung is frozen, not ended, so that a
 * debugger can attach to the test and its children (their pids are
 * printed). Otherwise the children are killed and the test exits 3. */
static bool stop_on_hang;

static void stop_children(void)
{
    static const char msg[] = "test_faults: stopped for a debugger: ";
    pid_t pids[64];
    int i, n = live_children(pids, 64);
    char num[24];

    (void)!write(saved_stdout, msg, sizeof msg - 1);
    pids[n++] = getpid();
    for (i = 0; i < n; i++) {
        int len = 0;
        unsigned long v = (unsigned long)pids[i];
        char *e = num + sizeof num;

        do {
            *--e = (char)('0' + v % 10);
            len++;
        } while ((v /= 10) != 0);
        if (pids[i] != getpid())
            kill(pids[i], SIGSTOP);
        (void)!write(saved_stdout, e, (size_t)len);
        (void)!write(saved_stdout, " ", 1);
    }
    (void)!write(saved_stdout, "\n", 1);
    raise(SIGSTOP);
}

static void on_alarm(int sig)
{
    static const char msg[] = "\ntest_faults: a run hung (more than 120 s): ";

    (void)sig;
    (void)!write(saved_stdout, msg, sizeof msg - 1);
    (void)!write(saved_stdout, run_name, strlen(run_name));
    (void)!write(saved_stdout, "\n", 1);
    if (stop_on_hang)
        stop_children();
    kill_children();
    _exit(3);
}

/* Serve one request under faults (window W_SERVE): R_SERVED, or not. A
 * serving loop that returns an error (a failure starting it) is reported
 * so, and started again, as an application would. */
static reply first_request(const scenario *sc, ss_server *s,
                           server_thread *st, bool *serve_failed)
{
    exchange x;
    reply r = R_TIMEOUT;
    double end = now() + 10, reported_at = 0;
    off_t log0 = captured_bytes();
    int restarts = 0, rc;

    if (!send_request(&x, ss_server_address(s), sc->type)) {
        problem("%s: the client could not send", run_name);
        end_exchange(&x);
        return R_REFUSED;
    }
    while (now() < end) {
        if ((r = poll_reply(&x, 10)) != R_TIMEOUT)
            break;
        if ((rc = serve_reap(st)) < 0) {
            *serve_failed = true;
            if (restarts++ < 3)
                serve_start(st, s);
        }
        /* Something was reported: give the reply a little longer (a
         * paused accept serves it late), then stop waiting. */
        if (!reported_at && (atomic_load(&sh->handle_errors) > 0 ||
                             captured_bytes() > log0 || *serve_failed))
            reported_at = now();
        if (reported_at && now() > reported_at + 0.1)
            break;
    }
    end_exchange(&x);
    return r;
}

/* The reply began with an earlier exchange's line: a broadcast made by
 * the handler of a connection the test had given up on (it stayed in the
 * backlog while serving was restarted, and was accepted later). */
static bool got_stale_broadcast(const exchange *x)
{
    char head[32] = "";
    int n;

    if (current->kind != K_BROADCAST || x->have < 8)
        return false;
    memcpy(head, x->got, x->have < sizeof head - 1 ? x->have
                                                     : sizeof head - 1);
    return sscanf(head, "fault %d ", &n) == 1 && n < msg_counter;
}

/* The server answers a request, faults off. */
static bool next_request(const scenario *sc, ss_server *s, server_thread *st)
{
    exchange x;
    reply r = R_TIMEOUT;
    int attempt;

    for (attempt = 0; attempt < 3; attempt++) {
        double end = now() + 10;

        if (!send_request(&x, ss_server_address(s), sc->type)) {
            end_exchange(&x);
            return false;
        }
        r = R_TIMEOUT;
        while (now() < end && (r = poll_reply(&x, 10)) == R_TIMEOUT)
            if (serve_reap(st) < 0)
                break;
        if (r == R_SERVED || !got_stale_broadcast(&x)) {
            end_exchange(&x);
            break;
        }
        end_exchange(&x);           /* another's line: ask again */
    }
    return r == R_SERVED;
}

/* The one failure the library leaves unreported on purpose: the flush
 * after finish, whose error Python's StreamRequestHandler.finish ignores
 * too (ss__base_finish_request). The client sees the connection end
 * without the reply. */
static bool final_flush(int i)
{
    int k;

    for (k = 0; k < CHAIN && sh->sites[i].chain[k]; k++) {
        const func *fn = lib_func(sh->sites[i].chain[k]);

        /* (a tail call may leave ss__request_end_io out) */
        if (strcmp(fn->name, "ss__request_end_io") == 0 ||
            strcmp(fn->name, "ss__base_finish_request") == 0)
            return sh->sites[i].fn == F_send;
    }
    return false;
}

static bool silent_by_design(const plan *p, const run_result *res)
{
    int k;

    for (k = 0; p && k < p->n; k++)
        if (res->injected[k] && final_flush(p->site[k]))
            return true;
    return false;
}

static bool quiet_fn(void *arg)
{
    return ss_server_active_handlers(arg) == 0;
}

static bool two_workers(void *arg)
{
    pid_t p[8];

    (void)arg;
    return live_children(p, 8) == 2;
}

/* The end of a serving run, the server freed: nothing left, the failure
 * reported, the request served when nothing failed. */
static void end_serving_run(const plan *p, int mode, run_result *res,
                            const baseline *b, const char *path,
                            bool serve_failed)
{
    char *log;
    int i;

    check_leaks(run_name, b, path);
    log = capture_end();
    res->reported = serve_failed || atomic_load(&sh->handle_errors) > 0 ||
                    strstr(log, "libsockserver") != NULL;
    for (i = 0; i < MAX_PLAN; i++)
        res->injected[i] = atomic_load(&sh->injected[i]) > 0;
    if (sanitizer_report(log))
        problem("%s: a sanitizer or a crash reported:\n%s", run_name, log);
    if (mode == MODE_ARMED && (res->injected[0] || res->injected[1]) &&
        !res->served_first && !res->reported && !silent_by_design(p, res))
        problem("%s: the request was lost and nothing reported it",
                run_name);
    if (mode == MODE_RECORD && !res->served_first)
        problem("%s: the request was not served without faults:\n%s",
                run_name, log);
    if (verbose)
        say("  %s: %s%s\n", run_name,
            res->served_first ? "served" : "not served",
            res->reported ? ", reported" : "");
    free(log);
}

/* K_HELD: a client sends half a line and waits, its handler waiting for
 * the rest when the server closes (which waits close_timeout for it, then
 * ends it). The handler runs once the server accepted the connection (the
 * serving loop starts it before it can see the shutdown). Returns the
 * client's socket, or -1. */
typedef struct accepted_since {
    ss_server *s;
    unsigned long long before;
} accepted_since;

static bool accepted_more(void *arg)
{
    accepted_since *a = arg;
    ss_server_stats st;

    return ss_server_get_stats(a->s, &st) == 0 && st.accepted > a->before;
}

static int hold_handler(ss_server *s)
{
    accepted_since a = {s, 0};
    ss_server_stats st;
    int fd;

    if (ss_server_get_stats(s, &st) == 0)
        a.before = st.accepted;
    fd = client_connect(ss_server_address(s));
    if (fd < 0 || send_all_fd(fd, "half a line", 11) < 0 ||
        !wait_for(accepted_more, &a, WAIT_LIMIT))
        problem("%s: no handler was left running for the close", run_name);
    return fd;
}

/* The start of a serving run: a new run, stderr captured, the baseline
 * taken, the server built without faults. NULL (reported, capture ended)
 * when it cannot be built. */
static ss_server *serving_begin(const scenario *sc, const char *addr,
                                baseline *b)
{
    ss_server *s;
    int err = 0;

    atomic_store(&run_id, atomic_load(&run_id) + 1);
    capture_begin();
    *b = (baseline){count_fds(), count_threads()};
    s = construct(sc, addr);
    if (!s || (err = use_model(s, sc->model)) < 0) {
        problem("%s: the server could not be built: %s", run_name,
                s ? ss_strerror(err) : ss_last_error());
        ss_server_free(s);
        free(capture_end());
        return NULL;
    }
    install_hooks(s);
    return s;
}

/* A run of a serving scenario: build the server (no faults), then under
 * faults serve one request, and close and free; between the two, a
 * request without faults must be served. */
static void run_serving(const scenario *sc, const plan *p, int mode,
                        run_result *res)
{
    server_thread st = {0};
    const char *addr = address_for(sc->type);
    char path[128];
    baseline b;
    bool serve_failed = false;
    ss_server *s;
    reply r;
    int held = -1;

    snprintf(path, sizeof path, "%s",
             sc->type == T_UNIX_STREAM || sc->type == T_UNIX_DGRAM ? addr : "");
    if (!(s = serving_begin(sc, addr, &b)))
        return;

    arm(p, mode);
    set_mode(mode, W_SERVE);
    serve_start(&st, s);
    if (sc->kind == K_RESTART) {
        pid_t pids[8];

        /* The workers run; one dies, and is started again (after the
         * back-off of a young death). A worker whose start failed is
         * retried only 5 s later: the one left is killed then. */
        (void)wait_for(two_workers, NULL, 1.0);
        if (live_children(pids, 8) > 0)
            kill(pids[0], SIGKILL);
        sleep_ms(20);
        (void)wait_for(two_workers, NULL, 1.0);
    }
    r = first_request(sc, s, &st, &serve_failed);
    res->served_first = r == R_SERVED;
    if (!wait_for(quiet_fn, s, WAIT_LIMIT))
        problem("%s: a handler did not finish", run_name);
    set_mode(MODE_OFF, 0);

    if (!st.running || atomic_load(&st.done)) {
        if (serve_reap(&st) < 0)
            serve_failed = true;
        serve_start(&st, s);
    }
    if (!next_request(sc, s, &st))
        problem("%s: the next request was not served (serve_forever: %s)",
                run_name, st.running && !atomic_load(&st.done)
                ? "running" : ss_strerror(st.rc));
    if (sc->kind == K_HELD)
        held = hold_handler(s);

    set_mode(mode, W_CLOSE);
    serve_stop(&st);
    ss_server_close(s);
    ss_server_free(s);
    set_mode(MODE_OFF, 0);
    if (held >= 0)
        close(held);
    end_serving_run(p, mode, res, &b, path, serve_failed);
}

/* ---- an application's own loop (K_EMBED) ------------------------------------- */

/* One turn of the application's loop: poll the server's descriptor (fetched
 * again after a failure, as an application would try again) for at most
 * `ms`, and run the server once when it is readable. 1 when it ran, 0 when
 * nothing was ready, or the error, reported (*failed). */
static int embedded_turn(ss_server *s, int *lfd, int ms, bool *failed)
{
    struct pollfd pf;
    int rc;

    if (*lfd < 0 && (*lfd = ss_server_loop_fd(s)) < 0) {
        *failed = true;
        return *lfd;
    }
    pf = (struct pollfd){.fd = *lfd, .events = POLLIN};
    if (poll(&pf, 1, ms) <= 0)
        return 0;
    if ((rc = ss_server_run_once(s, 0)) < 0) {
        *failed = true;
        return rc;
    }
    return 1;
}

/* A request to a server the test drives: the line in two parts, the second
 * once the server has nothing left to do with the first, so that the
 * handler waits for the rest (with its timeout: a timer of the loop).
 * R_SERVED, or not; as in first_request, something reported ends the
 * wait soon after. */
static reply embedded_request(ss_server *s, int *lfd, bool *failed)
{
    exchange x;
    reply r = R_TIMEOUT;
    double end = now() + 10, reported_at = 0;
    off_t log0 = captured_bytes();
    size_t half;

    memset(&x, 0, sizeof x);
    make_message(&x);
    if ((x.fd = client_connect(ss_server_address(s))) < 0) {
        problem("%s: the client could not connect", run_name);
        return R_REFUSED;
    }
    fcntl(x.fd, F_SETFL, O_NONBLOCK);
    half = x.len / 2;
    if (send_all_fd(x.fd, x.msg, half) == 0) {
        while (now() < end && embedded_turn(s, lfd, 0, failed) > 0)
            ;
        /* (a server that failed may have closed the connection) */
        (void)send_all_fd(x.fd, x.msg + half, x.len - half);
    }
    while (now() < end && (r = poll_reply(&x, 0)) == R_TIMEOUT) {
        (void)embedded_turn(s, lfd, 10, failed);
        if (!reported_at && (atomic_load(&sh->handle_errors) > 0 ||
                             captured_bytes() > log0 || *failed))
            reported_at = now();
        if (reported_at && now() > reported_at + 0.1)
            break;
    }
    end_exchange(&x);
    return r;
}

/* Drive the server until its handlers are done (they only run when it is
 * driven); false when one is not. */
static bool embedded_quiet(ss_server *s, int *lfd, bool *failed)
{
    double end = now() + WAIT_LIMIT;

    while (ss_server_active_handlers(s) > 0 && now() < end)
        (void)embedded_turn(s, lfd, 10, failed);
    return ss_server_active_handlers(s) == 0;
}

/* A run of an embedding scenario: as run_serving, but no serve_forever:
 * the test's own poll() on ss_server_loop_fd, and ss_server_run_once. */
static void run_embedded(const scenario *sc, const plan *p, int mode,
                         run_result *res)
{
    baseline b;
    bool failed = false;
    ss_server *s;
    int lfd = -1;

    if (!(s = serving_begin(sc, address_for(sc->type), &b)))
        return;

    arm(p, mode);
    set_mode(mode, W_SERVE);
    res->served_first = embedded_request(s, &lfd, &failed) == R_SERVED;
    if (!embedded_quiet(s, &lfd, &failed))
        problem("%s: a handler did not finish", run_name);
    set_mode(MODE_OFF, 0);

    if (embedded_request(s, &lfd, &failed) != R_SERVED)
        problem("%s: the next request was not served", run_name);
    if (!embedded_quiet(s, &lfd, &failed))
        problem("%s: a handler did not finish", run_name);

    set_mode(mode, W_CLOSE);
    ss_server_close(s);
    ss_server_free(s);
    set_mode(MODE_OFF, 0);
    end_serving_run(p, mode, res, &b, "", failed);
}

/* A run of a construction scenario: the constructor and mix-in under
 * faults; a failure must leave nothing behind and say why (and an
 * inherited socket open and as it was: the caller's still); then the
 * server is built again without faults and serves. */
static void run_construct(const scenario *sc, const plan *p, int mode,
                          run_result *res)
{
    server_thread st = {0};
    const char *addr = address_for(sc->type);
    char path[128], ref[32];
    baseline b;
    ss_server *s;
    int err = 0, saved, inherited = -1;
    long state = 0;
    char *log;

    snprintf(path, sizeof path, "%s",
             sc->type == T_UNIX_STREAM || sc->type == T_UNIX_DGRAM ? addr : "");
    atomic_store(&run_id, atomic_load(&run_id) + 1);
    /* The socket passed: the test's, until a server owns it. */
    if (sc->ctor == C_FD || sc->ctor == C_SYSTEMD) {
        inherited = sc->ctor == C_FD ? passed_socket(SOCK_STREAM)
                                     : pass_as_systemd(sc->type,
                                                       sc->type == T_TCP);
        if (inherited < 0) {
            problem("%s: the test could not make the socket it passes",
                    run_name);
            return;
        }
        snprintf(ref, sizeof ref, "fd:%d", inherited);
        addr = sc->ctor == C_FD ? ref
               : sc->type == T_TCP ? "systemd:web" : "systemd";
        state = fd_state(inherited);
    }
    capture_begin();
    b = (baseline){count_fds(), count_threads()};
    arm(p, mode);
    set_mode(mode, W_CONSTRUCT);
    errno = 0;
    s = construct(sc, addr);
    saved = errno;
    if (s)
        err = use_model(s, sc->model);
    set_mode(MODE_OFF, 0);
    for (int i = 0; i < MAX_PLAN; i++)
        res->injected[i] = atomic_load(&sh->injected[i]) > 0;

    if (!s) {
        res->reported = true;
        if (saved == 0 || ss_last_error()[0] == '\0')
            problem("%s: the constructor failed with errno %d and message "
                    "'%s'", run_name, saved, ss_last_error());
        if (inherited >= 0 && fd_state(inherited) != state)
            problem("%s: the failed constructor did not leave the socket "
                    "passed (fd %d) open and as it was", run_name, inherited);
        /* Nothing left behind, right away. */
        check_leaks(run_name, &b, path);
        s = construct(sc, addr);
        if (!s) {
            problem("%s: the constructor fails again without faults: %s",
                    run_name, ss_last_error());
            if (inherited >= 0)
                close(inherited);
            free(capture_end());
            return;
        }
        err = use_model(s, sc->model);
    } else if (err < 0) {
        res->reported = true;
        err = use_model(s, sc->model);      /* the mix-in, again */
    }
    if (err < 0) {
        problem("%s: the mix-in fails without faults: %s", run_name,
                ss_strerror(err));
        ss_server_free(s);
        free(capture_end());
        return;
    }
    if (inherited >= 0)
        b.fds--;            /* the server's now: ss_server_free closes it */
    if (sc->ctor == C_SYSTEMD && getenv("LISTEN_PID"))
        problem("%s: LISTEN_PID is still set, after a server took a socket "
                "it passed", run_name);
    install_hooks(s);
    serve_start(&st, s);
    res->served_first = next_request(sc, s, &st);
    if (!res->served_first)
        problem("%s: the server does not serve", run_name);
    serve_stop(&st);
    ss_server_free(s);
    check_leaks(run_name, &b, path);
    log = capture_end();
    if (sanitizer_report(log))
        problem("%s: a sanitizer or a crash reported:\n%s", run_name, log);
    if (verbose)
        say("  %s: %s\n", run_name, res->reported ? "failed, reported"
                                                  : "built");
    free(log);
}

/* A run in a process of its own (C_SYSTEMD): the library reads the
 * systemd variables once per process, so each run must be a process's
 * first. Its sites are counted in the shared memory, its blocks by the
 * process itself; its problems come back through a pipe. */
static void run_forked(const scenario *sc, const plan *p, int mode,
                       run_result *res)
{
    char buf[4096], *text = NULL;
    size_t len = 0;
    ssize_t n;
    int fds[2], status, i;
    pid_t pid;

    if (pipe(fds) < 0 || (pid = fork()) < 0) {
        problem("%s: the test could not start the run's process", run_name);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        problem_pipe = fds[1];
        accounting_pid = getpid();
        alarm(120);
        run_construct(sc, p, mode, res);
        _exit(0);
    }
    close(fds[1]);
    while ((n = read(fds[0], buf, sizeof buf)) > 0 ||
           (n < 0 && errno == EINTR)) {
        if (n < 0)
            continue;
        text = realloc(text, len + (size_t)n);
        memcpy(text + len, buf, (size_t)n);
        len += (size_t)n;
    }
    close(fds[0]);
    for (i = 0; (size_t)i < len; i += (int)strlen(text + i) + 1)
        problem("%s", text + i);        /* each ends with its NUL */
    free(text);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        problem("%s: the run's process ended with status 0x%x", run_name,
                status);
    for (i = 0; i < MAX_PLAN; i++)
        res->injected[i] = atomic_load(&sh->injected[i]) > 0;
}

static struct sigaction segv_before, bus_before;

static void run(const scenario *sc, const plan *p, int mode, run_result *res)
{
    double t0 = now();

    /* Async loops put the library's SIGSEGV and SIGBUS handler in front of
     * the one in place, once: every run starts without it, so that each
     * installs it again. */
    sigaction(SIGSEGV, &segv_before, NULL);
    sigaction(SIGBUS, &bus_before, NULL);
    memset(res, 0, sizeof *res);
    current = sc;
    name_run(sc, p);
    alarm(120);
    if (sc->ctor == C_SYSTEMD)
        run_forked(sc, p, mode, res);
    else if (sc->kind == K_CONSTRUCT)
        run_construct(sc, p, mode, res);
    else if (sc->kind == K_EMBED)
        run_embedded(sc, p, mode, res);
    else
        run_serving(sc, p, mode, res);
    alarm(0);
    if (verbose)
        say("    %.3f s\n", now() - t0);
}

/* ---- a scenario, site by site -------------------------------------------------- */

typedef struct reached {
    int site, hits, first, window;
} reached;

static int cmp_reached(const void *a, const void *b)
{
    return ((const reached *)a)->first - ((const reached *)b)->first;
}

/* Per site: reached by some scenario, made to fail (the call was failed). */
static bool site_reached[MAX_SITES], site_failed[MAX_SITES];
static char site_missed[MAX_SITES][160];
static int runs_total, pairs_total, pairs_both;

static int max_nth(int fn)
{
    return fn == F_pthread_create || fn == F_fork ? 3 : 2;
}

static void exercise(const scenario *sc)
{
    reached list[MAX_SITES];
    run_result res;
    double start = now();
    int i, k, n = 0, runs = 0, failed_here = 0, nsites;
    bool site_failed_here = false;

    run(sc, NULL, MODE_RECORD, &res);
    nsites = atomic_load(&sh->nsites);
    for (i = 0; i < nsites; i++) {
        int hits = atomic_load(&sh->sites[i].hits);

        if (hits > 0)
            list[n++] = (reached){i, hits, atomic_load(&sh->sites[i].first),
                                  atomic_load(&sh->sites[i].window)};
    }
    qsort(list, (size_t)n, sizeof *list, cmp_reached);
    for (i = 0; i < n; i++)
        site_reached[list[i].site] = true;

    /* Each site alone: its first calls, one at a time. */
    for (i = 0; i < n; i++) {
        int s = list[i].site, limit = max_nth(sh->sites[s].fn);

        for (k = 1; k <= list[i].hits && k <= limit; k++) {
            plan p = {1, {s, -1}, {k, 0}};
            int tries;

            if (k == 1)
                site_failed_here = false;
            for (tries = 0; tries < 2; tries++) {
                run(sc, &p, MODE_ARMED, &res);
                runs++;
                if (res.injected[0])
                    break;
            }
            if (res.injected[0]) {
                if (!site_failed_here)
                    failed_here++;
                site_failed_here = true;
                site_failed[s] = true;
            } else if (k == 1 && !site_failed[s]) {
                snprintf(site_missed[s], sizeof site_missed[s],
                         "%s: not reached again when armed (timing)",
                         sc->name);
            }
        }
    }
    /* Two failures in one request (or one construction): each site with
     * the next one the recording reached, and a site's first two calls. */
    for (i = 0; i < n; i++) {
        int window = list[i].window;

        if (window == W_CLOSE)
            continue;
        for (k = i + 1; k < n && list[k].window != window; k++)
            ;
        if (k < n) {
            plan p = {2, {list[i].site, list[k].site}, {1, 1}};

            run(sc, &p, MODE_ARMED, &res);
            runs++;
            pairs_total++;
            if (res.injected[0] && res.injected[1])
                pairs_both++;
        }
        if (list[i].hits >= 2) {
            plan p = {2, {list[i].site, list[i].site}, {1, 2}};

            run(sc, &p, MODE_ARMED, &res);
            runs++;
            pairs_total++;
            if (res.injected[0] && res.injected[1])
                pairs_both++;
        }
    }
    runs_total += runs + 1;
    say("%-34s %3d sites reached, %3d made to fail, %4d runs, %5.1f s\n",
        sc->name, n, failed_here, runs, now() - start);
}

/* ---- the report ----------------------------------------------------------------- */

/* file:line of every site, from addr2line, for the report. */
/* Whether "NAME>..." names a function that is made to fail (free and
 * munmap are wrapped only to account for memory). */
static bool fault_function(const char *name)
{
    size_t len = strcspn(name, ">"), i;

    for (i = 0; i < F_COUNT; i++)
        if (strlen(fn_name[i]) == len && strncmp(fn_name[i], name, len) == 0)
            return true;
    return false;
}

/* Every call the library's code makes to a function made to fail, found in
 * this executable's own disassembly: their return addresses (as the
 * wrappers see them), or -1 when objdump cannot be run. */
static int static_sites(uintptr_t *out, int max)
{
    char cmd[128], line[512];
    bool pending = false;
    FILE *f;
    int n = 0;

    snprintf(cmd, sizeof cmd, "objdump -d --no-show-raw-insn /proc/%d/exe "
             "2>/dev/null", (int)getpid());
    if (!(f = popen(cmd, "r")))
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long addr;
        const char *callee;
        int pos = 0;

        if (sscanf(line, " %lx:%n", &addr, &pos) != 1 || pos == 0 ||
            !strchr(line, '\t'))
            continue;       /* not an instruction */
        if (pending && n < max)
            out[n++] = addr + load_base;
        pending = false;
        callee = strstr(line, "<__wrap_");
        if (callee && !strchr(callee, '+') && fault_function(callee + 8) &&
            (strstr(line, "\tcall") || strstr(line, "\tjmp") ||
             strstr(line, "\tbl")) &&
            lib_address(addr + load_base + 1))
            pending = true;
    }
    return pclose(f) == 0 ? n : -1;
}

/* Why calls stay unreached, by the function making them (a function
 * inlined into another shows under that one's name: both are listed). */
static const struct {
    const char *fn, *why;
} unreached_why[] = {
    {"ss__poller_watch", "a descriptor registered already (EEXIST): none is"},
    {"ss__poller_arm", "ss_wait_fd on a descriptor the loop does not own: "
     "no handler here calls it"},
    {"default_action", "the second SIGINT/SIGTERM, or one in a child: the "
     "process dies of it"},
    {"on_shutdown_signal", "the second SIGINT/SIGTERM, or one in a child: "
     "the process dies of it"},
    {"ss_server_shutdown_on_signals", "putting the saved handlers back (at "
     "free, after a failure): cannot fail, and is not checked"},
    {"altstack_key_create", "once per process: the warm-up makes it, before "
     "anything is counted"},
    {"altstack_release", "a thread's exit releasing the library's alternate "
     "stack: none made where threads have one already (AddressSanitizer)"},
    {"ss__stack_altstack_ensure", "undoing after a failure; all of it where "
     "threads have an alternate stack already (AddressSanitizer)"},
};

static const char *why_unreached(const char *fn)
{
    size_t i;

    for (i = 0; i < sizeof unreached_why / sizeof *unreached_why; i++)
        if (strcmp(unreached_why[i].fn, fn) == 0)
            return unreached_why[i].why;
    return NULL;
}

/* The calls the scenarios never reached, named by source line, with why
 * when it is known, and whether the call was made while another failed
 * (a failure path: only sites a recording reached are made to fail). */
static void report_static(void)
{
    static uintptr_t calls[MAX_SITES];
    int n = static_sites(calls, MAX_SITES), i, j, reached = 0, failed = 0;
    int nsites = atomic_load(&sh->nsites);

    if (n < 0) {
        say("\ncall sites in the library's code: objdump not available\n");
        return;
    }
    say("\ncalls to the wrapped functions in the library's code, never "
        "reached by a scenario:\n");
    for (i = 0; i < n; i++) {
        bool r = false, fl = false, on_failure = false;
        const func *fn;
        const char *why;

        for (j = 0; j < nsites; j++)
            if (sh->sites[j].ra == calls[i]) {
                r = r || site_reached[j];
                fl = fl || site_failed[j];
                on_failure = true;
            }
        reached += r;
        failed += fl;
        if (r || !(fn = lib_func(calls[i])))
            continue;
        why = why_unreached(fn->name);
        say("  %s+0x%lx (%s)%s%s%s\n", fn->name,
            (unsigned long)(calls[i] - fn->start), fn->file,
            on_failure ? " [made only while another call failed]" : "",
            why ? ": " : "", why ? why : "");
    }
    say("call sites in the library's code: %d; reached: %d; made to fail: "
        "%d\n", n, reached, failed);
}

static void report(void)
{
    int i, nsites = atomic_load(&sh->nsites), found = 0, failed = 0;
    char cmd[65536];
    size_t len;
    FILE *f;
    char lines[MAX_SITES][2][200];

    memset(lines, 0, sizeof lines);
    len = (size_t)snprintf(cmd, sizeof cmd, "addr2line -s -e /proc/%d/exe",
                           (int)getpid());
    for (i = 0; i < nsites && len + 64 < sizeof cmd; i++)
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " 0x%lx 0x%lx",
                                (unsigned long)(sh->sites[i].ra - load_base - 1),
                                (unsigned long)(sh->sites[i].ra2
                                    ? sh->sites[i].ra2 - load_base - 1 : 0));
    len += (size_t)snprintf(cmd + len, sizeof cmd - len, " 2>/dev/null");
    if ((f = popen(cmd, "r"))) {
        for (i = 0; i < nsites; i++) {
            int j;

            for (j = 0; j < 2; j++)
                if (fgets(lines[i][j], sizeof lines[i][j], f))
                    lines[i][j][strcspn(lines[i][j], "\n")] = '\0';
        }
        pclose(f);
    }
    say("\nfault sites (call, and the library frame that made it):\n");
    for (i = 0; i < nsites; i++) {
        char d[400];

        if (!site_reached[i])
            continue;
        found++;
        failed += site_failed[i];
        describe_site(i, d, sizeof d);
        say("  %s %s (%s%s%s)%s\n", site_failed[i] ? "exercised" : "MISSED   ",
            d, lines[i][0], sh->sites[i].ra2 ? " <- " : "",
            sh->sites[i].ra2 ? lines[i][1] : "",
            sh->sites[i].in_child ? " [in a child process]" : "");
        if (!site_failed[i])
            say("      why: %s\n", site_missed[i][0] ? site_missed[i]
                                                    : "unknown");
    }
    say("\nfault sites: %d found, %d exercised\n", found, failed);
    say("runs: %d; runs with two failures planned: %d, both injected: %d\n",
        runs_total, pairs_total, pairs_both);
    report_static();
}

/* ---- the tests ------------------------------------------------------------------ */

static const char *only;

static bool selected(const scenario *sc)
{
    return !only || strstr(sc->name, only);
}

static void run_kind(bool construct_kind)
{
    size_t i;
    int before = problem_count;

    for (i = 0; i < NSCENARIOS; i++)
        if ((scenarios[i].kind == K_CONSTRUCT) == construct_kind &&
            selected(&scenarios[i]))
            exercise(&scenarios[i]);
    if (problem_count > before)
        fail_msg("%d problems:\n%s", problem_count - before, problems);
}

static void test_construction_faults(void **state)
{
    (void)state;
    run_kind(true);
}

static void test_serving_faults(void **state)
{
    (void)state;
    run_kind(false);
}

static void test_report(void **state)
{
    (void)state;
    report();
}

/* Things made once per thread or process by the library (the main
 * thread's alternate signal stack for async loops, the systemd state):
 * made before anything is counted. */
static void warm_up(void)
{
    static const scenario warm = {"warm-up", K_REQUEST, T_TCP, M_ASYNC1,
                                  C_PLAIN};
    ss_server *s;

    current = &warm;
    s = construct(&warm, "127.0.0.1:0");
    if (s && use_model(s, M_ASYNC1) == 0)
        (void)ss_server_run_once(s, 0);
    ss_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_construction_faults),
        cmocka_unit_test(test_serving_faults),
        cmocka_unit_test(test_report),
    };
    struct sigaction sa = {.sa_handler = on_alarm};
    const char *v = getenv("SS_FAULTS_VERBOSE");

    verbose = v && *v && strcmp(v, "0") != 0;
    v = getenv("SS_FAULTS_HANG");
    stop_on_hang = v && strcmp(v, "stop") == 0;
    only = getenv("SS_FAULTS_SCENARIO");
    gate_init();
    main_pid = accounting_pid = getpid();
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGALRM, &sa, NULL);
    saved_stdout = dup(STDOUT_FILENO);
    saved_stderr = dup(STDERR_FILENO);
    sigaction(SIGSEGV, NULL, &segv_before);
    sigaction(SIGBUS, NULL, &bus_before);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 1;
    load_symbols();
    warm_up();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
