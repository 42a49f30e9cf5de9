import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// docs/RELIABILITY.md, the local faults: a drive pulled mid-run (case 1), a full destination (case 3),
/// unreadable source entries (case 4), the agent stopped by SIGTERM mid-run (case 9). Each case
/// runs its trials against the built binary on real loop devices with ext4, and prints one line
/// `reliability: case N <name>: held H of T`; it fails when H < T. Needs root (loop devices,
/// mounts, udevd; case 4 drops to `nobody`): skipped otherwise, a failure under CI=true.
final class FaultLocalTests: IntegrationTestCase {
    private var loops: [String] = []
    private var mounts: [String] = []
    private var agent: Running?
    /// FAULT_VERBOSE=1 prints every trial's run.
    private let verbose = ProcessInfo.processInfo.environment["FAULT_VERBOSE"] != nil

    override func tearDownWithError() throws {
        if let agent, agent.process.isRunning {
            kill(agent.process.processIdentifier, SIGKILL)
            agent.process.waitUntilExit()
        }
        for mount in mounts.reversed() { unmount(mount, fuse: false) }
        for loop in loops.reversed() { _ = try? shell("losetup -d \(loop) 2>/dev/null", allowFailure: true) }
        try super.tearDownWithError()
    }

    // MARK: drives

    private struct Drive {
        var image: String
        var device: String
        var mount: String
        var label: String
        var id: String
        /// exFAT through exfat-fuse (a FUSE daemon serves the mount) instead of ext4.
        var exfat = false
    }

    private func requireDrives() throws {
        try requireRoot(
            "loop devices, mounts and udevd",
            tools: ["truncate", "mkfs.ext4", "losetup", "udevadm", "mount", "umount", "python3"])
        try ensureUdevd()
    }

    private func token() -> String { String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true) }

    /// `losetup -f --show`, detached at teardown.
    private func attachLoop(_ image: String) throws -> String {
        let device = try shell("losetup -f --show \(quote(image))").trimmingCharacters(in: .whitespacesAndNewlines)
        guard device.hasPrefix("/dev/loop") else { throw HarnessError("losetup printed \(device)") }
        loops.append(device)
        return device
    }

    /// An ext4 drive of `megabytes` MiB labelled `label` with a `.plugsync-id` File Check file,
    /// attached, known to udev, and mounted at `mnt-<name>`.
    private func makeDrive(_ name: String, megabytes: Int, exfat: Bool = false) throws -> Drive {
        let t = token()
        let label = (exfat ? "PSX" : "PSRL") + t  // exFAT labels: 11 characters at most
        let image = path("\(name).img")
        try shell(
            "truncate -s \(megabytes)M \(quote(image)) && "
                + (exfat
                    ? "mkfs.exfat -L \(label) \(quote(image)) >/dev/null"
                    : "mkfs.ext4 -q -F -L \(label) \(quote(image))"))
        let device = try attachLoop(image)
        let mount = try mountPoint(name)
        var drive = Drive(image: image, device: device, mount: mount, label: label, id: "id-\(t)", exfat: exfat)
        try mountDrive(&drive)
        try (drive.id + "\n").write(toFile: mount + "/.plugsync-id", atomically: false, encoding: .utf8)
        return drive
    }

    /// `options`: e.g. `commit=1`, ext4's journal committed every second (default 5 s).
    private func mountDrive(_ drive: inout Drive, options: String = "") throws {
        try shell("udevadm trigger --action=change \(drive.device) && udevadm settle --timeout=20")
        try waitForUdevLabel(drive.device, drive.label)
        try shell(mountCommand(drive, options: options))
        try waitForMount(drive.mount)
        if !mounts.contains(drive.mount) { mounts.append(drive.mount) }
    }

    private func mountCommand(_ drive: Drive, options: String = "") -> String {
        drive.exfat
            ? "mount.exfat-fuse \(drive.device) \(quote(drive.mount)) >/dev/null 2>&1"
            : "mount \(options.isEmpty ? "" : "-o " + options) \(drive.device) \(quote(drive.mount))"
    }

    /// `umount`, tried again for up to 5 s while the mount is busy: a process outside this test
    /// can hold a new mount for a moment on a busy machine (case 9 met one in 1 of 10 runs while
    /// other tests ran). Prints what held it; throws naming what still holds it after 5 s.
    private func unmountWhenFree(_ mount: String) throws {
        for attempt in 0..<50 {
            if (try? shell("umount \(quote(mount))")) != nil || !isMounted(mount) { return }
            if attempt == 0 {
                print(
                    "\(mount) busy, tried again: "
                        + ((try? shell("fuser -vm \(quote(mount)) 2>&1", allowFailure: true)) ?? ""))
            }
            usleep(100_000)
        }
        let holders = (try? shell("fuser -vm \(quote(mount)) 2>&1", allowFailure: true)) ?? ""
        throw HarnessError("\(mount) stayed busy for 5 s:\n\(holders)")
    }

    private func unmountDrive(_ drive: Drive) throws {
        try shell(
            drive.exfat
                ? "fusermount -u \(quote(drive.mount)) || umount \(quote(drive.mount))" : "umount \(quote(drive.mount))"
        )
        for _ in 0..<100 where isMounted(drive.mount) { usleep(20_000) }
    }

    /// The pid of the FUSE daemon serving `drive` (its command line names the device).
    private func fuseDaemon(_ drive: Drive) -> Int32? {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline")
            else { continue }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if arguments.first?.hasSuffix("mount.exfat-fuse") == true && arguments.contains(drive.device) { return pid }
        }
        return nil
    }

    private func driveDefinition(
        _ name: String, _ drive: Drive, directory: String, type: String = "mirror", extra: [String] = []
    ) -> String {
        ([
            "  - name: \(name)", "    type: \(type)", "    source:", "      local: '\(path("src"))'",
            "    destination:", "      device:", "        label: \(drive.label)",
            "        directory: '\(directory)'", "      file_check: \".plugsync-id=^\(drive.id)$\"",
            // A drive's lost+found is the filesystem's, not the data's (a mirror of the drive's root).
            "    ignore: ['^lost\\+found$']", "    log_file: '\(path(name + ".log"))'",
        ] + extra.map { "    " + $0 }).joined(separator: "\n") + "\n"
    }

    // MARK: files

    /// `count` bytes from Python's seeded generator (fast, and the same for the same seed).
    private func writeSeeded(_ relative: String, _ count: Int, seed: UInt64) throws {
        let full = path(relative)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try shell(
            "python3 -c 'import random,sys; random.seed(\(seed)); sys.stdout.buffer.write(random.randbytes(\(count)))' > \(quote(full))"
        )
    }

    /// sha256 of every file below `folder`, one line each, sorted by path.
    private func hashes(_ folder: String) throws -> String {
        try shell("cd \(quote(folder)) && find . -type f -print0 | sort -z | xargs -0 -r sha256sum")
    }

    /// Regular files below `folder` (relative paths), temporary files included.
    private func files(in folder: String) -> [String] {
        let all = FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? []
        return all.filter { rel in
            var st = stat()
            return lstat(folder + "/" + rel, &st) == 0 && st.st_mode & S_IFMT == S_IFREG
        }.sorted()
    }

    /// Whether `pid` is writing a file below `folder` (an anonymous `#123 (deleted)` one or a
    /// `.plugsync-tmp-` one) that holds more than 0 and less than `limit` bytes.
    private func isWriting(pid: Int32, below folder: String, limit: Int) -> Bool {
        let fds = "/proc/\(pid)/fd"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: fds) else { return false }
        for name in names {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: fds + "/" + name),
                target.hasPrefix(folder + "/")
            else { continue }
            let last = (target as NSString).lastPathComponent
            guard last.hasPrefix("#") || last.hasPrefix(".plugsync-tmp-") else { continue }  // not the File Check
            var st = stat()
            guard stat(fds + "/" + name, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            if st.st_size > 0 && st.st_size < limit { return true }
        }
        return false
    }

    private func report(_ number: Int, _ name: String, held: Int, of trials: Int, failures: [String]) {
        reportReliability("case \(number) \(name)", held: held, of: trials, failures: failures)
    }

    // MARK: case 1

    /// Case 1: the drive is pulled while large and small files are being written to it, 20
    /// trials, four ways in turn:
    /// - `umount -l`: the filesystem leaves the namespace, the run's open files live on;
    /// - `umount -l` + `losetup -d`: the same, and the loop device goes once the kernel lets go
    ///   (a mounted loop device only gets autoclear from `losetup -d`), re-attached anew;
    /// - ext4's shutdown ioctl without a log flush (what xfstests' `godown` does): every later
    ///   call fails with EIO and what the journal had not committed is lost, as when a drive
    ///   loses power. The run is held (SIGSTOP) after its first big file got its final name,
    ///   long enough for a journal commit (`commit=1`) but not for writeback of the data;
    /// - an exFAT drive (exfat-fuse) whose FUSE daemon is killed: the mount stays, every call
    ///   fails with ENOTCONN.
    /// Every file under its final name on the re-attached drive is complete, the source is
    /// unchanged, the run ends non-zero with one clear error line and no trace, nothing lands in
    /// the bare mount point, and the next run completes and leaves no temporary file.
    func testCase1DrivePulledMidRun() throws {
        try requireDrives()
        try requireRoot("an exFAT drive through FUSE", tools: ["mkfs.exfat", "mount.exfat-fuse", "fusermount"])
        let trials = 20
        let seed: UInt64 = 0x51_0001
        print("case 1: seed \(seed)")
        var random = Seeded(seed)
        let bigSize = 32 << 20
        for i in 0..<3 { try writeSeeded("src/big-\(i).bin", bigSize, seed: seed + UInt64(i)) }
        for d in 0..<4 {
            for f in 0..<15 {
                try write("src/small/d\(d)/f\(f).txt", "small \(d)/\(f)\n" + String(repeating: "s", count: f * 97))
            }
        }
        // Files at the top that come after the big ones: written after the pull, they would land
        // in the bare mount point of a drive-root destination.
        for f in 0..<100 { try write("src/top-\(f).txt", "top \(f)\n") }
        let stale = "stale version, replaced by the run\n"
        let sourceBefore = try hashes(path("src"))
        var ext4 = try makeDrive("pull", megabytes: 128)
        var exfat = try makeDrive("pullx", megabytes: 128, exfat: true)

        var trialsWithLeftovers = 0
        var held = 0
        var failures: [String] = []
        for trial in 0..<trials {
            // 0 lazy unmount, 1 lazy unmount + loop detach, 2 shutdown, 3 exFAT's daemon killed
            let method = trial % 4
            let detach = method == 1
            let shutdown = method == 2
            let fuse = method == 3
            var drive = fuse ? exfat : ext4
            defer { if fuse { exfat = drive } else { ext4 = drive } }
            let directory = (trial / 4) % 2 == 0 ? "backup" : ""  // a folder on the drive, or its root
            let replacing = (trial / 8) % 2 == 1  // old versions on the drive: named temporary files
            let name = "pull\(trial)"
            let destination = directory.isEmpty ? drive.mount : drive.mount + "/" + directory
            if !isMounted(drive.mount) { try mountDrive(&drive, options: "commit=1") }
            // One file at a time when the drive loses power: the first big file done, the rest to come.
            try writeConfig(
                driveDefinition(
                    name, drive, directory: directory, extra: ["max_delete: 100%"] + (shutdown ? ["parallel: 1"] : [])))
            // A fresh destination (keeping the File Check file and lost+found).
            try shell(
                "cd \(quote(drive.mount)) && find . -mindepth 1 -maxdepth 1 ! -name .plugsync-id ! -name lost+found -exec rm -rf {} +"
            )
            if replacing {
                try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
                for i in 0..<3 {
                    try stale.write(toFile: destination + "/big-\(i).bin", atomically: false, encoding: .utf8)
                }
            }
            var problems: [String] = []
            let what =
                "trial \(trial) (\(["umount -l", "umount -l + losetup -d", "shutdown", "exFAT daemon killed"][method]), directory '\(directory)'\(replacing ? ", replacing" : ""))"

            let running = try startPlugsync(["run", name, "--config", configPath])
            let pid = running.process.processIdentifier
            let deadline = Date().addingTimeInterval(30)
            var caught = false
            while running.process.isRunning && Date() < deadline {
                if shutdown {
                    var st = stat()
                    if stat(destination + "/big-0.bin", &st) == 0 && st.st_size == bigSize {
                        kill(pid, SIGSTOP)
                        caught = true
                        break
                    }
                } else if isWriting(pid: pid, below: drive.mount, limit: bigSize / 2) {
                    caught = true
                    break
                }
                usleep(500)
            }
            if !shutdown { usleep(useconds_t(random.next(10_000))) }  // 0-10 ms more, seeded
            caught = caught && running.process.isRunning
            if shutdown {
                usleep(1_500_000)  // a journal commit (commit=1), far from writeback (30 s)
                // EXT4_IOC_SHUTDOWN, EXT4_GOING_FLAGS_NOLOGFLUSH
                try shell(
                    "python3 -c 'import fcntl,os,struct; fcntl.ioctl(os.open(\"\(drive.mount)\", os.O_RDONLY), 0x8004587d, struct.pack(\"I\", 2))'"
                )
                kill(pid, SIGCONT)
            } else if fuse {
                guard let daemon = fuseDaemon(drive) else {
                    throw HarnessError("no exfat-fuse daemon for \(drive.device)")
                }
                kill(daemon, SIGKILL)
            } else if detach {
                loops.removeAll { $0 == drive.device }  // its number may go to someone else's drive
                try shell("umount -l \(quote(drive.mount)) && losetup -d \(drive.device)")
            } else {
                try shell("umount -l \(quote(drive.mount))")
            }
            let runEnd = Date().addingTimeInterval(60)
            while running.process.isRunning && Date() < runEnd { usleep(5_000) }
            if running.process.isRunning { kill(pid, SIGKILL) }
            running.process.waitUntilExit()
            let result = running.result()
            if verbose { print("\(what):\n\(result)") }
            if !caught { problems.append("the run was not seen writing a big file before it ended") }
            if result.status == 0 || result.signaled { problems.append("exit \(result.status) after the pull") }
            // One clear line besides the failed entries (which go to standard error too).
            let errors = result.stderrLines.filter { !isActionLine($0) }
            if errors.count != 1 || !(errors.first?.contains("destination drive is gone") ?? false) {
                problems.append("stderr is not one clear line besides the failed entries: \(errors)")
            }
            if result.stderrLines.contains(where: { isActionLine($0) && !$0.hasPrefix("Failed ") }) {
                problems.append("an action line that is not a failure on stderr: \(result.stderrLines)")
            }
            for marker in ["Fatal error", "Stack dump", "Backtrace", "0x0000"]
            where result.stderr.contains(marker) || result.stdout.contains(marker) {
                problems.append("'\(marker)' in the output")
            }
            if shutdown || fuse { try unmountDrive(drive) }
            let bare = (try? FileManager.default.contentsOfDirectory(atPath: drive.mount)) ?? []
            if !bare.isEmpty {
                problems.append("written into the bare mount point: \(bare.sorted())")
                try shell("cd \(quote(drive.mount)) && rm -rf -- * .[!.]*")  // the next trial starts clean
            }

            // Re-attach: a new loop device after a detach (once the kernel has let go of the old one).
            if detach {
                for _ in 0..<100 {
                    let attached = (try? shell("losetup -j \(quote(drive.image))")) ?? ""
                    if attached.isEmpty { break }
                    usleep(50_000)
                }
                drive.device = try attachLoop(drive.image)
            }
            try mountDrive(&drive, options: "commit=1")
            for file in files(in: destination) where !(file as NSString).lastPathComponent.hasPrefix(".plugsync-tmp-") {
                if directory.isEmpty && file == ".plugsync-id" { continue }
                let onDrive = destination + "/" + file
                if FileManager.default.fileExists(atPath: path("src/") + file),
                    filesEqual(path("src/") + file, onDrive)
                {
                    continue
                }
                if replacing && file.hasPrefix("big-")
                    && (try? String(contentsOfFile: onDrive, encoding: .utf8)) == stale
                {
                    continue
                }
                problems.append("\(file) under its final name is partial or foreign")
            }
            let interrupted = temporaryFiles(in: drive.mount)
            if !interrupted.isEmpty { trialsWithLeftovers += 1 }
            let next = try plugsync("run", name, timeout: 60)
            if next.status != 0 { problems.append("the next run failed:\n\(next)") }
            if next.actions("Removing").count != interrupted.count {
                problems.append("\(interrupted.count) leftovers, \(next.actions("Removing").count) 'Removing' lines")
            }
            let leftovers = temporaryFiles(in: drive.mount)
            if !leftovers.isEmpty { problems.append("temporary files after the next run: \(leftovers)") }
            let mirrored = files(in: destination).filter { !(directory.isEmpty && $0 == ".plugsync-id") }
            if mirrored != files(in: path("src"))
                || mirrored.contains(where: { !filesEqual(path("src/") + $0, destination + "/" + $0) })
            {
                problems.append("the next run did not leave an exact copy")
            }
            let sourceNow = try hashes(path("src"))
            if sourceNow != sourceBefore { problems.append("the source changed") }
            if problems.isEmpty {
                held += 1
            } else {
                failures.append("\(what): " + problems.joined(separator: "; ") + "\n\(result)")
            }
            try unmountDrive(drive)
        }
        print("case 1: \(trialsWithLeftovers) trials left temporary files on the drive, each removed by the next run")
        if isMounted(exfat.mount) { try unmountDrive(exfat) }
        report(1, "drive pulled mid-run", held: held, of: trials, failures: failures)
    }

    // MARK: case 3

    /// Case 3: a source bigger than a small ext4 drive, 5 trials of different sizes, as a backup
    /// (orphans on the drive) and as a mirror (a stale version of a source file on the drive).
    /// Each run ends with exit 1 and a `Failed (… No space left on device) <file>` line; no file
    /// under its final name is partial, no temporary file is left, nothing is deleted that the
    /// run should have kept (orphans of a backup; the stale version whose replacement failed).
    func testCase3DestinationFull() throws {
        try requireDrives()
        let trials = 5
        let seed: UInt64 = 0x51_0003
        print("case 3: seed \(seed)")
        var drive = try makeDrive("full", megabytes: 12)
        var held = 0
        var failures: [String] = []
        for trial in 0..<trials {
            if !isMounted(drive.mount) { try mountDrive(&drive) }
            let mirror = trial % 2 == 1
            let name = "full\(trial)"
            let source = "src\(trial)"
            // 4 + trial MiB, then 3 MiB pieces, then small files: 14-18 MiB against ~10 MiB free.
            try writeSeeded("\(source)/a-first.bin", (4 + trial) << 20, seed: seed + UInt64(trial))
            for i in 0..<3 { try writeSeeded("\(source)/b-\(i).bin", 3 << 20, seed: seed + 100 + UInt64(i)) }
            for i in 0..<20 { try write("\(source)/c/small-\(i).txt", "small \(i)\n") }
            try writeSeeded("\(source)/b-stale.bin", 2 << 20, seed: seed + 200)
            let sourceBefore = try hashes(path(source))
            let destination = drive.mount + "/backup"
            try shell("rm -rf \(quote(destination)) && mkdir -p \(quote(destination))/keep")
            let orphans = ["keep/orphan-1.txt": "orphan one\n", "orphan-2.txt": "orphan two\n"]
            for (file, content) in orphans {
                try content.write(toFile: destination + "/" + file, atomically: false, encoding: .utf8)
            }
            let stale = "the drive's old version of b-stale.bin\n"
            try stale.write(toFile: destination + "/b-stale.bin", atomically: false, encoding: .utf8)
            var definition = driveDefinition(
                name, drive, directory: "backup", type: mirror ? "mirror" : "backup", extra: ["max_delete: 100%"])
            definition = definition.replacingOccurrences(
                of: "local: '\(path("src"))'", with: "local: '\(path(source))'")
            try writeConfig(definition)

            var problems: [String] = []
            let result = try plugsync("run", name, timeout: 60)
            if verbose { print("trial \(trial):\n\(result)") }
            if result.status != 1 { problems.append("exit \(result.status), DESIGN 5 says 1 (failed entries)") }
            for marker in ["Fatal error", "Stack dump", "Backtrace", "0x0000"]
            where result.stderr.contains(marker) || result.stdout.contains(marker) {
                problems.append("'\(marker)' in the output")
            }
            let full = result.actions("Failed").filter { $0.contains("No space left on device") }
            if full.isEmpty { problems.append("no 'Failed (… No space left on device) <file>' line") }
            for line in full {
                let named = files(in: path(source)).contains { line.hasSuffix(" " + $0) }
                if !named { problems.append("the error line names no source file: \(line)") }
            }
            if !(result.summary?.hasPrefix("Done with failures:") ?? false) {
                problems.append("summary: \(result.summary ?? "none")")
            }
            let leftovers = temporaryFiles(in: drive.mount)
            if !leftovers.isEmpty { problems.append("temporary files left: \(leftovers)") }
            for file in files(in: destination) {
                let onDrive = destination + "/" + file
                if let content = orphans[file] {
                    if (try? String(contentsOfFile: onDrive, encoding: .utf8)) != content {
                        problems.append("orphan \(file) changed")
                    }
                    continue
                }
                if file == "b-stale.bin" && (try? String(contentsOfFile: onDrive, encoding: .utf8)) == stale {
                    continue
                }
                if !filesEqual(path("\(source)/") + file, onDrive) {
                    problems.append("\(file) under its final name is partial or foreign")
                }
            }
            if !exists(destination.dropFirst(root.count + 1) + "/b-stale.bin") {
                problems.append("b-stale.bin was deleted")
            }
            if !mirror {
                for file in orphans.keys where !FileManager.default.fileExists(atPath: destination + "/" + file) {
                    problems.append("orphan \(file) of a backup was deleted")
                }
            }
            if result.actions("Deleting").contains(where: { !$0.contains("orphan") }) {
                problems.append("deleted more than orphans: \(result.actions("Deleting"))")
            }
            if try hashes(path(source)) != sourceBefore { problems.append("the source changed") }
            if problems.isEmpty {
                held += 1
            } else {
                failures.append(
                    "trial \(trial) (\(mirror ? "mirror" : "backup")): " + problems.joined(separator: "; ")
                        + "\n\(result)")
            }
        }
        try unmountWhenFree(drive.mount)
        report(3, "destination full", held: held, of: trials, failures: failures)
    }

    // MARK: case 4

    /// Case 4: unreadable source files and folders (mode 000 and friends), plugsync run as
    /// `nobody` on a tree `nobody` owns, 3 trials with different shapes. Each unreadable entry
    /// gets its own line, the rest is synced, the run says "with failures" (summary, exit 1,
    /// `plugsync status`), and nothing is deleted on the destination.
    func testCase4UnreadableSource() throws {
        try requireRoot("running plugsync as nobody on a tree nobody owns", tools: ["setpriv"])
        let trials = 3
        var held = 0
        var failures: [String] = []
        let wrapper = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        for trial in 0..<trials {
            let base = "u\(trial)"
            let src = path("\(base)/src")
            let dst = path("\(base)/dst")
            try write("\(base)/src/ok.txt", "ok\n")
            try write("\(base)/src/dir/ok2.txt", "ok 2\n")
            try write("\(base)/dst/orphan.txt", "an orphan: a mirror would delete it, but the source listing failed\n")
            // What cannot be read, and the line each must get.
            var unreadable: [(path: String, mode: UInt32, expect: String)] = []
            switch trial {
            case 0:
                try write("\(base)/src/secret.txt", "secret\n")
                try write("\(base)/dst/secret.txt", "the drive's old secret\n")
                unreadable = [("secret.txt", 0o000, "Failed")]
            case 1:
                try write("\(base)/src/locked/inside.txt", "inside\n")
                try write("\(base)/dst/locked/inside.txt", "old inside\n")
                try write("\(base)/dst/locked/old.txt", "only on the destination\n")
                unreadable = [("locked", 0o000, "Cannot list")]
            default:
                try write("\(base)/src/a/b/secret.bin", randomData(70_000, seed: 4))
                try write("\(base)/src/a/noread/x.txt", "x\n")  // searchable, not listable
                try write("\(base)/src/a/nosearch/y.txt", "y\n")  // listable, not searchable
                try write("\(base)/src/a/fine.txt", "fine\n")
                try write("\(base)/dst/a/nosearch/y.txt", "old y\n")
                unreadable = [
                    ("a/b/secret.bin", 0o000, "Failed"), ("a/noread", 0o311, "Cannot list"),
                    ("a/nosearch", 0o644, "Cannot list"),
                ]
            }
            try writeConfig(definition("unread\(trial)", source: src, destination: dst, ["max_delete: 100%"]))
            try shell("chown -R nobody:nogroup \(quote(path(base))) \(quote(configPath))")
            let state = path("\(base)/state")
            let destinationBefore = try snapshot(dst)
            for entry in unreadable { try chmod("\(base)/src/\(entry.path)", entry.mode) }
            let result = try plugsync(
                "run", "unread\(trial)", wrapper: wrapper, environment: ["PLUGSYNC_STATE_DIR": state])
            let status = try plugsync("status", wrapper: wrapper, environment: ["PLUGSYNC_STATE_DIR": state])
            for entry in unreadable { try chmod("\(base)/src/\(entry.path)", 0o755) }
            if verbose { print("trial \(trial):\n\(result)\n\(status)") }

            var problems: [String] = []
            if result.status != 1 { problems.append("exit \(result.status), not 1") }
            for marker in ["Fatal error", "Stack dump", "Backtrace", "0x0000"]
            where result.stderr.contains(marker) || result.stdout.contains(marker) {
                problems.append("'\(marker)' in the output")
            }
            for entry in unreadable {
                // Failures and listing errors are reported on standard error.
                let reported = result.stderrLines.filter { line in
                    line.hasPrefix(entry.expect)
                        && (line.hasSuffix(" " + entry.path) || line.contains(src + "/" + entry.path + ":")
                            || line.contains(src + "/" + entry.path + "/"))
                }
                if reported.count != 1 {
                    problems.append("\(entry.path): \(reported.count) '\(entry.expect)' lines, not 1")
                }
            }
            if !(result.summary?.hasPrefix("Done with failures:") ?? false) {
                problems.append("summary: \(result.summary ?? "none")")
            }
            if !status.lines.contains(where: { $0.hasPrefix("unread\(trial) ") && $0.contains(" failures ") }) {
                problems.append("`plugsync status` does not say failures:\n\(status.stdout)")
            }
            if !result.actions("Deleting").isEmpty { problems.append("deleted: \(result.actions("Deleting"))") }
            let after = try snapshot(dst)
            for (file, node) in destinationBefore
            where after[file] == nil
                || (node.kind == .file && after[file]?.content != node.content
                    && !filesEqual(src + "/" + file, dst + "/" + file))
            {
                problems.append("\(file) on the destination was deleted or damaged")
            }
            // The readable rest is synced.
            for file in files(in: src)
            where !unreadable.contains(where: { file == $0.path || file.hasPrefix($0.path + "/") }) {
                if !filesEqual(src + "/" + file, dst + "/" + file) { problems.append("\(file) was not synced") }
            }
            if problems.isEmpty {
                held += 1
            } else {
                failures.append("trial \(trial): " + problems.joined(separator: "; ") + "\n\(result)")
            }
        }
        report(4, "unreadable source entries", held: held, of: trials, failures: failures)
    }

    // MARK: case 9

    /// The unit's `TimeoutStopSec` in packaging/systemd/plugsync.service, in seconds.
    private func unitStopTimeout() throws -> Double {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let unit = try String(
            contentsOf: repository.appendingPathComponent("packaging/systemd/plugsync.service"), encoding: .utf8)
        guard let line = unit.split(separator: "\n").first(where: { $0.hasPrefix("TimeoutStopSec=") }) else {
            throw HarnessError("no TimeoutStopSec= in packaging/systemd/plugsync.service")
        }
        let value = line.dropFirst("TimeoutStopSec=".count).trimmingCharacters(in: .whitespaces)
        if value.hasSuffix("min"), let minutes = Double(value.dropLast(3)) { return minutes * 60 }
        if value.hasSuffix("s"), let seconds = Double(value.dropLast()) { return seconds }
        if let seconds = Double(value) { return seconds }
        throw HarnessError("TimeoutStopSec=\(value): not a duration this test reads")
    }

    private var agentLog: String {
        guard let agent else { return "" }
        return (try? String(contentsOfFile: agent.errPath, encoding: .utf8)) ?? ""
    }

    private func waitForAgentLog(_ text: String, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if agentLog.contains(text) { return true }
            if let agent, !agent.process.isRunning { return agentLog.contains(text) }
            usleep(10_000)
        }
        return false
    }

    /// Case 9: the agent gets SIGTERM while its mount-triggered run is writing large and small
    /// files, 20 trials (half of them replacing older versions). Every time it exits within the
    /// unit's TimeoutStopSec, without a crash, leaving no partial file under a final name, and
    /// the next run completes and leaves no temporary file.
    func testCase9AgentSIGTERMDuringARun() throws {
        try requireDrives()
        let trials = 20
        let seed: UInt64 = 0x51_0009
        print("case 9: seed \(seed)")
        var random = Seeded(seed)
        let stopTimeout = try unitStopTimeout()
        let bigSize = 24 << 20
        for i in 0..<2 { try writeSeeded("src/big-\(i).bin", bigSize, seed: seed + UInt64(i)) }
        for f in 0..<60 { try write("src/small/f\(f).txt", "small \(f)\n" + String(repeating: "s", count: f * 53)) }
        let sourceBefore = try hashes(path("src"))
        var drive = try makeDrive("term", megabytes: 96)
        try unmountWhenFree(drive.mount)
        let stale = "stale version\n"
        var held = 0
        var failures: [String] = []
        var slowest = 0.0
        var trialsWithLeftovers = 0
        for trial in 0..<trials {
            let name = "term\(trial)"
            let replacing = trial % 2 == 1
            try writeConfig(driveDefinition(name, drive, directory: "backup", extra: ["parallel: 2"]))
            // Prepare the drive unmounted from the agent's view: mount, clean, unmount.
            try mountDrive(&drive)
            try shell("rm -rf \(quote(drive.mount + "/backup")) && mkdir \(quote(drive.mount + "/backup"))")
            if replacing {
                for i in 0..<2 {
                    try stale.write(toFile: drive.mount + "/backup/big-\(i).bin", atomically: false, encoding: .utf8)
                }
            }
            try unmountWhenFree(drive.mount)

            agent = try startPlugsync(["agent", "--config", configPath])
            var problems: [String] = []
            guard waitForAgentLog("started", timeout: 10) else {
                failures.append("trial \(trial): the agent did not start:\n\(agentLog)")
                kill(agent!.process.processIdentifier, SIGKILL)
                agent!.process.waitUntilExit()
                continue
            }
            try shell("mount \(drive.device) \(quote(drive.mount))")
            let pid = agent!.process.processIdentifier
            var caught = false
            let deadline = Date().addingTimeInterval(20)
            while agent!.process.isRunning && Date() < deadline {
                if isWriting(pid: pid, below: drive.mount, limit: bigSize / 2) {
                    caught = true
                    break
                }
                usleep(500)
            }
            usleep(useconds_t(random.next(10_000)))
            let start = Date()
            kill(pid, SIGTERM)
            while agent!.process.isRunning && Date().timeIntervalSince(start) < stopTimeout + 5 { usleep(5_000) }
            let seconds = Date().timeIntervalSince(start)
            slowest = max(slowest, seconds)
            if agent!.process.isRunning {
                kill(pid, SIGKILL)
                problems.append("still running \(Int(stopTimeout + 5)) s after SIGTERM")
            }
            agent!.process.waitUntilExit()
            let log = agentLog
            let result = agent!.result()
            agent = nil
            if verbose { print("trial \(trial): exited in \(seconds) s\n\(result)") }
            if !caught { problems.append("the agent was not seen writing a big file") }
            if seconds > stopTimeout {
                problems.append("exited after \(seconds) s, over TimeoutStopSec=\(stopTimeout) s")
            }
            if result.signaled { problems.append("died of a signal") }
            for marker in ["Fatal error", "Stack dump", "Backtrace", "0x0000"] where log.contains(marker) {
                problems.append("'\(marker)' in the agent's log")
            }
            if !log.contains("stopped") { problems.append("no 'stopped' in the agent's log") }
            for file in files(in: drive.mount + "/backup")
            where !(file as NSString).lastPathComponent.hasPrefix(".plugsync-tmp-") {
                let onDrive = drive.mount + "/backup/" + file
                if filesEqual(path("src/") + file, onDrive) { continue }
                if replacing && file.hasPrefix("big-")
                    && (try? String(contentsOfFile: onDrive, encoding: .utf8)) == stale
                {
                    continue
                }
                problems.append("\(file) under its final name is partial or foreign")
            }
            let interrupted = temporaryFiles(in: drive.mount)
            if !interrupted.isEmpty { trialsWithLeftovers += 1 }
            let next = try plugsync("run", name, timeout: 60)
            if next.status != 0 { problems.append("the next run failed:\n\(next)") }
            let leftovers = temporaryFiles(in: drive.mount)
            if !leftovers.isEmpty { problems.append("temporary files after the next run: \(leftovers)") }
            let copied = files(in: drive.mount + "/backup")
            if copied != files(in: path("src"))
                || copied.contains(where: { !filesEqual(path("src/") + $0, drive.mount + "/backup/" + $0) })
            {
                problems.append("the next run did not leave an exact copy")
            }
            if problems.isEmpty {
                held += 1
            } else {
                failures.append(
                    "trial \(trial)\(replacing ? " (replacing)" : ""): " + problems.joined(separator: "; ")
                        + "\nagent log:\n\(log)")
            }
            try unmountWhenFree(drive.mount)
        }
        if try hashes(path("src")) != sourceBefore { failures.append("the source changed") }
        print(
            "case 9: slowest exit after SIGTERM \(String(format: "%.2f", slowest)) s (TimeoutStopSec \(Int(stopTimeout)) s)"
        )
        print("case 9: \(trialsWithLeftovers) trials left temporary files on the drive, each removed by the next run")
        report(9, "agent SIGTERM during a run", held: held, of: trials, failures: failures)
    }
}
