import Foundation
import TestSupport
import XCTest

@testable import Devices

/// The agent's event sources: the mount table's poll signal and udevd's monitor socket. Needs
/// root (mounts, loop devices); skipped otherwise, except with CI=true, where it fails.
final class DeviceWatchTests: XCTestCase {
    private func requireRoot() throws {
        guard getuid() != 0 else { return }
        if ProcessInfo.processInfo.environment["CI"] == "true" { return XCTFail("cannot run in CI: needs root") }
        throw XCTSkip("needs root: mounts and loop devices")
    }

    private func sh(_ command: String) throws {
        let out = NSTemporaryDirectory() + "/dw-\(getpid()).out"
        defer { unlink(out) }
        let status = try spawnAndWait("/bin/sh", ["-c", command], stdout: out, stderr: out)
        if status != 0 {
            throw WatchTestError(command + ": " + ((try? String(contentsOfFile: out, encoding: .utf8)) ?? ""))
        }
    }

    private func waitReadable(_ fd: Int32, events: Int16, seconds: Int32) -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        return poll(&p, 1, seconds * 1000) == 1
    }

    func testMountTableSignalsANewMountThroughPoll() throws {
        try requireRoot()
        let dir = NSTemporaryDirectory() + "plugsync-dw-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let watcher = try MountWatcher()
        XCTAssertFalse(
            waitReadable(watcher.fileDescriptor, events: Int16(POLLPRI), seconds: 0), "signalled before any change")
        try sh("mount -t tmpfs plugsync-dw \(dir)")
        defer { try? sh("umount \(dir)") }
        XCTAssertTrue(waitReadable(watcher.fileDescriptor, events: Int16(POLLPRI), seconds: 5))
        let change = try watcher.changes()
        XCTAssertEqual(change.added.map(\.mountPoint), [realpath(dir)])
        XCTAssertEqual(change.removed.count, 0)
        XCTAssertFalse(waitReadable(watcher.fileDescriptor, events: Int16(POLLPRI), seconds: 0), "reading clears it")
        try sh("umount \(dir)")
        XCTAssertTrue(waitReadable(watcher.fileDescriptor, events: Int16(POLLPRI), seconds: 5))
        XCTAssertEqual(try watcher.changes().removed.map(\.mountPoint), [realpath(dir)])
    }

    func testUdevMonitorReceivesABlockDeviceEvent() throws {
        try requireRoot()
        if (try? sh("udevadm control --ping --timeout=2")) == nil {
            // No udevd (a fresh CI machine): start one, as LoopDeviceTests does.
            try sh("/lib/systemd/systemd-udevd --daemon || /usr/lib/systemd/systemd-udevd --daemon")
            try sh("for i in $(seq 50); do udevadm control --ping --timeout=1 && exit 0; sleep 0.1; done; exit 1")
        }
        let image = NSTemporaryDirectory() + "plugsync-dw-\(getpid()).img"
        defer { unlink(image) }
        let label = "PSDW" + String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        try sh("truncate -s 32M \(image) && mkfs.ext4 -q -F -L \(label) \(image)")
        let monitor = try UdevMonitor()
        let devFile = image + ".dev"
        defer { unlink(devFile) }
        try sh("losetup -f --show \(image) > \(devFile)")
        let dev = try String(contentsOfFile: devFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        defer { try? sh("losetup -d \(dev)") }
        try sh("udevadm trigger --action=change \(dev)")
        var found: DeviceEvent?
        let deadline = Date().addingTimeInterval(10)
        while found == nil && Date() < deadline {
            guard waitReadable(monitor.fileDescriptor, events: Int16(POLLIN), seconds: 1) else { continue }
            while found == nil, let event = monitor.receive() {
                if event.device.devnode == dev && event.device.label == label { found = event }
            }
        }
        let event = try XCTUnwrap(found, "no udev event for \(dev) with label \(label)")
        XCTAssertEqual(event.action, "change")
        XCTAssertEqual(event.device.fsType, "ext4")
        XCTAssertEqual(event.device.fsUsage, "filesystem")
    }

    private func realpath(_ path: String) -> String {
        guard let resolved = Glibc.realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

struct WatchTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
