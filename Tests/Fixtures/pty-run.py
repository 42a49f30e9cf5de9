#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal, as at a user's terminal, and records what it shows.

    pty-run.py [--type-after TEXT BYTES] -- COMMAND [ARG...]

The command gets a new pseudo-terminal as its controlling terminal and as its standard input,
output and error (so isatty() is true for all three). Everything it writes to the terminal is
copied, as the raw bytes a terminal would get, to this script's standard output. With
--type-after, BYTES (with \\x03 for Ctrl-C) are typed at the terminal once TEXT has appeared in
its output: the terminal's line discipline turns Ctrl-C into SIGINT for the foreground
process group, as a user's keypress does. Exits with the command's exit status (128 + N when
a signal N ended it). The command is killed after 120 s.
"""
import os
import pty
import select
import signal
import sys
import time


def main():
    args = sys.argv[1:]
    trigger = typed = None
    if args and args[0] == "--type-after":
        trigger = args[1].encode()
        typed = args[2].encode().decode("unicode_escape").encode("latin-1")
        args = args[3:]
    if args and args[0] == "--":
        args = args[1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(args[0], args)
    output = b""
    deadline = time.monotonic() + 120
    while True:
        ready, _, _ = select.select([fd], [], [], 0.02)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the command and its children closed the terminal
                data = b""
            if not data:
                break
            output += data
            if trigger is not None and trigger in output:
                os.write(fd, typed)
                trigger = None
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
    _, status = os.waitpid(pid, 0)
    sys.stdout.buffer.write(output)
    sys.stdout.flush()
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
