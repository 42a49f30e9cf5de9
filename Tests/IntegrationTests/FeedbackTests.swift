import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// What plugsync tells others about its runs: healthchecks-style pings (`notify: url`), the
/// overdue state (`max_age`) and the Prometheus metrics file (`settings: metrics_file`).
/// The pings go to a real HTTP server on 127.0.0.1 (Tests/Fixtures/ping-server.py) that records
/// each request.
final class FeedbackTests: IntegrationTestCase {
    private var servers: [Process] = []

    override func tearDownWithError() throws {
        for server in servers where server.isRunning {
            server.terminate()
            server.waitUntilExit()
        }
        try super.tearDownWithError()
    }

    // MARK: helpers

    private struct Request: Decodable {
        var path: String
        var body: String
    }

    /// Starts the recording server (`hang`: it reads requests and never answers); returns its
    /// base URL and the file its requests go to.
    private func startPingServer(hang: Bool = false) throws -> (url: String, record: String) {
        let script =
            "/" + "\(#filePath)".split(separator: "/").dropLast(2).joined(separator: "/") + "/Fixtures/ping-server.py"
        let record = path("requests-\(servers.count).jsonl")
        let portFile = path("port-\(servers.count)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try which("python3"))
        process.arguments = [script, record, portFile] + (hang ? ["--hang"] : [])
        process.standardInput = FileHandle.nullDevice
        try process.run()
        servers.append(process)
        for _ in 0..<500 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text) {
                return ("http://127.0.0.1:\(port)", record)
            }
            usleep(10_000)
        }
        throw HarnessError("the ping server did not start")
    }

    private func requests(_ record: String) -> [Request] {
        guard let text = try? String(contentsOfFile: record, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Request.self, from: Data($0.utf8)) }
    }

    /// Waits a little for `count` requests (the server writes each as it reads it).
    private func waitForRequests(_ record: String, _ count: Int) -> [Request] {
        for _ in 0..<200 {
            let got = requests(record)
            if got.count >= count { return got }
            usleep(10_000)
        }
        return requests(record)
    }

    private func notifying(_ url: String, events: String?) -> [String] {
        ["notify:", "  url: '\(url)'"] + (events.map { ["  events: \($0)"] } ?? [])
    }

    // MARK: pings

    /// `URL/start` when a run starts, `URL` on success, `URL/fail` on a refusal (a missing
    /// source, a failed before hook), each with the summary as the body.
    func testPingsForStartSuccessAndRefusal() throws {
        let (base, record) = try startPingServer()
        let url = base + "/ping/0b1c-check"
        try write("src/a.txt", "hello\n")
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"),
                notifying(url, events: "[start, success, failure]")))
        let ok = try plugsync("run", "docs")
        assertExit(ok, 0)
        var got = waitForRequests(record, 2)
        XCTAssertEqual(got.map(\.path), ["/ping/0b1c-check/start", "/ping/0b1c-check"], "\(ok)")
        XCTAssertTrue(got.first?.body.contains("Sync docs started (trigger: manual)") == true, "\(got)")
        XCTAssertTrue(got.last?.body.contains("Done: 1 copied") == true, "\(got)")

        try writeConfig(
            definition(
                "docs", source: path("missing"), destination: path("dst"),
                notifying(url, events: "[start, success, failure]")))
        let refused = try plugsync("run", "docs")
        assertExit(refused, 3)
        got = waitForRequests(record, 4)
        XCTAssertEqual(got.dropFirst(2).map(\.path), ["/ping/0b1c-check/start", "/ping/0b1c-check/fail"], "\(got)")
        XCTAssertTrue(got.last?.body.contains("Refused:") == true, "\(got)")
        XCTAssertTrue(got.last?.body.contains(path("missing")) == true, "the reason is in the body: \(got)")

        // The default events (failure, overdue, removable): a success pings nothing, a failed
        // before hook pings /fail; a URL with a query keeps it after /fail.
        try writeConfig(
            definition("docs", source: path("src"), destination: path("dst"), notifying(url + "?rid=7", events: nil)))
        assertExit(try plugsync("run", "docs"), 0)
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"),
                notifying(url + "?rid=7", events: nil) + ["hooks:", "  before: 'exit 4'"]))
        assertExit(try plugsync("run", "docs"), 3)
        got = waitForRequests(record, 5)
        XCTAssertEqual(got.dropFirst(4).map(\.path), ["/ping/0b1c-check/fail?rid=7"], "\(got)")
        XCTAssertTrue(got.last?.body.contains("the before hook failed") == true, "\(got)")

        // A dry run is not a run: nothing is pinged.
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"),
                notifying(url, events: "[start, success, failure]")))
        assertExit(try plugsync("run", "docs", "--dry-run"), 0)
        usleep(300_000)
        XCTAssertEqual(requests(record).count, 5)
    }

    /// A server that never answers, or a port nobody listens on: the run's exit code is the
    /// same, a warning says the ping was not delivered, and the run ends within the ping's
    /// time limit (10 s).
    func testADeadPingServerNeverChangesTheResultAndCostsAtMostTheTimeout() throws {
        let (base, record) = try startPingServer(hang: true)
        try write("src/a.txt", "hello\n")
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"),
                notifying(base + "/hang", events: "[start, success, failure]")))
        var started = Date()
        let ok = try plugsync("run", "docs")
        var seconds = Date().timeIntervalSince(started)
        assertExit(ok, 0)
        XCTAssertEqual(read("dst/a.txt"), "hello\n")
        XCTAssertLessThan(seconds, 12, "\(ok)")
        XCTAssertTrue(ok.stderr.contains("warning: docs: the ping to 127.0.0.1:"), "\(ok)")
        XCTAssertTrue(ok.stderr.contains("was not delivered"), "\(ok)")
        XCTAssertFalse(ok.stderr.contains("/hang"), "the URL's path (the check's secret) is not printed: \(ok)")
        // The start ping was sent and waited for; the result's was tried with the time left, if any.
        let paths = requests(record).map(\.path)
        XCTAssertEqual(paths.first, "/hang/start", "\(paths)")
        XCTAssertTrue(paths.dropFirst().allSatisfy { $0 == "/hang" }, "\(paths)")

        // Refused, and the server still hangs: exit 3 as without a ping.
        try writeConfig(
            definition(
                "docs", source: path("missing"), destination: path("dst"),
                notifying(base + "/hang", events: "[failure]")))
        started = Date()
        let refused = try plugsync("run", "docs")
        seconds = Date().timeIntervalSince(started)
        assertExit(refused, 3)
        XCTAssertLessThan(seconds, 12, "\(refused)")
        XCTAssertGreaterThan(seconds, 5, "the ping waited for the server: \(refused)")

        // Nobody listening: tried again a few times within the limit, then given up.
        let closed = try closedPort()
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"),
                notifying("http://127.0.0.1:\(closed)/x", events: "[success]")))
        started = Date()
        let unreachable = try plugsync("run", "docs")
        seconds = Date().timeIntervalSince(started)
        assertExit(unreachable, 0)
        XCTAssertLessThan(seconds, 12, "\(unreachable)")
        XCTAssertTrue(unreachable.stderr.contains("was not delivered"), "\(unreachable)")
    }

    /// A port on 127.0.0.1 with no listener (bound, then closed).
    private func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw HarnessError("cannot bind a port: \(errnoText())") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    // MARK: overdue

    /// `status` says `OVERDUE 9 days` once the last successful run is older than `max_age`
    /// (the tests move "now" with PLUGSYNC_NOW); a later failed run does not reset it.
    func testStatusShowsOverdue() throws {
        try write("src/a.txt", "hello\n")
        try writeConfig(
            definition("weekly", source: path("src"), destination: path("dst"), ["max_age: 7d"]),
            definition("plain", source: path("src"), destination: path("dst2")),
            definition("fresh", source: path("src"), destination: path("dst3"), ["max_age: 30m"]))
        assertExit(try plugsync("run", "weekly"), 0)
        let now = Date().timeIntervalSince1970
        let today = try plugsync("status")
        assertExit(today, 0)
        XCTAssertTrue(today.lines.first?.hasSuffix("MAX AGE") == true, "\(today)")
        XCTAssertTrue(today.lines.contains { $0.hasPrefix("weekly ") && $0.hasSuffix(" ok") }, "\(today)")
        XCTAssertTrue(today.lines.contains { $0.hasPrefix("plain ") && $0.hasSuffix(" -") }, "\(today)")
        XCTAssertTrue(
            today.lines.contains { $0.hasPrefix("fresh ") && $0.hasSuffix(" ok") }, "never ran: not overdue\n\(today)")

        let later = ["PLUGSYNC_NOW": "\(Int(now + 9.5 * 86400))"]
        let late = try plugsync("status", environment: later)
        assertExit(late, 0)
        XCTAssertTrue(late.lines.contains { $0.hasPrefix("weekly ") && $0.hasSuffix(" OVERDUE 9 days") }, "\(late)")
        XCTAssertTrue(late.lines.contains { $0.hasPrefix("plain ") && $0.hasSuffix(" -") }, "\(late)")

        // A refused run is no success: still overdue, counted from the last success.
        try writeConfig(
            definition("weekly", source: path("missing"), destination: path("dst"), ["max_age: 7d"]))
        assertExit(try plugsync("run", "weekly"), 3)
        let still = try plugsync("status", environment: later)
        XCTAssertTrue(still.lines.contains { $0.hasPrefix("weekly ") && $0.hasSuffix(" OVERDUE 9 days") }, "\(still)")
        let soon = try plugsync("status", environment: ["PLUGSYNC_NOW": "\(Int(now + 2 * 86400))"])
        XCTAssertTrue(soon.lines.contains { $0.hasPrefix("weekly ") && $0.hasSuffix(" ok") }, "\(soon)")
    }

    /// The agent checks at start: it logs an overdue definition once, pings it as failing
    /// (event `overdue`) once a day, and writes the metrics file; a reload checks again without
    /// repeating either.
    func testTheAgentLogsAndPingsAnOverdueDefinitionOnce() throws {
        let (base, record) = try startPingServer()
        try write("src/a.txt", "hello\n")
        let metrics = path("plugsync.prom")
        let text =
            "settings:\n  metrics_file: '\(metrics)'\ndefinitions:\n"
            + definition(
                "weekly", source: path("src"), destination: path("dst"),
                ["max_age: 7d"] + notifying(base + "/weekly", events: "[overdue]"))
            + definition("daily", source: path("src"), destination: path("dst2"), ["max_age: 1d"])
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
        assertExit(try plugsync("run", "weekly"), 0)
        assertExit(try plugsync("run", "daily"), 0)
        XCTAssertEqual(requests(record).count, 0, "a success pings nothing with events [overdue]")

        let now = Date().timeIntervalSince1970
        let agent = try startPlugsync(
            ["agent", "--config", configPath], environment: ["PLUGSYNC_NOW": "\(Int(now) + 3 * 86400 + 60)"])
        defer {
            if agent.process.isRunning {
                kill(agent.process.processIdentifier, SIGTERM)
                agent.process.waitUntilExit()
            }
        }
        func log() -> String { (try? String(contentsOfFile: agent.errPath, encoding: .utf8)) ?? "" }
        func waitFor(_ text: String) {
            for _ in 0..<500 where !log().contains(text) && agent.process.isRunning { usleep(20_000) }
        }
        waitFor("daily: OVERDUE 3 days")
        XCTAssertTrue(log().contains("daily: OVERDUE 3 days: no successful run for 3 days (max_age 1d)"), log())
        XCTAssertFalse(log().contains("weekly: OVERDUE"), log())
        usleep(300_000)
        XCTAssertEqual(requests(record).count, 0, "daily has no notify, weekly is on time")
        kill(agent.process.processIdentifier, SIGTERM)
        agent.process.waitUntilExit()

        let late = try startPlugsync(
            ["agent", "--config", configPath], environment: ["PLUGSYNC_NOW": "\(Int(now + 9.5 * 86400))"])
        defer {
            if late.process.isRunning {
                kill(late.process.processIdentifier, SIGTERM)
                late.process.waitUntilExit()
            }
        }
        func lateLog() -> String { (try? String(contentsOfFile: late.errPath, encoding: .utf8)) ?? "" }
        var got = waitForRequests(record, 1)
        XCTAssertEqual(got.map(\.path), ["/weekly/fail"], lateLog())
        XCTAssertTrue(got.first?.body.contains("weekly: OVERDUE 9 days") == true, "\(got)")
        XCTAssertTrue(lateLog().contains("weekly: OVERDUE 9 days"), lateLog())
        let samples = try parsedSamples(metrics)
        XCTAssertEqual(
            samples.first { $0.name == "plugsync_overdue" && $0.labels == ["definition": "weekly"] }?.value, 1,
            "\(samples)")

        kill(late.process.processIdentifier, SIGHUP)
        for _ in 0..<250 where !lateLog().contains("reloaded") { usleep(20_000) }
        usleep(500_000)
        got = requests(record)
        XCTAssertEqual(got.count, 1, "pinged once a day: \(got)")
        XCTAssertEqual(lateLog().components(separatedBy: "weekly: OVERDUE").count - 1, 1, lateLog())
    }

    // MARK: metrics

    /// The metrics file after runs, read by Python's prometheus_client text parser.
    func testMetricsFileReadsWithPrometheusParser() throws {
        try write("src/a.txt", "hello\n")
        try write("src/b.txt", "world!\n")
        try mkdir("metrics")
        let metrics = path("metrics/plugsync.prom")
        let text =
            "settings:\n  metrics_file: '\(metrics)'\ndefinitions:\n"
            + definition("docs", source: path("src"), destination: path("dst"), ["max_age: 7d"])
            + definition("gone", source: path("missing"), destination: path("dst2"))
            + definition("idle", source: path("src"), destination: path("dst3"))
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
        assertExit(try plugsync("run", "docs"), 0)
        assertExit(try plugsync("run", "gone"), 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: metrics))
        XCTAssertEqual(temporaryFiles(in: path("metrics")), [], "written atomically, nothing left beside it")

        let samples = try parsedSamples(metrics)
        func value(_ name: String, _ labels: [String: String]) -> Double? {
            samples.first { $0.name == name && $0.labels == labels }?.value
        }
        let now = Date().timeIntervalSince1970
        let docs = ["definition": "docs"]
        XCTAssertEqual(value("plugsync_last_run_result", ["definition": "docs", "result": "success"]), 1, "\(samples)")
        XCTAssertEqual(value("plugsync_last_run_result", ["definition": "docs", "result": "refused"]), 0)
        XCTAssertEqual(value("plugsync_last_run_result", ["definition": "docs", "result": "stopped"]), 0)
        XCTAssertEqual(value("plugsync_last_run_result", ["definition": "gone", "result": "refused"]), 1)
        XCTAssertEqual(value("plugsync_last_run_files", ["definition": "docs", "action": "copied"]), 2)
        XCTAssertEqual(value("plugsync_last_run_files", ["definition": "docs", "action": "deleted"]), 0)
        XCTAssertEqual(value("plugsync_last_run_files", ["definition": "docs", "action": "failed"]), 0)
        XCTAssertEqual(value("plugsync_last_run_bytes", docs), 13)
        XCTAssertEqual(value("plugsync_overdue", docs), 0)
        XCTAssertEqual(value("plugsync_overdue", ["definition": "idle"]), 0)
        XCTAssertNil(value("plugsync_last_run_timestamp_seconds", ["definition": "idle"]), "never ran")
        XCTAssertNil(value("plugsync_last_success_timestamp_seconds", ["definition": "gone"]), "never succeeded")
        let last = try XCTUnwrap(value("plugsync_last_run_timestamp_seconds", docs))
        XCTAssertLessThan(abs(last - now), 60)
        XCTAssertEqual(value("plugsync_last_success_timestamp_seconds", docs), last)
        let duration = try XCTUnwrap(value("plugsync_last_run_duration_seconds", docs))
        XCTAssertTrue(duration >= 0 && duration < 30, "\(duration)")

        // The next run rewrites it; 9 days on, the overdue definition says so.
        assertExit(try plugsync("run", "gone", environment: ["PLUGSYNC_NOW": "\(Int(now + 9 * 86400))"]), 3)
        let later = try parsedSamples(metrics)
        XCTAssertEqual(later.first { $0.name == "plugsync_overdue" && $0.labels == docs }?.value, 1, "\(later)")
    }

    private struct Sample: Decodable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// The file's samples as prometheus_client's parser reads them (it throws on a bad file).
    private func parsedSamples(_ file: String) throws -> [Sample] {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = []
            for family in text_string_to_metric_families(open(sys.argv[1]).read()):
                assert family.type == "gauge", family
                for s in family.samples:
                    out.append({"name": s.name, "labels": s.labels, "value": s.value})
            print(json.dumps(out))
            """
        try write("parse.py", script)
        let output = try shell("python3 \(quote(path("parse.py"))) \(quote(file))")
        return try JSONDecoder().decode([Sample].self, from: Data(output.utf8))
    }

    // MARK: the file

    /// `add` and `edit` write max_age and notify; the settings section and the desktop key are
    /// kept as they are; `show` prints them back.
    func testAddAndEditWriteMaxAgeAndNotify() throws {
        let text =
            "settings:\n  metrics_file: /var/lib/prometheus/node-exporter/plugsync.prom\ndefinitions:\n"
            + definition(
                "docs", source: path("src"), destination: path("dst"),
                ["max_age: 7d", "notify:", "  desktop: true", "  url: https://hc-ping.com/0b1c", "  events: [failure]"])
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
        assertExit(try plugsync("edit", "docs", "--description", "Documents"), 0)
        let file = read("plugsync.yaml") ?? ""
        XCTAssertTrue(
            file.hasPrefix("settings:\n  metrics_file: /var/lib/prometheus/node-exporter/plugsync.prom\n"), file)
        XCTAssertTrue(
            file.contains(
                "    max_age: 7d\n    notify:\n      desktop: true\n      url: 'https://hc-ping.com/0b1c'\n      events: [failure]\n"
            ), file)

        assertExit(
            try plugsync(
                "add", "pics", "--source", path("pics"), "--destination", path("pics-dst"), "--max-age", "12h",
                "--notify-url", "https://hc.example.org/ping/abc", "--notify-events", "start, success,failure"), 0)
        let show = try plugsync("show", "pics")
        assertExit(show, 0)
        XCTAssertTrue(
            show.stdout.contains(
                "  max_age: 12h\n  notify:\n    url: 'https://hc.example.org/…'\n    events: [start, success, failure]\n"
            ), "\(show)")
        XCTAssertFalse(show.stdout.contains("/ping/abc"), "a ping URL's path is its secret: not shown")
        XCTAssertTrue(read("plugsync.yaml")?.contains("url: 'https://hc.example.org/ping/abc'") == true)
        assertExit(try plugsync("edit", "pics", "--max-age", "90m", "--notify-url", "", "--notify-desktop"), 0)
        let edited = try plugsync("show", "pics")
        XCTAssertTrue(
            edited.stdout.contains(
                "  max_age: 90m\n  notify:\n    desktop: true\n    events: [start, success, failure]\n"),
            "\(edited)")
        assertExit(try plugsync("edit", "pics", "--no-notify-desktop"), 0)
        let off = try plugsync("show", "pics")
        XCTAssertTrue(
            off.stdout.contains("  max_age: 90m\n  notify:\n    events: [start, success, failure]\n"), "\(off)")

        let bad = try plugsync("edit", "pics", "--max-age", "soon")
        assertExit(bad, 2)
        XCTAssertTrue(bad.stderr.contains("--max-age soon"), "\(bad)")
        let badURL = try plugsync("edit", "pics", "--notify-url", "hc-ping.com/x")
        assertExit(badURL, 2)
        XCTAssertTrue(badURL.stderr.contains("not an http:// or https:// URL"), "\(badURL)")
    }

    /// A bad `settings:` is refused like any mistake in the file: one line, file:line, field, exit 2.
    func testBadSettingsAreOneLineErrors() throws {
        for (settings, line, field, problem) in [
            ("settings:\n  metrics_file: plugsync.prom\n", 2, "settings.metrics_file", "must be an absolute path"),
            ("settings:\n  metrics_file: /var/lib/\n", 2, "settings.metrics_file", "names a folder"),
            ("settings:\n  metric_file: /tmp/p.prom\n", 2, "settings.metric_file", "did you mean \"metrics_file\""),
            ("settings: [a]\n", 1, "settings", "must be a mapping"),
        ] {
            try (settings + "definitions:\n" + definition("docs", source: path("src"), destination: path("dst")))
                .write(toFile: configPath, atomically: true, encoding: .utf8)
            let result = try plugsync("run", "docs")
            assertExit(result, 2)
            XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
            let message = result.stderrLines.first ?? ""
            XCTAssertTrue(message.contains("\(configPath):\(line):"), message)
            XCTAssertTrue(message.contains(field), message)
            XCTAssertTrue(message.contains(problem), message)
        }
    }
}
