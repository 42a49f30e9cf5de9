#!/usr/bin/env python3
"""Where a run's round trips go, from bench/latency-proxy.py's --trace and ftp.sh's counts.

    tracephases.py TRACE COUNTS.jsonl RTT_MS [SCENARIO ...] [--timeline TOOL]

For each run of the given scenarios (default up-noop down-noop) in COUNTS.jsonl (its `dumps`
mark its span in TRACE), prints: the span from the first connection to the last event, that
span in round trips, the control connections, when the first command past the login went out
(USER PASS FEAT OPTS TYPE PWD SYST CLNT count as login), when the first and the last listing
(LIST, MLSD, NLST) went out, the command lines and the most on one connection (a chain of round
trips that no parallelism shortens), and the commands per phase: before the first listing,
during the listings, after the last one. --timeline TOOL prints that tool's runs event by event.
"""
import json
import sys

LOGIN = {"USER", "PASS", "FEAT", "OPTS", "TYPE", "PWD", "SYST", "CLNT"}
LISTING = {"LIST", "MLSD", "NLST"}


def spans(trace):
    """dump number -> list of (ms, conn, event) after that dump, up to the next."""
    out, current = {}, None
    for line in open(trace):
        parts = line.rstrip("\n").split(" ", 2)
        if len(parts) < 3:
            continue
        ms, conn, event = float(parts[0]), parts[1], parts[2]
        if conn == "-" and event.startswith("dump "):
            current = int(event.split()[1])
            out[current] = []
        elif current is not None:
            out[current].append((ms, conn, event))
    return out


def analyse(events, rtt):
    if not events:
        return None
    t0 = events[0][0]
    end = events[-1][0]
    cmds = [(ms - t0, c, e[2:]) for ms, c, e in events if e.startswith("> ")]
    per_conn = {}
    for ms, c, v in cmds:
        per_conn.setdefault(c, []).append(v)
    past_login = [ms for ms, c, v in cmds if v not in LOGIN]
    lists = [ms for ms, c, v in cmds if v in LISTING]
    first_list = lists[0] if lists else None
    last_list = lists[-1] if lists else None
    before = sum(1 for ms, c, v in cmds if first_list is not None and ms < first_list)
    after = sum(1 for ms, c, v in cmds if last_list is not None and ms > last_list)
    return dict(span=(end - t0) / 1000, rtts=(end - t0) / rtt,
                logins=sum(1 for ms, c, e in events if e == "open" and "." not in c),
                ready=past_login[0] if past_login else None, first_list=first_list, last_list=last_list,
                cmds=len(cmds), most=max((len(v) for v in per_conn.values()), default=0),
                before=before, after=after, during=len(cmds) - before - after, t0=t0)


def fmt(ms):
    return "-" if ms is None else "%.0f" % ms


def main(argv):
    timeline = None
    if "--timeline" in argv:
        i = argv.index("--timeline")
        timeline = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    trace, counts, rtt = argv[0], argv[1], float(argv[2])
    scenarios = argv[3:] or ["up-noop", "down-noop"]
    by_dump = spans(trace)
    runs = [json.loads(line) for line in open(counts) if line.strip()]
    print("%-6s %-10s %-15s %7s %6s %6s %8s %9s %9s %6s %6s %17s" % (
        "tree", "scenario", "tool", "span_s", "RTTs", "logins", "ready_ms", "list1_ms", "listN_ms", "cmds", "most",
        "before/in/after"))
    for r in runs:
        if r["scenario"] not in scenarios or "dumps" not in r:
            continue
        a = analyse(by_dump.get(r["dumps"][0], []), rtt)
        if a is None:
            continue
        print("%-6s %-10s %-15s %7.2f %6.1f %6d %8s %9s %9s %6d %6d %17s" % (
            r["tree"], r["scenario"], r["tool"], a["span"], a["rtts"], a["logins"], fmt(a["ready"]),
            fmt(a["first_list"]), fmt(a["last_list"]), a["cmds"], a["most"],
            "%d/%d/%d" % (a["before"], a["during"], a["after"])))
        if timeline == r["tool"]:
            for ms, c, e in by_dump[r["dumps"][0]]:
                print("    %8.0f %-10s %s" % (ms - a["t0"], c, e))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1:])
