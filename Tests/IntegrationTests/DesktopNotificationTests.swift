import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `notify: desktop: true`: notifications through `org.freedesktop.Notifications.Notify` on a
/// real session bus (`dbus-daemon --session`) with a listener that records each call
/// (DesktopSupport.swift).
final class DesktopNotificationTests: IntegrationTestCase {
    private func desktop(events: String?) -> [String] {
        ["notify:", "  desktop: true"] + (events.map { ["  events: \($0)"] } ?? [])
    }

    /// `plugsync run` notifies its own session bus (DBUS_SESSION_BUS_ADDRESS): start and
    /// success with `events: [start, success, failure]`, a refusal with its reason; with the
    /// default events a success shows nothing and a failed before hook shows the refusal; a
    /// dry run shows nothing.
    func testRunNotifiesStartSuccessAndRefusal() throws {
        let session = try startDesktopSession()
        let bus = ["DBUS_SESSION_BUS_ADDRESS": session.address]
        try write("src/a.txt", "hello\n")
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"), desktop(events: "[start, success, failure]")))
        let ok = try plugsync("run", "docs", environment: bus)
        assertExit(ok, 0)
        XCTAssertFalse(ok.stderr.contains("warning"), "\(ok)")
        var got = session.waitFor(2)
        XCTAssertEqual(got.map(\.summary), ["docs: backup started", "docs: backup done"], "\(ok)")
        XCTAssertEqual(got.map(\.app), ["plugsync", "plugsync"])
        XCTAssertEqual(got.first?.body, "Sync docs started (trigger: manual)")
        XCTAssertTrue(got.last?.body.hasPrefix("Done: 1 copied") == true, "\(got)")
        XCTAssertEqual(got.last?.hints["urgency"], 1, "\(got)")
        XCTAssertEqual(got.last?.uid, Int(getuid()))

        try writeConfig(
            definition(
                "docs", source: path("missing"), destination: path("dst"),
                desktop(events: "[start, success, failure]")))
        let refused = try plugsync("run", "docs", environment: bus)
        assertExit(refused, 3)
        got = session.waitFor(4)
        XCTAssertEqual(got.dropFirst(2).map(\.summary), ["docs: backup started", "docs: backup refused"], "\(got)")
        XCTAssertTrue(got.last?.body.hasPrefix("Refused:") == true, "\(got)")
        XCTAssertTrue(got.last?.body.contains(path("missing")) == true, "the reason is in the body: \(got)")
        XCTAssertTrue(got.last?.body.contains("\nRefused: 0 copied") == true, "then the summary: \(got)")
        XCTAssertEqual(got.last?.hints["urgency"], 2, "\(got)")

        // The default events (failure, overdue, removable).
        try writeConfig(definition("docs", source: path("src"), destination: path("dst"), desktop(events: nil)))
        assertExit(try plugsync("run", "docs", environment: bus), 0)
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"),
                desktop(events: nil) + ["hooks:", "  before: 'exit 4'"]))
        assertExit(try plugsync("run", "docs", environment: bus), 3)
        got = session.waitFor(5)
        XCTAssertEqual(got.dropFirst(4).map(\.summary), ["docs: backup refused"], "\(got)")
        XCTAssertTrue(got.last?.body.contains("the before hook failed") == true, "\(got)")

        // A dry run is not a run; `desktop: false` is off.
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"), desktop(events: "[start, success, failure]")))
        assertExit(try plugsync("run", "docs", "--dry-run", environment: bus), 0)
        try writeConfig(
            definition(
                "docs", source: path("missing"), destination: path("dst"),
                ["notify:", "  desktop: false", "  events: [start, success, failure]"]))
        assertExit(try plugsync("run", "docs", environment: bus), 3)
        usleep(300_000)
        XCTAssertEqual(session.notifications.count, 5, "\(session.notifications)")
    }

    /// A run that fails (its destination's parent is a file: exit 2) shows "backup failed"
    /// with the reason, then the summary.
    func testRunNotifiesFailure() throws {
        let session = try startDesktopSession()
        try write("src/a.txt", "hello\n")
        try write("blocker", "a file where the destination's parent should be\n")
        try writeConfig(
            definition("docs", source: path("src"), destination: path("blocker/dst"), desktop(events: "[failure]")))
        let failed = try plugsync("run", "docs", environment: ["DBUS_SESSION_BUS_ADDRESS": session.address])
        assertExit(failed, 2)
        let got = session.waitFor(1)
        XCTAssertEqual(got.map(\.summary), ["docs: backup failed"], "\(failed)")
        XCTAssertTrue(failed.stderr.contains("plugsync: docs: Error: \(path("blocker/dst")): "), "\(failed)")
        XCTAssertTrue(got.first?.body.hasPrefix("Error: \(path("blocker/dst")): ") == true, "the reason: \(got)")
        XCTAssertTrue(got.first?.body.contains("\nFailed: 0 copied") == true, "then the summary: \(got)")
        XCTAssertEqual(got.first?.icon, "dialog-error")
    }

    /// No bus at all, a socket that accepts and never speaks, a notification server that never
    /// answers: the run's exit code is the same, one warning line says why, and the run is at
    /// most about 2 s longer.
    func testAMissingOrDeadBusNeverChangesTheResult() throws {
        try write("src/a.txt", "hello\n")
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"), desktop(events: "[start, success, failure]")))
        func timed(_ address: String, _ expected: Int32) throws -> (CommandResult, Double) {
            let started = Date()
            let result = try plugsync("run", "docs", environment: ["DBUS_SESSION_BUS_ADDRESS": address])
            let seconds = Date().timeIntervalSince(started)
            assertExit(result, expected)
            return (result, seconds)
        }
        let (absent, absentSeconds) = try timed("unix:path=" + path("no-such-bus"), 0)
        XCTAssertEqual(read("dst/a.txt"), "hello\n")
        XCTAssertLessThan(absentSeconds, 1.5, "\(absent)")
        let warnings = absent.stderr.split(separator: "\n").filter { $0.contains("desktop notification") }
        XCTAssertEqual(warnings.count, 2, "one line each for start and done: \(absent)")
        XCTAssertTrue(
            warnings.allSatisfy {
                $0.hasPrefix("warning: docs: the desktop notification was not shown: no session bus at unix:path=")
            }, "\(absent)")

        // A socket that takes the connection and says nothing (a bus that hangs).
        let silent = path("silent-bus")
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in silent.utf8.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
        XCTAssertTrue(bound && listen(listener, 16) == 0, errnoText())
        let (hung, hungSeconds) = try timed("unix:path=" + silent, 0)
        XCTAssertLessThan(hungSeconds, absentSeconds + 3, "\(hung)")
        XCTAssertTrue(hung.stderr.contains("did not answer in time"), "\(hung)")

        // A notification server that records the call and never answers; a refusal stays 3.
        try writeConfig(
            definition("docs", source: path("missing"), destination: path("dst"), desktop(events: "[failure]")))
        let session = try startDesktopSession(hang: true)
        let started = Date()
        let refused = try plugsync("run", "docs", environment: ["DBUS_SESSION_BUS_ADDRESS": session.address])
        let refusedSeconds = Date().timeIntervalSince(started)
        assertExit(refused, 3)
        XCTAssertEqual(session.waitFor(1).map(\.summary), ["docs: backup refused"], "\(refused)")
        XCTAssertLessThan(refusedSeconds, absentSeconds + 3, "\(refused)")
        XCTAssertGreaterThan(refusedSeconds, 1.5, "the call waited for the server: \(refused)")
        XCTAssertEqual(
            refused.stderr.split(separator: "\n").filter { $0.contains("desktop notification") }.count, 1, "\(refused)")
        print(
            "desktop notifications: no bus \(absentSeconds) s, silent bus \(hungSeconds) s, silent server \(refusedSeconds) s"
        )
    }

    /// The system agent (root) notifies each user with an active graphical session (sd-login's
    /// sessions) on that user's bus at /run/user/UID/bus, connected as that user: here an
    /// overdue definition, at the agent's start. A tty session and an inactive graphical one get
    /// nothing.
    func testTheSystemAgentNotifiesGraphicalSessions() throws {
        try requireRoot("a session bus of another user at /run/user/UID/bus", tools: ["setpriv", "dbus-daemon"])
        let user = uid_t(65534)  // nobody
        guard getpwuid(user) != nil else { throw HarnessError("no user \(user) (nobody)") }
        let session = try startUserDesktop(uid: user)
        let tty = try LoginSession(uid: 65533, type: "tty", active: true)
        let inactive = try LoginSession(uid: 65532, type: "x11", active: false)
        defer {
            tty.remove()
            inactive.remove()
        }
        try write("src/a.txt", "hello\n")
        try writeConfig(
            definition(
                "weekly", source: path("src"), destination: path("dst"),
                ["max_age: 7d"] + desktop(events: "[overdue]")))
        assertExit(try plugsync("run", "weekly"), 0)
        let now = Date().timeIntervalSince1970
        let agent = try startPlugsync(
            ["agent", "--config", configPath],
            environment: ["PLUGSYNC_NOW": "\(Int(now + 9.5 * 86400))", "DBUS_SESSION_BUS_ADDRESS": ""])
        defer { agent.stop() }
        func log() -> String { (try? String(contentsOfFile: agent.errPath, encoding: .utf8)) ?? "" }
        let got = session.waitFor(1, timeout: 10)
        XCTAssertEqual(got.map(\.summary), ["weekly: backup overdue"], log())
        XCTAssertTrue(got.first?.body.contains("weekly: OVERDUE 9 days") == true, "\(got)")
        XCTAssertEqual(got.first?.uid, Int(user), "connected as the session's user")
        usleep(500_000)
        XCTAssertFalse(log().contains("was not shown"), log())
        XCTAssertEqual(session.notifications.count, 1)
    }

    /// libsystemd (with the libraries it links, about 1.1 MiB) is loaded at the first
    /// notification only: an agent whose definitions show none never maps it.
    func testLibsystemdIsLoadedOnlyToNotify() throws {
        let session = try startDesktopSession()
        try write("src/a.txt", "hello\n")
        try writeConfig(definition("docs", source: path("src"), destination: path("dst"), ["max_age: 7d"]))
        assertExit(try plugsync("run", "docs"), 0)
        func maps(_ agent: Running) -> String {
            // Through cat: /proc files have no size, and reading by it stops early.
            (try? shell("cat /proc/\(agent.process.processIdentifier)/maps")) ?? ""
        }
        func log(_ agent: Running) -> String { (try? String(contentsOfFile: agent.errPath, encoding: .utf8)) ?? "" }
        let later = ["PLUGSYNC_NOW": "\(Int(Date().timeIntervalSince1970 + 9.5 * 86400))"]
        var environment = later
        environment["DBUS_SESSION_BUS_ADDRESS"] = session.address
        let quiet = try startPlugsync(["agent", "--config", configPath], environment: environment)
        defer { quiet.stop() }
        for _ in 0..<500 where !log(quiet).contains("docs: OVERDUE") && quiet.process.isRunning { usleep(10_000) }
        XCTAssertTrue(log(quiet).contains("docs: OVERDUE 9 days"), log(quiet))
        XCTAssertTrue(maps(quiet).contains("/libudev.so"), "the maps are read")
        XCTAssertFalse(maps(quiet).contains("/libsystemd.so"), maps(quiet))
        quiet.stop()

        // With `desktop: true`: the overdue notification loads it. (As root, the agent notifies
        // the graphical sessions, of which there may be none: the library is loaded either way.)
        try writeConfig(
            definition("docs", source: path("src"), destination: path("dst"), ["max_age: 7d"] + desktop(events: nil)))
        let notifying = try startPlugsync(["agent", "--config", configPath], environment: environment)
        defer { notifying.stop() }
        for _ in 0..<500 where !maps(notifying).contains("/libsystemd.so") && notifying.process.isRunning {
            usleep(10_000)
        }
        XCTAssertTrue(maps(notifying).contains("/libsystemd.so"), log(notifying))
        if getuid() != 0 { XCTAssertEqual(session.waitFor(1).map(\.summary), ["docs: backup overdue"]) }
    }
}
