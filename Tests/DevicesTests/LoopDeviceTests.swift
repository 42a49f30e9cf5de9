import Foundation
import TestSupport
import XCTest

@testable import Devices

/// Real drives: loop devices with ext4, FAT (through fusefat) and exFAT (through exfat-fuse),
/// real `systemd-udevd` events and real mounts. Needs root; skipped otherwise, except with
/// `CI=true`, where not being able to run is a failure.
final class LoopDeviceTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("plugsync-devices-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        // realpath, so that paths compare equal to mountinfo's.
        scratch = URL(fileURLWithPath: try XCTUnwrap(realPath(scratch.path)))
    }

    override func tearDownWithError() throws {
        // Registered teardown blocks (unmount, detach) have already run.
        if let scratch { try? FileManager.default.removeItem(at: scratch) }
    }

    // MARK: Tests

    func testExt4LoopDeviceThroughUdevAndMountTable() throws {
        guard try prerequisites(tools: ["mkfs.ext4", "losetup", "blkid", "udevadm", "mount", "umount"]) else { return }
        let label = "PSTEST" + String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        let image = try makeImage("ext4.img")
        try run("mkfs.ext4", "-q", "-F", "-L", label, image)
        let dev = try attach(image)
        try ensureUdevd()
        try run("udevadm", "trigger", "--action=change", dev)
        try run("udevadm", "settle", "--timeout=20")
        let uuid = try run("blkid", "-o", "value", "-s", "UUID", dev).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(uuid.isEmpty)

        let found = try XCTUnwrap(waitForDevice(dev, where: { $0.label == label }), "enumerate() did not list \(dev)")
        XCTAssertEqual(found.label, label)
        XCTAssertEqual(found.udevLabel, label)
        XCTAssertEqual(found.uuid, uuid)
        XCTAssertEqual(found.fsType, "ext4")
        XCTAssertEqual(found.fsUsage, "filesystem")
        XCTAssertTrue(found.udevInitialized)
        XCTAssertFalse(found.isPartition)
        XCTAssertNil(found.serial, "loop devices have no serial")

        let dir = try mountPoint("ext4")
        try run("mount", dev, dir)
        addTeardownBlock { [self] in unmount(dir) }

        let entries = try MountTable.read()
        let entry = try XCTUnwrap(MountTable.mount(containing: dir + "/some/file", in: entries))
        XCTAssertEqual(entry.mountPoint, dir)
        XCTAssertEqual(entry.fsType, "ext4")
        XCTAssertEqual(entry.source, dev)
        XCTAssertEqual(MountTable.mountPoints(ofDevice: found.major, minor: found.minor, in: entries), [dir])
        XCTAssertEqual(TimestampPrecision.of(entry), .exact)

        let byNumber = try XCTUnwrap(BlockDevices.device(major: entry.major, minor: entry.minor))
        XCTAssertEqual(byNumber.devnode, dev)
        XCTAssertEqual(byNumber.label, label)
        XCTAssertEqual(byNumber.uuid, uuid)
        XCTAssertEqual(BlockDevices.device(path: dev), byNumber)
        XCTAssertEqual(BlockDevices.device(path: "/dev/disk/by-uuid/\(uuid)"), byNumber)

        try checkStoredMtime(in: dir, precision: .exact)
    }

    /// udev-rules/90-plugsync.rules, loaded into the real udevd: a loop device with a filesystem
    /// carries the tag and property; one without a filesystem does not.
    func testUdevRuleMarksDevicesWithAFilesystem() throws {
        guard try prerequisites(tools: ["mkfs.ext4", "losetup", "udevadm"]) else { return }
        let rule = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../udev-rules/90-plugsync.rules").standardizedFileURL
        let installed = "/run/udev/rules.d/90-plugsync.rules"
        try FileManager.default.createDirectory(atPath: "/run/udev/rules.d", withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: installed)
        try FileManager.default.copyItem(atPath: rule.path, toPath: installed)
        addTeardownBlock { [self] in
            try? FileManager.default.removeItem(atPath: installed)
            _ = try? run("udevadm", "control", "--reload")
        }
        try ensureUdevd()
        try run("udevadm", "control", "--reload")

        let withFS = try makeImage("tagged.img")
        try run("mkfs.ext4", "-q", "-F", "-L", "PSRULE", withFS)
        let bare = try makeImage("bare.img")  // zeros: no filesystem
        let tagged = try attach(withFS)
        let untagged = try attach(bare)
        for dev in [tagged, untagged] { try run("udevadm", "trigger", "--action=change", dev) }
        try run("udevadm", "settle", "--timeout=20")

        func properties(_ dev: String) throws -> [String] {
            try run("udevadm", "info", "--query=property", dev).split(separator: "\n").map(String.init)
        }
        var props = try properties(tagged)
        for _ in 0..<30 where !props.contains("PLUGSYNC_CANDIDATE=1") {
            usleep(100_000)
            props = try properties(tagged)
        }
        XCTAssertTrue(props.contains("PLUGSYNC_CANDIDATE=1"), props.joined(separator: "\n"))
        XCTAssertTrue(
            props.contains { $0.hasPrefix("TAGS=") && $0.contains(":plugsync:") }, props.joined(separator: "\n"))
        let bareProps = try properties(untagged)
        XCTAssertFalse(bareProps.contains("PLUGSYNC_CANDIDATE=1"), bareProps.joined(separator: "\n"))
    }

    func testFusefatMountHasTwoSecondPrecision() throws {
        guard try prerequisites(tools: ["mkfs.vfat", "losetup", "fusefat", "umount"]) else { return }
        let image = try makeImage("fat.img")
        try run("mkfs.vfat", "-n", "PSFAT", image)
        let dev = try attach(image)
        let dir = try mountPoint("fat")
        try run("fusefat", "-o", "rw+", dev, dir)
        addTeardownBlock { [self] in unmount(dir) }

        let entries = try MountTable.read()
        let entry = try XCTUnwrap(MountTable.mount(containing: dir, in: entries))
        XCTAssertEqual(entry.mountPoint, dir)
        XCTAssertEqual(entry.fsType, "fuse.fusefat")
        XCTAssertEqual(entry.source, "fusefat")
        XCTAssertEqual(TimestampPrecision.of(entry), .twoSeconds)
        XCTAssertEqual(TimestampPrecision.sniffFilesystemType(devicePath: dev), "vfat")
        try checkStoredMtime(in: dir, precision: .twoSeconds)
    }

    func testExfatFuseMountIsRecognizedThroughFuseblk() throws {
        guard try prerequisites(tools: ["mkfs.exfat", "losetup", "mount.exfat-fuse", "umount"]) else { return }
        let image = try makeImage("exfat.img")
        try run("mkfs.exfat", "-L", "PSEXFAT", image)
        let dev = try attach(image)
        let dir = try mountPoint("exfat")
        try run("mount.exfat-fuse", dev, dir)
        addTeardownBlock { [self] in unmount(dir) }

        let entries = try MountTable.read()
        let entry = try XCTUnwrap(MountTable.mount(containing: dir + "/x", in: entries))
        XCTAssertEqual(entry.mountPoint, dir)
        XCTAssertEqual(entry.fsType, "fuseblk")
        XCTAssertEqual(entry.source, dev)
        XCTAssertEqual(TimestampPrecision.sniffFilesystemType(devicePath: dev), "exfat")
        XCTAssertEqual(TimestampPrecision.of(entry), .oneSecond)
        // fuseblk shows the real device number, so the drive is found from its mount.
        let number = try XCTUnwrap(SystemFiles.blockDeviceNumber(of: dev))
        XCTAssertEqual(entry.major, number.major)
        XCTAssertEqual(entry.minor, number.minor)
        XCTAssertEqual(MountTable.mountPoints(ofDevice: number.major, minor: number.minor, in: entries), [dir])
        try checkStoredMtime(in: dir, precision: .oneSecond)
    }

    // MARK: Helpers

    /// `true` when the test can run. Otherwise skips with the reason, or, with `CI=true`,
    /// records a failure and returns `false`.
    private func prerequisites(tools: [String]) throws -> Bool {
        var reason: String?
        if getuid() != 0 {
            reason = "needs root: loop devices, mounts and udevd (uid is \(getuid()))"
        } else if let missing = tools.first(where: { which($0) == nil }) {
            reason =
                "needs \(missing) on PATH (apt-get install udev e2fsprogs dosfstools exfatprogs fusefat exfat-fuse)"
        } else if !FileManager.default.fileExists(atPath: "/dev/loop-control") {
            reason = "needs /dev/loop-control (loop device support)"
        }
        guard let reason else { return true }
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            XCTFail("cannot run in CI: \(reason)")
            return false
        }
        print("skipping \(name): \(reason)")
        throw XCTSkip(reason)
    }

    private func makeImage(_ name: String) throws -> String {
        let path = scratch.appendingPathComponent(name).path
        try run("truncate", "-s", "64M", path)
        return path
    }

    /// `losetup -f --show`, detached again at teardown.
    private func attach(_ image: String) throws -> String {
        let dev = try run("losetup", "-f", "--show", image).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(dev.hasPrefix("/dev/loop"), dev)
        addTeardownBlock { [self] in _ = try? run("losetup", "-d", dev) }
        return dev
    }

    private func mountPoint(_ name: String) throws -> String {
        let url = scratch.appendingPathComponent("mnt-\(name)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    /// Unmounts, retrying while a FUSE daemon is still busy, lazily as a last resort.
    private func unmount(_ dir: String) {
        for _ in 0..<20 {
            if (try? run("umount", dir)) != nil { return }
            guard isMounted(dir) else { return }
            usleep(100_000)
        }
        _ = try? run("umount", "-l", dir)
    }

    private func isMounted(_ dir: String) -> Bool {
        ((try? MountTable.read()) ?? []).contains { $0.mountPoint == dir }
    }

    /// Starts `systemd-udevd --daemon` unless a udevd answers on /run/udev/control.
    private func ensureUdevd() throws {
        if FileManager.default.fileExists(atPath: "/run/udev/control"),
            (try? run("udevadm", "control", "--ping", "--timeout=5")) != nil
        {
            return
        }
        let daemon = ["/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd"]
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        let path = try XCTUnwrap(daemon, "systemd-udevd is not installed (apt-get install udev)")
        print("starting \(path) --daemon (no udevd was running)")
        try run(path, "--daemon")
        for _ in 0..<50 {
            if (try? run("udevadm", "control", "--ping", "--timeout=1")) != nil { return }
            usleep(100_000)
        }
        XCTFail("systemd-udevd did not come up")
    }

    /// Polls `enumerate()` briefly: the database write can trail `udevadm settle` by a moment.
    private func waitForDevice(_ devnode: String, where ready: (BlockDevice) -> Bool) throws -> BlockDevice? {
        var last: BlockDevice?
        for _ in 0..<50 {
            last = try BlockDevices.enumerate().first { $0.devnode == devnode }
            if let last, ready(last) { return last }
            usleep(100_000)
        }
        return last
    }

    /// Writes a file, sets its mtime to …01.7 s and checks what the filesystem kept is within the
    /// claimed precision (and, for exact filesystems, identical).
    private func checkStoredMtime(in dir: String, precision: TimestampPrecision) throws {
        let path = dir + "/mtime-probe.txt"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("probe".utf8)))
        var times = [
            timespec(tv_sec: 1_700_000_001, tv_nsec: 700_000_000),
            timespec(tv_sec: 1_700_000_001, tv_nsec: 700_000_000),
        ]
        XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0, String(cString: strerror(errno)))
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        let stored = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        let wanted: Int64 = 1_700_000_001_700_000_000
        XCTAssertLessThan(abs(stored - wanted), precision.nanoseconds, "stored \(stored), set \(wanted)")
        if precision != .exact {
            XCTAssertNotEqual(stored, wanted, "a \(precision) filesystem kept nanoseconds; is the mapping too coarse?")
        }
    }

    private func which(_ tool: String) -> String? {
        let dirs =
            (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin")
            .split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        return dirs.map { $0 + "/" + tool }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Runs a program (looked up on PATH, plus /usr/sbin and /sbin), returns its standard output,
    /// and throws with its standard error if it fails. Output goes through files, not pipes:
    /// daemons (fusefat, exfat-fuse, udevd) keep their inherited descriptors open after the
    /// command returns, which would block a pipe reader forever.
    @discardableResult
    private func run(_ tool: String, _ arguments: String...) throws -> String {
        let executable = tool.hasPrefix("/") ? tool : (which(tool) ?? tool)
        let base = (scratch ?? URL(fileURLWithPath: NSTemporaryDirectory()))
            .appendingPathComponent("cmd-\(UInt32.random(in: 0...UInt32.max))")
        let outURL = base.appendingPathExtension("out")
        let errURL = base.appendingPathExtension("err")
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        // posix_spawn + waitpid: Foundation's Process never returned for commands that leave
        // a daemon behind (fusefat, mount.exfat-fuse, udevd).
        let status = try spawnAndWait(executable, arguments, stdout: outURL.path, stderr: errURL.path)
        let stdout = String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self)
        let stderr = String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
        guard status == 0 else {
            throw CommandFailed(
                description: "\(tool) \(arguments.joined(separator: " ")) exited \(status): \(stderr)")
        }
        return stdout
    }
}

private struct CommandFailed: Error, CustomStringConvertible {
    let description: String
}
