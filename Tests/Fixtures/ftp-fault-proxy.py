#!/usr/bin/env python3
"""A TCP proxy for FTP on 127.0.0.1 that cuts or stalls connections at seeded byte offsets.

    ftp-fault-proxy.py --upstream PORT --seed N [--faults K] [--data-max BYTES] [--control-max BYTES]
                       [--data-delay SECONDS] [--port-file FILE] [--log FILE]

It listens on 127.0.0.1 (a free port, written to --port-file), relays each control connection
to 127.0.0.1:PORT, and relays the passive data connections too: every `227` (PASV) and `229`
(EPSV) reply is rewritten to name a port of the proxy, which then connects to the server's.

Faults: the first K connections (control or data) that the seeded generator picks get one
fault each, at a byte offset (bytes relayed in both directions) drawn from 0..control-max for
a control connection and 0..data-max for a data connection (log-uniform: small offsets as
likely as large ones):
  - fin:   forward up to the offset, then close both sides (an orderly close);
  - rst:   the same with a reset (SO_LINGER 0);
  - stall: forward up to the offset, then nothing in either direction, the sockets left open
           until the client gives up (the proxy's lifetime at most).
--data-delay holds every data connection that long before it is connected on to the server
(a slow data path; the control connections are not delayed).
Every fault is logged to --log as `fault KIND conn=N kind=control|data offset=O`.
The same seed, and the same client behaviour, gives the same faults.
"""
import argparse
import math
import random
import re
import socket
import struct
import sys
import threading
import time

lock = threading.Lock()
counter = [0]
faults_left = [0]
rng = None
args = None
log_file = None


def log(line):
    with lock:
        if log_file:
            log_file.write(line + "\n")
            log_file.flush()


def plan(kind):
    """A fault for the next connection of `kind`, or None."""
    with lock:
        counter[0] += 1
        number = counter[0]
        if faults_left[0] <= 0:
            return number, None
        probability = args.control_probability if kind == "control" else args.data_probability
        if rng.random() >= probability:
            return number, None
        faults_left[0] -= 1
        fault = rng.choice(["fin", "rst", "stall"])
        # Log-uniform: small offsets (a listing, a small file, a login) as likely as large ones.
        limit = args.control_max if kind == "control" else args.data_max
        offset = int(math.exp(rng.uniform(0, math.log(limit + 1)))) - 1
        return number, (fault, offset)


def close_quietly(sock, reset=False):
    """Closes for real: a plain close() does not end a socket that another thread is reading
    (the kernel keeps it open), so shutdown() first: a FIN, or with `reset` an RST."""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RD)
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Relay:
    """Relays two sockets, counting bytes in both directions, and applies one fault."""

    def __init__(self, client, server, number, kind, fault, rewrite=None):
        self.client, self.server = client, server
        self.number, self.kind, self.fault = number, kind, fault
        self.rewrite = rewrite
        self.count = 0
        self.done = False
        self.stalled = False
        self.mutex = threading.Lock()

    def run(self):
        threads = [
            threading.Thread(target=self.pump, args=(self.client, self.server, False), daemon=True),
            threading.Thread(target=self.pump, args=(self.server, self.client, True), daemon=True),
        ]
        for t in threads:
            t.start()

    def budget(self, n):
        """How many of the next n bytes may pass; applies the fault when the offset is reached."""
        with self.mutex:
            if self.done or self.stalled:
                return 0
            if self.fault is None:
                self.count += n
                return n
            kind, offset = self.fault
            allowed = max(0, min(n, offset - self.count))
            self.count += allowed
            return allowed

    def trigger(self):
        with self.mutex:
            if self.done or self.stalled:
                return
            kind, offset = self.fault
            log(f"fault {kind} conn={self.number} kind={self.kind} offset={offset}")
            if kind == "stall":
                self.stalled = True
                return
            self.done = True
        close_quietly(self.client, reset=(kind == "rst"))
        close_quietly(self.server, reset=(kind == "rst"))

    def finish(self):
        with self.mutex:
            if self.done:
                return
            self.done = True
        close_quietly(self.client)
        close_quietly(self.server)

    def pump(self, source, target, from_server):
        pending = b""
        try:
            while True:
                if self.stalled:
                    time.sleep(0.2)
                    continue
                data = source.recv(65536)
                if not data:
                    break
                if from_server and self.rewrite:
                    pending += data
                    lines = pending.split(b"\n")
                    pending = lines.pop()
                    data = b"".join(self.rewrite(line + b"\n") for line in lines)
                    if not data:
                        continue
                allowed = self.budget(len(data))
                if allowed:
                    target.sendall(data[:allowed])
                if allowed < len(data):
                    if self.fault is not None:
                        self.trigger()
                    return
            # An orderly end from one side: pass it on.
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if from_server or self.kind == "data":
                time.sleep(0.05)
                self.finish()
        except OSError:
            self.finish()


def data_listener(server_port):
    """A one-shot listener for one passive data connection to the server's `server_port`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(60)

    def accept():
        try:
            client, _ = listener.accept()
        except OSError:
            return
        finally:
            listener.close()
        if args.data_delay:
            time.sleep(args.data_delay)
        try:
            server = socket.create_connection(("127.0.0.1", server_port), timeout=10)
            server.settimeout(None)
        except OSError:
            close_quietly(client)
            return
        number, fault = plan("data")
        Relay(client, server, number, "data", fault).run()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


PASV = re.compile(rb"^227 .*?\(?(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)?")
EPSV = re.compile(rb"^229 (.*)\(\|\|\|(\d+)\|\)")


def rewrite(line):
    m = EPSV.match(line)
    if m:
        port = data_listener(int(m.group(2)))
        return b"229 " + m.group(1) + b"(|||" + str(port).encode() + b"|)\r\n"
    m = PASV.match(line)
    if m:
        port = data_listener(int(m.group(5)) * 256 + int(m.group(6)))
        return b"227 Entering Passive Mode (127,0,0,1,%d,%d).\r\n" % (port // 256, port % 256)
    return line


def main():
    global rng, args, log_file
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--faults", type=int, default=1)
    parser.add_argument("--data-max", type=int, default=1 << 20)
    parser.add_argument("--control-max", type=int, default=2000)
    parser.add_argument("--control-probability", type=float, default=0.25)
    parser.add_argument("--data-probability", type=float, default=0.5)
    parser.add_argument("--data-delay", type=float, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--log")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    faults_left[0] = args.faults
    log_file = open(args.log, "a") if args.log else None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        import os

        os.rename(args.port_file + ".tmp", args.port_file)
    print(port, flush=True)
    while True:
        client, _ = listener.accept()
        try:
            server = socket.create_connection(("127.0.0.1", args.upstream), timeout=10)
            server.settimeout(None)
        except OSError:
            close_quietly(client)
            continue
        number, fault = plan("control")
        Relay(client, server, number, "control", fault, rewrite=rewrite).run()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
