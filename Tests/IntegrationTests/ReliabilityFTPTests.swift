import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// docs/RELIABILITY.md, the FTP cases: connections cut mid-transfer (case 2: a fault-injecting proxy in
/// front of a real vsftpd, Tests/Fixtures/ftp-fault-proxy.py) and a hostile server (case 5:
/// Tests/Fixtures/hostile-ftp.py). Each prints `reliability: case N …: held H of T`.
///
/// The fixture servers of this file use their own ports and state
/// (PLUGSYNC_FTP_PORT_BASE=2321, PLUGSYNC_FTP_STATE=/tmp/plugsync-ftp-relftp, unless the caller
/// set others), so they never stop the FTP tests' servers. plugsync runs with
/// PLUGSYNC_FTP_TIMEOUT=2: a stalled server is given up after 2 s instead of 60.
final class ReliabilityFTPTests: IntegrationTestCase {
    static let timeout = 2
    var servers: [FTPServer] = []
    var savedEnvironment: [String: String?] = [:]

    override func setUpWithError() throws {
        try super.setUpWithError()
        for (key, value) in ["PLUGSYNC_FTP_PORT_BASE": "2321", "PLUGSYNC_FTP_STATE": "/tmp/plugsync-ftp-relftp"] {
            let old = getenv(key).map { String(cString: $0) }
            savedEnvironment[key] = .some(old)
            if old == nil { setenv(key, value, 1) }
        }
    }

    override func tearDownWithError() throws {
        for server in servers { server.stop() }
        servers = []
        for (key, value) in savedEnvironment {
            if let value { setenv(key, value, 1) } else { unsetenv(key) }
        }
        try super.tearDownWithError()
    }

    func ftpEndpoint(port: Int, directory: String, _ extra: [String] = []) -> [String] {
        [
            "  ftp:", "    server: 127.0.0.1:\(port)", "    username: plugsync-ftp",
            "    password_env: PLUGSYNC_TEST_FTP_PW", "    directory: '\(directory)'",
        ] + extra.map { "    " + $0 }
    }

    func ftpDefinition(_ name: String, source: [String], destination: [String], _ extra: [String] = []) -> String {
        var lines = ["  - name: \(name)", "    source:"] + source.map { "    " + $0 }
        lines += ["    destination:"] + destination.map { "    " + $0 }
        lines += extra.map { "    " + $0 }
        return Self.mirrorUnlessTyped(lines)
    }

    func runFTP(
        _ arguments: [String], password: String = "pw", wrapper: [String] = [], ftpTimeout: Int = timeout,
        environment: [String: String] = [:], timeout: TimeInterval
    ) throws -> CommandResult {
        try plugsync(
            arguments: arguments, wrapper: wrapper,
            environment: ["PLUGSYNC_TEST_FTP_PW": password, "PLUGSYNC_FTP_TIMEOUT": "\(ftpTimeout)"].merging(
                environment
            ) { _, new in new },
            timeout: timeout)
    }

    /// Regular files under `folder` (relative paths), temporary files excluded.
    func regularFiles(_ folder: String) -> [String: String] {
        var result: [String: String] = [:]
        let all = FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? []
        for relative in all {
            var st = stat()
            guard lstat(folder + "/" + relative, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            result[relative] = folder + "/" + relative
        }
        return result
    }

    func seconds(_ file: String) -> Int? {
        var st = stat()
        return stat(file, &st) == 0 ? Int(st.st_mtim.tv_sec) : nil
    }

    /// Problems of one run through faults: it must end (the harness kills it after `timeout`),
    /// without a crash, with a known status, and a failure must say so in one line.
    func runProblems(_ result: CommandResult) -> [String] {
        var problems: [String] = []
        if result.signaled { problems.append("died of a signal") }
        for marker in ["Fatal error", "Stack dump", "Backtrace", "Current stack trace", "0x0000"]
        where result.stdout.contains(marker) || result.stderr.contains(marker) {
            problems.append("'\(marker)' in the output")
        }
        if ![0, 1, 3].contains(result.status) { problems.append("exit status \(result.status)") }
        // Standard error holds each failed entry, listing error and withheld deletion (lines of
        // the report), and at most one line of the run's own.
        let own = result.stderrLines.filter {
            !isActionLine($0) && !$0.hasPrefix("Cannot list ") && !$0.hasPrefix("Not deleting ")
        }
        if own.count > 1 { problems.append("\(own.count) lines of the run's own on stderr") }
        if result.status == 3 && result.stderrLines.count != 1 { problems.append("exit 3 without its one line") }
        if result.status == 1 && result.summary?.hasPrefix("Done with failures:") != true {
            problems.append("exit 1 without a 'Done with failures' summary")
        }
        return problems
    }

    // MARK: case 2: connections cut mid-transfer

    func testCase2ConnectionCutMidTransfer() throws {
        try requireRoot("the FTP test server logs in a local user")
        let started = Date()
        let seed = 20_261_123
        let trials = 20
        print("reliability: case 2 seed \(seed)")
        try FileManager.default.createDirectory(atPath: path("server/pub"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: path("dst"), withIntermediateDirectories: true)
        let server = try FTPServer.start("vsftpd", root: path("server"))
        servers.append(server)
        var random = FTPFaultRandom(seed: UInt64(seed))
        let names = (1...10).map { "f\($0).bin" } + ["sub/a.txt", "sub/deep/b.bin"]
        // Every version each file ever had: a file under a final name must be one of them.
        var versions: [String: Set<Data>] = [:]
        func newVersion(_ folder: String, _ name: String) throws {
            let size = random.next(upTo: 6) == 0 ? 0 : Int(random.next(upTo: 400_000))
            let data = randomData(size, seed: random.next(upTo: UInt64.max))
            let mtime = FileTime(1_700_000_000 + Int(random.next(upTo: 10_000_000)))
            try write(folder + "/" + name, data, mtime: mtime)
            versions[folder + "/" + name, default: []].insert(data)
        }
        for name in names {
            try newVersion("src", name)
            try newVersion("server/pub", name)
        }
        _ = try shell("chown -R \(quote(server.user)) \(quote(server.root))")
        func writeDefinitions(port: Int) throws {
            try writeConfig(
                ftpDefinition(
                    "up", source: ["  local: '\(path("src"))'"],
                    destination: ftpEndpoint(port: port, directory: "www", ["clock_diff: 0"]), ["parallel: 1"]),
                ftpDefinition(
                    "down", source: ftpEndpoint(port: port, directory: "pub", ["clock_diff: 0"]),
                    destination: ["  local: '\(path("dst"))'"], ["parallel: 1"]))
        }

        var held = 0
        var failures: [String] = []
        var outcomes: [Int32: Int] = [:]
        var faultyTime = 0.0
        for trial in 0..<trials {
            var problems: [String] = []
            for _ in 0..<3 {
                try newVersion("src", names[Int(random.next(upTo: UInt64(names.count)))])
                try newVersion("server/pub", names[Int(random.next(upTo: UInt64(names.count)))])
            }
            _ = try shell("chown -R \(quote(server.user)) \(quote(server.root))")
            for direction in ["up", "down"] {
                let proxy = try startFixture(
                    "ftp-fault-proxy.py",
                    [
                        "--upstream", "\(server.port)", "--seed", "\(seed + trial * 2 + (direction == "up" ? 0 : 1))",
                        "--faults", "1", "--data-max", "300000", "--control-max", "1500",
                        "--log", path("faults.log"),
                    ])
                try writeDefinitions(port: proxy.port)
                let runStart = Date()
                let faulty = try runFTP(["run", direction], password: server.password, ftpTimeout: 1, timeout: 120)
                faultyTime += Date().timeIntervalSince(runStart)
                stopFixture(proxy.pid)
                outcomes[faulty.status, default: 0] += 1
                problems += runProblems(faulty).map { "\(direction) through faults: \($0)" }
                // No partial file under a final name, on either side.
                let (folder, origin) = direction == "up" ? ("server/www", "src") : ("dst", "server/pub")
                // A file in a folder being built (a temporary name) is not under its final name.
                for (relative, full) in regularFiles(path(folder))
                where !relative.split(separator: "/").contains(where: { $0.hasPrefix(".plugsync-tmp-") }) {
                    let data = (try? Data(contentsOf: URL(fileURLWithPath: full))) ?? Data()
                    if versions[origin + "/" + relative]?.contains(data) != true {
                        problems.append(
                            "\(direction): \(folder)/\(relative) (\(data.count) bytes) is no version of the file")
                    }
                }
                if !problems.isEmpty { problems.append("the faulty run:\n\(faulty)") }
            }
            // Without faults, both directions converge to exact mirrors.
            try writeDefinitions(port: server.port)
            for direction in ["up", "down"] {
                let clean = try runFTP(["run", direction], password: server.password, timeout: 120)
                if clean.status != 0 { problems.append("\(direction) without faults: exit \(clean.status)\n\(clean)") }
            }
            for (from, to) in [("src", "server/www"), ("server/pub", "dst")] {
                let source = regularFiles(path(from))
                let copy = regularFiles(path(to))
                if source.keys.sorted() != copy.keys.sorted() {
                    problems.append("\(to) holds \(copy.keys.sorted()), \(from) \(source.keys.sorted())")
                }
                for (relative, full) in source {
                    guard let other = copy[relative] else { continue }
                    if !FileManager.default.contentsEqual(atPath: full, andPath: other) {
                        problems.append("\(to)/\(relative) differs from \(from)/\(relative)")
                    }
                    if seconds(full) != seconds(other) {
                        problems.append("\(to)/\(relative): mtime \(seconds(other) ?? -1), not \(seconds(full) ?? -1)")
                    }
                }
            }
            if problems.isEmpty {
                held += 1
            } else {
                failures.append(
                    "trial \(trial) (seeds \(seed + trial * 2), \(seed + trial * 2 + 1)):\n  "
                        + problems.joined(separator: "\n  "))
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        let faults = (read("faults.log") ?? "").split(separator: "\n")
        let kinds = Dictionary(
            grouping: faults, by: { $0.split(separator: " ").dropFirst().first.map(String.init) ?? "?" })
        print(
            "reliability: case 2 faults injected: \(faults.count) ("
                + kinds.keys.sorted().map { "\($0) \(kinds[$0]!.count)" }.joined(separator: ", ") + "; "
                + "\(faults.filter { $0.contains("kind=data") }.count) on data connections)")
        print(
            "reliability: case 2 faulty-run exits: "
                + outcomes.keys.sorted().map { "\($0): \(outcomes[$0]!)" }.joined(separator: ", ")
                + String(format: "; %.1f s in all, %.1f s in faulty runs", elapsed, faultyTime))
        print("reliability: case 2 FTP connection cut mid-transfer: held \(held) of \(trials)")
        XCTAssertEqual(held, trials, failures.joined(separator: "\n"))
    }
    // MARK: the clock probe alongside the listing

    /// On an MLSD server the listing does not wait for the clock probe: the server answers the
    /// probe's STOR only once the subfolder was listed (or after 5 s, and says which), as a
    /// source and as a destination. The probe is no leftover of the listing, and the times
    /// still come out right (a no-op second download).
    func testAServersListingGoesOnWhileItsClockProbeWaits() throws {
        for upload in [false, true] {
            _ = try? shell("rm -rf \(quote(path("dst"))) \(quote(path("probe-commands.log")))")
            try mkdir("dst")
            try write("src/a.txt", "a\n")
            let server = try startFixture(
                "hostile-ftp.py", ["--mode", "probe-waits", "--log", path("probe-commands.log")])
            defer { stopFixture(server.pid) }
            let remote = ftpEndpoint(port: server.port, directory: "pub")
            let local = ["  local: '\(path(upload ? "src" : "dst"))'"]
            try writeConfig(
                ftpDefinition(
                    "p", source: upload ? local : remote, destination: upload ? remote : local,
                    upload ? ["type: backup"] : []))  // the server's own files stay
            let started = Date()
            let result = try runFTP(["run", "p"], ftpTimeout: 20, timeout: 60)
            let seconds = Date().timeIntervalSince(started)
            let log = read("probe-commands.log") ?? ""
            XCTAssertEqual(result.status, 0, "\(result) \(result.stderr)")
            XCTAssertTrue(log.contains("probe answered after sub was listed: yes"), "upload \(upload): \(log)")
            XCTAssertLessThan(seconds, 4, "upload \(upload)")
            XCTAssertTrue(result.stdout.contains("Clock time difference is 0 seconds."), "\(result)")
            XCTAssertFalse(result.stdout.contains("Removing"), "the probe is no leftover: \(result)")
            if upload {
                XCTAssertTrue(
                    result.actions.contains { $0.hasPrefix("Uploading ") && $0.hasSuffix(" a.txt") }, "\(result)")
            } else {
                XCTAssertEqual(read("dst/good.txt"), "0123456789")
                // The listed time (2020-01-02 03:04:05 UTC, clock difference 0) is the file's.
                var st = stat()
                XCTAssertEqual(stat(path("dst/good.txt"), &st), 0)
                XCTAssertEqual(st.st_mtim.tv_sec, 1_577_934_245)
                let again = try runFTP(["run", "p"], ftpTimeout: 20, timeout: 60)
                XCTAssertEqual(again.status, 0, "\(again)")
                XCTAssertEqual(again.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(again)")
            }
        }
    }

    // MARK: case 5: a hostile server

    struct HostileMode {
        var name: String
        /// Exit statuses that count as a clean ending.
        var exits: Set<Int32>
        var destination = false
        var dryRun = false
        /// One connection (and, for a download, a well-behaved file listed first: `--warm`): the
        /// hostile transfer is the connection's second, after one that went well. The run's
        /// dialogue on stderr (PLUGSYNC_CURL_VERBOSE) must show it: a line `> COMMAND…`,
        /// COMMAND this string.
        var direct: String?
        /// The largest peak RSS allowed, MiB.
        var memory = 200
        /// Seconds before the run is killed as hung. Stalls end in a few seconds; the
        /// million-entry dry run takes a debug build tens of seconds, and 130-300 s on a machine
        /// busy with other tests.
        var limit = 60
        var check: (ReliabilityFTPTests, CommandResult, inout [String]) -> Void = { _, _, _ in }
    }

    func testCase5HostileServer() throws {
        let started = Date()
        func dstFiles(_ test: ReliabilityFTPTests) -> [String] {
            test.regularFiles(test.path("sandbox/dst")).keys.sorted()
        }
        func expectFiles(_ files: [String]) -> (ReliabilityFTPTests, CommandResult, inout [String]) -> Void {
            { test, _, problems in
                let found = dstFiles(test).filter { !($0 as NSString).lastPathComponent.hasPrefix(".plugsync-tmp-") }
                if found != files { problems.append("the destination holds \(found), not \(files)") }
            }
        }
        func expectText(_ text: String, _ also: [String] = []) -> (ReliabilityFTPTests, CommandResult, inout [String])
            -> Void
        {
            { test, result, problems in
                if !(result.stdout + result.stderr).contains(text) { problems.append("no '\(text)' in the output") }
                expectFiles(also)(test, result, &problems)
            }
        }
        let failing: Set<Int32> = [1, 2, 3]
        var modes: [HostileMode] = [
            // A name with LF arrives as two lines: its first part ("new") is a fine name. One with
            // a CR alone is refused whole: the listing is read as the server sent it.
            HostileMode(
                name: "names", exits: [1], check: expectText("refused a name", ["good.txt", "new", "orphan.txt"])),
            HostileMode(
                name: "names-list", exits: [1],
                check: expectText("refused a name", ["good.txt", "new", "orphan.txt"])),
            HostileMode(
                name: "million", exits: [0], dryRun: true, memory: 1024, limit: 600,
                check: { _, result, problems in
                    if !result.stdout.suffix(400).contains("Dry run: would copy 1000000 ") {
                        problems.append("the dry run does not plan 1,000,000 downloads: \(result.stdout.suffix(400))")
                    }
                }),
            HostileMode(name: "huge-listing", exits: failing, memory: 700, check: expectText("more than")),
            HostileMode(name: "greeting-never-ends", exits: failing),
            HostileMode(name: "reply-stalls", exits: failing),
            HostileMode(name: "endless-line", exits: failing),
            HostileMode(name: "data-never-closes", exits: failing),
            HostileMode(name: "data-trickles", exits: failing),
            HostileMode(name: "retr-trickles", exits: [1], check: expectFiles(["good.txt"])),
            HostileMode(name: "bad-greeting", exits: failing),
            HostileMode(name: "bad-epsv", exits: failing),
            HostileMode(name: "bad-lines", exits: [1], check: expectFiles(["good.txt", "good2.txt", "orphan.txt"])),
            HostileMode(name: "bad-codes", exits: failing),
            HostileMode(name: "size-grows", exits: [1], check: expectText("more than the listed", [])),
            HostileMode(name: "size-shrinks", exits: [1], check: expectText("of 1000 bytes", [])),
            HostileMode(name: "size-endless", exits: [1], check: expectText("more than the listed", [])),
            // The same four on a connection's second download (the client's own retrieval).
            HostileMode(
                name: "retr-trickles", exits: [1], direct: "RETR /pub/big.bin",
                check: expectFiles(["a-warm.txt", "good.txt"])),
            HostileMode(
                name: "size-grows", exits: [1], direct: "RETR /pub/good.txt",
                check: expectText("more than the listed", ["a-warm.txt"])),
            HostileMode(
                name: "size-shrinks", exits: [1], direct: "RETR /pub/good.txt",
                check: expectText("of 1000 bytes", ["a-warm.txt"])
            ),
            HostileMode(
                name: "size-endless", exits: [1], direct: "RETR /pub/good.txt",
                check: expectText("more than the listed", ["a-warm.txt"])),
            // A listing cut once is listed again: the run completes (and may delete).
            HostileMode(
                name: "list-cut-once", exits: [0],
                check: { test, result, problems in
                    expectFiles(["good.txt"])(test, result, &problems)
                    if (result.stdout + result.stderr).contains("Cannot list") {
                        problems.append("a listing error was reported")
                    }
                    let log = test.read("hostile-commands.log") ?? ""
                    let subListings = log.split(separator: "\n").filter { $0.hasPrefix("MLSD") && $0.contains("sub") }
                    if subListings.count < 2 { problems.append("sub was listed \(subListings.count) times, not twice") }
                }),
            // The same for the synchronized folder's first listing, in the checks before the run.
            HostileMode(
                name: "first-list-cut", exits: [0],
                check: { test, result, problems in
                    expectFiles(["good.txt"])(test, result, &problems)
                    let log = test.read("hostile-commands.log") ?? ""
                    let rootListings = log.split(separator: "\n").filter {
                        $0.hasPrefix("MLSD") && !$0.contains("sub")
                    }
                    if rootListings.count != 2 {
                        problems.append(
                            "the folder was listed \(rootListings.count) times, not twice (cut, then again)")
                    }
                }),
            HostileMode(
                name: "upload-names", exits: [1], destination: true,
                check: { test, _, problems in
                    let log = test.read("hostile-commands.log") ?? ""
                    for line in log.split(separator: "\n") {
                        let verb = line.split(separator: " ").first.map(String.init) ?? ""
                        if ["DELE", "RMD", "RNFR", "RNTO", "STOR", "MKD"].contains(verb.uppercased()),
                            line.contains("..") || line.contains("\\x1b") || line.contains("/a/b")
                                || (verb == "DELE" && !line.contains(".plugsync-tmp-"))
                        {
                            problems.append("the client sent: \(line)")
                        }
                    }
                    if !log.contains("RNTO /pub/a.txt") { problems.append("a.txt was not uploaded:\n\(log)") }
                }),
            // A batch's renames cut: the files are sent again one by one and all land.
            HostileMode(
                name: "rename-cut-once", exits: [0], destination: true,
                check: { test, result, problems in
                    let log = test.read("hostile-commands.log") ?? ""
                    let lines = log.split(separator: "\n").map(String.init)
                    guard let cut = lines.firstIndex(where: { $0.hasPrefix("RNFR ") }) else {
                        problems.append("no rename:\n\(log)")
                        return
                    }
                    for name in ["a.txt", "b.txt", "c.txt"] where !lines[(cut + 1)...].contains("RNTO /pub/\(name)") {
                        problems.append("\(name) was not renamed into place after the cut:\n\(log)")
                    }
                    if !result.lines.contains(where: { $0.hasPrefix("Retrying ") }) {
                        problems.append("no retry reported:\n\(result)")
                    }
                    if result.summary?.hasPrefix("Done: 3 copied") != true {
                        problems.append("summary: \(result.summary ?? "none")")
                    }
                }),
        ]
        // The destination modes again on one connection: the hostile replies come after a first
        // upload that went well.
        modes += modes.filter(\.destination).map { mode in
            var direct = mode
            direct.direct = "STOR /pub/"
            return direct
        }
        let sandbox = path("sandbox")
        var held = 0
        var failures: [String] = []
        var figures: [String] = []
        for mode in modes {
            var problems: [String] = []
            _ = try? shell("rm -rf \(quote(sandbox)) \(quote(path("hostile-commands.log")))")
            try write("sandbox/sentinel.txt", "sentinel\n")
            try mkdir("sandbox/dst")
            if ["names", "names-list", "bad-lines"].contains(mode.name) {
                try write("sandbox/dst/orphan.txt", "orphan\n")  // kept: those listings have errors
            }
            for name in ["a", "b", "c"] { try write("src/\(name).txt", "\(name)\n") }
            let before = try snapshot(sandbox).filter { !$0.key.hasPrefix("dst") }
            let server = try startFixture(
                "hostile-ftp.py",
                ["--mode", mode.name, "--log", path("hostile-commands.log")]
                    + (mode.direct == nil || mode.destination ? [] : ["--warm"]))
            let remote = ftpEndpoint(port: server.port, directory: "pub", ["clock_diff: 0"])
            let extra = mode.direct == nil ? [] : ["parallel: 1"]
            if mode.destination {
                try writeConfig(ftpDefinition("h", source: ["  local: '\(path("src"))'"], destination: remote, extra))
            } else {
                try writeConfig(ftpDefinition("h", source: remote, destination: ["  local: '\(sandbox)/dst'"], extra))
            }
            let rss = path("rss-\(mode.name)")
            let runStart = Date()
            let result = try runFTP(
                ["run", "h"] + (mode.dryRun ? ["--dry-run"] : []),
                wrapper: ["time", "-f", "%M", "-o", rss, "timeout", "-s", "KILL", "\(mode.limit)"],
                environment: mode.direct == nil ? [:] : ["PLUGSYNC_CURL_VERBOSE": "1"],
                timeout: TimeInterval(mode.limit + 30))
            if let command = mode.direct,
                !result.stderrLines.contains(where: { $0.hasPrefix("> " + command) })
            {
                problems.append("no '> \(command)…' on stderr: the dialogue does not show the transfer")
            }
            let seconds = Date().timeIntervalSince(runStart)
            stopFixture(server.pid)
            if result.signaled || result.status == 137 {
                problems.append("killed (a signal, or still running after \(mode.limit) s)")
            }
            for marker in ["Fatal error", "Stack dump", "Backtrace", "Current stack trace", "0x0000"]
            where result.stdout.contains(marker) || result.stderr.contains(marker) {
                problems.append("'\(marker)' in the output")
            }
            if !mode.exits.contains(result.status) {
                problems.append("exit \(result.status), not \(mode.exits.sorted())")
            }
            if result.status != 1 && result.status != 0 && result.stderrLines.count != 1 {
                problems.append("\(result.stderrLines.count) lines on stderr, not one")
            }
            // (With PLUGSYNC_CURL_VERBOSE, stderr carries the dialogue as curl prints it, CRs and all.)
            if (result.stdout + (mode.direct == nil ? result.stderr : "")).unicodeScalars.contains(where: {
                ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || $0.value == 0x7f
            }) {
                problems.append("a control character from the server reached the output")
            }
            let kib = Int((read("rss-\(mode.name)") ?? "").split(separator: "\n").last ?? "") ?? -1
            if kib < 0 || kib > mode.memory * 1024 { problems.append("peak RSS \(kib) KiB, over \(mode.memory) MiB") }
            // Nothing outside the destination.
            let after = try snapshot(sandbox).filter { !$0.key.hasPrefix("dst") }
            if after != before { problems.append("the sandbox changed outside dst: \(after.keys.sorted())") }
            for outside in [
                "/etc/plugsync-hostile.txt", path("escape.txt"), path("escape2.txt"), root + "/../escape2.txt",
            ]
            where FileManager.default.fileExists(atPath: outside) {
                problems.append("\(outside) was written")
            }
            if mode.name != "bad-lines" && mode.name != "names" && mode.name != "names-list"
                && !mode.dryRun && !mode.destination
                && FileManager.default.fileExists(atPath: sandbox + "/dst/orphan.txt")
                && result.status == 0
            {
                problems.append("exit 0 against a hostile server")
            }
            mode.check(self, result, &problems)
            let label = mode.name + (mode.direct == nil ? "" : "+direct")
            figures.append(String(format: "%@ exit %d %.1f s %d MiB", label, result.status, seconds, kib / 1024))
            if problems.isEmpty {
                held += 1
            } else {
                failures.append("\(label): " + problems.joined(separator: "; ") + "\n\(result)".prefix(3000))
            }
        }
        print("reliability: case 5 modes: " + figures.joined(separator: ", "))
        print(String(format: "reliability: case 5 took %.1f s", Date().timeIntervalSince(started)))
        print("reliability: case 5 hostile FTP server: held \(held) of \(modes.count)")
        XCTAssertEqual(held, modes.count, failures.joined(separator: "\n"))
    }
}

/// xorshift64*: the same numbers for the same seed, on every machine.
private struct FTPFaultRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
    mutating func next(upTo bound: UInt64) -> UInt64 { bound == 0 ? 0 : next() % bound }
}
