#!/usr/bin/env python3
"""A local HTTP server for the ping tests: it records each request it gets and answers 200.

Usage: ping-server.py RECORD-FILE PORT-FILE [--hang]

Listens on 127.0.0.1 on a port the system picks, writes that port to PORT-FILE, and appends one
JSON line per request to RECORD-FILE: {"method", "path", "body", "time"}. With --hang it reads
each request and never answers (a server that stopped responding). It stops by itself after
300 seconds, or on SIGTERM.
"""
import http.server
import json
import os
import signal
import sys
import threading
import time

record_file, port_file = sys.argv[1], sys.argv[2]
hang = "--hang" in sys.argv[3:]
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        with lock, open(record_file, "a") as out:
            out.write(json.dumps({"method": "POST", "path": self.path, "body": body, "time": time.time()}) + "\n")
        if hang:
            time.sleep(120)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(port_file + ".tmp", "w") as out:
    out.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
stopper = threading.Timer(300, lambda: os._exit(0))
stopper.daemon = True
stopper.start()
server.serve_forever()
