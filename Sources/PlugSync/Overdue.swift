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
}

/// `max_age`: a definition is overdue when its last successful run ended longer ago than that.
/// One that never succeeded counts from its first recorded run; one that never ran is not
/// overdue (there is nothing to be late against yet).
public enum Overdue {
    /// Seconds since the last successful run (or the first run), when that is more than
    /// `max_age`; nil when the definition is not overdue or has no `max_age`.
    public static func age(of definition: Definition, history: RunHistory, now: Date) -> Double? {
        guard let maxAge = definition.maxAge else { return nil }
        let since: Date
        if let success = history.lastRun(of: definition.name, result: "success") {
            since = success.started.addingTimeInterval(success.seconds)
        } else if let first = history.firstRun(of: definition.name) {
            since = first.started
        } else {
            return nil
        }
        let age = now.timeIntervalSince(since)
        return age > Double(maxAge) ? age : nil
    }

    /// `OVERDUE 9 days`.
    public static func text(_ age: Double) -> String { "OVERDUE " + AgeText.spoken(age) }
}
