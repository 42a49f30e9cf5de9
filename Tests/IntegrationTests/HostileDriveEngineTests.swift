import Foundation
import XCTest

/// Reliability case 10, hostile drive: the modes about how local and drive endpoints touch
/// files (modes and owners from a stick, symlinks swapped in mid-run, a `directory:` through a
/// symlink on the drive, a FIFO swapped into a source, sparse files). Real ext4 loop drives and
/// a real unprivileged process (`nobody`) racing the run. Needs root: skipped otherwise, a
/// failure under CI=true.
final class HostileDriveEngineTests: IntegrationTestCase {
    private let nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

    // MARK: drives

    /// An ext4 loop drive mounted `nosuid,nodev` (as a desktop mounts a stick), with a unique
    /// label and `.plugsync-id`. Returns the mount point and the endpoint lines that find it (by
    /// label: a File Check alone would look at every mounted filesystem on the machine).
    private func makeDrive(_ name: String, size: String = "64M") throws -> Drive {
        let image = path("\(name).img")
        let label = "PSH" + String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        try shell("truncate -s \(size) \(quote(image)) && mkfs.ext4 -q -F -L \(label) \(quote(image))")
        let device = try attach(image)
        try ensureUdevd()
        try shell("udevadm trigger --action=change \(device) && udevadm settle --timeout=20")
        try waitForUdevLabel(device, label)
        let mount = try mountPoint(name)
        try shell("mount -o nosuid,nodev \(device) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        let token = "hostile-\(name)-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        try (token + "\n").write(toFile: mount + "/.plugsync-id", atomically: false, encoding: .utf8)
        return (mount, "file_check: \".plugsync-id=^\(token)$\"", label)
    }

    private typealias Drive = (mount: String, check: String, label: String)

    private func deviceSource(_ name: String, directory: String, drive: Drive, destination: String) -> String {
        [
            "  - name: \(name)", "    source:", "      device:", "        label: \(drive.label)",
            "        directory: \(directory)", "      \(drive.check)", "    destination:",
            "      local: '\(destination)'",
        ].joined(separator: "\n") + "\n"
    }

    private func deviceDestination(_ name: String, source: String, directory: String, drive: Drive) -> String {
        [
            "  - name: \(name)", "    source:", "      local: '\(source)'", "    destination:", "      device:",
            "        label: \(drive.label)", "        directory: \(directory)", "      \(drive.check)",
        ].joined(separator: "\n") + "\n"
    }

    private func statOf(_ path: String) -> stat? {
        var st = stat()
        return lstat(path, &st) == 0 ? st : nil
    }

    /// Starts `script` as `nobody` in the background.
    private func startAsNobody(_ script: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try which("setpriv"))
        process.arguments = Array(nobody.dropFirst()) + ["/bin/sh", "-c", script]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    private func report(_ mode: Int, _ name: String, held: Int, of trials: Int, failures: [String]) {
        reportReliability("case 10 hostile drive mode \(mode) \(name)", held: held, of: trials, failures: failures)
    }

    // MARK: mode 1

    /// Mode 1: setuid, setgid and world-writable modes on a stick (owned by uid 1234, mounted
    /// nosuid) never come to the host as such, and files from the stick belong to the running
    /// user; a root backup of a local tree keeps owners and groups.
    func testMode1SetuidAndWritableModesFromAStick() throws {
        try requireRoot("loop drives and owners", tools: ["truncate", "mkfs.ext4", "losetup", "mount"])
        let drive = try makeDrive("modes")
        let data = drive.mount + "/data"
        let entries: [(String, UInt32, Bool)] = [
            ("data/suid", 0o4755, false), ("data/sgid", 0o2755, false), ("data/open.txt", 0o666, false),
            ("data/pub", 0o777, true), ("data/tmp", 0o1777, true), ("data/sgdir", 0o2775, true),
        ]
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        for (relative, mode, folder) in entries {
            let place = drive.mount + "/" + relative
            if folder {
                try FileManager.default.createDirectory(atPath: place, withIntermediateDirectories: true)
                try "x\n".write(toFile: place + "/inside.txt", atomically: false, encoding: .utf8)
            } else {
                try "#!/bin/sh\nid -u\n".write(toFile: place, atomically: false, encoding: .utf8)
            }
            try shell("chown 1234:1234 \(quote(place)) && chmod \(String(mode, radix: 8)) \(quote(place))")
        }
        // A local tree of another user's, backed up by root to the drive: owners kept, for
        // files, folders (a setgid one too) and symbolic links.
        try write("home/ana/notes.txt", "mine\n", mode: 0o640)
        try write("home/ana/shared/plan.txt", "ours\n", mode: 0o660)
        try FileManager.default.createSymbolicLink(atPath: path("home/ana/latest"), withDestinationPath: "notes.txt")
        try shell(
            "chown -hR 1234:1235 \(quote(path("home/ana"))) && chmod 750 \(quote(path("home/ana")))"
                + " && chmod 2770 \(quote(path("home/ana/shared")))")
        try writeConfig(
            deviceSource("stick", directory: "data", drive: drive, destination: path("copy")),
            deviceDestination("home", source: path("home"), directory: "home-backup", drive: drive))
        let run = try plugsync("run", "stick")
        assertExit(run, 0)
        let home = try plugsync("run", "home")
        assertExit(home, 0)

        var held = 0
        var failures: [String] = []
        for (relative, mode, _) in entries {
            let copy = path("copy/" + relative.dropFirst("data/".count))
            guard let st = statOf(copy) else {
                failures.append("\(relative): not copied\n\(run)")
                continue
            }
            let got = UInt32(st.st_mode) & 0o7777
            if got & 0o6022 != 0 || st.st_uid != 0 || st.st_gid != 0 {
                failures.append(
                    "\(relative) (\(String(mode, radix: 8)) on the stick) is \(String(got, radix: 8)) owned \(st.st_uid):\(st.st_gid) on the host"
                )
            } else {
                held += 1
            }
        }
        let kept: [(String, mode_t, UInt32)] = [
            ("ana", S_IFDIR, 0o750), ("ana/notes.txt", S_IFREG, 0o640), ("ana/shared", S_IFDIR, 0o2770),
            ("ana/shared/plan.txt", S_IFREG, 0o660), ("ana/latest", S_IFLNK, 0o777),
        ]
        for (relative, kind, mode) in kept {
            let st = statOf(drive.mount + "/home-backup/" + relative)
            if let st, st.st_mode & S_IFMT == kind, st.st_uid == 1234, st.st_gid == 1235, st.st_mode & 0o7777 == mode {
                held += 1
            } else {
                let got = st.map { "\(String($0.st_mode, radix: 8)) owned \($0.st_uid):\($0.st_gid)" } ?? "missing"
                failures.append(
                    "a root backup of a local tree to a drive gave \(relative) \(got), not owner 1234:1235 and mode \(String(mode, radix: 8))\n\(home)"
                )
            }
        }
        report(1, "setuid", held: held, of: entries.count + kept.count, failures: failures)
    }

    // MARK: mode 2

    /// Mode 2: while a run writes into a folder `nobody` may write (kept from the source, a
    /// local tree, 0777), `nobody` swaps a folder under it for a symlink to a root-only folder
    /// on the host, at a seeded moment after the run started writing there (or deleting
    /// orphans there); in a third of the trials it swaps the source's folder instead. Nothing in the root-only folder is written, deleted
    /// or changed in mode, and no copy holds the secret.
    func testMode2SymlinkSwappedInMidRun() throws {
        try requireRoot("loop drives and a racing unprivileged user", tools: ["truncate", "mkfs.ext4", "setpriv"])
        let seed: UInt64 = 20_261_202
        var random = Seeded(seed)
        let drive = try makeDrive("swap")
        let secret = path("secret")
        try FileManager.default.createDirectory(atPath: secret, withIntermediateDirectories: true)
        try shell("chmod 700 \(quote(secret))")
        let trials = 20
        var held = 0
        var landed = 0
        var failures: [String] = []
        for trial in 0..<trials {
            let source = path("src\(trial)")
            // Every other group of three trials backs up to a host folder instead of the drive.
            let onDrive = (trial / 3) % 2 == 0
            let destination = onDrive ? drive.mount + "/backup\(trial)" : path("backup\(trial)")
            try "the secret\n".write(toFile: secret + "/victim", atomically: false, encoding: .utf8)
            try "keep\n".write(toFile: secret + "/o009", atomically: false, encoding: .utf8)
            try "the secret\n".write(toFile: secret + "/n299", atomically: false, encoding: .utf8)
            try shell("chmod 600 \(quote(secret))/*; chmod 700 \(quote(secret))")
            // First run: the folders exist on the drive, pub writable by all (kept from the source).
            try mkdir("src\(trial)/pub/inner")
            // 10 orphans-to-be among 100 files kept: well within the delete limit.
            for i in 0..<10 { try write("src\(trial)/pub/inner/o\(String(format: "%03d", i))", "old \(i)\n") }
            for i in 0..<100 { try write("src\(trial)/pub/k\(String(format: "%03d", i))", "kept \(i)\n") }
            try shell("chmod 777 \(quote(source + "/pub")) \(quote(source + "/pub/inner"))")
            try writeConfig(
                onDrive
                    ? deviceDestination("swap", source: source, directory: "backup\(trial)", drive: drive)
                    : definition("swap", source: source, destination: destination))
            assertExit(try plugsync("run", "swap"), 0)
            // Second run: the old files are orphans to delete, 300 new ones to write.
            try shell("rm -f \(quote(source))/pub/inner/o*")
            for i in 0..<300 {
                try write("src\(trial)/pub/inner/n\(String(format: "%03d", i))", String(repeating: "n", count: 3000))
            }
            try shell("chmod 666 \(quote(source))/pub/inner/*")
            // The racer waits for the run to be at work in the folder (a new file written, or
            // the first orphan gone), then swaps after a seeded pause of up to 20 ms.
            let variant = trial % 3  // 0: writes, 1: deletes, 2: the source side
            let delay = random.next(20_000)
            let destinationInner = destination + "/pub/inner"
            let sourceInner = source + "/pub/inner"
            let wait =
                variant == 1
                ? "while [ -e \(quote(destinationInner))/o000 ]; do :; done"
                : "while [ ! -e \(quote(destinationInner))/n005 ]; do :; done"
            let swapped = variant == 2 ? sourceInner : destinationInner
            let racer = try startAsNobody(
                "\(wait); sleep 0.0\(String(format: "%05d", delay)); mv \(quote(swapped)) \(quote(swapped)).moved && ln -s \(quote(secret)) \(quote(swapped))"
            )
            let run = try? plugsync("run", "swap", timeout: 60)
            if racer.isRunning { racer.terminate() }
            racer.waitUntilExit()
            var problems: [String] = []
            if run == nil { problems.append("the run did not end within 60 s") }
            if run?.summary?.hasPrefix("Refused") == true {
                problems.append("the run was refused: the race tested nothing")
            }
            if FileManager.default.fileExists(atPath: swapped + ".moved") { landed += 1 }
            if run?.signaled == true { problems.append("the run died of a signal") }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: secret)) ?? []
            if Set(names) != ["victim", "o009", "n299"] {
                problems.append("the root-only folder now holds \(names.sorted())")
            }
            if (try? String(contentsOfFile: secret + "/victim", encoding: .utf8)) != "the secret\n" {
                problems.append("the root-only file was overwritten")
            }
            if let st = statOf(secret), st.st_mode & 0o7777 != 0o700 {
                problems.append("the root-only folder is now \(String(st.st_mode & 0o7777, radix: 8))")
            }
            if let st = statOf(secret + "/victim"), st.st_mode & 0o7777 != 0o600 {
                problems.append("the root-only file is now \(String(st.st_mode & 0o7777, radix: 8))")
            }
            let leaked = try shell("grep -rl 'the secret' \(quote(destination)) 2>/dev/null; true")
            if !leaked.isEmpty { problems.append("the secret was copied to \(leaked)") }
            if problems.isEmpty {
                held += 1
            } else {
                failures.append(
                    "trial \(trial) (\(["writes", "deletes", "source side"][variant]) \(onDrive ? "to the drive" : "to a host folder"), swap \(delay) µs after the run got there): \(problems.joined(separator: "; "))\n\(run.map { "\($0)" } ?? "")"
                )
            }
            try shell("rm -rf \(quote(source)) \(quote(destination)) \(quote(secret))/*")
        }
        // A race that never landed during a run would prove nothing.
        XCTAssertGreaterThanOrEqual(landed, trials / 2, "the swap landed in only \(landed) of \(trials) trials")
        report(2, "symlink swap (seed \(seed), \(landed) swaps landed)", held: held, of: trials, failures: failures)
    }

    // MARK: mode 3

    /// Mode 3: a stick holding `backups -> /a/host/folder` (or a link further down, absolute or
    /// relative): a run with `directory: backups/docs` is refused with one line (exit 3), the
    /// host folder's files are neither deleted (as a destination) nor copied (as a source).
    func testMode3DirectoryThroughASymlinkOnTheDrive() throws {
        try requireRoot("loop drives", tools: ["truncate", "mkfs.ext4", "losetup", "mount"])
        let drive = try makeDrive("links")
        let host = path("host/folder")
        try write("host/folder/docs/orphan.txt", "host file\n", mode: 0o600)
        try write("src/new.txt", "new\n")
        let layouts: [(String, String)] = [
            ("backups", host),  // absolute, first component
            ("backups", "../../host/folder"),  // relative, climbing out
        ]
        var held = 0
        var failures: [String] = []
        var trials = 0
        for (index, (link, target)) in layouts.enumerated() {
            try? FileManager.default.removeItem(atPath: drive.mount + "/" + link)
            let linkTarget = target.hasPrefix("/") ? target : target
            if !target.hasPrefix("/") {
                // A relative link that leads to the host folder from the mount point.
                let up = String(repeating: "../", count: drive.mount.split(separator: "/").count)
                try FileManager.default.createSymbolicLink(
                    atPath: drive.mount + "/" + link, withDestinationPath: up + String(host.dropFirst()))
            } else {
                try FileManager.default.createSymbolicLink(
                    atPath: drive.mount + "/" + link, withDestinationPath: linkTarget)
            }
            for asSource in [false, true] {
                trials += 1
                let name = "links\(index)\(asSource ? "s" : "d")"
                let copy = path("copy-\(name)")
                try writeConfig(
                    asSource
                        ? deviceSource(name, directory: "backups/docs", drive: drive, destination: copy)
                        : deviceDestination(name, source: path("src"), directory: "backups/docs", drive: drive))
                let run = try plugsync("run", name)
                var problems: [String] = []
                if run.status != 3 { problems.append("exit \(run.status), not 3") }
                if run.stderrLines.count != 1 || !run.stderr.contains("symbolic link") {
                    problems.append("not one line naming the symbolic link")
                }
                if !FileManager.default.fileExists(atPath: host + "/docs/orphan.txt") {
                    problems.append("the host file was deleted")
                }
                if FileManager.default.fileExists(atPath: host + "/docs/new.txt") {
                    problems.append("a file was written into the host folder")
                }
                if FileManager.default.fileExists(atPath: copy + "/orphan.txt") {
                    problems.append("the host file was copied")
                }
                if problems.isEmpty {
                    held += 1
                } else {
                    failures.append("\(name): \(problems.joined(separator: "; "))\n\(run)")
                }
            }
        }
        report(3, "directory through a symlink", held: held, of: trials, failures: failures)
    }

    // MARK: mode 4

    /// Mode 4 (mid-run): `nobody` swaps a FIFO in for a source file on a stick at a seeded
    /// moment during the run; the run never hangs: it ends, that file failing with one line or
    /// copied before the swap.
    func testMode4FifoSwappedIntoASourceMidRun() throws {
        try requireRoot("loop drives and a racing unprivileged user", tools: ["truncate", "mkfs.ext4", "setpriv"])
        let seed: UInt64 = 4_242
        var random = Seeded(seed)
        let drive = try makeDrive("fifo")
        let trials = 20
        var held = 0
        var failures: [String] = []
        for trial in 0..<trials {
            let folder = drive.mount + "/data\(trial)/pub"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for i in 0..<200 {
                try String(repeating: "f", count: 2000).write(
                    toFile: folder + "/f\(String(format: "%03d", i))", atomically: false, encoding: .utf8)
            }
            try shell("chmod 777 \(quote(folder))")
            let delay = random.next(150_000)
            let racer = try startAsNobody(
                "sleep 0.\(String(format: "%06d", delay)); for f in f100 f120 f140 f160 f180 f199; do mkfifo \(quote(folder))/$f.p && mv -f \(quote(folder))/$f.p \(quote(folder))/$f; done"
            )
            try writeConfig(
                deviceSource(
                    "fifo", directory: "data\(trial)", drive: drive, destination: path("copy\(trial)")))
            let started = Date()
            let run = try? plugsync("run", "fifo", timeout: 30)
            racer.waitUntilExit()
            let seconds = Date().timeIntervalSince(started)
            var problems: [String] = []
            if let run {
                if run.signaled { problems.append("the run died of a signal") }
                let failed = run.actions("Failed")
                if failed.contains(where: { !$0.contains("changed during the run") && !$0.contains("vanished") }) {
                    problems.append("a failure line that does not say what changed: \(failed)")
                }
                if run.status != 0 && failed.isEmpty && !run.stderr.contains("changed during the run") {
                    problems.append("exit \(run.status) without a line saying why")
                }
            } else {
                problems.append("the run hung (killed after \(Int(seconds)) s)")
            }
            if problems.isEmpty {
                held += 1
            } else {
                failures.append(
                    "trial \(trial) (swap after \(delay) µs): \(problems.joined(separator: "; "))\n\(run.map { "\($0)" } ?? "")"
                )
            }
            try shell("rm -rf \(quote(drive.mount + "/data\(trial)")) \(quote(path("copy\(trial)")))")
        }
        report(4, "fifo swapped in (seed \(seed))", held: held, of: trials, failures: failures)
    }

    // MARK: mode 5

    /// Mode 5 (sparse): files with holes on a stick (2 GiB of nothing; data between holes; a
    /// hole at the start, at the end) cost the host no more blocks than they cost the stick, and
    /// read back the same.
    func testMode5SparseFilesKeepTheirHoles() throws {
        try requireRoot("loop drives", tools: ["truncate", "mkfs.ext4", "losetup", "mount", "cmp"])
        let drive = try makeDrive("sparse")
        let data = drive.mount + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let shapes: [(String, String)] = [
            ("empty-2g", "truncate -s 2G F"),
            ("middle", "truncate -s 300M F && printf data | dd of=F bs=1M seek=100 conv=notrunc status=none"),
            (
                "ends",
                "head -c 70000 /dev/urandom > F && truncate -s 200M F && head -c 5000 /dev/urandom | dd of=F bs=1 seek=209710000 conv=notrunc status=none"
            ),
            (
                "start-hole",
                "truncate -s 64M F && head -c 100000 /dev/urandom | dd of=F bs=1M seek=63 conv=notrunc status=none"
            ),
        ]
        for (name, command) in shapes {
            try shell("cd \(quote(data)) && " + command.replacingOccurrences(of: "F", with: name))
        }
        try writeConfig(deviceSource("sparse", directory: "data", drive: drive, destination: path("copy")))
        let run = try plugsync("run", "sparse", timeout: 120)
        assertExit(run, 0)
        var held = 0
        var failures: [String] = []
        for (name, _) in shapes {
            guard let original = statOf(data + "/" + name), let copy = statOf(path("copy/" + name)) else {
                failures.append("\(name): not copied\n\(run)")
                continue
            }
            let same = (try? shell("cmp \(quote(data + "/" + name)) \(quote(path("copy/" + name)))")) != nil
            // A block or two of slack: filesystems round differently.
            if !same || copy.st_size != original.st_size || copy.st_blocks > original.st_blocks + 64 {
                failures.append(
                    "\(name): \(original.st_blocks) blocks on the stick, \(copy.st_blocks) on the host\(same ? "" : ", content differs")"
                )
            } else {
                held += 1
            }
        }
        report(5, "sparse", held: held, of: shapes.count, failures: failures)
    }
}
