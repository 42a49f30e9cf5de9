#!/usr/bin/env python3
"""Helpers for bench/ftp.sh.

  xfers LOG OFFSET DIRECTION      count transfers in a server log from byte OFFSET on:
                                  DIRECTION up|down; vsftpd's "OK UPLOAD:"/"OK DOWNLOAD:" lines or
                                  proftpd's xferlog (direction i/o, 7th field from the end). Only
                                  names carrying a gentree file name (fNNNNN) count, so a clock
                                  probe or a listing does not.
  sftpxfers LOG OFFSET DIRECTION  the same in sftp-server's VERBOSE log (bench/sftp.sh): a file
                                  closed with bytes written (up) or read (down); prints
                                  "transfers operations", operations being the log lines other
                                  than sessions opening and closing.
  compare SRC DST SKEW            compare DST (a copy of SRC: the server's folder on local disk, or
                                  a download) with SRC: prints "missing contentdiff extra mtime_pct"
                                  where mtime_pct is the % of files present in both whose mtime
                                  (+SKEW, the server's clock offset, for a server folder) equals
                                  SRC's to the second.
  summary RAW OUT                 print the table of medians and ratios; write it to OUT too.
  counters BEFORE AFTER JSONL TREE SERVER SCENARIO REP TOOL
                                  the latency proxy's counts between two of its dumps: prints
                                  "logins cmds turns data" (tab-separated) and appends the run's
                                  counts, with command lines per verb and the two dumps' numbers
                                  (the run's span in the proxy's trace), to JSONL.
  verbs JSONL OUT                 print the command lines per verb (medians per run) of the
                                  no-op runs in JSONL; append the table to OUT.
"""
import filecmp
import json
import os
import re
import statistics
import sys

NAME = re.compile(r"f\d{5}")


def xfers(log, offset, direction):
    try:
        with open(log, "rb") as fh:
            fh.seek(int(offset))
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        print(0)
        return
    n = 0
    for line in text.splitlines():
        if "OK UPLOAD:" in line or "OK DOWNLOAD:" in line:  # vsftpd
            up = "OK UPLOAD:" in line
            m = re.search(r'"(/[^"]*)"', line)
            path = m.group(1) if m else ""
        else:  # proftpd xferlog
            f = line.split()
            if len(f) < 14 or f[-1] != "c":
                continue
            up = f[-7] == "i"
            path = f[-10]
            if f[-7] not in ("i", "o"):
                continue
        if up == (direction == "up") and NAME.search(os.path.basename(path)):
            n += 1
    print(n)


SFTP_CLOSE = re.compile(r'^close "(.*)" bytes read (\d+) written (\d+)$')


def sftpxfers(log, offset, direction):
    try:
        with open(log, "rb") as fh:
            fh.seek(int(offset))
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        print(0, 0)
        return
    n = ops = 0
    for line in text.splitlines():
        if line.startswith("session ") or line.startswith("received client version"):
            continue
        ops += 1
        m = SFTP_CLOSE.match(line)
        if not m or not NAME.search(os.path.basename(m.group(1))):
            continue
        if int(m.group(3) if direction == "up" else m.group(2)) > 0:
            n += 1
    print(n, ops)


def files(root):
    out = {}
    for dp, dns, fns in os.walk(root):
        for fn in fns:
            p = os.path.join(dp, fn)
            if os.path.isfile(p) and not os.path.islink(p):
                out[os.path.relpath(p, root)] = os.stat(p)
    return out


def compare(src, dst, skew):
    s, d = files(src), files(dst) if os.path.isdir(dst) else {}
    skew = int(skew)
    missing = sum(1 for r in s if r not in d)
    extra = sum(1 for r in d if r not in s)
    content = same_time = both = 0
    for rel, st in s.items():
        dt = d.get(rel)
        if dt is None:
            continue
        both += 1
        if st.st_size != dt.st_size or not filecmp.cmp(os.path.join(src, rel), os.path.join(dst, rel), shallow=False):
            content += 1
        if int(st.st_mtime) == int(dt.st_mtime) + skew:
            same_time += 1
    pct = 100.0 * same_time / both if both else 0.0
    print(missing, content, extra, "%.0f" % pct)


SCENARIOS = ["up-first", "up-warm", "up-noop", "up-1pct", "down-first", "down-warm", "down-noop"]
COUNT_FIELDS = ["logins", "cmds", "turns", "data"]


def counters(before, after, jsonl, tree, server, scenario, rep, tool):
    with open(before) as fh:
        a = json.load(fh)
    with open(after) as fh:
        b = json.load(fh)
    d = {k: b[k] - a.get(k, 0) for k in b if isinstance(b[k], int) and not k.startswith("max_")}
    verbs = {v: n - a["verbs"].get(v, 0) for v, n in b["verbs"].items() if n - a["verbs"].get(v, 0)}
    run = dict(tree=tree, server=server, scenario=scenario, rep=int(rep), tool=tool,
               logins=d["control_connections"], cmds=d["commands"], turns=d["turns"], data=d["data_connections"],
               control_bytes=d["control_bytes_up"] + d["control_bytes_down"],
               data_bytes=d["data_bytes_up"] + d["data_bytes_down"], verbs=verbs,
               dumps=[a["dumps"], b["dumps"]])
    with open(jsonl, "a") as fh:
        fh.write(json.dumps(run, sort_keys=True) + "\n")
    print("\t".join(str(run[k]) for k in COUNT_FIELDS))


def verbs(jsonl, out):
    runs = [json.loads(line) for line in open(jsonl) if line.strip()]
    lines = []
    for sc in ("up-noop", "down-noop"):
        rs = [r for r in runs if r["scenario"] == sc]
        if not rs:
            continue
        names = sorted({v for r in rs for v in r["verbs"]}, key=lambda v: -sum(r["verbs"].get(v, 0) for r in rs))
        keys = []
        for r in rs:
            k = (r["tree"], r["server"], r["tool"])
            if k not in keys:
                keys.append(k)
        lines.append("command lines per run by verb, %s (medians over repetitions)" % sc)
        lines.append("%-6s %-12s %-15s " % ("tree", "server", "tool") + " ".join("%6s" % v for v in names))
        for k in sorted(keys):
            group = [r for r in rs if (r["tree"], r["server"], r["tool"]) == k]
            cells = []
            for v in names:
                m = statistics.median(r["verbs"].get(v, 0) for r in group)
                cells.append("%6s" % ("%g" % m if m else "."))
            lines.append("%-6s %-12s %-15s " % k + " ".join(cells))
        lines.append("")
    text = "\n".join(lines)
    sys.stdout.write(text)
    with open(out, "a") as fh:
        fh.write("\n" + text)


def summary(raw, out):
    runs = []
    with open(raw) as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if len(f) < 12:
                continue
            runs.append(dict(tree=f[0], server=f[1], scenario=f[2], rep=int(f[3]), tool=f[4], secs=float(f[5]),
                             rss=int(f[6]), rc=int(f[7]), xfers=int(f[8]), expected=int(f[9]), missed=int(f[10]),
                             extra=int(f[11]), mtime=f[12] if len(f) > 12 else "-",
                             counts=[int(x) for x in f[13:17]] if len(f) >= 17 else
                             [int(f[13])] if len(f) == 14 else None))
    with_counts = any(r["counts"] for r in runs)
    fields = COUNT_FIELDS if any(r["counts"] and len(r["counts"]) == 4 for r in runs) else ["ops"]
    lines = []
    w = lines.append
    w("%-6s %-12s %-10s %-14s %9s %8s %7s %14s %7s %6s%s" % (
        "tree", "server", "scenario", "tool", "median_s", "rss_MiB", "fails", "xfers(expect)", "missed", "mtime%",
        "".join(" %6s" % c for c in fields) if with_counts else ""))
    keys = []
    for r in runs:
        k = (r["tree"], r["server"], r["scenario"])
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (k[0], k[1], SCENARIOS.index(k[2]) if k[2] in SCENARIOS else 99))
    for k in keys:
        tools = []
        for r in runs:
            if (r["tree"], r["server"], r["scenario"]) == k and r["tool"] not in tools:
                tools.append(r["tool"])
        med = {}
        for t in tools:
            rs = [r for r in runs if (r["tree"], r["server"], r["scenario"], r["tool"]) == k + (t,)]
            ok = [r for r in rs if r["rc"] == 0]
            fails = len(rs) - len(ok)
            m = statistics.median(r["secs"] for r in ok) if ok else None
            if m is not None:
                med[t] = m
            rss = statistics.median(r["rss"] for r in rs) / 1024.0
            xs = sorted(set(r["xfers"] for r in rs))
            xtext = ("%d" % xs[0] if len(xs) == 1 else "%d-%d" % (xs[0], xs[-1])) + "(%d)" % rs[0]["expected"]
            missed = max(r["missed"] for r in rs)
            mt = "/".join(sorted(set(r["mtime"] for r in rs)))
            cs = ""
            if with_counts:
                cs = "".join(" %6s" % ("%g" % statistics.median(r["counts"][i] for r in rs if r["counts"])
                                       if any(r["counts"] for r in rs) else "-") for i in range(len(fields)))
            w("%-6s %-12s %-10s %-14s %9s %8.1f %7s %14s %7d %6s%s" % (
                k[0], k[1], k[2], t, "-" if m is None else "%.2f" % m, rss, "%d/%d" % (fails, len(rs)), xtext,
                missed, mt, cs))
        if "plugsync" in med:
            # The best peer among those that missed nothing (a fast wrong answer is no yardstick).
            def correct(p):
                return all(r["missed"] == 0 for r in runs if (r["tree"], r["server"], r["scenario"], r["tool"]) == k + (p,))
            peers = {p: v for p, v in med.items() if p != "plugsync" and correct(p)}
            if peers:
                bp = min(peers, key=peers.get)
                # Paired: the median of the per-repetition ratios (steadier on a busy machine).
                secs = {(r["tool"], r["rep"]): r["secs"] for r in runs
                        if (r["tree"], r["server"], r["scenario"]) == k and r["rc"] == 0}
                pairs = [secs[("plugsync", rep)] / secs[(bp, rep)] for (t, rep) in secs
                         if t == "plugsync" and (bp, rep) in secs and secs[(bp, rep)] > 0]
                paired = " (paired %.2f)" % statistics.median(pairs) if pairs else ""
                w("%-6s %-12s %-10s ratio plugsync/best-peer (%s) = %.2f%s" % (
                    k[0], k[1], k[2], bp, med["plugsync"] / peers[bp], paired))
            elif len(med) > 1:
                w("%-6s %-12s %-10s ratio plugsync/best-peer: n/a (every peer missed changed files)" % k)
        elif "plugsync" in tools:
            w("%-6s %-12s %-10s ratio plugsync/best-peer: n/a (plugsync failed every run)" % k)
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    with open(out, "a") as fh:
        fh.write(text)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"xfers": xfers, "sftpxfers": sftpxfers, "compare": compare, "summary": summary, "counters": counters, "verbs": verbs}[cmd](*args)
