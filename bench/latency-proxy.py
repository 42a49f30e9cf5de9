#!/usr/bin/env python3
"""An FTP proxy on 127.0.0.1 that adds network latency, and counts what crosses it.

    latency-proxy.py --listen PORT --upstream PORT --rtt MS [--data-ports LO-HI|any]
                     [--window BYTES] [--counters FILE] [--trace FILE] [--port-file FILE]

It listens on 127.0.0.1:PORT and relays each control connection to the FTP server on
127.0.0.1:UPSTREAM. Every chunk of bytes, in either direction, is stamped when it arrives and
handed on RTT/2 later, in order: a pipe with latency, not a queue that serialises the delays
(a chunk that arrives while an earlier one waits is not held back by more than its own RTT/2).
So one request and its answer cost one RTT, as on a link with that round-trip time.

Passive data connections go through it too: every `227` (PASV) and `229` (EPSV) reply is
rewritten to name a port of the proxy (one listener per reply, from --data-ports), which relays
to the server's passive port with the same delays. A new connection (control or data) costs one
RTT more, as a TCP handshake does: the proxy waits RTT after it accepted before it connects on,
and reads nothing from the client until then; and nothing from the server reaches the client
sooner than 2 RTT after the connect (the handshake and the way back of the server's first bytes:
on a real link the server has the connection when the client's ACK arrives, 1.5 RTT after the
SYN). The client's connect() itself returns at once, as on loopback; with this bound, a client
that waits for it before sending its command gains nothing over one that does not.

Not modelled: bandwidth (the link is as fast as the proxy can copy) and slow start. A
connection holds at most --window bytes in flight per direction (default 4 MiB, about the
receive window Linux grows to), so a single stream tops out near window / (RTT/2), as TCP does.
Active mode (PORT, EPRT) is not supported: the server would connect to the client directly, past
the proxy, with no delay. Those commands are counted, so a run that used them shows it.

Counters (control connections, data connections, command lines per verb, turns, bytes) go to
--counters as JSON, replaced atomically, on SIGUSR1 and at exit (SIGTERM, SIGINT). They are
totals since the start; `dumps` counts the writes, so a reader can wait for a fresh one. A
"turn" is a run of bytes from the client on a control connection after the client last got
bytes from the server: commands sent without waiting for the replies in between (pipelined) are
several command lines but one turn.

--trace writes a line per event: milliseconds since the start, the connection (c1, c2, … for
control connections; c2.d7 for a data connection opened from c2's passive reply), and `open`,
`closed` or `> VERB` for a command line (the verb only: no names, no password), and `- dump N`
for each write of the counters. The gaps between
one connection's commands show which waits lie on a run's critical path.
"""
import argparse
import asyncio
import json
import os
import re
import signal
import socket
import sys

HOST = "127.0.0.1"
CHUNK = 65536

counters = {
    "dumps": 0,
    "control_connections": 0,
    "data_connections": 0,
    "data_listeners_unused": 0,
    "commands": 0,
    "turns": 0,
    "verbs": {},
    "control_bytes_up": 0,
    "control_bytes_down": 0,
    "data_bytes_up": 0,
    "data_bytes_down": 0,
    "max_control_open": 0,
    "max_data_open": 0,
}
open_now = {"control": 0, "data": 0}
args = None
trace_file = None
trace_start = 0.0
ids = {"control": 0, "data": 0}


def trace(name, event):
    """One line of --trace: milliseconds since the start, the connection, the event."""
    if trace_file:
        ms = (asyncio.get_running_loop().time() - trace_start) * 1000
        trace_file.write("%.1f %s %s\n" % (ms, name, event))


def dump():
    if not args.counters:
        return
    counters["dumps"] += 1
    trace("-", "dump %d" % counters["dumps"])
    tmp = args.counters + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(counters, fh, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, args.counters)


class DataPorts:
    """Hands out listening ports from a fixed range, round robin, skipping busy ones."""

    def __init__(self, spec):
        if spec == "any":  # ports the system chooses
            spec = "0-0"
        lo, hi = (int(x) for x in spec.split("-"))
        if not (0 < lo <= hi < 65536 or lo == hi == 0):
            raise SystemExit(f"latency-proxy: bad --data-ports {spec}")
        self.lo, self.hi, self.next = lo, hi, lo

    def bind(self):
        for _ in range(self.hi - self.lo + 1):
            port = self.next
            self.next = self.lo if port >= self.hi else port + 1
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
                sock.listen(1)
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            return sock
        raise OSError("latency-proxy: every port of --data-ports is busy")


class Direction:
    """One direction of a relayed connection: read, stamp, deliver at stamp + RTT/2."""

    def __init__(self, conn, reader, writer, up, not_before=0.0):
        self.conn, self.reader, self.writer, self.up = conn, reader, writer, up
        self.not_before = not_before
        self.queue = asyncio.Queue()
        self.in_flight = 0
        self.room = asyncio.Event()
        self.room.set()

    async def read_side(self):
        loop = asyncio.get_running_loop()
        pending = b""
        try:
            while True:
                await self.room.wait()
                data = await self.reader.read(CHUNK)
                now = loop.time()
                if not data:
                    break
                data, pending = await self.conn.filter(self.up, pending + data)
                if data:
                    self.in_flight += len(data)
                    if self.in_flight >= args.window:
                        self.room.clear()
                    self.queue.put_nowait((now + args.half, data))
            if pending:
                self.queue.put_nowait((loop.time() + args.half, pending))
        except (OSError, asyncio.IncompleteReadError):
            pass
        self.queue.put_nowait((loop.time() + args.half, None))

    async def write_side(self):
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await self.queue.get()
                wait = max(due, self.not_before) - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                        await self.writer.drain()
                    return
                self.writer.write(data)
                if not self.up:
                    self.conn.server_spoke = True
                await self.writer.drain()
                self.in_flight -= len(data)
                if self.in_flight < args.window:
                    self.room.set()
        except OSError:
            self.conn.abort()


class Connection:
    def __init__(self, kind, client_reader, client_writer, upstream_port, parent=None):
        ids[kind] += 1
        self.name = ("c%d" % ids[kind]) if kind == "control" else ("%s.d%d" % (parent, ids[kind]))
        self.kind = kind
        self.client_reader, self.client_writer = client_reader, client_writer
        self.upstream_port = upstream_port
        self.server_writer = None
        self.server_spoke = True  # the banner comes first: the client's first command is a turn

    def abort(self):
        for w in (self.client_writer, self.server_writer):
            if w is not None:
                w.transport.abort()

    async def filter(self, up, data):
        """Counts the bytes; on control connections counts command lines (client to server)
        and rewrites passive-mode replies (server to client). Returns (data to send, bytes held
        back until their line is complete)."""
        n = len(data)
        if self.kind == "data":
            counters["data_bytes_up" if up else "data_bytes_down"] += n
            return data, b""
        if up:
            if self.server_spoke:
                counters["turns"] += 1
                self.server_spoke = False
            *lines, rest = data.split(b"\n")
            for line in lines:
                counters["commands"] += 1
                if trace_file:
                    trace(self.name, "> " + (line.split(b" ", 1)[0].strip().decode("ascii", "replace")[:8]))
                verb = line.split(b" ", 1)[0].strip().upper().decode("ascii", "replace")
                verb = verb if re.fullmatch(r"[A-Z]{2,8}", verb) else "?"
                counters["verbs"][verb] = counters["verbs"].get(verb, 0) + 1
            counters["control_bytes_up"] += n - len(rest)
            return data[: n - len(rest)], rest
        *lines, rest = data.split(b"\n")
        out = []
        for line in lines:
            out.append(await self.rewrite(line + b"\n"))
        counters["control_bytes_down"] += n - len(rest)
        return b"".join(out), rest

    async def rewrite(self, line):
        m = EPSV.match(line)
        if m:
            port = await open_data_listener(int(m.group(2)), self.name)
            return b"229 " + m.group(1) + b"(|||%d|)\r\n" % port
        m = PASV.match(line)
        if m:
            port = await open_data_listener(int(m.group(5)) * 256 + int(m.group(6)), self.name)
            return b"227 Entering Passive Mode (127,0,0,1,%d,%d).\r\n" % (port // 256, port % 256)
        return line

    async def run(self):
        counters[self.kind + "_connections"] += 1
        trace(self.name, "open")
        open_now[self.kind] += 1
        key = "max_%s_open" % self.kind
        counters[key] = max(counters[key], open_now[self.kind])
        accepted = asyncio.get_running_loop().time()
        try:
            # The handshake's round trip: nothing is read from the client until it is over.
            await asyncio.sleep(args.rtt)
            try:
                server_reader, self.server_writer = await asyncio.open_connection(HOST, self.upstream_port)
            except OSError:
                self.client_writer.transport.abort()
                return
            up = Direction(self, self.client_reader, self.server_writer, True)
            # On a real link the server has the connection 1.5 round trips after the client's
            # connect (SYN, SYN-ACK, ACK), so nothing it sends arrives before 2. Here the
            # client's connect returns at once, and a client that waits for it before sending
            # the command for this connection would otherwise gain half a round trip.
            down = Direction(self, server_reader, self.client_writer, False, accepted + 2 * args.rtt)
            await asyncio.gather(up.read_side(), up.write_side(), down.read_side(), down.write_side())
        finally:
            trace(self.name, "closed")
            open_now[self.kind] -= 1
            for w in (self.client_writer, self.server_writer):
                if w is not None:
                    w.close()


PASV = re.compile(rb"^227 .*?\(?(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)?")
EPSV = re.compile(rb"^229 (.*)\(\|\|\|(\d+)\|\)")
data_ports = None


async def open_data_listener(server_port, parent):
    """A one-shot listener for one passive data connection to the server's `server_port`."""
    sock = data_ports.bind()
    accepted = asyncio.Event()
    holder = {}

    async def on_connect(reader, writer):
        if accepted.is_set():  # a second connection to a one-shot port: refuse it
            writer.transport.abort()
            return
        accepted.set()
        holder["server"].close()
        try:
            await Connection("data", reader, writer, server_port, parent).run()
        except asyncio.CancelledError:  # the proxy is stopping
            pass

    server = await asyncio.start_server(on_connect, sock=sock)
    holder["server"] = server

    async def expire():
        try:
            await asyncio.wait_for(accepted.wait(), 120)
        except asyncio.TimeoutError:
            counters["data_listeners_unused"] += 1
            server.close()

    asyncio.ensure_future(expire())
    return sock.getsockname()[1]


async def main():
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, dump)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    async def on_control(reader, writer):
        try:
            await Connection("control", reader, writer, args.upstream).run()
        except asyncio.CancelledError:  # the proxy is stopping
            pass

    server = await asyncio.start_server(on_control, HOST, args.listen, reuse_address=True, backlog=128)
    port = server.sockets[0].getsockname()[1]
    print(f"latency-proxy: 127.0.0.1:{port} -> 127.0.0.1:{args.upstream}, rtt {args.rtt * 1000:g} ms",
          file=sys.stderr, flush=True)
    global trace_file, trace_start
    if args.trace:
        trace_file = open(args.trace, "w", buffering=1)
        trace_start = loop.time()
    dump()
    if args.port_file:  # written last: a reader that sees the port finds the proxy ready
        with open(args.port_file + ".tmp", "w") as fh:
            fh.write("%d\n" % port)
        os.replace(args.port_file + ".tmp", args.port_file)
    await stop.wait()
    server.close()
    dump()


def parse():
    global args, data_ports
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", type=int, required=True, help="port to listen on (127.0.0.1; 0: any)")
    p.add_argument("--upstream", type=int, required=True, help="the FTP server's control port (127.0.0.1)")
    p.add_argument("--rtt", type=float, required=True, help="round-trip time to add, in milliseconds")
    p.add_argument("--data-ports", default="30100-30999",
                   help="range for the passive data listeners (any: ports the system chooses)")
    p.add_argument("--window", type=int, default=4 << 20, help="bytes in flight per direction and connection")
    p.add_argument("--counters", help="file for the counters (JSON), written on SIGUSR1 and at exit")
    p.add_argument("--trace", help="file for a line per connection opened or closed and per command line "
                   "(its verb only), with the milliseconds since the start")
    p.add_argument("--port-file", help="file to write the port listened on to, once ready")
    args = p.parse_args()
    if args.rtt < 0 or args.window < CHUNK:
        p.error("--rtt must be >= 0 and --window >= 65536")
    args.rtt /= 1000.0
    args.half = args.rtt / 2
    data_ports = DataPorts(args.data_ports)


if __name__ == "__main__":
    parse()
    asyncio.run(main())
