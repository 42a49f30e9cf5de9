import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Reliability case 10, "hostile drive", mode 10: what reaches the terminal.
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
