#!/usr/bin/python3
"""A desktop notification server for the tests: it owns org.freedesktop.Notifications on the
session bus (DBUS_SESSION_BUS_ADDRESS) and records every Notify call.

Usage: notification-listener.py RECORD-FILE READY-FILE [--hang]

Appends one JSON line per Notify call to RECORD-FILE: {"app", "replaces", "icon", "summary",
"body", "actions", "hints", "timeout", "uid", "time"} ("uid": the caller's user ID, as the bus
says). Creates READY-FILE once it owns the name. With --hang it records each call and never
answers it (a notification server that stopped responding). It stops by itself after 300
seconds, or on SIGTERM. Needs python3-dbus and python3-gi (Debian).
"""
import json
import os
import signal
import sys
import time

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

record_file, ready_file = sys.argv[1], sys.argv[2]
hang = "--hang" in sys.argv[3:]
NAME = "org.freedesktop.Notifications"


def plain(value):
    """dbus-python's types as JSON's."""
    if isinstance(value, dbus.Dictionary):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (dbus.Array, list)):
        return [plain(v) for v in value]
    if isinstance(value, dbus.String):
        return str(value)
    if isinstance(value, (dbus.Byte, dbus.Int32, dbus.UInt32, dbus.Int64, dbus.UInt64, dbus.Int16, dbus.UInt16)):
        return int(value)
    if isinstance(value, dbus.Boolean):
        return bool(value)
    return value


class Server(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, "/org/freedesktop/Notifications")
        self.bus = bus
        self.next_id = 0
        self.pending = []

    @dbus.service.method(NAME, in_signature="susssasa{sv}i", out_signature="u", sender_keyword="sender",
                         async_callbacks=("reply", "error"))
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout, sender=None, reply=None,
               error=None):
        uid = int(self.bus.get_unix_user(sender))
        entry = {"app": str(app), "replaces": int(replaces), "icon": str(icon), "summary": str(summary),
                 "body": str(body), "actions": plain(actions), "hints": plain(hints), "timeout": int(timeout),
                 "uid": uid, "time": time.time()}
        with open(record_file, "a") as out:
            out.write(json.dumps(entry) + "\n")
        if hang:
            self.pending.append(reply)  # never answered
            return
        self.next_id += 1
        reply(dbus.UInt32(self.next_id))

    @dbus.service.method(NAME, in_signature="", out_signature="as")
    def GetCapabilities(self):
        return ["body"]

    @dbus.service.method(NAME, in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("plugsync-test-listener", "plugsync", "1", "1.2")

    @dbus.service.method(NAME, in_signature="u", out_signature="")
    def CloseNotification(self, _id):
        pass


DBusGMainLoop(set_as_default=True)
session = dbus.SessionBus()
owned = dbus.service.BusName(NAME, session, do_not_queue=True)
server = Server(session)
loop = GLib.MainLoop()
signal.signal(signal.SIGTERM, lambda *_: loop.quit())
GLib.timeout_add_seconds(300, loop.quit)
with open(ready_file + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.rename(ready_file + ".tmp", ready_file)
loop.run()
