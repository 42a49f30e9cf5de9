#!/usr/bin/env python3
"""Checks bench/latency-proxy.py against a small FTP-speaking server of its own (stdlib only).

    python3 bench/test-latency-proxy.py [--port P]   (default 30900; data ports P+1..P+50)

What it checks, with a 100 ms round trip:
  - a connection's first reply (the banner) comes no sooner than 2 round trips: the handshake,
    the client's ACK (a half) and the reply's way back (a half);
  - a command's reply takes one round trip, not less and not much more;
  - commands sent 10 ms apart are answered 10 ms apart: each chunk waits its own delay, the proxy
    is a pipe, not a queue that adds the delays up;
  - 227 (PASV) and 229 (EPSV) replies name a port of the proxy, and the data connection through
    it delivers every byte, no sooner than 2 round trips after the connect;
  - the counters (on SIGUSR1, and at SIGTERM): connections, command lines per verb, turns, bytes;
    and the trace of connections and commands.
Exits 1 on the first failed check.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

RTT = 0.100
SLACK = 0.060  # scheduling on a loaded machine: a check fails only beyond this
GAP = 0.010  # between the three commands sent without waiting
PAYLOAD = os.urandom(3 << 20)


def serve_data(listener):
    conn, _ = listener.accept()
    listener.close()
    conn.sendall(PAYLOAD)
    conn.close()


def session(conn):
    f = conn.makefile("rb")
    conn.sendall(b"220 test server\r\n")
    data = None
    for line in f:
        verb = line.split()[0].upper() if line.split() else b""
        if verb == b"NOOP":
            conn.sendall(b"200 NOOP ok.\r\n")
        elif verb in (b"PASV", b"EPSV"):
            data = socket.socket()
            data.bind(("127.0.0.1", 0))
            data.listen(1)
            p = data.getsockname()[1]
            if verb == b"EPSV":
                conn.sendall(b"229 Entering Extended Passive Mode (|||%d|)\r\n" % p)
            else:
                conn.sendall(b"227 Entering Passive Mode (127,0,0,1,%d,%d).\r\n" % (p // 256, p % 256))
        elif verb == b"RETR" and data is not None:
            conn.sendall(b"150 Here it comes.\r\n")
            serve_data(data)
            data = None
            conn.sendall(b"226 Done.\r\n")
        elif verb == b"QUIT":
            conn.sendall(b"221 Bye.\r\n")
            break
        else:
            conn.sendall(b"500 What?\r\n")
    conn.close()


def server():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)

    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=session, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]


failures = 0


def check(what, ok, detail):
    global failures
    print("%s  %s: %s" % ("ok  " if ok else "FAIL", what, detail))
    if not ok:
        failures += 1


def between(what, value, lo, hi):
    check(what, lo <= value <= hi, "%.0f ms (want %.0f-%.0f)" % (value * 1e3, lo * 1e3, hi * 1e3))


def transfer(ctl, f, verb, port_range):
    t0 = time.monotonic()
    ctl.sendall(verb + b"\r\n")
    reply = f.readline()
    if verb == b"EPSV":
        m = re.search(rb"\(\|\|\|(\d+)\|\)", reply)
        port = int(m.group(1)) if m else 0
    else:
        m = re.search(rb"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", reply)
        port = int(m.group(5)) * 256 + int(m.group(6)) if m else 0
    check(verb.decode() + " reply names a proxy port", port in port_range, reply.decode().strip())
    if port not in port_range:
        return
    d = socket.create_connection(("127.0.0.1", port))
    ctl.sendall(b"RETR x\r\n")
    got = bytearray()
    while True:
        b = d.recv(65536)
        if not b:
            break
        got += b
    d.close()
    t1 = time.monotonic()
    check(verb.decode() + " data arrive whole", bytes(got) == PAYLOAD, "%d of %d bytes" % (len(got), len(PAYLOAD)))
    # the reply (1), then the handshake and the first byte's way back (2): the RETR, sent at once,
    # is there in time.
    between(verb.decode() + " transfer through the proxy", t1 - t0, 3 * RTT, 3 * RTT + 0.4)
    f.readline()
    f.readline()  # 150, 226


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=30900)
    a = p.parse_args()
    upstream = server()
    tmp = tempfile.mkdtemp()
    counters = os.path.join(tmp, "counters.json")
    trace = os.path.join(tmp, "trace.txt")
    proxy = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "latency-proxy.py"),
                              "--listen", str(a.port), "--upstream", str(upstream), "--rtt", str(RTT * 1000),
                              "--data-ports", "%d-%d" % (a.port + 1, a.port + 50), "--counters", counters, "--trace", trace])
    try:
        for _ in range(100):
            if os.path.exists(counters):
                break
            time.sleep(0.05)
        t0 = time.monotonic()
        ctl = socket.create_connection(("127.0.0.1", a.port))
        f = ctl.makefile("rb")
        f.readline()
        between("banner", time.monotonic() - t0, 2 * RTT, 2 * RTT + SLACK)

        t0 = time.monotonic()
        ctl.sendall(b"NOOP\r\n")
        f.readline()
        between("one command", time.monotonic() - t0, RTT, RTT + SLACK)

        t0 = time.monotonic()
        arrivals = []
        for i in range(3):
            ctl.sendall(b"NOOP\r\n")
            time.sleep(GAP)
        for i in range(3):
            f.readline()
            arrivals.append(time.monotonic() - t0)
        # A pipe: replies at ~100, 110, 120 ms. A proxy that delays each chunk only once the one
        # before it is out would give 100, 150, 200 ms or more.
        between("third of three commands 10 ms apart", arrivals[2], 2 * GAP + RTT, 2 * GAP + RTT + SLACK)

        port_range = range(a.port + 1, a.port + 51)
        transfer(ctl, f, b"EPSV", port_range)
        transfer(ctl, f, b"PASV", port_range)

        proxy.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        c = json.load(open(counters))
        check("counted connections", (c["control_connections"], c["data_connections"]) == (1, 2),
              "control %d, data %d (want 1, 2)" % (c["control_connections"], c["data_connections"]))
        check("counted commands by verb", c["verbs"] == {"NOOP": 4, "EPSV": 1, "PASV": 1, "RETR": 2},
              json.dumps(c["verbs"], sort_keys=True))
        # Turns: NOOP, the three NOOPs (each sent before the previous reply: one turn), EPSV, RETR,
        # PASV, RETR.
        check("counted turns", c["turns"] == 6, "%d (want 6)" % c["turns"])
        check("counted data bytes", c["data_bytes_down"] == 2 * len(PAYLOAD), "%d" % c["data_bytes_down"])
        ctl.sendall(b"QUIT\r\n")
        f.readline()
        ctl.close()
        time.sleep(0.3)
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(10)
        c2 = json.load(open(counters))
        check("counters written at exit", c2["dumps"] == c["dumps"] + 1 and c2["verbs"].get("QUIT") == 1,
              "dumps %d, QUIT %s" % (c2["dumps"], c2["verbs"].get("QUIT")))
        events = [line.split(None, 1)[1].strip() for line in open(trace)]
        want = ["c1 open", "c1 > NOOP", "c1 > EPSV", "c1.d1 open", "c1 > RETR", "c1.d1 closed", "c1 > PASV",
                "c1.d2 open", "c1 > QUIT", "c1 closed"]
        check("trace", all(w in events for w in want) and events.count("c1 > NOOP") == 4,
              "%d events: %s" % (len(events), ", ".join(events[:4]) + ", ..."))
    finally:
        if proxy.poll() is None:
            proxy.kill()
    print("%d check(s) failed" % failures if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
