#!/usr/bin/env python3
"""A scripted, hostile FTP server on 127.0.0.1 for plugsync's reliability tests (docs/RELIABILITY.md, case 5).

    hostile-ftp.py --mode MODE --port-file FILE [--log FILE] [--warm]

A minimal FTP server (USER/PASS, PWD, CWD, TYPE, FEAT, OPTS, EPSV/PASV, MLSD/LIST, RETR, STOR,
SIZE, MDTM, DELE, RMD, MKD, RNFR/RNTO, QUIT) whose answers a MODE makes hostile. Any login
works. Files live in memory: every name a listing shows can be downloaded (RETR of any path
answers with that path's content), uploads are kept in memory and listed afterwards. Every
command received is written to --log, one per line (bytes escaped), so a test can check what
the client asked for. --warm lists a well-behaved a-warm.txt (10 bytes) first in the modes that
list good.txt and big.bin: a client on one connection downloads it before the hostile file, so
the hostile file is the connection's second download (plugsync retrieves those itself, not curl).

MODE:
  names          MLSD lists good.txt plus names with `/`, `..`, `.`, NUL, CR/LF, escapes, and
                 absolute and dot-dot paths; RETR of any of them answers with content
  names-list     the same through LIST (no MLSD in FEAT)
  million        MLSD lists 1,000,000 files (about 50 MB)
  huge-listing   MLSD sends 300 MB of entries (over the client's 256 MiB limit)
  greeting-never-ends   the 220 greeting is a multi-line reply without its last line, a line
                 every 0.2 s
  reply-stalls   FEAT is answered `211-Features:` and one feature, then nothing
  endless-line   the reply to PWD is one line that never ends (bytes without CR/LF, fast)
  data-never-closes     MLSD sends a valid listing, then keeps the data connection open
  data-trickles  MLSD sends 20 bytes a second, without end
  retr-trickles  RETR of big.bin (listed 10 MB) sends 20 bytes a second
  bad-greeting   a greeting that is not an FTP reply
  bad-epsv       EPSV and PASV replies that name impossible ports
  bad-lines      MLSD mixes good entries with malformed lines; LIST too
  bad-codes      replies with codes like 999 and 1 and text-only lines after login
  size-grows     good.txt is listed as 1000 bytes, RETR sends 5000
  size-shrinks   good.txt is listed as 1000 bytes, RETR sends 500
  size-endless   good.txt is listed as 1000 bytes, RETR sends without end
  list-cut-once  MLSD lists good.txt and a folder sub; the first listing of sub closes the
                 control connection after its 150 reply (a cut mid-listing); later ones work
  first-list-cut the same listing as list-cut-once, but the very first listing (the synchronized
                 folder's, in the checks before the run) is the one cut
  upload-names   as a destination: MLSD lists `..`, `.`, `a/b`, an escape name and a real orphan;
                 uploads are accepted
  rename-cut-once   as a destination: uploads are kept and listed; the first RNFR closes the
                 control connection (a batch of renames cut), later ones work
  probe-waits    not hostile: MLSD lists good.txt and a folder sub, and the STOR of the clock
                 probe (.plugsync-tmp-clock-*) is answered only once sub was listed, or after 5 s
                 (a client that lists only after its probe): `probe answered after sub was
                 listed: yes|no` goes to the log
"""
import argparse
import os
import socket
import sys
import threading
import time

MODE = None
LOG = None
WARM = False
LOCK = threading.Lock()
STORE = {}  # path -> bytes (uploads)
CUT = []  # list-cut-once, first-list-cut, rename-cut-once: set once the cut happened
SUB_LISTED = threading.Event()  # probe-waits: an MLSD of sub arrived

ESC = "\x1b[2J\x1b]0;pwned\x07"
HOSTILE_NAMES = [
    b"a/b.txt",
    b"..",
    b".",
    b"../escape.txt",
    b"../../escape2.txt",
    b"/etc/plugsync-hostile.txt",
    b"nul\x00name.txt",
    b"new\nline.txt",
    b"carriage\rreturn.txt",
    ESC.encode() + b"esc.txt",
    b"bell\x07.txt",
    b"del\x7f.txt",
]


def log(line):
    with LOCK:
        if LOG:
            LOG.write(line + "\n")
            LOG.flush()


def escape(data):
    return data.decode("latin-1").encode("unicode_escape").decode("ascii")


def mlsd_line(name, size=10, kind="file"):
    return b"type=%s;size=%d;modify=20200102030405;UNIX.mode=0644; " % (kind.encode(), size) + name + b"\r\n"


def list_line(name, size=10, kind="-"):
    return b"%srw-r--r--    1 1000     1000     %8d Jan 02  2020 " % (kind.encode(), size) + name + b"\r\n"


def content_for(path):
    base = path.rsplit(b"/", 1)[-1]
    if path in STORE:
        return STORE[path]
    if MODE in ("size-grows", "size-shrinks", "size-endless") and base == b"good.txt":
        return None  # handled by the RETR code
    return b"0123456789"  # every listed small file is 10 bytes


class Session:
    def __init__(self, conn):
        self.conn = conn
        self.file = conn.makefile("rb")
        self.passive = None
        self.rename_from = None
        self.cwd = b"/"

    def send(self, text):
        if isinstance(text, str):
            text = text.encode()
        self.conn.sendall(text)

    def reply(self, code, text):
        self.send(f"{code} {text}\r\n")

    def open_passive(self):
        if self.passive:
            self.passive.close()
        self.passive = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.passive.bind(("127.0.0.1", 0))
        self.passive.listen(1)
        self.passive.settimeout(20)
        return self.passive.getsockname()[1]

    def data(self):
        if not self.passive:
            return None
        try:
            conn, _ = self.passive.accept()
        except OSError:
            return None
        finally:
            self.passive.close()
            self.passive = None
        return conn

    def listing(self, verb, where):
        mlsd = verb == "MLSD"
        line = mlsd_line if mlsd else list_line
        if b"sub" in where:
            return  # folders are empty: no endless depth
        if MODE in ("names", "names-list"):
            yield line(b"good.txt")
            yield line(b"sub", kind="dir" if mlsd else "d")
            for name in HOSTILE_NAMES:
                yield line(name)
            yield line(b"evil-dir/..", kind="dir" if mlsd else "d")
        elif MODE == "million":
            chunk = []
            for i in range(1_000_000):
                chunk.append(b"type=file;size=1;modify=20200102030405; f%07d\r\n" % i)
                if len(chunk) == 10000:
                    yield b"".join(chunk)
                    chunk = []
        elif MODE == "huge-listing":
            pad = b"x" * 240
            block = b"".join(b"type=file;size=1;modify=20200102030405; %s%07d\r\n" % (pad, i) for i in range(4000))
            for _ in range(300):  # 300 x ~1.1 MB
                yield block
        elif MODE in ("list-cut-once", "first-list-cut", "probe-waits"):
            yield line(b"good.txt")
            yield line(b"sub", kind="dir" if mlsd else "d")
        elif MODE == "data-never-closes":
            yield line(b"good.txt")
            time.sleep(3600)
        elif MODE == "data-trickles":
            while True:
                yield b"type=file;"
                time.sleep(0.5)
        elif MODE == "bad-lines":
            yield line(b"good.txt")
            yield b"this is not a listing line\r\n"
            yield b"type=file;size=abc;modify=nonsense;\r\n" if mlsd else b"drwx 1 2 3\r\n"
            yield b"type=file;size=-5;modify=99999999999999; negative.txt\r\n"
            yield b"; nofacts.txt\r\n"
            yield b"\x00\x01\x02\xff\xfe garbage\r\n"
            yield b"type=file;size=99999999999999999999999;modify=20200102030405; toolarge.txt\r\n"
            yield line(b"good2.txt")
        elif MODE == "upload-names":
            for name in [b"..", b".", b"a/b", ESC.encode() + b"x", b"orphan.txt"]:
                yield line(name)
            for path in sorted(STORE):
                if b"/" not in path.strip(b"/"):
                    yield line(path.strip(b"/"), size=len(STORE[path]))
        elif MODE == "rename-cut-once":
            folder = b"/" + where.strip(b"/") + b"/"
            for path in sorted(STORE):
                name = path[len(folder):]
                if path.startswith(folder) and name and b"/" not in name:
                    yield line(name, size=len(STORE[path]))
        else:
            if WARM:
                yield line(b"a-warm.txt")
            for name, size in [(b"good.txt", 1000 if MODE.startswith("size-") else 10), (b"big.bin", 10_000_000)]:
                if MODE == "retr-trickles" or name == b"good.txt":
                    yield line(name, size=size)

    def retr(self, path, conn):
        base = path.rsplit(b"/", 1)[-1]
        if MODE == "size-grows" and base == b"good.txt":
            conn.sendall(b"G" * 5000)
        elif MODE == "size-shrinks" and base == b"good.txt":
            conn.sendall(b"S" * 500)
        elif MODE == "size-endless" and base == b"good.txt":
            block = b"E" * 65536
            for _ in range(16 * 1024):  # 1 GiB at most, as fast as the client reads
                conn.sendall(block)
        elif MODE == "retr-trickles" and base == b"big.bin":
            while True:
                conn.sendall(b"t" * 10)
                time.sleep(0.5)
        else:
            conn.sendall(content_for(path))

    def run(self):
        if MODE == "greeting-never-ends":
            self.send("220-Welcome\r\n")
            for i in range(3000):
                self.send(f"220-still welcoming you, line {i}\r\n")
                time.sleep(0.2)
            return
        if MODE == "bad-greeting":
            self.send("HELLO THERE, this is not FTP\r\n")
            time.sleep(30)
            return
        self.reply(220, "hostile test server")
        logged_in = False
        while True:
            raw = self.file.readline(4096)
            if not raw:
                return
            line = raw.rstrip(b"\r\n")
            log(escape(line))
            verb, _, arg = line.partition(b" ")
            verb = verb.decode("latin-1").upper()
            if MODE == "bad-codes" and logged_in and verb in ("PWD", "FEAT"):
                self.send("999 what\r\n" if verb == "PWD" else "1\r\nno code at all\r\n")
                continue
            if verb == "USER":
                self.reply(331, "any password")
            elif verb == "PASS":
                logged_in = True
                self.reply(230, "logged in")
            elif verb == "PWD":
                if MODE == "endless-line":
                    self.send("257 \"/")
                    block = b"x" * 65536
                    for _ in range(16 * 1024):
                        self.send(block)
                    return
                self.reply(257, '"/" is the current directory')
            elif verb == "FEAT":
                if MODE == "reply-stalls":
                    self.send("211-Features:\r\n MLSD\r\n")
                    time.sleep(3600)
                    return
                features = " SIZE\r\n MDTM\r\n UTF8\r\n EPSV\r\n PASV\r\n"
                if MODE != "names-list":
                    features += " MLSD\r\n MLST type*;size*;modify*;\r\n MFMT\r\n"
                self.send("211-Features:\r\n" + features + "211 End\r\n")
            elif verb in ("OPTS", "TYPE", "NOOP", "ALLO", "MODE", "STRU"):
                self.reply(200, "ok")
            elif verb == "CWD":
                self.cwd = arg
                self.reply(250, "ok")
            elif verb == "EPSV":
                port = self.open_passive()
                if MODE == "bad-epsv":
                    self.reply(229, "Entering Extended Passive Mode (|||99999|)")
                else:
                    self.reply(229, f"Entering Extended Passive Mode (|||{port}|)")
            elif verb == "PASV":
                port = self.open_passive()
                if MODE == "bad-epsv":
                    self.reply(227, "Entering Passive Mode (127,0,0,1,999,999)")
                else:
                    self.reply(227, f"Entering Passive Mode (127,0,0,1,{port // 256},{port % 256})")
            elif verb in ("MLSD", "LIST", "NLST"):
                if verb == "MLSD" and MODE == "names-list":
                    self.reply(500, "unknown command")
                    continue
                self.reply(150, "here it comes")
                conn = self.data()
                if conn is None:
                    self.reply(425, "no data connection")
                    continue
                where = arg if arg and not arg.startswith(b"-") else self.cwd
                if MODE == "probe-waits" and b"sub" in where:
                    SUB_LISTED.set()
                if not CUT and (MODE == "list-cut-once" and b"sub" in where or MODE == "first-list-cut"):
                    CUT.append(True)
                    conn.close()
                    return  # the control connection closes too
                try:
                    for chunk in self.listing("MLSD" if verb == "MLSD" else "LIST", where):
                        conn.sendall(chunk)
                except OSError:
                    pass
                conn.close()
                self.reply(226, "done")
            elif verb == "RETR":
                self.reply(150, "sending")
                conn = self.data()
                if conn is None:
                    self.reply(425, "no data connection")
                    continue
                try:
                    self.retr(arg, conn)
                except OSError:
                    pass
                conn.close()
                self.reply(226, "done")
            elif verb == "STOR":
                self.reply(150, "send it")
                conn = self.data()
                if conn is None:
                    self.reply(425, "no data connection")
                    continue
                chunks = []
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
                conn.close()
                STORE[arg] = b"".join(chunks)
                if MODE == "probe-waits" and b".plugsync-tmp-clock-" in arg:
                    waited = SUB_LISTED.wait(5)
                    log("probe answered after sub was listed: " + ("yes" if waited else "no"))
                self.reply(226, "stored")
            elif verb == "SIZE":
                if arg in STORE:
                    self.reply(213, str(len(STORE[arg])))
                else:
                    self.reply(213, "10")
            elif verb == "MDTM":
                words = arg.split(b" ", 1)
                if len(words) == 2 and len(words[0]) == 14 and words[0].isdigit():
                    self.reply(213, "ok")
                else:
                    self.reply(213, time.strftime("%Y%m%d%H%M%S", time.gmtime()))
            elif verb == "MFMT":
                self.reply(213, "Modify=" + arg.split(b" ", 1)[0].decode() + "; ok")
            elif verb in ("DELE", "RMD"):
                STORE.pop(arg, None)
                self.reply(250, "deleted")
            elif verb == "MKD":
                self.reply(257, "created")
            elif verb == "RNFR":
                if MODE == "rename-cut-once" and not CUT:
                    CUT.append(True)
                    return  # the control connection closes
                self.rename_from = arg
                self.reply(350, "ready")
            elif verb == "RNTO":
                if self.rename_from in STORE:
                    STORE[arg] = STORE.pop(self.rename_from)
                self.reply(250, "renamed")
            elif verb == "QUIT":
                self.reply(221, "bye")
                return
            else:
                self.reply(502, "not implemented")


def serve(conn):
    try:
        Session(conn).run()
    except OSError:
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    global MODE, LOG, WARM
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log")
    parser.add_argument("--warm", action="store_true")
    args = parser.parse_args()
    MODE = args.mode
    WARM = args.warm
    LOG = open(args.log, "a") if args.log else None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(f"{listener.getsockname()[1]}\n")
    os.rename(args.port_file + ".tmp", args.port_file)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
