import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// The quick start's drive part as `scripts/quickstart` runs it (`scripts/demo-prepare`, then
/// `scripts/demo-drives` on the built binary): the lines it promises, what ended up on each drive,
/// and no loop device or mount left behind. Needs root: skipped otherwise, except with CI=true,
/// where it fails.
final class QuickstartTests: IntegrationTestCase {
    private var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// Runs `bash scripts/NAME ARGUMENTS` from the repository; its exit status and its standard
    /// output followed by its standard error.
    private func script(_ name: String, _ arguments: [String], label: String) throws -> (status: Int32, output: String)
    {
        let out = path(".\(name).out")
        let err = path(".\(name).err")
        var environment = ProcessInfo.processInfo.environment
        environment["DEMO_LABEL"] = label
        environment["PATH"] = (environment["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        let status = try spawnAndWait(
            "/bin/bash", [repository + "/scripts/" + name] + arguments, stdout: out, stderr: err,
            environment: environment)
        let output =
            ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
            + ((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
        return (status, output)
    }

    /// The device printed after the `losetup` line of `image` in the demo's output.
    private func device(of image: String, in lines: [String]) throws -> String {
        guard let index = lines.firstIndex(of: "$ losetup --find --show drives/\(image).img"),
            index + 1 < lines.count, lines[index + 1].hasPrefix("/dev/loop")
        else { throw HarnessError("no losetup line for \(image).img in the demo's output") }
        return lines[index + 1]
    }

    /// The first line of the agent's (as the demo shows it: `+0.12 s  plugsync agent: …`) that
    /// contains `text`, and its seconds since the drive's mount.
    private func agentLine(_ text: String, in lines: [String]) -> (index: Int, seconds: Double)? {
        guard let index = lines.firstIndex(where: { $0.hasPrefix("+") && $0.contains("plugsync agent: " + text) })
        else { return nil }
        let seconds = Double(lines[index].dropFirst().prefix { $0 != " " }) ?? .infinity
        return (index, seconds)
    }

    /// The processes running `plugsync agent --config CONFIG`.
    private func agents(config: String) -> [String] {
        let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return processes.filter { pid in
            guard pid.allSatisfy(\.isNumber), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
            else { return false }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return arguments.contains("agent") && arguments.contains(config)
                && arguments.first.map { $0.hasSuffix("plugsync") } == true
        }
    }

    func testTheDrivePartShowsTheAgentAtWork() throws {
        try requireRoot(
            "loop devices, mounts and udevd",
            tools: ["bash", "losetup", "mkfs.ext4", "mount", "umount", "mountpoint", "udevadm", "setsid"])
        let binary = try PlugsyncBinary.path()
        let label = "PSQS" + String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        let demo = path("demo")
        let prepared = try script("demo-prepare", [demo], label: label)
        XCTAssertEqual(prepared.status, 0, prepared.output)

        // Should the script leave anything behind, the test says so below, then undoes it here.
        addTeardownBlock { [self] in
            _ = try? shell(
                "grep -o ' \(demo)/media/[^ ]*' /proc/self/mountinfo | xargs -r -n1 umount -l; "
                    + "losetup --list --noheadings --output NAME,BACK-FILE | grep -F ' \(demo)/drives/' "
                    + "| cut -d' ' -f1 | xargs -r -n1 losetup --detach; true")
        }
        let run = try script("demo-drives", [demo, binary], label: label)
        if run.status == 77 {
            let reason = run.output.split(separator: "\n").last.map(String.init) ?? "skipped"
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                throw HarnessError("cannot run in CI: \(reason)")
            }
            print("skipping \(name): \(reason)")
            throw XCTSkip(reason)
        }
        XCTAssertEqual(run.status, 0, run.output)
        let lines = run.output.split(separator: "\n").map { collapse(String($0)) }.filter { !$0.isEmpty }
        let wrong = try device(of: "someone-elses-drive", in: lines)
        let right = try device(of: "demo-drive", in: lines)
        let wrongMount = demo + "/media/someone-elses-drive"
        let rightMount = demo + "/media/demo-drive"

        // The agent's lines, in this order: the wrong drive left alone, the right one matched,
        // backed up (the six files of demo/source, less the ignored draft.tmp) and unmounted.
        let leftAlone = agentLine("demo-usb: drive \(wrong) at \(wrongMount) left alone: File Check failed", in: lines)
        let matched = agentLine("mount: \(right) at \(rightMount) matches demo-usb", in: lines)
        let done = agentLine("demo-usb: Done: 6 copied", in: lines)
        let released = agentLine("\(right) unmounted from \(rightMount): safe to remove", in: lines)
        XCTAssertNotNil(leftAlone, run.output)
        XCTAssertNotNil(matched, run.output)
        XCTAssertNotNil(done, run.output)
        XCTAssertNotNil(released, run.output)
        if let leftAlone, let matched, let done, let released {
            XCTAssertLessThan(leftAlone.index, matched.index, run.output)
            XCTAssertLessThan(matched.index, done.index, run.output)
            XCTAssertLessThan(done.index, released.index, run.output)
            XCTAssertLessThan(released.seconds, 5, "the demo's drive took long to be safe to remove:\n\(run.output)")
        }
        XCTAssertFalse(
            lines.contains { $0.contains("mount: \(wrong) ") }, "someone else's drive matched:\n\(run.output)")
        XCTAssertTrue(
            lines.contains { $0.hasPrefix("demo-usb ") && $0.contains(" mount success 6 ") },
            "plugsync status has no mount-triggered run of demo-usb:\n\(run.output)")
        XCTAssertTrue(
            lines.contains { $0.hasPrefix(wrong + " ") && $0.hasSuffix(" demo-usb (File Check failed)") },
            "plugsync devices:\n\(run.output)")
        XCTAssertTrue(
            lines.contains { $0.hasPrefix(right + " ") && $0.hasSuffix(" demo-usb (not mounted)") },
            "plugsync devices:\n\(run.output)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("== unplugged: agent stopped") }, run.output)

        // Nothing left behind: no loop device on the demo's images, no mount under the demo.
        for image in ["someone-elses-drive", "demo-drive"] {
            let backing = try shell(
                "losetup --noheadings --output NAME --associated \(quote(demo + "/drives/\(image).img"))")
            XCTAssertEqual(backing, "", "\(image).img is still attached")
        }
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        XCTAssertFalse(mounts.contains(" \(demo)/"), "a mount under the demo folder is left:\n\(mounts)")
        XCTAssertEqual(agents(config: demo + "/plugsync.yaml"), [], "the demo's agent still runs")

        // The demo's drive holds the backup; someone else's holds only what it had.
        let rightCheck = try mountPoint("right")
        try shell("mount -o ro \(try attach(demo + "/drives/demo-drive.img")) \(quote(rightCheck))")
        addTeardownBlock { [self] in unmount(rightCheck, fuse: false) }
        try assertSameTree(
            demo + "/source", rightCheck + "/plugsync-demo", folderTimes: false, skip: { $0.hasSuffix(".tmp") })
        let wrongCheck = try mountPoint("wrong")
        try shell("mount -o ro \(try attach(demo + "/drives/someone-elses-drive.img")) \(quote(wrongCheck))")
        addTeardownBlock { [self] in unmount(wrongCheck, fuse: false) }
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: wrongCheck).sorted(),
            [".plugsync-id", "holiday.jpg", "lost+found"])
        XCTAssertEqual(
            try String(contentsOfFile: wrongCheck + "/holiday.jpg", encoding: .utf8), "someone else's photo\n")
    }
}
