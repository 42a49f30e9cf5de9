import DesktopNotifications
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Whose desktop a notification goes to.
enum DesktopAudience: Sendable, Equatable {
    /// This process's session bus: `plugsync run` and the user agent.
    case ownSession
    /// Each user with an active graphical session, on that user's session bus: the system agent.
    /// For a drive a desktop's disk service (udisks) mounted, also the user it mounted it for.
    case graphicalSessions(mountedFor: uid_t? = nil)

    static let graphicalSessions = DesktopAudience.graphicalSessions(mountedFor: nil)

    /// This audience for news about the drive mounted at `mountPoint`.
    func about(driveAt mountPoint: String?) -> DesktopAudience {
        guard case .graphicalSessions = self, let mountPoint else { return self }
        return .graphicalSessions(mountedFor: Self.mountedFor(mountPoint))
    }

    /// The user udisks mounted a drive for: it mounts under /media/USER/ (Debian) or
    /// /run/media/USER/ (where /media is shared); nil for any other mount point.
    static func mountedFor(_ mountPoint: String) -> uid_t? {
        let parts = mountPoint.split(separator: "/")
        let user: Substring
        if parts.count >= 3 && parts[0] == "media" {
            user = parts[1]
        } else if parts.count >= 4 && parts[0] == "run" && parts[1] == "media" {
            user = parts[2]
        } else {
            return nil
        }
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwnam_r(String(user), &entry, &buffer, buffer.count, &found) == 0, found != nil,
            entry.pw_uid != 0
        else { return nil }
        return entry.pw_uid
    }
}

/// Desktop notifications (`notify: desktop: true`): what they say, and sending them to the
/// audience. Never changes a run's result: a bus that is absent or does not answer costs at
/// most `DesktopNotifier.timeout` and one warning line.
enum DesktopNotices {
    /// Shows `notification` to `audience`; `log` gets one line per desktop it did not reach.
    /// True when at least one desktop showed it.
    @discardableResult
    static func show(
        _ notification: DesktopNotification, to audience: DesktopAudience, name: String,
        timeout: Double = DesktopNotifier.timeout, log: (String) -> Void
    ) -> Bool {
        switch audience {
        case .ownSession:
            guard let problem = DesktopNotifier.send(notification, timeout: timeout) else { return true }
            log("\(name): the desktop notification was not shown: \(problem)")
            return false
        case .graphicalSessions(let mountedFor):
            if let problem = DesktopNotifier.unavailable {
                log("\(name): the desktop notification was not shown: \(problem)")
                return false
            }
            var users = DesktopNotifier.graphicalSessionUsers()
            if let mountedFor, !users.contains(mountedFor) { users.append(mountedFor) }
            var problems = [String?](repeating: nil, count: users.count)
            let lock = Lock()
            // One thread per user: several desktops cost one timeout, not one each.
            runOnThreads(users.count) { index in
                let problem = DesktopNotifier.send(notification, toUser: users[index], timeout: timeout)
                lock.withLock { problems[index] = problem }
            }
            for (uid, problem) in zip(users, problems) {
                if let problem { log("\(name): the desktop notification to user \(uid) was not shown: \(problem)") }
            }
            return problems.contains { $0 == nil }
        }
    }

    static func started(_ name: String, line: String) -> DesktopNotification {
        DesktopNotification(summary: "\(name): backup started", body: line, urgency: .low, icon: "drive-harddisk")
    }

    static func finished(_ outcome: RunOutcome) -> DesktopNotification {
        let name = outcome.name
        var body = outcome.message.isEmpty ? [] : [outcome.message]
        body.append(outcome.summary)
        let text = body.joined(separator: "\n")
        switch outcome.status {
        case .success:
            return DesktopNotification(summary: "\(name): backup done", body: text, icon: "drive-harddisk")
        case .failures:
            return DesktopNotification(
                summary: "\(name): backup done with failures", body: text, urgency: .critical, icon: "dialog-warning")
        case .error:
            return DesktopNotification(
                summary: "\(name): backup failed", body: text, urgency: .critical, icon: "dialog-error")
        case .refused:
            return DesktopNotification(
                summary: "\(name): backup refused", body: text, urgency: .critical, icon: "dialog-error")
        case .stopped:
            return DesktopNotification(summary: "\(name): backup stopped", body: text, icon: "dialog-warning")
        }
    }

    /// A drive that matched a definition's label or UUID but not its File Check.
    static func leftAlone(drive: String, definition: String, why: String) -> DesktopNotification {
        DesktopNotification(
            summary: "\(drive) was plugged in, but its File Check failed: left alone",
            body: "\(definition): \(why)", urgency: .critical, icon: "dialog-warning")
    }

    static func overdue(_ name: String, line: String) -> DesktopNotification {
        DesktopNotification(summary: "\(name): backup overdue", body: line, urgency: .critical, icon: "dialog-warning")
    }

    /// After a drive's runs: unmounted (and powered off) or not.
    static func released(drive: String, detail: String, safe: Bool) -> DesktopNotification {
        safe
            ? DesktopNotification(
                summary: "\(drive): backup done, safe to remove", body: detail, icon: "media-eject")
            : DesktopNotification(
                summary: "\(drive): backup done, but NOT safe to remove", body: detail, urgency: .critical,
                icon: "dialog-warning")
    }
}

extension NotifySettings {
    /// Desktop notifications for `event` are asked for.
    func desktopWants(_ event: Event) -> Bool { desktop == true && wants(event) }
}

/// The desktop notifications of one run: `start` on a thread of its own while the run goes on,
/// then the result's, after the start's, both within `DesktopNotifier.timeout` of the result.
final class RunNotices: @unchecked Sendable {
    private let notify: NotifySettings
    private let name: String
    private let audience: DesktopAudience
    private let done = Condition()
    private var startPending = false

    init?(_ definition: Definition, audience: DesktopAudience) {
        guard let notify = definition.notify, notify.desktop == true else { return nil }
        self.notify = notify
        self.name = definition.name
        self.audience = audience
    }

    func started(_ line: String) {
        guard notify.wants(.start) else { return }
        startPending = true
        startThread { [self] in
            DesktopNotices.show(DesktopNotices.started(name, line: line), to: audience, name: name, log: warn)
            done.lock()
            startPending = false
            done.broadcast()
            done.unlock()
        }
    }

    func finished(_ outcome: RunOutcome) {
        // The start's notification first, even when the result shows none: the process may exit
        // next, and must not while that thread still loads libsystemd.
        let deadline = Condition.now() + DesktopNotifier.timeout
        done.lock()
        while startPending && done.wait(until: deadline) {}
        done.unlock()
        guard notify.wants(outcome.status == .success ? .success : .failure) else { return }
        DesktopNotices.show(
            DesktopNotices.finished(outcome), to: audience, name: name,
            timeout: max(0.1, deadline - Condition.now()), log: warn)
    }

    private func warn(_ line: String) { printError("warning: " + line) }
}
