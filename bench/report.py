#!/usr/bin/env python3
"""Write bench/RESULTS.md from what bench/run measured.

    report.py META RESULTS SYSCALLS [INSTRUCTIONS] > RESULTS.md

META          key=value lines about the machine and the run
RESULTS       one line per measurement: scenario, server, run, ok|na|failed,
              then the load generator's key=value line (ok) or a reason
SYSCALLS      server, syscall, calls per request
INSTRUCTIONS  bench/instructions' rows: scenario, server, ok|na|failed, then
              per_request=... n1= n2= ir1= ir2= procs= values= or a reason

Only formats: every figure comes from those files.
"""
import statistics
import os
import sys
from collections import defaultdict

SCENARIOS = [
    ("tcp1", "1 connection, 64 B ping-pong"),
    ("tcp50", "50 connections, 64 B ping-pong"),
    ("tcp50-16k", "50 connections, 16 KiB ping-pong"),
    ("tcp1000", "1,000 connections, 64 B ping-pong"),
    ("connrate", "Connection rate: connect, 64 B echo, close; 8 at a time"),
    ("udp", "UDP, 64 B ping-pong, 8 client sockets"),
    ("unix50", "50 connections over a Unix socket, 64 B ping-pong"),
    ("tcp10000", "10,000 connections, 64 B ping-pong"),
]

# Scenarios whose server peak RSS is sampled, with their table's title.
RSS_SCENARIOS = [("tcp1000", "1,000"), ("tcp10000", "10,000")]

SERVERS = {
    "ss-sync": "libsockserver sync (no mix-in)",
    "ss-threading": "libsockserver threading",
    "ss-forking": "libsockserver forking (max_children 4096)",
    "ss-pool": "libsockserver thread pool (64 workers)",
    "ss-prefork": "libsockserver prefork (2 sync workers)",
    "ss-prefork-threading": "libsockserver prefork (2 workers × threading)",
    "ss-async": "libsockserver async (coroutines on epoll)",
    "epoll": "C epoll, one thread (reference)",
    "thread": "C thread per connection",
    "fork": "C fork per connection",
    "uv": "libuv echo",
    "event": "libevent bufferevent echo",
    "go": "Go net, goroutine per connection (UDP: one goroutine)",
    "py-threading": "Python ThreadingTCPServer",
    "py-forking": "Python ForkingTCPServer",
    "py-asyncio": "Python asyncio streams (UDP: DatagramProtocol)",
    "py-uvloop": "Python asyncio streams on uvloop",
    "epoll-udp": "C epoll UDP, one thread (reference)",
    "py-udp": "Python ThreadingUDPServer",
}


def label(server):
    """A server's name in the tables; an id report.py does not know (a
    model added to bench/run's lists only) shows as itself."""
    return "%s (`%s`)" % (SERVERS.get(server, server), server)


def server_order(server):
    order = list(SERVERS)
    return order.index(server) if server in order else len(order)

BUSY = 0.10       # background CPU share that flags a measurement
SATURATED = 0.95  # load generator CPU share that flags its limit

READS = {"read", "readv", "recvfrom", "recvmsg", "recvmmsg"}
WRITES = {"write", "writev", "sendto", "sendmsg", "sendmmsg"}

# (label, server, scenario, baseline server, goal ratio)
RATIO_TARGETS = [
    ("threading TCP, 50 connections ≥ 0.95× thread-per-connection C",
     "ss-threading", "tcp50", "thread", 0.95),
    ("threading TCP, 1,000 connections ≥ 0.95× thread-per-connection C",
     "ss-threading", "tcp1000", "thread", 0.95),
    ("sync TCP, 1 connection ≥ 0.95× epoll",
     "ss-sync", "tcp1", "epoll", 0.95),
    ("forking connection rate ≥ 0.95× fork-per-connection C",
     "ss-forking", "connrate", "fork", 0.95),
    ("pool connection rate ≥ 0.8× epoll",
     "ss-pool", "connrate", "epoll", 0.80),
    ("prefork (2 workers) connection rate ≥ 0.9× epoll",
     "ss-prefork", "connrate", "epoll", 0.90),
    ("sync UDP ≥ 0.9× epoll UDP", "ss-sync", "udp", "epoll-udp", 0.90),
    ("pool UDP ≥ 0.7× epoll UDP", "ss-pool", "udp", "epoll-udp", 0.70),
]

# What the issue quoted for scale, measured elsewhere with such references:
# (server, scenario, ratio to the epoll reference).
ISSUE_SCALE = [
    ("thread", "tcp50", 0.62), ("py-threading", "tcp50", 0.56),
    ("thread", "connrate", 0.50), ("py-threading", "connrate", 0.25),
    ("py-forking", "connrate", 0.025), ("py-udp", "udp", 0.07),
]

# Figures measured earlier on this machine, quoted by the async mode's
# targets: peak RSS in MiB ("threading" taken as the library's model) and
# user-space instructions per request.
EARLIER_RSS = {
    ("tcp1000", "uv"): 5.9, ("tcp1000", "go"): 11.5,
    ("tcp1000", "ss-threading"): 14.0,
    ("tcp10000", "uv"): 44, ("tcp10000", "go"): 81,
    ("tcp10000", "ss-threading"): 126,
}
EARLIER_IR = {
    ("tcp50", "epoll"): 57, ("tcp50", "ss-threading"): 414,
    ("tcp50", "thread"): 147,
    ("udp", "epoll-udp"): 37, ("udp", "ss-sync"): 875,
}

# The async mode's targets, shown once it has been measured.
ASYNC_RATIO_TARGETS = [
    ("async TCP, 50 connections ≥ 0.95× epoll", "tcp50", "epoll", 0.95),
    ("async TCP, 1,000 connections ≥ 0.95× epoll", "tcp1000", "epoll", 0.95),
    ("async connection rate ≥ 0.9× epoll", "connrate", "epoll", 0.90),
    ("async UDP ≥ 0.95× epoll UDP", "udp", "epoll-udp", 0.95),
]
ASYNC_IR_GOAL = 2.0        # × the epoll reference's instructions per request
ASYNC_RSS_1000_MIB = 10    # server peak RSS at 1,000 connections
ASYNC_RSS_10000_MIB = 60   # at 10,000 connections, with no error


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            meta[key] = value
    return meta


def parse_kv(text):
    out = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def read_results(path):
    """{(scenario, server): {"ok": {run: kv}, "na": reason, "failed": [..]}}"""
    res = defaultdict(lambda: {"ok": {}, "na": None, "failed": []})
    with open(path) as f:
        for line in f:
            scen, server, run, status, rest = line.rstrip("\n").split("\t", 4)
            entry = res[(scen, server)]
            if status == "ok":
                entry["ok"][int(run)] = parse_kv(rest)
            elif status == "na":
                entry["na"] = rest
            else:
                entry["failed"].append(rest)
    return res


def read_syscalls(path):
    calls = defaultdict(dict)
    with open(path) as f:
        for line in f:
            server, name, per_request = line.split("\t")
            calls[server][name] = float(per_request)
    return calls


def median(values):
    return statistics.median(values) if values else None


def ratio(res, server, scen, base):
    """Median over runs of server/base req/s, each pair from the same run."""
    mine = res.get((scen, server), {"ok": {}})["ok"]
    theirs = res.get((scen, base), {"ok": {}})["ok"]
    pairs = [mine[r]["rps"] / theirs[r]["rps"] for r in mine
             if r in theirs and theirs[r]["rps"] > 0]
    return median(pairs)


def fmt(value, digits=0):
    if value is None:
        return "—"
    if digits == 0:
        return "{:,.0f}".format(value)
    return "{:,.{}f}".format(value, digits)


def spread(values):
    if len(values) < 2:
        return "—"
    return "{:.1f} %".format(100 * (max(values) - min(values)) /
                             statistics.median(values))


def notes(runs, failed):
    out = []
    total = lambda key: sum(r.get(key, 0) for r in runs)
    if total("idle"):
        out.append("%d idle connections" % total("idle"))
    if total("timeouts"):
        out.append("%d timeouts" % total("timeouts"))
    if total("late"):
        out.append("%d late replies" % total("late"))
    if runs and max(r.get("cpu", 0) for r in runs) >= SATURATED:
        out.append("load generator saturated (cpu %.2f)"
                   % max(r["cpu"] for r in runs))
    busy = [r.get("bg", 0) for r in runs if r.get("bg", 0) > BUSY]
    if busy:
        out.append("machine busy before %d run(s): up to %.0f %% CPU"
                   % (len(busy), 100 * max(busy)))
    if failed:
        out.append("%d failed run(s): %s" % (len(failed), failed[0]))
    return "; ".join(out)


def scenario_table(res, scen, reference):
    servers = [s for (sc, s) in res if sc == scen]
    servers.sort(key=server_order)
    rows = ["| server | req/s | spread | MB/s | p50 µs | p99 µs | p99.9 µs "
            "| errors | mismatches | × %s | notes |" % reference,
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for server in servers:
        entry = res[(scen, server)]
        runs = list(entry["ok"].values())
        name = label(server)
        if entry["na"] is not None:
            rows.append("| %s | n/a | | | | | | | | | %s |"
                        % (name, entry["na"]))
            continue
        col = lambda key: median([r[key] for r in runs])
        rps = [r["rps"] for r in runs]
        rows.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt(col("rps")), spread(rps), fmt(col("mbps"), 2),
            fmt(col("p50_us"), 1), fmt(col("p99_us"), 1),
            fmt(col("p999_us"), 1),
            fmt(sum(r["errors"] for r in runs)) if runs else "—",
            fmt(sum(r["mismatches"] for r in runs)) if runs else "—",
            fmt(ratio(res, server, scen, reference), 2),
            notes(runs, entry["failed"])))
    return "\n".join(rows)


def rss_table(res, scen):
    rows = ["| server | peak RSS | processes | errors | idle | earlier "
            "figure | measured as |",
            "|---|--:|--:|--:|--:|--:|---|"]
    servers = sorted((s for (sc, s), e in res.items()
                      if sc == scen and e["ok"]), key=server_order)
    for server in servers:
        runs = list(res[(scen, server)]["ok"].values())
        kib = median([r["rss_kib"] for r in runs])
        procs = int(max(r["procs"] for r in runs))
        how = ("VmHWM of the process" if procs <= 1 else
               "sum of VmHWM over the process tree (shared pages counted "
               "in every process)")
        earlier = EARLIER_RSS.get((scen, server))
        rows.append("| %s | %.1f MiB | %d | %s | %s | %s | %s |" % (
            label(server), kib / 1024, procs,
            fmt(sum(r["errors"] for r in runs)),
            fmt(sum(r["idle"] for r in runs)),
            "%g MiB" % earlier if earlier is not None else "",
            how))
    return "\n".join(rows)


def rss_mib(res, scen, server):
    """Median peak RSS in MiB, or None."""
    entry = res.get((scen, server))
    if not entry or not entry["ok"]:
        return None
    return median([r["rss_kib"] for r in entry["ok"].values()]) / 1024


def read_instructions(path):
    """{(scenario, server): {"status": ok|na|failed, "kv": {..},
    "why": reason}} in the order measured."""
    out = {}
    if not path or not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            scen, server, status, rest = line.rstrip("\n").split("\t", 3)
            out[(scen, server)] = {
                "status": status,
                "kv": parse_kv(rest) if status == "ok" else {},
                "why": rest if status != "ok" else ""}
    return out


def instr_reference(scen):
    return "epoll-udp" if scen == "udp" else "epoll"


def instr_per(instr, scen, server):
    entry = instr.get((scen, server))
    if not entry or entry["status"] != "ok":
        return None
    return entry["kv"]["per_request"]


def instr_ratio(instr, scen, server):
    mine = instr_per(instr, scen, server)
    ref = instr_per(instr, scen, instr_reference(scen))
    return mine / ref if mine is not None and ref else None


def instructions_table(instr):
    rows = ["| server | scenario | instructions per request | × reference "
            "| requests (N1 → N2) | processes | earlier figure | notes |",
            "|---|---|--:|--:|--:|--:|--:|---|"]
    for (scen, server), e in instr.items():
        earlier = EARLIER_IR.get((scen, server))
        earlier = fmt(earlier) if earlier is not None else ""
        if e["status"] != "ok":
            rows.append("| %s | %s | %s | | | | %s | %s |" % (
                label(server), scen, "n/a" if e["status"] == "na"
                else "failed", earlier, e["why"]))
            continue
        kv = e["kv"]
        values = str(kv.get("values", ""))
        note = ("each of %d pairs: %s" % (values.count(",") + 1, values)
                if "," in values else "")
        rows.append("| %s | %s | %s | %s | %s → %s | %d | %s | %s |" % (
            label(server), scen, fmt(kv["per_request"], 1),
            fmt(instr_ratio(instr, scen, server), 2),
            fmt(kv["n1"]), fmt(kv["n2"]), int(kv["procs"]), earlier, note))
    return "\n".join(rows)


def syscall_split(calls):
    reads = sum(v for k, v in calls.items() if k in READS)
    writes = sum(v for k, v in calls.items() if k in WRITES)
    other = sum(v for k, v in calls.items() if k not in READS | WRITES)
    return reads, writes, other


def syscall_table(syscalls):
    rows = ["| server | reads | writes | other | total | per request |",
            "|---|--:|--:|--:|--:|---|"]
    for server in sorted(syscalls, key=server_order):
        calls = syscalls.get(server)
        if not calls:
            continue
        reads, writes, other = syscall_split(calls)
        detail = ", ".join("%s %.3f" % (k, v) for k, v in
                           sorted(calls.items(), key=lambda kv: -kv[1]))
        rows.append("| %s | %.3f | %.3f | %.3f | %.3f | %s |" % (
            label(server), reads, writes, other,
            reads + writes + other, detail))
    return "\n".join(rows)


def verdict(measured, goal, higher_is_better=True):
    if measured is None:
        return "not measured"
    if higher_is_better and measured >= goal:
        return "**met**"
    if not higher_is_better and measured <= goal:
        return "**met**"
    return "**missed** by %.0f %%" % (100 * abs(measured - goal) / goal)


def unmeasured_reason(res, server, scen):
    entry = res.get((scen, server))
    if entry is None:
        return "not run"
    if entry["na"]:
        return entry["na"]
    if entry["failed"]:
        return entry["failed"][0]
    return "not measured"


def targets(res, syscalls, instr):
    rows = ["| target | measured | status |", "|---|--:|---|"]
    rows += async_targets(res, instr)
    for label, server, scen, base, goal in RATIO_TARGETS:
        r = ratio(res, server, scen, base)
        status = verdict(r, goal) if r is not None else \
            "not measured: " + unmeasured_reason(res, server, scen)
        rows.append("| %s | %s | %s |" % (label, fmt(r, 2) + "×"
                                         if r is not None else "—", status))
    entry = res.get(("tcp1000", "ss-threading"))
    kib = median([r["rss_kib"] for r in entry["ok"].values()]) \
        if entry and entry["ok"] else None
    rows.append("| threading at 1,000 connections: server RSS ≤ 32 MiB | %s | %s |"
                % ("%.1f MiB" % (kib / 1024) if kib is not None else "—",
                   verdict(kib / 1024, 32, False) if kib is not None
                   else "not measured: " + unmeasured_reason(
                       res, "ss-threading", "tcp1000")))
    for server in ("ss-threading", "ss-pool"):
        calls = syscalls.get(server)
        if not calls:
            rows.append("| %s: one read and one write syscall per echo "
                        "request | — | not measured |" % server[3:])
            continue
        reads, writes, other = syscall_split(calls)
        ok = reads <= 1.05 and writes <= 1.05 and other <= 0.05
        extra = reads + writes + other - 2
        rows.append("| %s: one read and one write syscall per echo request "
                    "| %.2f reads, %.2f writes, %.2f other | %s |" % (
                        server[3:], reads, writes, other,
                        "**met**" if ok else
                        "**missed**: %.2f syscalls per request over 2"
                        % extra))
    return "\n".join(rows)


def async_targets(res, instr):
    """The async mode's targets, once ss-async took part in anything."""
    if not any(server == "ss-async" for _, server in list(res) + list(instr)):
        return []
    rows = []
    for label_, scen, base, goal in ASYNC_RATIO_TARGETS:
        r = ratio(res, "ss-async", scen, base)
        status = verdict(r, goal) if r is not None else \
            "not measured: " + unmeasured_reason(res, "ss-async", scen)
        rows.append("| %s | %s | %s |" % (
            label_, fmt(r, 2) + "×" if r is not None else "—", status))
    mib = rss_mib(res, "tcp1000", "ss-async")
    rows.append("| async at 1,000 connections: server peak RSS ≤ %d MiB | %s "
                "| %s |" % (ASYNC_RSS_1000_MIB,
                            "%.1f MiB" % mib if mib is not None else "—",
                            verdict(mib, ASYNC_RSS_1000_MIB, False)
                            if mib is not None else "not measured: " +
                            unmeasured_reason(res, "ss-async", "tcp1000")))
    for scen in ("tcp50",):
        r = instr_ratio(instr, scen, "ss-async")
        e = instr.get((scen, "ss-async"))
        status = (verdict(r, ASYNC_IR_GOAL, False) if r is not None else
                  "not measured: " + (e["why"] if e else
                                      "not run (bench/run --instructions)"))
        rows.append("| async: user-space instructions per request, %s, "
                    "≤ %g× the epoll reference's | %s | %s |" % (
                        scen, ASYNC_IR_GOAL,
                        "%s (%s×)" % (fmt(instr_per(instr, scen, "ss-async"),
                                          1), fmt(r, 2))
                        if r is not None else "—", status))
    mib = rss_mib(res, "tcp10000", "ss-async")
    if mib is None:
        why = unmeasured_reason(res, "ss-async", "tcp10000")
        measured, status = "—", "not measured: " + (
            "not run (bench/run --scenarios tcp10000)" if why == "not run"
            else why)
    else:
        runs = res[("tcp10000", "ss-async")]["ok"].values()
        bad = sum(r["errors"] + r["mismatches"] + r["idle"] for r in runs)
        measured = "%.1f MiB, %d errors/mismatches/idle" % (mib, bad)
        status = verdict(mib, ASYNC_RSS_10000_MIB, False)
        if bad:
            status = "**missed**: connections failed or idle"
    rows.append("| async: 10,000 connections served with no error in ≤ %d "
                "MiB | %s | %s |" % (ASYNC_RSS_10000_MIB, measured, status))
    return rows


def scale_table(res):
    rows = ["| reference | scenario | measured × epoll | issue's figure |",
            "|---|---|--:|--:|"]
    for server, scen, theirs in ISSUE_SCALE:
        base = "epoll-udp" if scen == "udp" else "epoll"
        rows.append("| %s | %s | %s | %.3g× |" % (
            SERVERS[server], scen, fmt(ratio(res, server, scen, base), 3),
            theirs))
    for scen in ("tcp50", "connrate", "udp"):
        base = "epoll-udp" if scen == "udp" else "epoll"
        runs = res.get((scen, base), {"ok": {}})["ok"].values()
        rows.append("| %s, req/s | %s | %s | %s |" % (
            SERVERS[base], scen, fmt(median([r["rps"] for r in runs])),
            {"tcp50": "~250,000", "connrate": "~39,000",
             "udp": "~195,000"}[scen]))
    return "\n".join(rows)


def pct(share):
    return "—" if share is None else "%.0f %%" % (100 * share)


def caveats(res):
    """What limits the figures, found in the results themselves."""
    out = []
    saturated = sorted({sc for (sc, server), e in res.items()
                        if server in ("epoll", "epoll-udp")
                        and any(r.get("cpu", 0) >= SATURATED
                                for r in e["ok"].values())},
                       key=[s for s, _ in SCENARIOS].index)
    if saturated:
        out.append(
            "- The load generator has one core, as the issue asks, and the "
            "reference saturated it (cpu ≥ %.2f) in: %s. There the "
            "reference's req/s is the load generator's limit, not the "
            "server's, so ratios to it overstate how close a slower server "
            "comes, and servers faster than the load generator all look "
            "alike." % (SATURATED, ", ".join("`%s`" % s for s in saturated)))
    busy = sum(1 for e in res.values() for r in e["ok"].values()
               if r.get("bg", 0) > BUSY)
    if busy:
        out.append(
            "- %d measurement(s) started while something else used more "
            "than %.0f %% of the machine (see the notes): their figures, and "
            "the spreads, include that interference." % (busy, 100 * BUSY))
    tcp1 = res.get(("tcp1", "epoll"), {"ok": {}})["ok"].values()
    if tcp1:
        out.append(
            "- With one connection each request wakes the server and then "
            "the load generator on the other core, and both cores idle in "
            "between: the latency (p50 %s µs for the epoll reference) is "
            "mostly those wake-ups, common to every server, which narrows "
            "the 1-connection ratios; compare them with the spread." % fmt(
                median([r["p50_us"] for r in tcp1]), 1))
    return out


def header(meta, bgs):
    quick = meta.get("quick") == "1"
    lines = [
        "# libsockserver benchmark results",
        "",
        "Written by `bench/run%s` on %s (commit %s) in %s s. Do not edit: "
        "run it again." % (" --quick" if quick else "", meta["date"],
                           meta["commit"], meta.get("elapsed", "?")),
        "",
    ]
    if quick:
        lines += ["**Quick mode**: one run of %s s per combination. The "
                  "figures show that everything works; they are too short "
                  "and too few to quote." % meta["duration"], ""]
    if meta.get("ss_status"):
        lines += ["**libsockserver not measured**: %s." % meta["ss_status"],
                  ""]
    lines += [
        "## Machine and method",
        "",
        "- %s, %s cores, %s; %s; Python %s; libuv %s; libevent %s; Go %s; "
        "uvloop %s." % (
            meta["cpu"], meta["cores"], meta["kernel"], meta["compiler"],
            meta["python"], meta["libuv"], meta["libevent"],
            meta.get("go", "?"), meta.get("uvloop", "?")),
        "- The machine's CPU use by anything else, checked for %s s before "
        "each measurement: median %s, highest %s; measurements that followed "
        "more than %.0f %% are flagged in the notes. The server and the load "
        "generator need a core each: other load skews the figures." % (
            meta["bg_seconds"], pct(median(bgs)),
            pct(max(bgs) if bgs else None), 100 * BUSY),
        "- Every server runs pinned to core %s, the load generator "
        "(`bench/loadgen`: one thread, epoll, non-blocking) to core %s "
        "(`taskset`). Each combination: %s run(s) of %s s warm-up and %s s "
        "measured; the runs are the outer loop, so every server of a "
        "scenario is measured back to back within each run." % (
            meta["server_cpu"], meta["loadgen_cpu"], meta["runs"],
            meta["warmup"], meta["duration"]),
        "- Ping-pong: each connection sends the request and waits for the "
        "whole echo before the next. Latency is per request, from before "
        "its first byte is sent to its last echoed byte (connection rate: "
        "from `socket()`); warm-up excluded. Every echoed byte is checked: "
        "*mismatches* counts bytes that differ, *errors* failed connects, "
        "resets and early EOFs. Connections that completed nothing in the "
        "measured window are reported as idle.",
        "- *req/s*, *MB/s* (10⁶ bytes of echo per second, one direction) "
        "and latencies are medians over the runs; *spread* is (max − min) "
        "/ median of req/s; *× epoll* is the median over runs of the "
        "server's req/s divided by the epoll reference's req/s in the same "
        "run (UDP: the epoll UDP reference).",
        "- *n/a*: the server cannot take part, for the reason given. "
        "`ss-prefork` (2 synchronous workers) serves 2 connections at a "
        "time, so `ss-prefork-threading` (prefork with the threading model "
        "in each of its 2 workers) stands in at 50 and 1,000 connections. "
        "The pool has 64 workers: a stream handler holds its worker until "
        "the client hangs up, so 64 covers the 50-connection scenarios but "
        "not 1,000.",
        "- Every server reads into a 16 KiB buffer and sets TCP_NODELAY. "
        "The epoll reference is level-triggered and reads until the socket "
        "is empty (a short read ends the loop, as epoll(7) allows). The "
        "epoll UDP reference answers with recvmmsg/sendmmsg in batches of "
        "up to 32. The thread-per-connection reference uses 64 KiB stacks "
        "and a blocking read/write loop. The Python servers raise "
        "`request_queue_size` to 4096 and, forking, `max_children` to "
        "4096; the library's forking model gets the same `max_children`. "
        "libevent 2.1's bufferevent reads at most 4096 bytes per call, "
        "which its 16 KiB figures show. The Go server leaves GOMAXPROCS to "
        "the runtime, which finds one CPU in its affinity mask: 1. The "
        "asyncio servers listen with a backlog of 4096 (asyncio's default "
        "is 100).",
        "- At 10,000 connections (`tcp10000`, run only when named) the "
        "server and the load generator start with RLIMIT_NOFILE raised to "
        "11,024; the servers that fork a process per connection are n/a "
        "there (10,000 processes), and so are those that serve fewer "
        "connections at a time than 10,000, as at 1,000.",
        "",
    ]
    return lines


def analysis():
    """The hand-written explanation of missed targets (bench/ANALYSIS.md,
    profiles that a run cannot regenerate), appended as it is."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "ANALYSIS.md")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [f.read().rstrip(), ""]


def switch_section(meta):
    """bench/switch's line: the library's context switch against glibc's
    swapcontext."""
    sw = parse_kv(meta["switch_result"])
    return "\n".join([
        "`bench/switch` (run on the server's core): a coroutine and the "
        "thread's own stack switch back and forth, %s switches per round, "
        "the two switches taking turns for %s rounds each; the fastest round "
        "of each, its median beside it. Async mode switches twice per "
        "request that waits (to the loop and back)." % (
            fmt(sw.get("switches")), fmt(sw.get("rounds"))),
        "",
        "| switch | ns per switch | median |",
        "|---|--:|--:|",
        "| libsockserver (`%s`, src/switch_*.S) | %s | %s |" % (
            sw.get("kind", "?"), fmt(sw.get("ss_ns"), 2),
            fmt(sw.get("ss_median_ns"), 2)),
        "| glibc `swapcontext` | %s | %s |" % (
            fmt(sw.get("swapcontext_ns"), 2),
            fmt(sw.get("swapcontext_median_ns"), 2)),
        "",
        "swapcontext takes %s× as long: it saves and restores the signal mask "
        "with a system call at every switch." % fmt(sw.get("ratio"), 1),
    ])


def main(argv):
    meta = read_meta(argv[1])
    res = read_results(argv[2])
    syscalls = read_syscalls(argv[3])
    instr = read_instructions(argv[4] if len(argv) > 4 else None)
    bgs = [r["bg"] for e in res.values() for r in e["ok"].values()
           if "bg" in r]
    out = header(meta, bgs)
    out += ["## Results", ""]
    for scen, title in SCENARIOS:
        if not any(sc == scen for sc, _ in res):
            continue
        out += ["### %s (`%s`)" % (title, scen), "",
                scenario_table(res, scen,
                               "epoll-udp" if scen == "udp" else "epoll"), ""]
    for scen, conns in RSS_SCENARIOS:
        if not any(sc == scen and e["ok"] for (sc, _), e in res.items()):
            continue
        out += ["### Server peak RSS at %s connections" % conns, "",
                "The sum of VmHWM (peak resident set) over the processes of "
                "the server's session, sampled every 0.25 s while the load "
                "generator ran: for a single-process server (threads "
                "included) that is the process's VmHWM. Median over runs; "
                "*errors* and *idle* connections summed over them. *Earlier "
                "figure*: measured before on this machine, quoted by the "
                "async mode's targets.",
                "", rss_table(res, scen), ""]
    if syscalls:
        short, _, long_ = meta.get("syscall_requests", "?,?").partition(",")
        out += ["### Syscalls per echo request (steady state)", "",
                "Measured with `strace -c -f -p SERVER` (all threads and "
                "children) while one connection made %s and then %s 64-byte "
                "requests against the same server; per request = (calls in "
                "the long run − calls in the short run) / %s, so accepting, "
                "thread start and tear-down cancel out. strace slows the "
                "server but not what it calls." % (
                    short, long_, int(long_) - int(short)
                    if long_.isdigit() and short.isdigit() else "?"),
                "", syscall_table(syscalls), ""]
    if meta.get("switch_result"):
        out += ["### Context switch", "", switch_section(meta), ""]
    if instr:
        out += ["### User-space instructions per request", "",
                "Counted by `bench/instructions` (valgrind's callgrind, "
                "`--trace-children=no`): the server runs under valgrind while "
                "the load generator makes exactly N1 requests (64 B; tcpC: C "
                "connections, udp: 8 sockets), then a new one for N2; the "
                "instructions of all its threads (and forked processes) are "
                "added up and per request = (Ir(N2) − Ir(N1)) / (N2 − N1), so "
                "start-up, accepting and shutdown cancel out. User space "
                "only: the kernel's share of each syscall is not counted. "
                "valgrind runs one thread at a time, many times slower, so "
                "an event loop finds more events per wake-up than at full "
                "speed: these are counts to compare servers by, not "
                "timings. *× reference*: to the epoll reference (UDP: the "
                "epoll UDP reference) counted in the same invocation. "
                "*Earlier figure*: quoted by the async mode's targets, "
                "counted before on this machine.", "",
                instructions_table(instr), ""]
    notes_ = caveats(res)
    if notes_:
        out += ["### Caveats", ""] + notes_ + [""]
    out += ["## Targets", "",
            "Ratios from the same runs as the tables above.", "",
            targets(res, syscalls, instr), "",
            "### References against the scale quoted in the issue", "",
            scale_table(res), ""]
    out += analysis()
    sys.stdout.write("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
