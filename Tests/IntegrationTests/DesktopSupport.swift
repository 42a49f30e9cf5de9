import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// A real session bus (`dbus-daemon --session`) and a notification server on it that records
/// every Notify call (Tests/Fixtures/notification-listener.py, with Debian's python3-dbus and
/// python3-gi: it runs with /usr/bin/python3, the Python those packages are for).
struct NotificationRecord: Decodable, Equatable {
    var app: String
    var icon: String
    var summary: String
    var body: String
    var hints: [String: Int]
    var timeout: Int
    /// The caller's user ID, as the bus saw it.
    var uid: Int
}

final class DesktopSession {
    /// `unix:path=…`
    let address: String
    let record: String
    private var processes: [Process] = []

    /// Starts a bus listening at `socket` and, unless `listener` is false, the recording
    /// listener (`hang`: it records each call and never answers). `user`: run both as this user
    /// (through setpriv; the caller is root), the bus's owner.
    init(socket: String, folder: String, listener: Bool = true, hang: Bool = false, user: uid_t? = nil) throws {
        address = "unix:path=" + socket
        record = folder + "/notifications.jsonl"
        var drop: [String] = []
        if let user {
            drop = [
                try Self.which("setpriv"), "--reuid=\(user)", "--regid=\(Self.group(of: user))", "--clear-groups",
                "--",
            ]
        }
        let daemon = try Self.which("dbus-daemon")
        // Its stderr to a file: as root it says it cannot raise its descriptor limit.
        try start(
            drop + [daemon, "--session", "--address=" + address, "--nofork", "--nopidfile"], environment: [:],
            stderr: folder + "/dbus-daemon.err")
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: socket) { usleep(10_000) }
        guard FileManager.default.fileExists(atPath: socket) else {
            stop()
            throw HarnessError("dbus-daemon did not create \(socket)")
        }
        guard listener else { return }
        let script =
            "/" + "\(#filePath)".split(separator: "/").dropLast(2).joined(separator: "/")
            + "/Fixtures/notification-listener.py"
        let ready = folder + "/listener-ready"
        try start(
            drop + ["/usr/bin/python3", script, record, ready] + (hang ? ["--hang"] : []),
            environment: ["DBUS_SESSION_BUS_ADDRESS": address])
        for _ in 0..<1000 where !FileManager.default.fileExists(atPath: ready) && processes.last!.isRunning {
            usleep(10_000)
        }
        guard FileManager.default.fileExists(atPath: ready) else {
            stop()
            throw HarnessError("the notification listener did not start (needs python3-dbus and python3-gi)")
        }
    }

    deinit { stop() }

    private func start(_ command: [String], environment: [String: String], stderr: String? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        if let stderr {
            FileManager.default.createFile(atPath: stderr, contents: nil)
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
        }
        try process.run()
        processes.append(process)
    }

    /// The listener first, then the bus.
    func stop() {
        for process in processes.reversed() where process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        processes = []
    }

    var notifications: [NotificationRecord] {
        guard let text = try? String(contentsOfFile: record, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONDecoder().decode(NotificationRecord.self, from: Data($0.utf8))
        }
    }

    /// Waits a little for `count` notifications (the listener writes each as it gets it).
    func waitFor(_ count: Int, timeout: Double = 5) -> [NotificationRecord] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let got = notifications
            if got.count >= count { return got }
            usleep(10_000)
        }
        return notifications
    }

    static func which(_ tool: String) throws -> String {
        for dir in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        where FileManager.default.isExecutableFile(atPath: dir + "/" + tool) {
            return dir + "/" + tool
        }
        throw HarnessError("\(tool) is not installed")
    }

    static func group(of uid: uid_t) -> gid_t { getpwuid(uid)?.pointee.pw_gid ?? gid_t(uid) }
}

/// A logind session as sd-login reads it (/run/systemd/sessions/ID: UID, TYPE, ACTIVE), for the
/// system agent's choice of desktops; removed by `remove()`.
struct LoginSession {
    let file: String

    init(uid: uid_t, type: String, active: Bool) throws {
        let id = "plugsynctest\(getpid())\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        file = "/run/systemd/sessions/" + id
        try FileManager.default.createDirectory(atPath: "/run/systemd/sessions", withIntermediateDirectories: true)
        let text =
            "# written by a plugsync test\nUID=\(uid)\nUSER=test\nACTIVE=\(active ? 1 : 0)\nSTATE=\(active ? "active" : "online")\nTYPE=\(type)\nCLASS=user\n"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(atPath: file) }
}

extension IntegrationTestCase {
    /// A bus of this test's own (and its recording listener), stopped at teardown.
    func startDesktopSession(listener: Bool = true, hang: Bool = false) throws -> DesktopSession {
        let folder = path("desktop-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let session = try DesktopSession(socket: folder + "/bus", folder: folder, listener: listener, hang: hang)
        addTeardownBlock { session.stop() }
        return session
    }

    /// The session bus of another user at /run/user/UID/bus, with its listener, both run as that
    /// user, and an active graphical session of that user for sd-login; all removed at teardown.
    /// Needs root.
    func startUserDesktop(uid: uid_t, type: String = "wayland") throws -> DesktopSession {
        let runtime = "/run/user/\(uid)"
        let made = !FileManager.default.fileExists(atPath: runtime)
        if made {
            try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
            guard chown(runtime, uid, DesktopSession.group(of: uid)) == 0, Glibc.chmod(runtime, 0o700) == 0 else {
                throw HarnessError("cannot prepare \(runtime): \(errnoText())")
            }
        }
        let socket = runtime + "/bus"
        guard !FileManager.default.fileExists(atPath: socket) else {
            throw HarnessError("\(socket) exists already: another session bus of user \(uid) is running")
        }
        // The listener writes its record where that user may write.
        let folder = path("desktop-\(uid)")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        _ = Glibc.chmod(path(""), 0o755)
        _ = Glibc.chmod(folder, 0o777)
        let session = try DesktopSession(socket: socket, folder: folder, user: uid)
        let login = try LoginSession(uid: uid, type: type, active: true)
        addTeardownBlock {
            login.remove()
            session.stop()
            try? FileManager.default.removeItem(atPath: socket)
            if made { try? FileManager.default.removeItem(atPath: runtime) }
        }
        return session
    }
}
