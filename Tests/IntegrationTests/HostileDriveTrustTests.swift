import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Reliability case 10, "hostile drive", modes 9 and 10: what root trusts, and what reaches the
/// terminal.
///
/// Mode 9: running as root, a definitions file, password_file or hook program that another user
/// (`nobody`) could change is refused with one line naming it (exit 2), and the hook never runs;
/// a `log_file` path through a symbolic link `nobody` planted (in advance, or swapped in by a
/// `nobody` process racing the run, 20 seeded trials) never writes outside: a root-only file and
/// folder stay as they were.
///
/// Mode 10: an ext4 drive whose label holds ESC, U+009B (CSI) and U+202E, mounted on a folder
/// whose name holds them too, with such file names on it: `run`, `devices`, `check`, `log`,
/// `status`, a refusal and the agent print none of them raw, only `\xNN` escapes.
///
/// Needs root, setpriv, loop devices and udevd: skipped otherwise, a failure under CI=true.
final class HostileDriveTrustTests: IntegrationTestCase {
    private var held = 0
    private var trials = 0

    /// One trial: counted, and a failure when it did not hold.
    private func trial(
        _ what: String, _ holds: Bool, _ detail: @autoclosure () -> String = "", line: UInt = #line
    ) {
        trials += 1
        if holds { held += 1 } else { XCTFail("\(what)\n\(detail())", line: line) }
    }

    private let asNobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

    private func chown(_ relative: String, _ owner: String) throws {
        try shell("chown \(owner) \(quote(path(relative)))")
    }

    /// A local-to-local definition whose `before` hook is `hook` (it writes a marker file).
    private func hooked(_ name: String, hook: String, _ extra: [String] = []) -> String {
        definition(name, source: path("src"), destination: path("dst"), ["hooks:", "  before: '\(hook)'"] + extra)
    }

    /// A refusal as the brief of the case wants it: exit 2, one line naming `file`.
    private func refused(_ result: CommandResult, naming file: String) -> Bool {
        result.status == 2 && result.stderrLines.count == 1 && result.stderr.contains(file) && result.stdout.isEmpty
    }

    // MARK: mode 9

    func testMode9ConfigurationTrust() throws {
        try requireRoot("files owned by another user, and that user racing the run", tools: ["setpriv", "chown"])
        let seed: UInt64 = 0x9_7157
        try write("src/a.txt", "a\n")
        try mkdir("dst")
        try mkdir("shared")  // a folder nobody owns, like a user's home
        try chown("shared", "nobody:nogroup")
        try mkdir("rootonly", mode: 0o700)
        try write("rootonly/secret.txt", "root's\n", mode: 0o600)
        let marker = path("hook-ran")
        let hook = "touch \(marker)"

        // The definitions file: owned by nobody; writable by group or others; in a folder nobody
        // owns; in a folder others may write; reached through a link into nobody's folder.
        func config(at file: String, mode: UInt32, owner: String = "root:root") throws -> CommandResult {
            try? FileManager.default.removeItem(atPath: file)
            try ("definitions:\n" + hooked("h", hook: hook)).write(toFile: file, atomically: false, encoding: .utf8)
            try shell("chown \(owner) \(quote(file)) && chmod \(String(mode, radix: 8)) \(quote(file))")
            try? FileManager.default.removeItem(atPath: marker)
            return try plugsync("run", "h", config: file)
        }
        let owned = try config(at: configPath, mode: 0o644, owner: "nobody:nogroup")
        trial("a definitions file nobody owns is refused", refused(owned, naming: configPath), "\(owned)")
        trial("... and its hook did not run", !FileManager.default.fileExists(atPath: marker))
        for mode: UInt32 in [0o664, 0o646, 0o666, 0o620] {
            let result = try config(at: configPath, mode: mode)
            trial(
                "a definitions file of mode \(String(mode, radix: 8)) is refused",
                refused(result, naming: configPath) && result.stderr.contains("writable by other users")
                    && !FileManager.default.fileExists(atPath: marker), "\(result)")
        }
        let inShared = try config(at: path("shared/plugsync.yaml"), mode: 0o644)
        trial(
            "a definitions file in a folder nobody owns is refused, naming the folder",
            refused(inShared, naming: path("shared/plugsync.yaml"))
                && inShared.stderr.contains("folder \(path("shared"))")
                && !FileManager.default.fileExists(atPath: marker), "\(inShared)")
        try mkdir("open", mode: 0o777)
        let inOpen = try config(at: path("open/plugsync.yaml"), mode: 0o644)
        trial(
            "a definitions file in a folder others may write is refused",
            refused(inOpen, naming: path("open/plugsync.yaml")) && !FileManager.default.fileExists(atPath: marker),
            "\(inOpen)")
        try mkdir("sticky", mode: 0o1777)
        let inSticky = try config(at: path("sticky/plugsync.yaml"), mode: 0o644)
        trial(
            "root's definitions file in a sticky folder (like /tmp) is trusted",
            inSticky.status == 0 && FileManager.default.fileExists(atPath: marker), "\(inSticky)")
        try mkdir("deep/er")
        try chmod("deep", 0o775)
        let deep = try config(at: path("deep/er/plugsync.yaml"), mode: 0o644)
        trial(
            "a group-writable folder two levels up is refused",
            refused(deep, naming: path("deep/er/plugsync.yaml")) && deep.stderr.contains("folder \(path("deep"))"),
            "\(deep)")
        _ = try config(at: path("shared/linked.yaml"), mode: 0o644)
        try symlink("linked.yaml", to: path("shared/linked.yaml"))
        try? FileManager.default.removeItem(atPath: marker)
        let linked = try plugsync("run", "h", config: path("linked.yaml"))
        trial(
            "root's link to a definitions file in nobody's folder is refused",
            refused(linked, naming: path("linked.yaml")) && !FileManager.default.fileExists(atPath: marker),
            "\(linked)")

        // Hook programs: nobody's; root's but writable by others; a script given to sh; root's.
        func hookRun(_ command: String) throws -> CommandResult {
            try writeConfig(hooked("h", hook: command))
            Glibc.chmod(configPath, 0o644)
            try? FileManager.default.removeItem(atPath: marker)
            return try plugsync("run", "h")
        }
        let script = "#!/bin/sh\ntouch \(marker)\n"
        try write("shared/hook.sh", script, mode: 0o755)
        try chown("shared/hook.sh", "nobody:nogroup")
        try write("tools/hook.sh", script, mode: 0o757)
        try write("tools/good.sh", script, mode: 0o755)
        for (command, file) in [
            (path("shared/hook.sh"), path("shared/hook.sh")), (path("tools/hook.sh"), path("tools/hook.sh")),
            ("sh -e " + path("shared/hook.sh"), path("shared/hook.sh")),
            ("LANG=C env X=1 " + path("tools/hook.sh") + " arg", path("tools/hook.sh")),
        ] {
            let result = try hookRun(command)
            trial(
                "a hook `\(command)` another user can change is refused",
                refused(result, naming: file) && result.stderr.contains("before hook of h")
                    && !FileManager.default.fileExists(atPath: marker), "\(result)")
        }
        let good = try hookRun(path("tools/good.sh"))
        trial(
            "root's own hook program runs", good.status == 0 && FileManager.default.fileExists(atPath: marker),
            "\(good)")

        // A password_file nobody owns is refused (the FTP server is never reached: `list`).
        try write("shared/ftp.pass", "secret\n", mode: 0o600)
        try chown("shared/ftp.pass", "nobody:nogroup")
        try writeConfig(
            [
                "  - name: up", "    source:", "      local: '\(path("src"))'", "    destination:", "      ftp:",
                "        server: 127.0.0.1:1", "        username: u",
                "        password_file: '\(path("shared/ftp.pass"))'",
            ].joined(separator: "\n") + "\n")
        Glibc.chmod(configPath, 0o600)
        for arguments in [["list"], ["run", "up"]] {
            let result = try plugsync(arguments: arguments)
            trial(
                "plugsync \(arguments[0]) refuses a password_file nobody owns",
                refused(result, naming: path("shared/ftp.pass")), "\(result)")
        }

        // log_file: a link nobody planted, for the file or for a folder on its way, is not
        // followed; root's own link is; a FIFO does not block the run.
        func logRun(_ log: String) throws -> CommandResult {
            try writeConfig(definition("l", source: path("src"), destination: path("dst"), ["log_file: '\(log)'"]))
            Glibc.chmod(configPath, 0o644)
            return try plugsync("run", "l", timeout: 20)
        }
        func rootOnlyIntact() -> Bool {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path("rootonly"))) ?? []
            return names == ["secret.txt"] && read("rootonly/secret.txt") == "root's\n"
        }
        try shell(
            "cd \(quote(path("shared"))) && setpriv --reuid=nobody --regid=nogroup --clear-groups "
                + "sh -c 'ln -s \(path("rootonly/secret.txt")) run.log && ln -s \(path("rootonly")) logs'")
        for log in [path("shared/run.log"), path("shared/logs/run.log")] {
            let result = try logRun(log)
            trial(
                "log_file \(log) through nobody's link writes nothing outside, and says so",
                result.status == 0 && rootOnlyIntact() && result.stderr.contains("is a symbolic link owned by nobody"),
                "\(result)")
        }
        try mkdir("logs")
        try symlink("link.log", to: path("logs/real.log"))
        let own = try logRun(path("link.log"))
        trial(
            "root's own link to a log file is followed",
            own.status == 0 && (read("logs/real.log") ?? "").contains("Sync l started"), "\(own)")
        // The race: nobody swaps the log file, or a folder on its way, for a link into a
        // root-only folder, again and again, while root runs.
        var random = SplitMix64(seed: seed)
        for index in 0..<20 {
            try? FileManager.default.removeItem(atPath: path("shared/race"))
            try? FileManager.default.removeItem(atPath: path("rootonly"))  // each trial judged alone
            try mkdir("rootonly", mode: 0o700)
            try write("rootonly/secret.txt", "root's\n", mode: 0o600)
            try mkdir("shared/race/logs")
            try shell("chown -R nobody:nogroup \(quote(path("shared/race")))")
            let folderSwap = random.next() % 2 == 0
            let pause = random.next() % 3000
            let race = quote(path("shared/race"))
            let swap =
                folderSwap
                ? "rm -rf logs; ln -s \(path("rootonly")) logs; usleep \(pause); rm -f logs; mkdir logs"
                : "ln -sfn \(path("rootonly/secret.txt")) logs/run.log; usleep \(pause); rm -f logs/run.log; : > logs/run.log"
            // The racer is this process's child, so that it is reaped as soon as it is stopped.
            let racer = Process()
            racer.executableURL = URL(fileURLWithPath: try which("setpriv"))
            racer.arguments =
                Array(asNobody.dropFirst()) + [
                    "sh", "-c",
                    "cd \(race) && usleep() { sleep 0.000$1 2>/dev/null || true; }; while :; do \(swap); done",
                ]
            racer.standardOutput = FileHandle.nullDevice
            racer.standardError = FileHandle.nullDevice
            try racer.run()
            usleep(UInt32(random.next() % 20_000))
            let result = try logRun(path("shared/race/logs/run.log"))
            racer.terminate()
            racer.waitUntilExit()
            trial(
                "race \(index) (\(folderSwap ? "folder" : "file") swapped): nothing outside was written",
                result.status == 0 && !result.signaled && rootOnlyIntact(), "\(result)")
        }
        // Last: before the fix, this run hung.
        try shell("mkfifo \(quote(path("shared/fifo.log")))")
        let fifo = try logRun(path("shared/fifo.log"))
        trial(
            "a FIFO as log_file does not block the run", fifo.status == 0 && fifo.stderr.contains("not a regular file"),
            "\(fifo)")

        try shell("mkfifo \(quote(path("shared/fifo.yaml")))")
        let fifoConfig = try plugsync("run", "l", config: path("shared/fifo.yaml"), timeout: 20)
        trial(
            "a FIFO as the definitions file is refused at once",
            refused(fifoConfig, naming: path("shared/fifo.yaml")) && fifoConfig.stderr.contains("not a regular file"),
            "\(fifoConfig)")
        print("reliability: case 10 hostile drive mode 9 config-trust: held \(held) of \(trials) (seed \(seed))")
    }

    // MARK: mode 10

    func testMode10TerminalEscapes() throws {
        try requireRoot(
            "a loop drive with a hostile label",
            tools: ["truncate", "mkfs.ext4", "e2label", "losetup", "udevadm", "blkid"])
        let token = String(UInt16.random(in: 0...UInt16.max), radix: 16)
        let hostile = "\u{1B}[2J\u{9B}1m\u{202E}"
        let label = "H" + hostile + token
        let image = try makeImage("hostile.img")
        try shell("mkfs.ext4 -q -F \(quote(image))")
        let device = try attach(image)
        try shell("e2label \(device) \(quote(label))")
        try ensureUdevd()
        try shell("udevadm trigger --action=change \(device) && udevadm settle --timeout=20")
        let uuid = try shell("blkid -s UUID -o value \(device)").trimmingCharacters(in: .whitespacesAndNewlines)
        let mount = path("mnt-" + hostile + "x")
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        try shell("mount \(device) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        // Wait until udev says the new label (its safe form replaces the controls).
        for _ in 0..<50 {
            if (try? shell("udevadm info --query=property --name=\(device)"))?.contains("ID_FS_LABEL_ENC=H") == true {
                break
            }
            usleep(100_000)
        }
        try FileManager.default.createDirectory(atPath: mount + "/docs", withIntermediateDirectories: true)
        for name in [
            "esc\u{1B}[31mred", "csi\u{9B}2J", "rlo\u{202E}txt.exe", "lri\u{2066}x\u{2069}", "nl\nx", "c1\u{85}",
        ] {
            try Data("x\n".utf8).write(to: URL(fileURLWithPath: mount + "/docs/" + name))
        }
        try writeConfig(
            [
                "  - name: from-drive", "    source:", "      device:", "        uuid: \(uuid)",
                "        directory: docs", "    destination:", "      local: '\(path("dst"))'",
                "    log_file: '\(path("from-drive.log"))'",
                "  - name: missing", "    source:", "      device:", "        uuid: \(uuid)",
                "        directory: \"no\\e[2Jthere\"", "    destination:", "      local: '\(path("dst2"))'",
                "    max_delete: 0",
            ].joined(separator: "\n") + "\n")
        Glibc.chmod(configPath, 0o600)

        /// Whether `text` holds a control or bidi character a terminal would act on.
        func raw(_ text: String) -> [String] {
            var found: [String] = []
            for scalar in text.unicodeScalars {
                let v = scalar.value
                let unsafe =
                    (v < 0x20 && v != 0x0A) || (0x7F...0x9F).contains(v) || [0x061C, 0x200E, 0x200F].contains(v)
                    || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) || v == 0x2028 || v == 0x2029
                if unsafe { found.append(String(v, radix: 16)) }
            }
            return found
        }
        func printsNothingRaw(_ what: String, _ result: CommandResult, status: Int32 = 0, mustShow: [String]) {
            let leaked = raw(result.stdout) + raw(result.stderr)
            let missing = mustShow.filter { !(result.stdout + result.stderr).contains($0) }
            trial(
                "\(what): no raw control or bidi character (found \(leaked)), escapes shown (missing \(missing))",
                result.status == status && !result.signaled && leaked.isEmpty && missing.isEmpty, "\(result)")
        }
        let escapedMount = "mnt-\\x1b[2J\\xc2\\x9b1m\\xe2\\x80\\xaex"
        let run = try plugsync("run", "from-drive")
        printsNothingRaw(
            "run", run,
            mustShow: [
                escapedMount, "esc\\x1b[31mred", "csi\\xc2\\x9b2J", "rlo\\xe2\\x80\\xaetxt.exe", "lri\\xe2\\x81\\xa6x",
                "nl\\x0ax", "c1\\xc2\\x85",
            ])
        trial(
            "run copied the six files", (try? FileManager.default.contentsOfDirectory(atPath: path("dst")))?.count == 6)
        let devices = try plugsync("devices")
        printsNothingRaw("devices", devices, mustShow: ["H\\x1b[2J\\xc2\\x9b1m\\xe2\\x80\\xae" + token, escapedMount])
        let check = try plugsync("check", "from-drive")
        printsNothingRaw("check", check, mustShow: [escapedMount])
        let log = try plugsync("log", "from-drive")
        printsNothingRaw("log", log, mustShow: [escapedMount, "esc\\x1b[31mred"])
        let logFile = read("from-drive.log") ?? ""
        trial("the log file holds no raw control", raw(logFile).isEmpty && logFile.contains("csi\\xc2\\x9b2J"), logFile)
        // A log someone else filled with raw escapes is still printed escaped.
        try ("old line \u{1B}]0;pwned\u{07} \u{9B}31m\n").write(
            toFile: path("from-drive.log"), atomically: false, encoding: .utf8)
        let old = try plugsync("log", "from-drive")
        printsNothingRaw("log of a file with raw escapes", old, mustShow: ["old line \\x1b]0;pwned\\x07 \\xc2\\x9b31m"])
        let status = try plugsync("status")
        printsNothingRaw("status", status, mustShow: ["from-drive"])
        let refusedRun = try plugsync("run", "missing")
        printsNothingRaw("a refusal quoting the mount point", refusedRun, status: 3, mustShow: [escapedMount])
        let missingCheck = try plugsync("check", "missing")
        printsNothingRaw("check of a missing folder", missingCheck, mustShow: [escapedMount, "no\\x1b[2Jthere"])

        // A label typed with such characters is written to the file, and shown, escaped.
        let added = try plugsync(
            "add", "typed", "--source", "device:label=T\(hostile)y,directory=d", "--destination", path("dst3"))
        let file = (try? String(contentsOfFile: configPath, encoding: .utf8)) ?? ""
        trial(
            "add writes the label escaped, as YAML reads it back",
            added.status == 0 && raw(file).isEmpty && file.contains("label: \"T\\x1b[2J\\x9b1m\\u202ey\""),
            "\(added)\n\(file)")
        let shown = try plugsync("show", "typed")
        printsNothingRaw("show", shown, mustShow: ["T\\x1b[2J\\x9b1m\\u202ey"])
        let listed = try plugsync("list")
        printsNothingRaw("list", listed, mustShow: ["typed"])

        // The agent's lines: the drive is mounted again while it watches.
        unmount(mount, fuse: false)
        try FileManager.default.removeItem(atPath: path("dst"))
        let agent = try startPlugsync(["agent", "--config", configPath])
        var agentLog = ""
        for _ in 0..<200 where !agentLog.contains("started") {
            usleep(25_000)
            agentLog = (try? String(contentsOfFile: agent.errPath, encoding: .utf8)) ?? ""
        }
        try shell("mount \(device) \(quote(mount))")
        for _ in 0..<400 where !agentLog.contains("Done") {
            usleep(25_000)
            agentLog = (try? String(contentsOfFile: agent.errPath, encoding: .utf8)) ?? ""
        }
        kill(agent.process.processIdentifier, SIGTERM)
        while agent.process.isRunning { usleep(10_000) }
        let agentResult = agent.result()
        printsNothingRaw("the agent", agentResult, mustShow: ["matches from-drive", escapedMount, "Done: 6 copied"])
        print("reliability: case 10 hostile drive mode 10 terminal: held \(held) of \(trials)")
    }
}
