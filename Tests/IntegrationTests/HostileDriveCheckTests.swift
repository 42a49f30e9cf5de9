import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Reliability case "hostile drive", the File Check's modes: a drive anyone may have prepared
/// (real ext4 loop drives, a real udevd, the built binary, the agent) cannot hang `check`, `run`,
/// `devices` or the agent with its check file, cannot point the check outside itself with a
/// symbolic link, cannot get its check file synced over or deleted by writing its path another
/// way, and a mirror to its root leaves ext4's `lost+found` alone. Each mode prints one line
/// `reliability: case 10 hostile drive mode N name: held H of T` and fails unless every trial held.
final class HostileDriveCheckTests: IntegrationTestCase {
    private var agent: Running?

    override func tearDownWithError() throws {
        stopAgent()
        try super.tearDownWithError()
    }

    private func stopAgent() {
        agent?.stop()
    }

    // MARK: helpers

    private func requireDrives() throws {
        try requireRoot(
            "loop devices, mounts and udevd",
            tools: ["truncate", "mkfs.ext4", "losetup", "udevadm", "mount", "umount", "mkfifo", "mknod"])
        try ensureUdevd()
    }

    private func token() -> String { String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true) }

    /// An ext4 image labelled `label`, attached and known to udev; mounted (and unmounted at
    /// teardown) unless `mounted` is false. Returns the loop device and the mount point.
    private func makeDrive(label: String, name: String, mounted: Bool = true) throws -> (device: String, mount: String)
    {
        let image = try makeImage("\(name).img")
        try shell("mkfs.ext4 -q -F -L \(label) \(quote(image))")
        let device = try attach(image)
        try shell("udevadm trigger --action=change \(device) && udevadm settle --timeout=20")
        try waitForUdevLabel(device, label)
        let mount = try mountPoint(name)
        if mounted { try mountDrive(device, at: mount) }
        return (device, mount)
    }

    private func mountDrive(_ device: String, at mount: String) throws {
        try shell("mount \(device) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
    }

    /// A definition from `src` (or `source`) to the drive labelled `label`.
    private func driveDefinition(
        _ name: String, label: String, directory: String? = "backup", check: String?, source: String? = nil,
        driveIsSource: Bool = false, destination: String? = nil
    ) -> String {
        var drive = ["      device:", "        label: \(label)"]
        if let directory { drive.append("        directory: '\(directory)'") }
        if let check { drive.append("      file_check: '\(check)'") }
        let local = ["      local: '\(driveIsSource ? destination ?? path("dst") : source ?? path("src"))'"]
        let lines =
            ["  - name: \(name)", "    type: mirror", "    max_delete: 100%", "    source:"]
            + (driveIsSource ? drive : local) + ["    destination:"] + (driveIsSource ? local : drive)
        return lines.joined(separator: "\n") + "\n"
    }

    /// Runs plugsync, giving up (and killing it) after `seconds`: nil when it had to be killed.
    private func bounded(_ arguments: String..., seconds: Double) -> (CommandResult, Double)? {
        let start = Date()
        guard let result = try? plugsync(arguments: arguments, timeout: seconds) else { return nil }
        return (result, Date().timeIntervalSince(start))
    }

    /// `nobody` swapping the drive's `.plugsync-id` in `folder`, as fast as it can, between a
    /// regular file holding `content` and (`mode`) a symbolic link to `target` or a FIFO, with
    /// pauses drawn from `seed`. Killed at teardown.
    private func startSwapper(in folder: String, mode: String, content: String, target: String, seed: Int) throws
        -> Process
    {
        let script = """
            import os, random, sys, time
            folder, mode, content, target, seed = sys.argv[1:6]
            random.seed(int(seed))
            os.chdir(folder)
            while True:
                if mode == "link":
                    os.symlink(target, ".swap1")
                else:
                    os.mkfifo(".swap1")
                os.rename(".swap1", ".plugsync-id")
                time.sleep(random.random() * 0.002)
                with open(".swap2", "w") as f:
                    f.write(content)
                os.rename(".swap2", ".plugsync-id")
                time.sleep(random.random() * 0.002)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try which("setpriv"))
        process.arguments = [
            "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", script, folder, mode,
            content, target, String(seed),
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        addTeardownBlock {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        return process
    }

    private func stop(_ process: Process) {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    private func report(_ mode: Int, _ name: String, _ held: Int, _ trials: Int, _ failures: [String], seed: Int? = nil)
    {
        let seeded = seed.map { " seed \($0)" } ?? ""
        print("reliability: case 10 hostile drive mode \(mode) \(name)\(seeded): held \(held) of \(trials)")
        XCTAssertEqual(held, trials, "trials that did not hold:\n" + failures.joined(separator: "\n"))
    }

    // MARK: mode 4, hangs

    /// A FIFO (or another special file) as the check file returns at once, as a refusal in
    /// one line, from `run`, `check` and `devices`; a back-reference in the regex is refused when
    /// the definitions are read; a regex made slow on the drive's content ends within a second;
    /// in the agent, a drive with a FIFO check file does not hold up another drive's run.
    func testMode4SpecialFilesAndSlowRegexesNeverHang() throws {
        try requireDrives()
        let t = token()
        let label = "PSHC" + t
        let drive = try makeDrive(label: label, name: "hostile")
        try write("src/a.txt", "a\n")
        var held = 0
        var trials = 0
        var failures: [String] = []
        func trial(_ what: String, _ body: () throws -> String?) {
            trials += 1
            do {
                if let problem = try body() { failures.append("\(what): \(problem)") } else { held += 1 }
            } catch { failures.append("\(what): \(error)") }
        }
        /// A refusal naming the check file, in one line, within `limit` seconds.
        func refusedQuickly(_ run: (CommandResult, Double)?, _ fragment: String, limit: Double = 8) -> String? {
            guard let (result, seconds) = run else { return "did not finish (killed)" }
            if seconds > limit { return "took \(seconds) s\n\(result)" }
            if result.status != 3 { return "exit \(result.status), not 3\n\(result)" }
            let lines = result.stderrLines.filter { $0.contains("Refused") || $0.contains("failed") }
            if result.stderrLines.count != 1 || !(lines.first?.contains(fragment) ?? false) {
                return "not one refusal line naming \(fragment)\n\(result)"
            }
            return nil
        }

        let specials: [(String, String)] = [
            ("fifo", "mkfifo \(quote(drive.mount + "/.plugsync-id"))"),
            ("character device", "mknod \(quote(drive.mount + "/.plugsync-id")) c 1 3"),
            (
                "socket",
                "python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \(quote(drive.mount + "/.plugsync-id"))"
            ),
        ]
        for (kind, make) in specials {
            try shell("rm -rf \(quote(drive.mount + "/.plugsync-id")) && \(make)")
            for pattern in ["=^id-\(t)$", ""] {
                try writeConfig(driveDefinition("usb", label: label, check: ".plugsync-id\(pattern)"))
                trial("run, \(kind) as the check file\(pattern.isEmpty ? " (no regex)" : "")") {
                    refusedQuickly(bounded("run", "usb", seconds: 20), "not a regular file")
                }
            }
            trial("check, \(kind) as the check file") {
                guard let (result, seconds) = bounded("check", "usb", seconds: 20) else { return "killed" }
                if result.status != 3 || seconds > 8 || !result.stdout.contains("not a regular file") {
                    return "exit \(result.status) after \(seconds) s\n\(result)"
                }
                return nil
            }
            trial("devices, \(kind) as the check file") {
                guard let (result, seconds) = bounded("devices", seconds: 20) else { return "killed" }
                let row = result.lines.first { $0.contains(drive.device + " ") }
                if result.status != 0 || seconds > 8 || !(row?.contains("usb (File Check failed)") ?? false) {
                    return "exit \(result.status) after \(seconds) s\n\(result)"
                }
                return nil
            }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: drive.mount) && !exists("mnt-hostile/backup"))

        // A back-reference: refused when the definitions are read (exit 2, one line).
        try shell("rm -f \(quote(drive.mount + "/.plugsync-id"))")
        let square = String(repeating: "ab", count: 16 * 1024)
        try (square + square).write(toFile: drive.mount + "/.plugsync-id", atomically: false, encoding: .utf8)
        try writeConfig(driveDefinition("usb", label: label, check: #".plugsync-id=^(.*)\1x$"#))
        trial("run, a back-reference on 64 KiB") {
            guard let (result, seconds) = bounded("run", "usb", seconds: 20) else { return "killed" }
            if result.status != 2 || seconds > 8 || result.stderrLines.count != 1
                || !result.stderr.contains("back-reference")
            {
                return "exit \(result.status) after \(seconds) s\n\(result)"
            }
            return nil
        }
        // Patterns that make a backtracking matcher exponential, on 64 KiB made for them.
        try String(repeating: "a", count: 64 * 1024).write(
            toFile: drive.mount + "/.plugsync-id", atomically: false, encoding: .utf8)
        for pattern in ["^(a|a?)+c$", "(a*)*b", "^(a|aa)+$x", "(.*a){12}b"] {
            try writeConfig(driveDefinition("usb", label: label, check: ".plugsync-id=\(pattern)"))
            trial("check, \(pattern) on 64 KiB of a") {
                guard let (result, seconds) = bounded("check", "usb", seconds: 30) else { return "killed" }
                if result.status != 3 || seconds > 2.5 || !result.stdout.contains("content does not match") {
                    return "exit \(result.status) after \(seconds) s\n\(result)"
                }
                return nil
            }
        }

        // `nobody` swaps the check file between a FIFO and the right regular file while runs
        // start: every run ends within seconds (passed or refused), none hangs.
        let seed = 4_100
        try shell("cd \(quote(drive.mount)) && rm -rf -- * .plugsync-id && chmod 0777 .")
        try writeConfig(driveDefinition("usb", label: label, check: ".plugsync-id=^id-\(t)$"))
        let swapper = try startSwapper(
            in: drive.mount, mode: "fifo", content: "id-\(t)\n", target: "", seed: seed)
        usleep(100_000)
        for index in 0..<20 {
            trial("run \(index) while a FIFO is swapped in and out (seed \(seed))") {
                guard let (result, seconds) = bounded("run", "usb", seconds: 10) else { return "killed" }
                if seconds > 5 || ![0, 3].contains(result.status) || result.signaled {
                    return "exit \(result.status) after \(seconds) s\n\(result)"
                }
                return nil
            }
        }
        stop(swapper)

        // The agent: a drive whose check file is a FIFO is mounted first; another drive mounted
        // after it still gets its run within seconds.
        let goodLabel = "PSHG" + t
        let good = try makeDrive(label: goodLabel, name: "good", mounted: false)
        let staging = try mountPoint("good-staging")
        try shell(
            "mount \(good.device) \(quote(staging)) && echo good-\(t) > \(quote(staging + "/.plugsync-id")) && umount \(quote(staging))"
        )
        try shell("cd \(quote(drive.mount)) && rm -rf -- * .plugsync-id .swap1 .swap2 && mkfifo .plugsync-id")
        unmount(drive.mount, fuse: false)
        try writeConfig(
            driveDefinition("hostile", label: label, check: ".plugsync-id=^id-\(t)$")
                + driveDefinition("good", label: goodLabel, check: ".plugsync-id=^good-\(t)$")
                + "  - name: any\n    source:\n      local: '\(path("src"))'\n    destination:\n      device:\n"
                + "        directory: any\n      file_check: '.plugsync-any=^any-\(t)$'\n")
        let running = try startPlugsync(["agent", "--config", configPath])
        agent = running
        func log() -> String { (try? String(contentsOfFile: running.errPath, encoding: .utf8)) ?? "" }
        func waitFor(_ text: String, _ seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if log().contains(text) { return true }
                usleep(20_000)
            }
            return false
        }
        XCTAssertTrue(waitFor("started", 10), log())
        try shell("mount \(drive.device) \(quote(drive.mount))")
        usleep(300_000)
        try shell("mount \(good.device) \(quote(good.mount))")
        addTeardownBlock { [self] in unmount(good.mount, fuse: false) }
        trial("agent, a FIFO check file on one drive, another drive mounted after it") {
            if !waitFor("good: Done: 1 copied", 15) { return "the other drive's run did not come\n\(log())" }
            if !waitFor("hostile: drive \(drive.device) at \(drive.mount) left alone", 5) {
                return "the hostile drive was not left alone with a line\n\(log())"
            }
            if !log().contains("not a regular file") { return "no reason given\n\(log())" }
            return nil
        }
        // A drive that stops answering (its FUSE daemon stopped: every access to it waits) is
        // mounted again elsewhere; a definition found by its File Check alone looks at every new
        // mount. The other drive, mounted again after it, still gets its run.
        let fat = try makeImage("stalled.img")
        try shell("mkfs.vfat -n PSSTALL \(quote(fat)) >/dev/null")
        let fatDevice = try attach(fat)
        let fatMount = try mountPoint("stalled")
        let bindMount = try mountPoint("stalled-bind")
        try shell("fusefat -o rw+ \(fatDevice) \(quote(fatMount)) >/dev/null")
        addTeardownBlock { [self] in unmount(fatMount, fuse: true) }
        try waitForMount(fatMount)
        let daemon = try shell("ps -eo pid,args").split(separator: "\n").first {
            $0.contains("fusefat") && $0.contains(fatDevice + " ") && $0.hasSuffix(fatMount)
        }.flatMap { Int32($0.split(separator: " ").first ?? "") }
        guard let daemon else { throw HarnessError("cannot find the fusefat daemon of \(fatMount)") }
        kill(daemon, SIGSTOP)
        var resumed = false
        defer { if !resumed { kill(daemon, SIGCONT) } }
        try shell("mount --bind \(quote(fatMount)) \(quote(bindMount))")
        addTeardownBlock { [self] in unmount(bindMount, fuse: false) }
        usleep(300_000)
        try shell("umount \(quote(good.mount)) && mount \(good.device) \(quote(good.mount))")
        trial("agent, a drive that stops answering, another drive mounted after it") {
            let deadline = Date().addingTimeInterval(8)
            while Date() < deadline && log().components(separatedBy: "good: Done").count < 3 { usleep(20_000) }
            return log().components(separatedBy: "good: Done").count < 3
                ? "the other drive's second run did not come\n\(log())" : nil
        }
        kill(daemon, SIGCONT)
        resumed = true
        stopAgent()
        unmount(bindMount, fuse: false)
        unmount(fatMount, fuse: true)
        trial("fsck.vfat -n after the stalled drive") {
            let fsck = try shell("fsck.vfat -n \(fatDevice) 2>&1; echo status $?")
            return fsck.contains("status 0") ? nil : fsck
        }
        report(4, "fifo-and-slow-regex", held, trials, failures, seed: seed)
    }
    // MARK: mode 3, the check file through a symbolic link

    /// A check file, or a folder on its path, that is a symbolic link out of the drive (to a
    /// host file holding the right content) refuses the run in one line, exit 3, and nothing is
    /// written; `check` says the same.
    func testMode3CheckPathThroughASymlinkRefuses() throws {
        try requireDrives()
        let t = token()
        let label = "PSHS" + t
        let drive = try makeDrive(label: label, name: "links")
        try write("src/a.txt", "a\n")
        try write("host/id", "id-\(t)\n")
        try write("host/meta/id", "id-\(t)\n")
        var held = 0
        var failures: [String] = []
        let cases: [(String, String, String)] = [
            ("the check file, absolute", ".plugsync-id", "ln -s \(quote(path("host/id"))) .plugsync-id"),
            ("the check file, relative", ".plugsync-id", "ln -s \(quote(".." + path("host/id"))) .plugsync-id"),
            ("a folder, absolute", "meta/id", "ln -s \(quote(path("host/meta"))) meta"),
            ("a folder, relative", "meta/id", "ln -s \(quote("../.." + path("host/meta"))) meta"),
            ("a folder, deeper", "x/meta/id", "mkdir x && ln -s \(quote(path("host/meta"))) x/meta"),
            ("a folder inside the drive", "meta/id", "mkdir real && echo id-\(t) > real/id && ln -s real meta"),
        ]
        for (what, checkPath, make) in cases {
            try shell("cd \(quote(drive.mount)) && rm -rf -- * .plugsync-id && \(make)")
            try writeConfig(driveDefinition("usb", label: label, check: "\(checkPath)=^id-\(t)$"))
            let run = try plugsync("run", "usb")
            let check = try plugsync("check", "usb")
            let refusal = run.stderrLines.first { $0.hasPrefix("plugsync: usb: Refused: ") } ?? ""
            if run.status == 3 && run.stderrLines.count == 1 && refusal.contains("symbolic link")
                && !FileManager.default.fileExists(atPath: drive.mount + "/backup") && check.status == 3
                && check.stdout.contains("symbolic link")
            {
                held += 1
            } else {
                failures.append("\(what):\n\(run)\n\(check)")
            }
        }
        // `nobody` swaps the check file between a regular file with the wrong content and a
        // link to a host file with the right one while runs start: no run may pass the check.
        let seed = 3_100
        try shell("cd \(quote(drive.mount)) && rm -rf -- * .plugsync-id && chmod 0777 .")
        try writeConfig(driveDefinition("usb", label: label, check: ".plugsync-id=^id-\(t)$"))
        let swapper = try startSwapper(
            in: drive.mount, mode: "link", content: "wrong\n", target: path("host/id"), seed: seed)
        usleep(100_000)
        let swaps = 20
        for trial in 0..<swaps {
            let run = try plugsync("run", "usb")
            if run.status == 3 && !FileManager.default.fileExists(atPath: drive.mount + "/backup") {
                held += 1
            } else {
                failures.append("swap trial \(trial):\n\(run)")
            }
        }
        stop(swapper)
        report(3, "check-through-symlink", held, cases.count + swaps, failures, seed: seed)
    }

    // MARK: mode 8, check path forms

    /// However its path is written (`./`, `/./`, `//`, absolute through the mount point), the
    /// check file is left out of the sync: a source file of the same name does not overwrite it,
    /// a mirror whose source lacks it does not delete it, and the next run is not refused.
    func testMode8CheckPathFormsNeverSyncTheCheckFile() throws {
        try requireDrives()
        let t = token()
        let label = "PSHF" + t
        let drive = try makeDrive(label: label, name: "forms")
        var held = 0
        var trials = 0
        var failures: [String] = []
        // (as written, where it is below the mount point, directory)
        let forms: [(String, String, String)] = [
            ("./backup/.plugsync-id", "backup/.plugsync-id", "backup"),
            ("backup/./.plugsync-id", "backup/.plugsync-id", "backup"),
            ("backup/meta/./id", "backup/meta/id", "backup"),
            ("backup//a//b", "backup/a/b", "backup"),
            (".//backup/./meta//id", "backup/meta/id", "backup"),
            ("\(drive.mount)/./backup//.plugsync-id", "backup/.plugsync-id", "backup"),
            ("./.plugsync-id", ".plugsync-id", ""),
            ("meta/./id", "meta/id", ""),
            ("a//b", "a/b", ""),
        ]
        for (written, onDrive, directory) in forms {
            for sourceHasIt in [true, false] {
                trials += 1
                let within = directory.isEmpty ? onDrive : String(onDrive.dropFirst(directory.count + 1))
                try shell("rm -rf \(quote(path("src"))) && cd \(quote(drive.mount)) && rm -rf -- * .plugsync-id")
                try write("src/data.txt", "data\n")
                if sourceHasIt { try write("src/" + within, "from the source\n") }
                let checkFile = drive.mount + "/" + onDrive
                try FileManager.default.createDirectory(
                    atPath: (checkFile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try "id-\(t)\n".write(toFile: checkFile, atomically: false, encoding: .utf8)
                try writeConfig(
                    driveDefinition("usb", label: label, directory: directory, check: "\(written)=^id-\(t)$"))
                let first = try plugsync("run", "usb")
                let second = try plugsync("run", "usb")
                let content = try? String(contentsOfFile: checkFile, encoding: .utf8)
                if first.status == 0 && second.status == 0 && content == "id-\(t)\n"
                    && !first.actions.contains(where: { $0.hasSuffix(" " + within) })
                    && FileManager.default.fileExists(
                        atPath: drive.mount + "/" + (directory.isEmpty ? "" : directory + "/") + "data.txt")
                {
                    held += 1
                } else {
                    failures.append(
                        "\(written) (source \(sourceHasIt ? "has" : "lacks") it): check file now \(content.debugDescription)\n\(first)\n\(second)"
                    )
                }
            }
        }
        report(8, "check-path-forms", held, trials, failures)
    }

    // MARK: mode 11, lost+found

    /// A mirror to a drive's root keeps ext4's `lost+found` (twice: the second run does
    /// nothing); a drive's root as a source does not bring it along; nor does a local endpoint
    /// that is a mount point.
    func testMode11LostAndFoundAtADrivesRootIsNeverAnOrphan() throws {
        try requireDrives()
        let t = token()
        let label = "PSHL" + t
        let drive = try makeDrive(label: label, name: "root")
        try "id-\(t)\n".write(toFile: drive.mount + "/.plugsync-id", atomically: false, encoding: .utf8)
        try write("src/a.txt", "a\n")
        try write("src/sub/b.txt", "b\n")
        var held = 0
        var failures: [String] = []
        let lostAndFound = drive.mount + "/lost+found"
        func intact() -> Bool {
            var st = stat()
            return lstat(lostAndFound, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
        }
        XCTAssertTrue(intact(), "mkfs.ext4 made no lost+found")

        try writeConfig(driveDefinition("to-root", label: label, directory: nil, check: ".plugsync-id=^id-\(t)$"))
        let first = try plugsync("run", "to-root")
        let second = try plugsync("run", "to-root")
        if first.status == 0 && intact() && second.status == 0
            && second.actions.filter({ !$0.hasPrefix("Skipping ") }).isEmpty
            && FileManager.default.fileExists(atPath: drive.mount + "/sub/b.txt")
        {
            held += 1
        } else {
            failures.append("mirror to the drive's root:\n\(first)\n\(second)")
        }

        try writeConfig(
            driveDefinition(
                "from-root", label: label, directory: nil, check: ".plugsync-id=^id-\(t)$", driveIsSource: true))
        let back = try plugsync("run", "from-root")
        if back.status == 0 && !exists("dst/lost+found") && exists("dst/sub/b.txt") && intact() {
            held += 1
        } else {
            failures.append("the drive's root as a source:\n\(back)")
        }

        try writeConfig(definition("local-root", source: path("src"), destination: drive.mount, ["max_delete: 100%"]))
        let local = try plugsync("run", "local-root")
        if local.status == 0 && intact() && !local.actions.contains(where: { $0.contains("lost+found") }) {
            held += 1
        } else {
            failures.append("a local endpoint at the mount point:\n\(local)")
        }
        report(11, "lost-and-found", held, 3, failures)
    }
}
