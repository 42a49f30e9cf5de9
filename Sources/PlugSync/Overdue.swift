import FoundationEssentials
import SystemSupport

/// The time "now" for overdue checks and the metrics file.
public enum FeedbackClock {
    /// `PLUGSYNC_NOW` (seconds since 1970) is for the tests only: they move "now" days ahead to
    /// see a definition go overdue. Unset, this is the system's clock.
    public static func now() -> Date {
        if let text = Posix.environment("PLUGSYNC_NOW"), let seconds = Double(text) {
            return Date(timeIntervalSince1970: seconds)
        }
        return Date()
    }

    /// How far `PLUGSYNC_NOW` moves "now" from the system's clock (0 when unset): a run records
    /// its start moved as much, so that the tests can place runs days apart.
    public static func offset() -> Double { now().timeIntervalSince(Date()) }
}

/// `max_age`: a definition is overdue when its last successful run ended longer ago than that.
/// One that never succeeded counts from its first recorded run; one that never ran is not
/// overdue (there is nothing to be late against yet).
public enum Overdue {
    /// Seconds since the last successful run (or the first run), when that is more than
    /// `max_age`; nil when the definition is not overdue or has no `max_age`. With a drive (its
    /// `key`), only the runs on that drive count: each drive a definition rotates through is
    /// overdue on its own.
    public static func age(of definition: Definition, drive: String? = nil, history: RunHistory, now: Date) -> Double? {
        guard let maxAge = definition.maxAge, let since = since(definition, drive: drive, history: history) else {
            return nil
        }
        let age = now.timeIntervalSince(since)
        return age > Double(maxAge) ? age : nil
    }

    /// When the last successful run (on the drive) ended, else when the first run began; nil
    /// when there was none.
    public static func since(_ definition: Definition, drive: String? = nil, history: RunHistory) -> Date? {
        if let success = history.lastRun(of: definition.name, result: "success", drive: drive) {
            return success.ended
        }
        return history.firstRun(of: definition.name, drive: drive)?.started
    }

    /// What of a definition is overdue, when its `max_age` has passed: the definition itself
    /// (`drive` nil) for one whose runs used no drive, else each drive on its own.
    public static func late(_ definition: Definition, history: RunHistory, now: Date) -> [(
        drive: DriveStatus?, age: Double
    )] {
        guard definition.maxAge != nil else { return [] }
        let drives = DriveStatus.all(of: definition, history: history, now: now)
        if drives.isEmpty {
            return age(of: definition, history: history, now: now).map { [(nil, $0)] } ?? []
        }
        return drives.compactMap { drive in drive.overdue.map { (drive, $0) } }
    }

    /// The agent's line for it: `docs: OVERDUE 9 days: no successful run for 9 days (max_age 7d)`,
    /// or for a drive `offsite: OVERDUE 23 days: OFFSITE-B last backed up 23 days ago (max_age 7d)`.
    public static func line(_ definition: Definition, drive: DriveStatus?, age: Double) -> String {
        let limit = definition.maxAge.map { " (max_age \(AgeText.text($0)))" } ?? ""
        guard let drive else {
            return "\(definition.name): \(text(age)): no successful run for \(AgeText.spoken(age))\(limit)"
        }
        let what =
            drive.lastSuccess == nil
            ? "no successful run on \(drive.name) for \(AgeText.spoken(age))"
            : "\(drive.name) last backed up \(AgeText.spoken(age)) ago"
        return "\(definition.name): \(text(age)): \(what)\(limit)"
    }

    /// `OVERDUE 9 days`.
    public static func text(_ age: Double) -> String { "OVERDUE " + AgeText.spoken(age) }
}

/// A drive a definition's runs used (the same label on drives taken off-site in turn): its own
/// last run and `max_age`.
public struct DriveStatus: Sendable {
    public var drive: DriveIdentity
    /// How `status` names it: its label, with the start of its UUID (or serial) beside it when
    /// several drives of the definition share the label, or what its File Check file holds when
    /// they share the UUID too (clones).
    public var name: String
    public var last: RunRecord
    public var lastSuccess: RunRecord?
    /// Seconds since its last success (or its first run), when more than `max_age`.
    public var overdue: Double?

    /// Every drive of the definition, the most recently used first.
    public static func all(of definition: Definition, history: RunHistory, now: Date) -> [DriveStatus] {
        let latest = history.drives(of: definition.name)
        var labels: [String: Int] = [:]
        var bases: [String: Int] = [:]
        for run in latest {
            labels[run.drive!.name, default: 0] += 1
            bases[run.drive!.baseKey, default: 0] += 1
        }
        return latest.map { run in
            let drive = run.drive!
            var name = drive.name
            let other =
                bases[drive.baseKey, default: 0] > 1
                ? drive.check.map { $0.count <= 13 ? $0 : String($0.prefix(12)) + "…" }
                : (drive.uuid ?? drive.serial ?? drive.device).map { $0.count <= 9 ? $0 : String($0.prefix(8)) }
            if labels[name, default: 0] > 1, let other, other != name {
                name += " [" + other + "]"
            }
            return DriveStatus(
                drive: drive, name: name, last: run,
                lastSuccess: history.lastRun(of: definition.name, result: "success", drive: drive.key),
                overdue: Overdue.age(of: definition, drive: drive.key, history: history, now: now))
        }
    }
}

extension DriveStatus {
    /// The drives of `drives` that `text` names: as `status` shows it (`OFFSITE [3f9a1c2e]`), or
    /// by its label, UUID (or its start, 4 characters at least), serial, device or File Check
    /// content.
    public static func named(_ text: String, in drives: [DriveStatus]) -> [DriveStatus] {
        if let exact = drives.first(where: { $0.name == text }) { return [exact] }
        let lower = text.lowercased()
        return drives.filter { status in
            let drive = status.drive
            if let uuid = drive.uuid?.lowercased(), uuid == lower || (lower.count >= 4 && uuid.hasPrefix(lower)) {
                return true
            }
            return [drive.label, drive.serial, drive.device, drive.check].contains { $0 == text }
        }
    }
}
