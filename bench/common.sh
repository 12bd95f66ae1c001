# bench/common.sh - what bench/run and bench/instructions share: the
# servers and how to start them, clean-up of every process they start, the
# optional packages, the build. Sourced, not run: the caller sets BENCH (this
# directory) and parses its options first (INSTALL, KEEP, KEEP_DIR).
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are the callers'

ROOT=$(dirname "$BENCH")
BUILD=$BENCH/build
PY=${PYTHON:-python3}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
INSTALL=${INSTALL:-1}
KEEP=${KEEP:-0}
KEEP_DIR=${KEEP_DIR:-$BUILD/last}
START_TRIES=${START_TRIES:-500} # 20 ms each: how long a server may take to start
STOP_TRIES=${STOP_TRIES:-250}   # 20 ms each: its grace after SIGTERM
NOFILE=""                       # when set, the soft and hard RLIMIT_NOFILE
                                # of the servers and load generators started

# ---- the servers --------------------------------------------------------

# The servers of the stream scenarios and of the udp scenario. A library
# model is "ss-MODEL", run as `ss_echo --model MODEL`: adding a model to
# ss_echo and its id here (and a label in report.py) is all it takes. A
# model that this build's ss_echo rejects (usage error, exit status 2) is
# reported n/a with ss_echo's message, not as a failure.
STREAM_SERVERS="
  ss-sync ss-threading ss-forking ss-pool ss-prefork ss-prefork-threading
  ss-async epoll thread fork uv event go
  py-threading py-forking py-asyncio py-uvloop"
DGRAM_SERVERS="
  ss-sync ss-threading ss-forking ss-pool ss-prefork ss-async
  epoll-udp go py-udp py-asyncio py-uvloop"

note() { printf 'bench: %s\n' "$*" >&2; }

# Why server $1 does not take part in scenario $2 ("n/a" in the report),
# or nothing when it does.
na_reason() {
    case $1:$2 in
    ss-sync:tcp1 | ss-sync:connrate | ss-sync:udp | ss-prefork:tcp1 | \
        ss-prefork:connrate | ss-prefork:udp) ;;
    ss-sync:tcp* | ss-sync:unix*)
        echo "a synchronous server serves one connection at a time: the other ping-pong connections would wait for ever" ;;
    ss-prefork:tcp* | ss-prefork:unix*)
        echo "2 synchronous worker processes serve 2 connections at a time; see ss-prefork-threading" ;;
    ss-pool:tcp1000 | ss-pool:tcp10000)
        echo "64 pool workers serve 64 connections at a time (a stream handler holds its worker until the client hangs up)" ;;
    ss-forking:tcp10000 | fork:tcp10000 | py-forking:tcp10000)
        echo "a process per connection: 10,000 processes, not started on this shared machine (tcp1000 measures the model)" ;;
    esac
}

# Set CMD to the command line of server $1 serving protocol $2 (tcp, unix,
# udp) on address $3. Returns 1, with the reason in WHY, when it cannot
# run here (not built, its toolchain or module missing).
server_cmd() {
    local id=$1 proto=$2 addr=$3 bin="" udp=()
    [ "$proto" != udp ] || udp=(--udp)
    WHY="not built (its library is not installed)"
    case $id in
    ss-prefork-threading)
        bin=$BIN/ss_echo
        CMD=("$bin" --model prefork --prefork-model threading --proto "$proto" "$addr") ;;
    ss-*)
        bin=$BIN/ss_echo
        CMD=("$bin" --model "${id#ss-}" --proto "$proto" "$addr") ;;
    epoll) bin=$BIN/ref_epoll_echo; CMD=("$bin" "$addr") ;;
    thread) bin=$BIN/ref_thread_echo; CMD=("$bin" "$addr") ;;
    fork) bin=$BIN/ref_fork_echo; CMD=("$bin" "$addr") ;;
    uv) bin=$BIN/ref_uv_echo; CMD=("$bin" "$addr") ;;
    event) bin=$BIN/ref_event_echo; CMD=("$bin" "$addr") ;;
    epoll-udp) bin=$BIN/ref_epoll_udp_echo; CMD=("$bin" "$addr") ;;
    go)
        [ -n "$GO_BIN" ] || { WHY=$GO_STATUS; return 1; }
        CMD=("$GO_BIN" "${udp[@]}" "$addr") ;;
    py-threading) CMD=("$PY_EXE" "$BENCH/py_echo.py" threading "$addr") ;;
    py-forking) CMD=("$PY_EXE" "$BENCH/py_echo.py" forking "$addr") ;;
    py-udp) CMD=("$PY_EXE" "$BENCH/py_echo.py" udp "$addr") ;;
    py-asyncio) CMD=("$PY_EXE" "$BENCH/py_asyncio_echo.py" "${udp[@]}" "$addr") ;;
    py-uvloop)
        [ -n "$PY_UVLOOP" ] || { WHY=$UVLOOP_STATUS; return 1; }
        CMD=("$PY_UVLOOP" "$BENCH/py_asyncio_echo.py" --uvloop "${udp[@]}" "$addr") ;;
    *) WHY="unknown server"; return 1 ;;
    esac
    if [ "${id#ss-}" != "$id" ] && [ -n "${SS_STATUS:-}" ]; then
        WHY="not built: $SS_STATUS"
        return 1
    fi
    [ -z "$bin" ] || [ -x "$bin" ]
}

# ---- clean-up: every server and helper started ---------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ssbench.XXXXXX")
LIVE_PIDS=""     # server session leaders not yet stopped
HELPER_PID=""    # the load generator or strace running now

# Is $1 still running (not gone, not a zombie waiting to be reaped)?
alive() {
    local state
    # The state follows the command name, which may hold spaces: ") S ...".
    state=$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Stop server $1 and everything in its session: SIGTERM for a clean stop,
# SIGKILL to the whole process group after STOP_TRIES × 20 ms or once the
# leader is gone (children it left behind), then reap the leader.
stop_server() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq "$STOP_TRIES"); do
        alive "$pid" || break
        sleep 0.02
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # shellcheck disable=SC2086 # one pid per line
    LIVE_PIDS=$(printf '%s\n' $LIVE_PIDS | grep -vx "$pid" || true)
}

cleanup() {
    local pid
    trap - EXIT INT TERM
    if [ -n "$HELPER_PID" ]; then
        kill -TERM "$HELPER_PID" 2>/dev/null || true
        wait "$HELPER_PID" 2>/dev/null || true
    fi
    for pid in $LIVE_PIDS; do
        stop_server "$pid"
    done
    if [ "$KEEP" = 1 ]; then
        rm -rf "$KEEP_DIR"
        mkdir -p "$(dirname "$KEEP_DIR")"
        mv "$WORK" "$KEEP_DIR" && note "raw results kept in $KEEP_DIR"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run "$@" with RLIMIT_NOFILE set to NOFILE when that is set (in this
# process: call it in the child, before exec).
with_nofile() {
    [ -z "$NOFILE" ] || ulimit -n "$NOFILE" || exit 126
    exec "$@"
}

# Can the servers and load generators get NOFILE descriptors ($1)? A
# process can raise its soft limit up to its hard limit; only root can
# raise the hard one.
nofile_possible() {
    (ulimit -n "$1") 2>/dev/null
}

# Start CMD pinned to the server core in a session of its own (so its
# children can be found and stopped), and wait for "listening on ADDRESS".
# Sets SPID and SADDR; returns 1 (server stopped) when it does not start,
# with SEXIT set to its exit status if it exited by itself (2: it rejected
# its command line), empty otherwise.
start_server() {
    local log=$1 first=""
    SEXIT=""
    : >"$log.out"
    (with_nofile setsid taskset -c "$SERVER_CPU" "${CMD[@]}") \
        >"$log.out" 2>"$log.err" &
    SPID=$!
    LIVE_PIDS="$LIVE_PIDS $SPID"
    for _ in $(seq "$START_TRIES"); do
        if IFS= read -r first <"$log.out" && [ -n "$first" ]; then
            break
        fi
        alive "$SPID" || break
        sleep 0.02
    done
    case $first in
    "listening on "*) SADDR=${first#listening on } ;;
    *)
        if ! alive "$SPID"; then
            wait "$SPID" 2>/dev/null && SEXIT=0 || SEXIT=$?
        fi
        stop_server "$SPID"
        return 1 ;;
    esac
}

# After start_server failed for server $1: did ss_echo reject the model
# (a usage error)? Then print why, for an n/a.
rejected_model() {
    case $1 in ss-*) ;; *) return 1 ;; esac
    [ "$SEXIT" = 2 ] || return 1
    printf 'ss_echo of this build rejects --model %s (%s)' "${1#ss-}" \
        "$(grep -v -m1 '^==' "$2.err" 2>/dev/null |
            sed 's|[^ ]*/ss_echo|ss_echo|' | cut -c1-120)"
}

# ---- dependencies and build ----------------------------------------------

# Install, as root with apt-get, the Debian packages of the optional parts
# that are missing; each argument is "TEST:PACKAGE", TEST a shell command
# that succeeds when PACKAGE is not needed. Without them what needs them is
# skipped with a message.
install_optional() {
    local spec pkg missing=""
    for spec in "$@"; do
        pkg=${spec##*:}
        eval "${spec%:*}" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    [ -n "$missing" ] || return 0
    if [ "$INSTALL" = 0 ] || [ "$(id -u)" != 0 ] ||
        ! command -v apt-get >/dev/null; then
        note "not installing$missing (not root, no apt-get or --no-install):" \
            "what needs them is skipped"
        return 0
    fi
    note "installing$missing"
    # shellcheck disable=SC2086 # one word per package
    if ! apt-get install -y -q $missing >>"$WORK/apt.log" 2>&1; then
        apt-get update -q >>"$WORK/apt.log" 2>&1 || true
        apt-get install -y -q $missing >>"$WORK/apt.log" 2>&1 ||
            note "apt-get install$missing failed: what needs them is skipped"
    fi
}

# The optional packages of the servers: libuv, libevent, Go, uvloop.
# uvloop is Debian's python3-uvloop, importable by Debian's python3, which
# need not be $PY.
SERVER_PACKAGES=(
    "pkg-config --exists libuv:libuv1-dev"
    "pkg-config --exists libevent:libevent-dev"
    "command -v pkg-config:pkg-config"
    "command -v go:golang-go"
    "find_uvloop:python3-uvloop"
)

# Set PY_UVLOOP to a Python that imports uvloop ($PY's, else Debian's).
find_uvloop() {
    local py
    PY_UVLOOP=""
    for py in "$PY" /usr/bin/python3; do
        if "$py" -c 'import uvloop' >/dev/null 2>&1; then
            PY_UVLOOP=$("$py" -c 'import sys; print(sys.executable)')
            return 0
        fi
    done
    return 1
}

SS_STATUS=""     # why ss_echo is missing, empty when built
GO_BIN=""        # ref_go_echo, when built
GO_STATUS=""     # why it is not
UVLOOP_STATUS="" # why py-uvloop cannot run

# Build with the library (top-level CMakeLists.txt) when it configures,
# else bench/ alone; Release, in bench/build. The references must build;
# ss_echo, libuv's and libevent's echo may be missing. The Go reference is
# built with `go build` when go is there. Sets BIN, PY_EXE, PY_UVLOOP.
build() {
    local dir=$BUILD/full t why=""
    if cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release \
        -DSS_BUILD_TESTS=OFF -DSS_BUILD_EXAMPLES=OFF -DSS_BUILD_BENCH=ON \
        >"$WORK/cmake.log" 2>&1; then
        BIN=$dir/bench
    else
        why="the library does not configure (cmake -S $ROOT fails; --keep keeps cmake.log)"
        note "$why: building bench/ alone, against an installed libsockserver if any"
        dir=$BUILD/standalone
        cmake -S "$BENCH" -B "$dir" -DCMAKE_BUILD_TYPE=Release \
            >>"$WORK/cmake.log" 2>&1 || {
            cat "$WORK/cmake.log" >&2
            return 1
        }
        BIN=$dir
    fi
    cmake --build "$dir" -j "$(nproc)" --target loadgen ref_epoll_echo \
        ref_epoll_udp_echo ref_fork_echo ref_thread_echo \
        >"$WORK/build.log" 2>&1 || {
        cat "$WORK/build.log" >&2
        return 1
    }
    for t in ref_uv_echo ref_event_echo; do
        cmake --build "$dir" --target "$t" >>"$WORK/build.log" 2>&1 ||
            note "$t not built (library not installed)"
    done
    if ! cmake --build "$dir" -j "$(nproc)" --target ss_echo \
        >"$WORK/build-ss.log" 2>&1; then
        SS_STATUS=${why:-"ss_echo does not build: $(grep -m1 -E 'error|Error' \
            "$WORK/build-ss.log" | cut -c1-200)"}
        note "$SS_STATUS: library models skipped"
    fi
    # The context-switch microbenchmark exists only in a build of the
    # library's own tree (it links the static library's internal symbols).
    SWITCH_BIN=""
    if [ "$BIN" = "$dir/bench" ] &&
        cmake --build "$dir" --target switch >>"$WORK/build.log" 2>&1; then
        SWITCH_BIN=$BIN/switch
    fi
    build_go
    PY_EXE=$("$PY" -c 'import sys; print(sys.executable)')
    find_uvloop ||
        UVLOOP_STATUS="uvloop not importable by $PY nor /usr/bin/python3 (Debian: python3-uvloop)"
    [ -z "$UVLOOP_STATUS" ] || note "$UVLOOP_STATUS: py-uvloop skipped"
}

# The Go reference: standard library only, no module, one file.
build_go() {
    local out=$BUILD/go/ref_go_echo
    if ! command -v go >/dev/null; then
        GO_STATUS="go not found (Debian: golang-go)"
        note "$GO_STATUS: the Go reference is skipped"
        return 0
    fi
    mkdir -p "$BUILD/go"
    # go needs a cache directory: $HOME's, else one in bench/build.
    if [ -z "${HOME:-}" ] && [ -z "${GOCACHE:-}" ]; then
        export GOCACHE=$BUILD/go/cache
    fi
    if (cd "$BENCH" && go build -o "$out" ./ref_go_echo.go) \
        >"$WORK/build-go.log" 2>&1; then
        GO_BIN=$out
    else
        GO_STATUS="go build failed: $(head -1 "$WORK/build-go.log" | cut -c1-200)"
        note "$GO_STATUS: the Go reference is skipped"
    fi
}
