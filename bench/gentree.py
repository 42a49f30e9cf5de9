#!/usr/bin/env python3
"""Helpers for bench/local.sh: build the test tree, change part of it, inspect copies.

Subcommands (all deterministic for a given seed):
  gen DIR --files N --folders F --depth D --min-size B --max-size B --seed S
          [--big K --big-min B --big-max B]
      Create DIR (must not exist) with N files of random content, sizes uniform in
      [min, max] bytes, spread over F folders nested at most D levels deep. With --big K,
      K of the N files (chosen by the seed) get sizes in [big-min, big-max] instead
      (the "mixed" tree of bench/ftp.sh: 2,000 files, 20 of them 5-20 MiB).
      Files get fixed mtimes in 2023 (with nanoseconds), mode 0644; folders 0755.
  mutate DIR --count K --seed S
      Rewrite K files chosen by seed S with new random content of the same size, in
      place, and give each a new mtime later than its old one (now, and at least 2 s later).
  snap DIR OUT
      Write "relpath<TAB>inode<TAB>ctime_ns" for every regular file under DIR.
  changed BEFORE AFTER
      Print "<rewritten> <new_inode> <removed>": files present after whose inode or ctime
      differs from before (or which are new), how many of those have a new inode, and
      files that disappeared.
  verify SRC DST
      Compare the two trees: same entries, same types, same file content, size, mtime (ns)
      and permission bits. Prints "ok" or a short summary of differences; exit 0 / 1.
"""
import argparse
import filecmp
import os
import random
import stat
import sys
import time

BASE_MTIME = 1_672_531_200  # 2023-01-01T00:00:00Z


def gen(a):
    rng = random.Random(a.seed)
    root = a.dir
    os.makedirs(root)
    # Folders: each new folder hangs under a random existing folder of depth < max depth.
    folders = [("", 0)]
    for i in range(a.folders):
        candidates = [f for f in folders if f[1] < a.depth]
        parent, depth = rng.choice(candidates)
        rel = os.path.join(parent, "d%03d" % i) if parent else "d%03d" % i
        folders.append((rel, depth + 1))
    for rel, _ in folders[1:]:
        os.mkdir(os.path.join(root, rel), 0o755)
    exts = [".txt", ".dat", ".jpg", ".html", ".pdf", ".c", ".json", ""]
    # Only drawn when asked for, so that trees without --big stay byte-identical.
    big = set(rng.sample(range(a.files), min(a.big, a.files))) if a.big else set()
    for i in range(a.files):
        folder = rng.choice(folders[1:]) if a.folders else folders[0]
        size = rng.randint(a.min_size, a.max_size)
        if i in big:
            size = rng.randint(a.big_min, a.big_max)
        name = "f%05d%s" % (i, rng.choice(exts))
        path = os.path.join(root, folder[0], name)
        with open(path, "wb") as fh:
            fh.write(rng.randbytes(size))
        os.chmod(path, 0o644)
        mt = (BASE_MTIME + rng.randint(0, 300 * 86400)) * 10**9 + rng.randint(0, 10**9 - 1)
        os.utime(path, ns=(mt, mt))
    # Folder mtimes last (writing files changes them), deepest first.
    for rel, _ in sorted(folders, key=lambda f: -f[1]):
        mt = BASE_MTIME * 10**9 + rng.randint(0, 10**15)
        os.utime(os.path.join(root, rel), ns=(mt, mt))


def list_files(root):
    out = []
    for dp, dns, fns in os.walk(root):
        dns.sort()
        for fn in sorted(fns):
            p = os.path.join(dp, fn)
            if stat.S_ISREG(os.lstat(p).st_mode):
                out.append(os.path.relpath(p, root))
    return out


def mutate(a):
    files = list_files(a.dir)
    rng = random.Random(a.seed)
    chosen = rng.sample(files, min(a.count, len(files)))
    for rel in chosen:
        p = os.path.join(a.dir, rel)
        st = os.stat(p)
        with open(p, "r+b") as fh:
            fh.write(rng.randbytes(st.st_size))
        new = max(time.time_ns(), st.st_mtime_ns + 2 * 10**9)
        os.utime(p, ns=(new, new))
    print(len(chosen))


def snap(a):
    with open(a.out, "w") as fh:
        for dp, dns, fns in os.walk(a.dir):
            for fn in fns:
                p = os.path.join(dp, fn)
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode):
                    fh.write("%s\t%d\t%d\n" % (os.path.relpath(p, a.dir), st.st_ino, st.st_ctime_ns))


def read_snap(path):
    d = {}
    with open(path) as fh:
        for line in fh:
            rel, ino, ct = line.rstrip("\n").split("\t")
            d[rel] = (ino, ct)
    return d


def changed(a):
    before, after = read_snap(a.before), read_snap(a.after)
    rewritten = new_inode = 0
    for rel, (ino, ct) in after.items():
        old = before.get(rel)
        if old is None or old != (ino, ct):
            rewritten += 1
            if old is None or old[0] != ino:
                new_inode += 1
    removed = sum(1 for rel in before if rel not in after)
    print(rewritten, new_inode, removed)


def tree(root):
    d = {}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            p = os.path.join(dp, n)
            d[os.path.relpath(p, root)] = os.lstat(p)
    return d


def verify(a):
    s, d = tree(a.src), tree(a.dst)
    missing = sorted(set(s) - set(d))
    extra = sorted(set(d) - set(s))
    content = mtime = mode = kind = 0
    examples = []
    for rel in sorted(set(s) & set(d)):
        ss, ds = s[rel], d[rel]
        if stat.S_IFMT(ss.st_mode) != stat.S_IFMT(ds.st_mode):
            kind += 1
            examples.append("type " + rel)
            continue
        if not stat.S_ISREG(ss.st_mode):
            continue
        if ss.st_size != ds.st_size or not filecmp.cmp(
                os.path.join(a.src, rel), os.path.join(a.dst, rel), shallow=False):
            content += 1
            examples.append("content " + rel)
        if ss.st_mtime_ns != ds.st_mtime_ns:
            mtime += 1
            if len(examples) < 3:
                examples.append("mtime %s (%d vs %d)" % (rel, ss.st_mtime_ns, ds.st_mtime_ns))
        if stat.S_IMODE(ss.st_mode) != stat.S_IMODE(ds.st_mode):
            mode += 1
    problems = []
    for label, n in (("missing", len(missing)), ("extra", len(extra)), ("type", kind),
                     ("content", content), ("mtime", mtime), ("mode", mode)):
        if n:
            problems.append("%s=%d" % (label, n))
    if not problems:
        print("ok")
        return 0
    examples = ["missing " + m for m in missing[:2]] + ["extra " + e for e in extra[:2]] + examples
    print(",".join(problems))
    for e in examples[:5]:
        print("  " + e, file=sys.stderr)
    return 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--files", type=int, default=10000)
    g.add_argument("--folders", type=int, default=200)
    g.add_argument("--depth", type=int, default=4)
    g.add_argument("--min-size", type=int, default=1024)
    g.add_argument("--max-size", type=int, default=16384)
    g.add_argument("--seed", type=int, default=20240601)
    g.add_argument("--big", type=int, default=0)
    g.add_argument("--big-min", type=int, default=5 * 2**20)
    g.add_argument("--big-max", type=int, default=20 * 2**20)
    m = sub.add_parser("mutate")
    m.add_argument("dir")
    m.add_argument("--count", type=int, required=True)
    m.add_argument("--seed", type=int, required=True)
    s = sub.add_parser("snap")
    s.add_argument("dir")
    s.add_argument("out")
    c = sub.add_parser("changed")
    c.add_argument("before")
    c.add_argument("after")
    v = sub.add_parser("verify")
    v.add_argument("src")
    v.add_argument("dst")
    a = p.parse_args()
    return {"gen": gen, "mutate": mutate, "snap": snap, "changed": changed, "verify": verify}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
