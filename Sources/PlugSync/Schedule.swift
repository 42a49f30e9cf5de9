import Foundation

/// One schedule rule: on which days, and when on those days, a definition runs.
///
/// Times are local wall-clock times; computing them with the calendar keeps them right across
/// daylight-saving changes (an `at` time that does not exist that day runs at the next valid
/// minute).
public struct ScheduleRule: Sendable, Equatable {
    public enum Days: Sendable, Equatable {
        /// 1 = Sunday … 7 = Saturday, as `Calendar` numbers weekdays.
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
    /// A window in minutes after midnight (start inclusive, end exclusive) for `every`.
    public var between: ClosedRange<Int>?

    public init(days: Days = .weekdays(Set(1...7)), when: When, between: ClosedRange<Int>? = nil) {
        self.days = days
        self.when = when
        self.between = between
    }

    public static let weekdayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// The first time strictly after `date` that this rule fires.
    public func nextRun(after date: Date, calendar: Calendar = .current) -> Date? {
        let today = calendar.startOfDay(for: date)
        for offset in 0..<400 {
            guard let day = calendar.date(byAdding: .day, value: offset, to: today) else { return nil }
            guard matches(day: day, calendar: calendar) else { continue }
            for minute in minutes() {
                guard
                    let candidate = calendar.date(
                        bySettingHour: minute / 60, minute: minute % 60, second: 0, of: day,
                        matchingPolicy: .nextTime, repeatedTimePolicy: .first, direction: .forward)
                else { continue }
                if candidate > date && calendar.isDate(candidate, inSameDayAs: day) { return candidate }
            }
        }
        return nil
    }

    private func matches(day: Date, calendar: Calendar) -> Bool {
        switch days {
        case .weekdays(let set): return set.contains(calendar.component(.weekday, from: day))
        case .monthDays(let set): return set.contains(calendar.component(.day, from: day))
        }
    }

    /// The minutes of a matching day at which the rule fires, in order.
    func minutes() -> [Int] {
        switch when {
        case .at(let minute): return [minute]
        case .every(let interval):
            let window = between ?? 0...(24 * 60)
            return Array(stride(from: window.lowerBound, to: window.upperBound, by: interval))
        }
    }
}

extension Array where Element == ScheduleRule {
    /// The earliest next run of any rule.
    public func nextRun(after date: Date, calendar: Calendar = .current) -> Date? {
        compactMap { $0.nextRun(after: date, calendar: calendar) }.min()
    }
}
