import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `plugsync agent` end to end: the built binary, a real systemd-udevd, loop devices with ext4,
/// real mounts. Needs root: skipped otherwise, except with CI=true, where it fails.
final class AgentTests: IntegrationTestCase {
    private var agent: Running?

    override func tearDownWithError() throws {
        stopAgent()
        try super.tearDownWithError()
    }

    // MARK: helpers

    private func requireDrives() throws {
        try requireRoot(
            "loop devices, mounts and udevd", tools: ["truncate", "mkfs.ext4", "losetup", "udevadm", "mount", "umount"])
        try ensureUdevd()
    }

    /// An ext4 image labelled `label`, carrying `.plugsync-id` = `id`, attached and known to udev
    /// but NOT mounted. Returns the loop device.
    private func makeUnmountedDrive(label: String, name: String, id: String?) throws -> String {
        let image = try makeImage("\(name).img")
        try shell("mkfs.ext4 -q -F -L \(label) \(quote(image))")
        let device = try attach(image)
        if let id {
            let staging = try mountPoint("\(name)-staging")
            try shell("mount \(device) \(quote(staging))")
            try (id + "\n").write(toFile: staging + "/.plugsync-id", atomically: false, encoding: .utf8)
            try shell("umount \(quote(staging))")
        }
        try shell("udevadm trigger --action=change \(device) && udevadm settle --timeout=20")
        try waitForUdevLabel(device, label)
        return device
    }

    private func startAgent(environment: [String: String] = [:]) throws {
        agent = try startPlugsync(["agent", "--config", configPath], environment: environment)
        try waitForAgentLog("started")
    }

    private var agentLog: String {
        guard let agent else { return "" }
        return (try? String(contentsOfFile: agent.errPath, encoding: .utf8)) ?? ""
    }

    @discardableResult
    private func waitForAgentLog(_ text: String, count: Int = 1, timeout: Double = 10) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let log = agentLog
            if log.components(separatedBy: text).count - 1 >= count { return log }
            if let agent, !agent.process.isRunning { break }
            usleep(20_000)
        }
        throw HarnessError("the agent did not log \"\(text)\" (\(count)×) within \(timeout) s:\n\(agentLog)")
    }

    /// SIGTERM, and the seconds it took the agent to exit.
    @discardableResult
    private func stopAgent() -> Double? {
        guard let agent, agent.process.isRunning else { return nil }
        let start = Date()
        kill(agent.process.processIdentifier, SIGTERM)
        while agent.process.isRunning && Date().timeIntervalSince(start) < 15 { usleep(10_000) }
        let seconds = Date().timeIntervalSince(start)
        if agent.process.isRunning { kill(agent.process.processIdentifier, SIGKILL) }
        agent.process.waitUntilExit()
        return seconds
    }

    private func driveDefinition(
        _ name: String, label: String, id: String, directory: String = "backup", extra: [String] = [],
        device: [String] = []
    ) -> String {
        Self.mirrorUnlessTyped(
            [
                "  - name: \(name)", "    source:", "      local: '\(path("src"))'", "    destination:",
                "      device:",
                "        label: \(label)", "        directory: \(directory)",
            ] + device.map { "        " + $0 } + [
                "      file_check: \".plugsync-id=^\(id)$\"", "    log_file: '\(path(name + ".log"))'",
            ] + extra.map { "    " + $0 })
    }

    private func waitForFile(_ file: String, timeout: Double) -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if FileManager.default.fileExists(atPath: file) { return Date().timeIntervalSince(start) }
            usleep(5_000)
        }
        return nil
    }

    private func token() -> String { String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true) }

    // MARK: tests

    /// Mounting the right drive syncs within seconds (trigger: mount in the log, the history and
    /// `status`); a drive with the same label whose File Check content differs is left alone.
    func testMountTriggersTheMatchingDefinitionOnly() throws {
        try requireDrives()
        let t = token()
        let label = "PSAG" + t
        try write("src/a.txt", "a\n")
        try write("src/sub/b.txt", "b\n")
        let right = try makeUnmountedDrive(label: label, name: "right", id: "right-\(t)")
        let clone = try makeUnmountedDrive(label: label, name: "clone", id: "clone-\(t)")
        try writeConfig(
            driveDefinition(
                "usb", label: label, id: "right-\(t)",
                extra: [
                    "hooks:",
                    "  after: 'echo \"hook $PLUGSYNC_NAME $PLUGSYNC_TRIGGER $PLUGSYNC_RESULT $PLUGSYNC_COPIED\" >> \(path("hook.txt"))'",
                ]))
        try startAgent()

        // The clone first: same label, other File Check content.
        let cloneMount = try mountPoint("clone")
        try shell("mount \(clone) \(quote(cloneMount))")
        addTeardownBlock { [self] in unmount(cloneMount, fuse: false) }
        try waitForAgentLog("left alone")
        XCTAssertTrue(agentLog.contains("File Check failed"), agentLog)

        let mount = try mountPoint("right")
        try shell("mount \(right) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        let seconds = waitForFile(mount + "/backup/sub/b.txt", timeout: 10)
        XCTAssertNotNil(seconds, "the agent did not sync within 10 s:\n\(agentLog)")
        try waitForAgentLog("usb: Done: 2 copied")
        try assertSameTree(path("src"), mount + "/backup")
        XCTAssertFalse(FileManager.default.fileExists(atPath: cloneMount + "/backup"), "the clone was written to")
        XCTAssertTrue(
            read("usb.log")?.contains("Sync usb started (mirror, trigger: mount)") == true, read("usb.log") ?? "")
        XCTAssertTrue(agentLog.contains("usb: run started (trigger: mount)"), agentLog)
        XCTAssertEqual(read("hook.txt"), "hook usb mount success 2\n")
        let status = try plugsync("status")
        assertExit(status, 0)
        XCTAssertTrue(status.lines.contains { $0.hasPrefix("usb ") && $0.contains(" mount success 2 ") }, "\(status)")
        XCTAssertEqual(agentLog.components(separatedBy: "usb: run started").count - 1, 1, agentLog)
        XCTAssertLessThan(stopAgent() ?? 99, 5)
    }

    /// The agent hands the mount it matched to the run: with two drives that both pass the
    /// definition's label and File Check, the run started by the second mount writes to the
    /// second drive. Resolving the drive again in the run found both and refused ("2 mounted
    /// drives pass the File Check").
    func testTheRunUsesTheDriveWhoseMountStartedIt() throws {
        try requireDrives()
        let t = token()
        let label = "PSTW" + t
        try write("src/a.txt", "a\n")
        let first = try makeUnmountedDrive(label: label, name: "first", id: "twin-\(t)")
        let second = try makeUnmountedDrive(label: label, name: "second", id: "twin-\(t)")
        try writeConfig(driveDefinition("twin", label: label, id: "twin-\(t)"))
        try startAgent()
        let firstMount = try mountPoint("first")
        try shell("mount \(first) \(quote(firstMount))")
        addTeardownBlock { [self] in unmount(firstMount, fuse: false) }
        try waitForAgentLog("twin: Done: 1 copied", timeout: 20)
        let secondMount = try mountPoint("second")
        try shell("mount \(second) \(quote(secondMount))")
        addTeardownBlock { [self] in unmount(secondMount, fuse: false) }
        try waitForAgentLog("twin: Done: 1 copied", count: 2, timeout: 20)
        XCTAssertTrue(FileManager.default.fileExists(atPath: firstMount + "/backup/a.txt"), agentLog)
        XCTAssertTrue(FileManager.default.fileExists(atPath: secondMount + "/backup/a.txt"), agentLog)
        let log = read("twin.log") ?? ""
        XCTAssertTrue(log.contains("Destination drive \(first) "), log)
        XCTAssertTrue(log.contains("Destination drive \(second) "), log)
        XCTAssertFalse(log.contains("pass the destination File Check"), log)
    }

    /// A manual `plugsync run` during an agent run waits for it; a mount during a run becomes
    /// one follow-up run, not two, not none.
    func testRunsAreSerializedAndCoalesced() throws {
        try requireDrives()
        let t = token()
        let label = "PSAG" + t
        try write("src/a.txt", "a\n")
        let drive = try makeUnmountedDrive(label: label, name: "d", id: "id-\(t)")
        // A slow `before` hook keeps the first run busy for two seconds.
        try writeConfig(
            driveDefinition(
                "slow", label: label, id: "id-\(t)",
                extra: ["hooks:", "  before: 'if [ \"$PLUGSYNC_TRIGGER\" = mount ]; then sleep 2; fi'"]))
        try startAgent()
        let mount = try mountPoint("d")
        try shell("mount \(drive) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        try waitForAgentLog("slow: run started (trigger: mount)")
        // Unmount and mount again during the run: one follow-up.
        try shell("umount \(quote(mount)) && mount \(drive) \(quote(mount))")
        try waitForAgentLog("one more run follows it")
        let manual = try plugsync("run", "slow")
        assertExit(manual, 0)
        XCTAssertTrue(manual.lines.contains("Waiting for the running sync of slow to finish."), "\(manual)")
        try waitForAgentLog("slow: Done", count: 2, timeout: 15)
        usleep(500_000)
        XCTAssertEqual(agentLog.components(separatedBy: "slow: run started (trigger: mount)").count - 1, 2, agentLog)
        let log = read("slow.log") ?? ""
        XCTAssertEqual(log.components(separatedBy: "trigger: mount)").count - 1, 2, log)
        XCTAssertEqual(log.components(separatedBy: "trigger: manual)").count - 1, 1, log)
        XCTAssertEqual(read(mount.replacingOccurrences(of: root + "/", with: "") + "/backup/a.txt"), "a\n")
    }

    /// SIGHUP with a broken file keeps the old definitions (and says why); a good file replaces
    /// them. SIGTERM ends the agent within a few seconds, leaving no partial file.
    func testReloadAndTerminate() throws {
        try requireDrives()
        let t = token()
        let label = "PSAG" + t
        // Enough data that the run is still copying when SIGTERM arrives.
        for i in 0..<200 { try write("src/f\(i).bin", randomData(256 * 1024, seed: UInt64(i))) }
        let drive = try makeUnmountedDrive(label: label, name: "d", id: "id-\(t)")
        try writeConfig(driveDefinition("first", label: label, id: "id-\(t)", extra: ["parallel: 1"]))
        try startAgent()
        try "definitions: [ broken".write(toFile: configPath, atomically: true, encoding: .utf8)
        kill(agent!.process.processIdentifier, SIGHUP)
        try waitForAgentLog("reload failed, keeping the previous 1 definitions")
        XCTAssertTrue(agentLog.contains("not valid YAML"), agentLog)

        let mount = try mountPoint("d")
        try shell("mount \(drive) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        try waitForAgentLog("first: run started (trigger: mount)")
        guard waitForFile(mount + "/backup/f0.bin", timeout: 10) != nil else {
            return XCTFail("no file copied:\n\(agentLog)")
        }
        let seconds = try XCTUnwrap(stopAgent())
        XCTAssertLessThan(seconds, 5, agentLog)
        XCTAssertTrue(agentLog.contains("stopped"), agentLog)
        // Every file under its final name is complete.
        for name in try FileManager.default.contentsOfDirectory(atPath: mount + "/backup") {
            XCTAssertFalse(name.hasPrefix(".plugsync-tmp-"), name)
            XCTAssertTrue(filesEqual(path("src/\(name)"), mount + "/backup/\(name)"), "\(name) is partial")
        }
        agent = nil

        // A good file replaces the definitions.
        try writeConfig(driveDefinition("second", label: label, id: "id-\(t)"))
        try startAgent()
        kill(agent!.process.processIdentifier, SIGHUP)
        try waitForAgentLog("reloaded")
    }

    /// The agent follows its definitions file without SIGHUP: `plugsync add` (a rename onto the
    /// file) and an edit in place are read again; the same bytes written again, or another
    /// file of the folder, are not; a broken edit keeps the definitions until it is fixed.
    func testTheAgentFollowsItsDefinitionsFile() throws {
        try requireRoot("the agent's state folder as root")
        try write("src/a.txt", "a\n")
        try writeConfig(definition("first", source: path("src"), destination: path("dst")))
        try startAgent()
        let added = try plugsync(
            "add", "second", "--source", path("src"), "--destination", path("dst2"), "--schedule", "every 1m")
        assertExit(added, 0)
        try waitForAgentLog("reloaded \(configPath): 2 definitions", timeout: 5)
        let text = try XCTUnwrap(read("plugsync.yaml"))
        try text.write(toFile: configPath, atomically: false, encoding: .utf8)
        try write("unrelated.yaml", "definitions: []\n")
        usleep(1_000_000)
        XCTAssertEqual(agentLog.components(separatedBy: "reloaded").count - 1, 1, agentLog)
        try (text + "  - name: [broken\n").write(toFile: configPath, atomically: false, encoding: .utf8)
        try waitForAgentLog("reload failed, keeping the previous 2 definitions", timeout: 5)
        try text.write(toFile: configPath, atomically: false, encoding: .utf8)
        try waitForAgentLog("reloaded \(configPath): 2 definitions", count: 2, timeout: 5)

        // status says whether an agent runs, and whether it follows the file status read.
        let pid = agent!.process.processIdentifier
        let status = try plugsync("status")
        XCTAssertEqual(status.lines.last, "Agent: running (pid \(pid)), following this definitions file.", "\(status)")
        let json = try plugsync("status", "--json")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let agentObject = try XCTUnwrap(object["agent"] as? [String: Any], json.stdout)
        XCTAssertEqual(agentObject["running"] as? Bool, true)
        XCTAssertEqual(agentObject["pid"] as? Int, Int(pid))
        XCTAssertEqual(agentObject["config"] as? String, configPath)
        XCTAssertEqual(agentObject["follows_this_file"] as? Bool, true)
        try write("other.yaml", "definitions: []\n")
        let other = try plugsync("status", config: path("other.yaml"))
        XCTAssertEqual(
            other.lines.last, "Agent: running (pid \(pid)), following another definitions file: \(configPath).",
            "\(other)")
        stopAgent()
        let stopped = try plugsync("status")
        XCTAssertTrue(stopped.lines.last?.hasPrefix("Agent: not running") == true, "\(stopped)")
    }

    /// `mount: auto`: the agent mounts a matching drive that nobody mounted, syncs, flushes,
    /// unmounts, and says it is safe to remove.
    func testMountAuto() throws {
        try requireDrives()
        let t = token()
        let label = "PSAG" + t
        try write("src/a.txt", "auto\n")
        let drive = try makeUnmountedDrive(label: label, name: "d", id: "id-\(t)")
        try writeConfig(driveDefinition("auto", label: label, id: "id-\(t)", device: ["mount: auto"]))
        try startAgent()
        try shell("udevadm trigger --action=change \(drive)")
        try waitForAgentLog("safe to remove", timeout: 20)
        XCTAssertTrue(agentLog.contains("auto: Done: 1 copied"), agentLog)
        XCTAssertFalse(
            ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").contains(drive + " "),
            "still mounted")
        // Another change event for the same drive does not start another round.
        try shell("udevadm trigger --action=change \(drive) && udevadm settle --timeout=20")
        usleep(500_000)
        XCTAssertEqual(agentLog.components(separatedBy: "(mount: auto)").count - 1, 1, agentLog)
        let check = try mountPoint("check")
        try shell("mount \(drive) \(quote(check))")
        addTeardownBlock { [self] in unmount(check, fuse: false) }
        XCTAssertEqual(try String(contentsOfFile: check + "/backup/a.txt", encoding: .utf8), "auto\n")
    }

    /// `every: 1m` fires at the next minute (trigger schedule); a scheduled run whose drive is
    /// absent is skipped with one line. Takes up to a minute.
    func testScheduleFiresAndSkipsAbsentDrive() throws {
        try requireRoot("the agent's state folder as root")
        try write("src/a.txt", "a\n")
        try writeConfig(
            definition("timed", source: path("src"), destination: path("dst"), ["schedule:", "  - every: 1m"]),
            "  - name: absent\n    source:\n      local: '\(path("src"))'\n    destination:\n      device:\n        label: PSNONE\(token())\n    schedule:\n      - every: 1m\n"
        )
        try startAgent()
        try waitForAgentLog("timed: Done: 1 copied", timeout: 75)
        XCTAssertTrue(agentLog.contains("timed: run started (trigger: schedule)"), agentLog)
        try waitForAgentLog("absent: scheduled run skipped", timeout: 5)
        XCTAssertEqual(agentLog.components(separatedBy: "absent: scheduled run skipped").count - 1, 1, agentLog)
        XCTAssertFalse(agentLog.contains("absent: run started"), agentLog)
        XCTAssertEqual(read("dst/a.txt"), "a\n")
        let status = try plugsync("status")
        XCTAssertTrue(
            status.lines.contains { $0.hasPrefix("timed ") && $0.contains(" schedule success ") }, "\(status)")
    }

    /// SIGTERM while a run is about to copy: no file is started after it, the run ends
    /// `Stopped: …` with the files it did not start, and the agent exits within a few seconds.
    func testTerminateStopsBeforeTheNextFile() throws {
        try requireDrives()
        let t = token()
        let label = "PSAG" + t
        for i in 0..<5 { try write("src/f\(i).txt", "file \(i)\n") }
        let drive = try makeUnmountedDrive(label: label, name: "d", id: "id-\(t)")
        try writeConfig(driveDefinition("stop", label: label, id: "id-\(t)", extra: ["hooks:", "  before: 'sleep 1'"]))
        try startAgent()
        let mount = try mountPoint("d")
        try shell("mount \(drive) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        try waitForAgentLog("stop: run started (trigger: mount)")
        let seconds = try XCTUnwrap(stopAgent())
        XCTAssertLessThan(seconds, 5, agentLog)
        XCTAssertTrue(agentLog.contains("stop: Stopped: 0 copied"), agentLog)
        XCTAssertTrue(agentLog.contains(" 5 not started"), agentLog)
        XCTAssertTrue(read("stop.log")?.contains("Stopped: 5 entries not started") == true, read("stop.log") ?? "")
        let copied = (try? FileManager.default.contentsOfDirectory(atPath: mount + "/backup")) ?? []
        XCTAssertEqual(copied, [], "no file may be started after SIGTERM")
    }

    /// The drive goes away while its run is going on: that run fails cleanly (nothing written
    /// anywhere else), and the next mount completes the sync.
    func testUnmountDuringARunThenTheNextMountCompletes() throws {
        try requireDrives()
        let t = token()
        let label = "PSAG" + t
        try write("src/a.txt", "a\n")
        try write("src/b/c.txt", "c\n")
        let drive = try makeUnmountedDrive(label: label, name: "d", id: "id-\(t)")
        let flag = path("slowed")
        try writeConfig(
            driveDefinition(
                "gone", label: label, id: "id-\(t)",
                extra: ["hooks:", "  before: 'test -e \(flag) || { touch \(flag); sleep 1.5; }'"]))
        try startAgent()
        let mount = try mountPoint("d")
        try shell("mount \(drive) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        try waitForAgentLog("gone: run started (trigger: mount)")
        try shell("umount \(quote(mount))")
        try waitForAgentLog("gone: Refused", timeout: 10)
        XCTAssertTrue(agentLog.contains("not mounted"), agentLog)
        XCTAssertFalse(exists("mnt-d/backup"), "the run wrote under the bare mount point")
        try shell("mount \(drive) \(quote(mount))")
        try waitForAgentLog("gone: Done: 2 copied", timeout: 10)
        try assertSameTree(path("src"), mount + "/backup")
    }

    /// `unmount_after` on a drive someone else mounted: after its run the agent flushes and
    /// unmounts it, and says it is safe to remove.
    func testUnmountAfter() throws {
        try requireDrives()
        let t = token()
        let label = "PSAG" + t
        try write("src/a.txt", "a\n")
        let drive = try makeUnmountedDrive(label: label, name: "d", id: "id-\(t)")
        try writeConfig(driveDefinition("ua", label: label, id: "id-\(t)", device: ["unmount_after: true"]))
        try startAgent()
        let mount = try mountPoint("d")
        try shell("mount \(drive) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        try waitForAgentLog("safe to remove", timeout: 10)
        XCTAssertTrue(agentLog.contains("ua: Done: 1 copied"), agentLog)
        XCTAssertFalse(isMounted(mount), agentLog)
        try shell("mount \(drive) \(quote(mount))")
        XCTAssertEqual(read("mnt-d/backup/a.txt"), "a\n")
    }

    /// The system agent's desktop notifications about drives, to a user with an active
    /// graphical session (on that user's bus at /run/user/UID/bus): a drive with the label but
    /// another File Check content is left alone; the right one is synced, unmounted and safe to
    /// remove; a drive that something keeps busy cannot be unmounted, and the notification says
    /// it is not safe to remove.
    func testDesktopNotificationsAboutDrives() throws {
        try requireDrives()
        try requireRoot("a session bus of another user at /run/user/UID/bus", tools: ["setpriv", "dbus-daemon"])
        let user = uid_t(65534)  // nobody
        let session = try startUserDesktop(uid: user)
        let t = token()
        let label = "PSDN" + t
        try write("src/a.txt", "a\n")
        let right = try makeUnmountedDrive(label: label, name: "right", id: "right-\(t)")
        let clone = try makeUnmountedDrive(label: label, name: "clone", id: "clone-\(t)")
        let notify = ["notify:", "  desktop: true"]
        try writeConfig(
            driveDefinition("usb", label: label, id: "right-\(t)", extra: notify, device: ["unmount_after: true"]))
        try startAgent(environment: ["DBUS_SESSION_BUS_ADDRESS": ""])

        let cloneMount = try mountPoint("clone")
        try shell("mount \(clone) \(quote(cloneMount))")
        addTeardownBlock { [self] in unmount(cloneMount, fuse: false) }
        try waitForAgentLog("left alone")
        var got = session.waitFor(1)
        XCTAssertEqual(got.map(\.summary), ["\(label) was plugged in, but its File Check failed: left alone"], agentLog)
        XCTAssertTrue(got.first?.body.hasPrefix("usb: ") == true, "\(got)")
        XCTAssertEqual(got.first?.uid, Int(user))

        let mount = try mountPoint("right")
        try shell("mount \(right) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        try waitForAgentLog("safe to remove", timeout: 10)
        got = session.waitFor(2)
        XCTAssertEqual(got.dropFirst().map(\.summary), ["\(label): backup done, safe to remove"], agentLog)
        XCTAssertTrue(got.last?.body.contains("unmounted from \(mount): safe to remove") == true, "\(got)")
        XCTAssertFalse(isMounted(mount), agentLog)
        XCTAssertEqual(got.count, 2, "a success is not notified with the default events: \(got)")

        // An after hook leaves a process in the drive's folder: the unmount fails.
        stopAgent()
        let holder = path("holder.pid")
        try writeConfig(
            driveDefinition(
                "usb", label: label, id: "right-\(t)",
                extra: notify + [
                    "hooks:",
                    "  after: '(cd \(mount) && exec sleep 20 </dev/null >/dev/null 2>&1) & echo $! > \(holder)'",
                ], device: ["unmount_after: true"]))
        try startAgent(environment: ["DBUS_SESSION_BUS_ADDRESS": ""])
        try shell("mount \(right) \(quote(mount))")
        defer {
            if let text = read("holder.pid"), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGKILL)  // gone before the teardown unmounts the drive
            }
        }
        try waitForAgentLog("NOT safe to remove", timeout: 10)
        got = session.waitFor(3)
        XCTAssertEqual(got.dropFirst(2).map(\.summary), ["\(label): backup done, but NOT safe to remove"], agentLog)
        XCTAssertTrue(got.last?.body.hasPrefix("cannot unmount \(mount)") == true, "\(got)")
        XCTAssertEqual(got.last?.hints["urgency"], 2, "\(got)")
        XCTAssertTrue(isMounted(mount), agentLog)
    }

    /// A drive a desktop's disk service mounted for a user (udisks mounts under
    /// /run/media/USER/ or /media/USER/): the system agent tells that user, on the user's bus,
    /// also when the user has no graphical session logind knows of (here: a tty session).
    func testTheUserADriveWasMountedForIsNotified() throws {
        try requireDrives()
        try requireRoot("a session bus of another user at /run/user/UID/bus", tools: ["setpriv", "dbus-daemon"])
        let user = uid_t(65534)  // nobody
        guard let entry = getpwuid(user) else { throw HarnessError("no user \(user) (nobody)") }
        let name = String(cString: entry.pointee.pw_name)
        let session = try startUserDesktop(uid: user, type: "tty")
        let t = token()
        let label = "PSUD" + t
        try write("src/a.txt", "a\n")
        let drive = try makeUnmountedDrive(label: label, name: "d", id: "id-\(t)")
        try writeConfig(
            driveDefinition(
                "usb", label: label, id: "id-\(t)", extra: ["notify:", "  desktop: true", "  events: [success]"]))
        try startAgent(environment: ["DBUS_SESSION_BUS_ADDRESS": ""])
        let media = "/run/media/\(name)/\(label)"
        try FileManager.default.createDirectory(atPath: media, withIntermediateDirectories: true)
        addTeardownBlock { [self] in
            unmount(media, fuse: false)
            try? FileManager.default.removeItem(atPath: media)
        }
        try shell("mount \(drive) \(quote(media))")
        try waitForAgentLog("usb: Done: 1 copied", timeout: 10)
        let got = session.waitFor(1, timeout: 10)
        XCTAssertEqual(got.map(\.summary), ["usb: backup done"], agentLog)
        XCTAssertEqual(got.first?.uid, Int(user), "connected as the user the drive was mounted for")
    }
}
