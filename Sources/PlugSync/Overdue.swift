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

    /// `OVERDUE 9 days`.
    public static func text(_ age: Double) -> String { "OVERDUE " + AgeText.spoken(age) }
}
