import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// One schedule rule: on which days, and when on those days, a definition runs.
///
/// Times are local wall-clock times in the process's time zone (`TZ`, else /etc/localtime);
/// computing them with the C library's `localtime_r`/`mktime` keeps them right across
/// daylight-saving changes (an `at` time that does not exist that day runs at the next valid
/// minute; one that exists twice runs at the first).
public struct ScheduleRule: Sendable, Equatable {
    public enum Days: Sendable, Equatable {
        /// 1 = Sunday … 7 = Saturday (`tm_wday` + 1).
        case weekdays(Set<Int>)
        case monthDays(Set<Int>)
    }
    public enum When: Sendable, Equatable {
        /// Minutes after midnight.
        case at(Int)
        /// Every so many minutes within the window.
        case every(Int)
    }

    public var days: Days = .weekdays(Set(1...7))
    public var when: When
    /// A window in minutes after midnight (start inclusive, end exclusive) for `every`. A window
    /// over midnight (`20:00-08:00`) ends past 1440 (`1200...1920`): on a matching day the rule
    /// fires from its start to midnight and from midnight to its end.
    public var between: ClosedRange<Int>?

    /// `start-end` in minutes after midnight, as written (`end` before `start`: over midnight);
    /// nil for an empty window (`start == end`).
    public static func window(start: Int, end: Int) -> ClosedRange<Int>? {
        start == end ? nil : start...(end > start ? end : end + 24 * 60)
    }

    public init(days: Days = .weekdays(Set(1...7)), when: When, between: ClosedRange<Int>? = nil) {
        self.days = days
        self.when = when
        self.between = between
    }

    public static let weekdayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
    private static let fullWeekdayNames = [
        "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
    ]

    /// The days (1 = Sunday … 7 = Saturday) one word of a schedule names: a day (`mon`,
    /// `monday`, any case), `weekdays`, `weekend`, `daily` or `all`; nil for anything else
    /// (`monkey` is not Monday). The definitions file and the command line both read days so.
    public static func weekdays(named word: String) -> Set<Int>? {
        let lower = word.lowercased()
        switch lower {
        case "daily", "all": return Set(1...7)
        case "weekdays": return Set(2...6)
        case "weekend": return [1, 7]
        default:
            if let index = weekdayNames.firstIndex(of: lower) ?? fullWeekdayNames.firstIndex(of: lower) {
                return [index + 1]
            }
            return nil
        }
    }

    /// The first time strictly after `date` that this rule fires.
    public func nextRun(after date: Date) -> Date? {
        let after = date.timeIntervalSince1970
        var now = time_t(after.rounded(.down))
        var today = tm()
        localtime_r(&now, &today)
        for offset in 0..<400 {
            // Noon of the day `offset` days on: mktime normalizes the date and fills the weekday.
            var day = tm()
            day.tm_year = today.tm_year
            day.tm_mon = today.tm_mon
            day.tm_mday = today.tm_mday + Int32(offset)
            day.tm_hour = 12
            day.tm_isdst = -1
            guard mktime(&day) != -1 else { return nil }
            guard matches(day) else { continue }
            for minute in minutes() {
                guard let candidate = Self.localTime(of: day, minute: minute) else { continue }
                if Double(candidate) > after { return Date(timeIntervalSince1970: Double(candidate)) }
            }
        }
        return nil
    }

    private func matches(_ day: tm) -> Bool {
        switch days {
        case .weekdays(let set): return set.contains(Int(day.tm_wday) + 1)
        case .monthDays(let set): return set.contains(Int(day.tm_mday))
        }
    }

    /// The instant of `minute` (after midnight) on `day`'s date in local time: the first of two
    /// when the clock is set back, the end of the gap when that time is skipped; nil if the
    /// result would fall on another day.
    static func localTime(of day: tm, minute: Int) -> time_t? {
        func wallMinute(_ t: time_t) -> (sameDay: Bool, minute: Int) {
            var t = t
            var parts = tm()
            localtime_r(&t, &parts)
            let same = parts.tm_year == day.tm_year && parts.tm_mon == day.tm_mon && parts.tm_mday == day.tm_mday
            return (same, Int(parts.tm_hour) * 60 + Int(parts.tm_min))
        }
        func make(_ isDST: Int32) -> time_t {
            var parts = tm()
            parts.tm_year = day.tm_year
            parts.tm_mon = day.tm_mon
            parts.tm_mday = day.tm_mday
            parts.tm_hour = Int32(minute / 60)
            parts.tm_min = Int32(minute % 60)
            parts.tm_isdst = isDST
            return mktime(&parts)
        }
        // The time as it exists: try both offsets, keep those that read back as asked.
        let exact = [make(0), make(1)].filter { $0 != -1 && wallMinute($0) == (true, minute) }
        if let first = exact.min() { return first }
        // Skipped (spring forward): mktime lands past the gap; walk back to the gap's end.
        var t = make(-1)
        if t == -1 { return nil }
        for _ in 0..<(26 * 60) {
            let here = wallMinute(t)
            guard here.sameDay && here.minute < minute else { break }
            t += 60
        }
        while true {
            let earlier = wallMinute(t - 60)
            guard earlier.sameDay && earlier.minute > minute else { break }
            t -= 60
        }
        // Seconds into the minute (zones with odd offsets) are dropped: whole minutes only.
        t -= t % 60
        let result = wallMinute(t)
        return result.sameDay && result.minute >= minute ? t : nil
    }

    /// The minutes of a matching day at which the rule fires, in order.
    func minutes() -> [Int] {
        switch when {
        case .at(let minute): return [minute]
        case .every(let interval):
            let window = between ?? 0...(24 * 60)
            return stride(from: window.lowerBound, to: window.upperBound, by: interval).map { $0 % (24 * 60) }.sorted()
        }
    }
}

extension Array where Element == ScheduleRule {
    /// The earliest next run of any rule.
    public func nextRun(after date: Date) -> Date? {
        compactMap { $0.nextRun(after: date) }.min()
    }
}
