#!/usr/bin/env python3
"""Summarize the raw runs of bench/local.sh: print a table and write the results file.

usage: summarize.py RAW.tsv META.txt RESULTS.txt
RAW.tsv columns: scenario rep tool seconds rss_kib rc rewritten new_inode removed expected verify
META.txt: "key=value" lines copied as "# key=value" into the results file.
"""
import statistics
import sys

SCENARIOS = [("first-copy", "(a) first copy into an empty destination"),
             ("no-op", "(b) re-run, nothing changed"),
             ("changed-1pct", "(c) re-run after 1% of the files were rewritten")]
TOOLS = ["plugsync", "rsync", "cp", "rclone"]


def fmt(x, nd=3):
    return "-" if x is None else ("%.*f" % (nd, x))


def main(raw_path, meta_path, out_path):
    runs = []
    with open(raw_path) as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if len(f) < 11:
                continue
            runs.append(dict(scenario=f[0], rep=int(f[1]), tool=f[2], secs=float(f[3]),
                             rss=int(f[4]), rc=int(f[5]), rewritten=int(f[6]), new_inode=int(f[7]),
                             removed=int(f[8]), expected=int(f[9]), verify=f[10]))
    meta = [l.strip() for l in open(meta_path) if l.strip()]

    summary = {}
    for sc, _ in SCENARIOS:
        for tool in TOOLS:
            rs = [r for r in runs if r["scenario"] == sc and r["tool"] == tool]
            if not rs:
                continue
            secs = [r["secs"] for r in rs]
            bad = [r["verify"] for r in rs if r["verify"] != "ok"]
            summary[(sc, tool)] = dict(
                runs=len(rs), med=statistics.median(secs), min=min(secs), max=max(secs),
                rss=statistics.median(r["rss"] for r in rs) / 1024.0,
                cmin=min(r["rewritten"] for r in rs), cmax=max(r["rewritten"] for r in rs),
                expected=rs[0]["expected"], failed=sum(1 for r in rs if r["rc"] != 0),
                verify="ok" if not bad else "%d/%d bad: %s" % (len(bad), len(rs), bad[0]))

    def med(sc, tool):
        s = summary.get((sc, tool))
        return s["med"] if s else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    ratios = []  # (name, value, target, verdict)

    def paired(sc, refs):
        """Median over repetitions of plugsync / min(refs) within the same repetition."""
        by = {}
        for r in runs:
            if r["scenario"] == sc:
                by.setdefault(r["rep"], {})[r["tool"]] = r["secs"]
        vals = []
        for rep, t in by.items():
            ref = [t[x] for x in refs if x in t]
            if "plugsync" in t and ref and min(ref) > 0:
                vals.append(t["plugsync"] / min(ref))
        return statistics.median(vals) if vals else None

    def add(name, value, limit, extra_ok=True, note="", pair=None):
        target = ("<= %.2f" % limit if limit else "-") + (note if value is not None else "")
        if value is None:
            ratios.append((name, None, None, target, "n/a"))
            return
        verdict = "-" if limit is None else ("PASS" if value <= limit and extra_ok else "FAIL")
        ratios.append((name, value, pair, target, verdict))

    p = med("first-copy", "plugsync")
    r, c = med("first-copy", "rsync"), med("first-copy", "cp")
    add("first-copy plugsync/rsync", ratio(p, r), None, pair=paired("first-copy", ["rsync"]))
    fastest = min(x for x in (r, c) if x is not None) if (r or c) else None
    add("first-copy plugsync/min(rsync,cp)", ratio(p, fastest), 0.9, pair=paired("first-copy", ["rsync", "cp"]))
    add("no-op plugsync/rsync", ratio(med("no-op", "plugsync"), med("no-op", "rsync")), 0.5,
        pair=paired("no-op", ["rsync"]))
    s = summary.get(("changed-1pct", "plugsync"))
    exact = bool(s) and s["cmin"] == s["cmax"] == s["expected"] and s["verify"] == "ok"
    add("changed-1pct plugsync/rsync", ratio(med("changed-1pct", "plugsync"), med("changed-1pct", "rsync")),
        0.5, exact, " and exactly the changed files copied", pair=paired("changed-1pct", ["rsync"]))
    prss = [v["rss"] for (sc, t), v in summary.items() if t == "plugsync"]
    rrss = [v["rss"] for (sc, t), v in summary.items() if t == "rsync"]
    add("peak-rss plugsync/rsync (max over scenarios)",
        ratio(max(prss), max(rrss)) if prss and rrss else None, 2.0)
    crss = [v["rss"] for (sc, t), v in summary.items() if t == "rclone"]
    add("peak-rss plugsync/rclone (max over scenarios)",
        ratio(max(prss), max(crss)) if prss and crss else None, 1.0, note=" (below rclone)")

    # Human table.
    lines = []
    hdr = "%-13s %-9s %4s %9s %9s %9s %8s  %-26s %s" % (
        "scenario", "tool", "runs", "median_s", "min_s", "max_s", "rss_MiB", "files rewritten", "check")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for sc, _ in SCENARIOS:
        for tool in TOOLS:
            v = summary.get((sc, tool))
            if not v:
                continue
            copied = str(v["cmin"]) if v["cmin"] == v["cmax"] else "%d..%d" % (v["cmin"], v["cmax"])
            check = v["verify"] + ("" if not v["failed"] else "; %d run(s) exit!=0" % v["failed"])
            lines.append("%-13s %-9s %4d %9.3f %9.3f %9.3f %8.1f  %-26s %s" % (
                sc, tool, v["runs"], v["med"], v["min"], v["max"], v["rss"],
                "copied %s, expected %d" % (copied, v["expected"]), check))
    lines.append("")
    lines.append("%-46s %7s %7s  %-45s %s" % ("ratio (of medians; paired = median per-rep)", "value", "paired", "target", "verdict"))
    for name, value, pair, target, verdict in ratios:
        lines.append("%-46s %7s %7s  %-45s %s" % (name, fmt(value, 2), fmt(pair, 2), target, verdict))
    print("\n".join(lines))

    # Machine-readable file.
    with open(out_path, "w") as fh:
        for m in meta:
            fh.write("# %s\n" % m)
        fh.write("# record types: summary / ratio / run (tab-separated); times in seconds, rss in MiB (run: KiB)\n")
        fh.write("#summary\tscenario\ttool\truns\tmedian_s\tmin_s\tmax_s\tmedian_rss_mib\tcopied_min\tcopied_max\texpected\tverify\tfailed_runs\n")
        for sc, _ in SCENARIOS:
            for tool in TOOLS:
                v = summary.get((sc, tool))
                if v:
                    fh.write("summary\t%s\t%s\t%d\t%.3f\t%.3f\t%.3f\t%.1f\t%d\t%d\t%d\t%s\t%d\n" % (
                        sc, tool, v["runs"], v["med"], v["min"], v["max"], v["rss"],
                        v["cmin"], v["cmax"], v["expected"], v["verify"], v["failed"]))
        fh.write("#ratio\tname\tvalue\tpaired\ttarget\tverdict\n")
        for name, value, pair, target, verdict in ratios:
            fh.write("ratio\t%s\t%s\t%s\t%s\t%s\n" % (name, fmt(value, 3) if value is not None else "n/a",
                                                    fmt(pair, 3) if pair is not None else "n/a", target, verdict))
        fh.write("#run\tscenario\trep\ttool\tseconds\trss_kib\texit\trewritten\tnew_inode\tremoved\texpected\tverify\n")
        for r in runs:
            fh.write("run\t%s\t%d\t%s\t%.3f\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n" % (
                r["scenario"], r["rep"], r["tool"], r["secs"], r["rss"], r["rc"], r["rewritten"],
                r["new_inode"], r["removed"], r["expected"], r["verify"]))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
