#!/usr/bin/env python3
"""How fast a folder tree on an FTP server can be listed: a yardstick for the round trips.

    listing-floor.py --port P --root DIR [--connections N] [--mode stat|list|mlsd]

Logs in N times (FTP_USER / FTP_PASSWORD from the environment), then lists DIR and every folder
under it, each connection taking the next folder known, as soon as a parent's listing names it:
  - stat: `STAT path` — the listing comes back on the control connection: one round trip per
          folder and no data connection (vsftpd and proftpd both answer it, in LIST's format);
  - list: `PASV`, then `LIST path` on a data connection (what a LIST-only client does);
  - mlsd: `PASV`, then `MLSD path` on a data connection.
Prints the folders and files found and the seconds taken. Nothing is written on the server.
"""
import argparse
import ftplib
import os
import queue
import sys
import threading
import time


def entries_from_list(lines):
    """(name, is_dir) from LIST-format lines (`drwxr-xr-x 2 u g 4096 Jan 05 2023 name`)."""
    out = []
    for line in lines:
        parts = line.split(None, 8)
        if len(parts) < 9 or parts[8] in (".", ".."):
            continue
        out.append((parts[8], line.lstrip().startswith("d")))
    return out


def lister(host, port, user, password, mode, work, found, lock, pending, done):
    try:
        walk(host, port, user, password, mode, work, found, lock, pending, done)
    except (OSError, ftplib.Error) as e:
        found["error"] = "%s: %s" % (type(e).__name__, e)
        done.set()


def walk(host, port, user, password, mode, work, found, lock, pending, done):
    ftp = ftplib.FTP()
    ftp.connect(host, port, timeout=60)
    ftp.login(user, password)
    ftp.voidcmd("TYPE I")
    while True:
        path = work.get()
        if path is None:
            break
        if mode == "stat":
            reply = ftp.sendcmd("STAT " + path)
            items = entries_from_list(reply.splitlines()[1:-1])
        else:
            # PASV, connect, the command; its data; the 226 (ftplib's retrlines would send a
            # TYPE before each: one round trip more per folder than a client needs).
            conn = ftp.transfercmd(("LIST " if mode == "list" else "MLSD ") + path)
            chunks = []
            while True:
                b = conn.recv(65536)
                if not b:
                    break
                chunks.append(b)
            conn.close()
            ftp.voidresp()
            lines = b"".join(chunks).decode("utf-8", "surrogateescape").splitlines()
            if mode == "list":
                items = entries_from_list(lines)
            else:
                items = []
                for line in lines:
                    facts, _, name = line.partition(" ")
                    kind = [f.split("=", 1)[1].lower() for f in facts.split(";") if f.lower().startswith("type=")]
                    if kind and kind[0] in ("file", "dir"):
                        items.append((name, kind[0] == "dir"))
        with lock:
            for name, is_dir in items:
                if is_dir:
                    found["folders"] += 1
                    pending[0] += 1
                    work.put(path + "/" + name)
                else:
                    found["files"] += 1
            pending[0] -= 1
            if pending[0] == 0:
                done.set()
    try:
        ftp.quit()
    except ftplib.all_errors:
        ftp.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--mode", choices=["stat", "list", "mlsd"], default="stat")
    a = p.parse_args()
    user, password = os.environ.get("FTP_USER"), os.environ.get("FTP_PASSWORD")
    if not user or not password:
        sys.exit("listing-floor: set FTP_USER and FTP_PASSWORD")
    work, lock, done = queue.Queue(), threading.Lock(), threading.Event()
    found, pending = {"folders": 1, "files": 0}, [1]
    t0 = time.monotonic()
    work.put(a.root)
    threads = [threading.Thread(daemon=True, target=lister, args=(a.host, a.port, user, password, a.mode, work, found, lock,
                                                     pending, done)) for _ in range(a.connections)]
    for t in threads:
        t.start()
    done.wait()
    elapsed = time.monotonic() - t0
    if "error" in found:
        sys.exit("listing-floor: " + found["error"])
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join()
    print("%s x%d: %d folders, %d files in %.2f s" % (a.mode, a.connections, found["folders"], found["files"],
                                                       elapsed))


if __name__ == "__main__":
    main()
