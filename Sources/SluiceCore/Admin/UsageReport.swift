/// Per-day usage of a key's quota (AWS GetUsage): units admitted each day and the
/// units that remained in the quota's window at the end of that day.
///
/// Days start at the quota's `offset_hours`, like its windows, so a day never straddles
/// two windows.
public struct UsageReport: Sendable, Hashable {
    /// One day of usage.
    public struct Day: Sendable, Hashable {
        /// The day's number: whole days since 1970-01-01 + offset.
        public let day: Int64
        /// Its start and end, in seconds since the epoch.
        public let start: Int64
        public let end: Int64
        /// The calendar date of its start, less the offset (`YYYY-MM-DD`).
        public let date: String
        /// Units admitted that day.
        public let used: Int
        /// Units left in the quota window at the end of that day (or now, for today).
        public let remaining: Int
    }

    /// Most recent first.
    public let days: [Day]

    /// Builds the report of the `count` days up to the one holding `nowSeconds`.
    /// - Parameters:
    ///   - quota: the plan's quota.
    ///   - usedByDay: units admitted, by day number, as the decision script records them.
    ///   - currentLimit: units of the current window, extension included.
    ///   - currentRemaining: units left in the quota now, as its live state says (today's
    ///     `remaining`; it also reflects resets, which the usage record does not).
    ///   - nowSeconds: Redis's clock.
    ///   - count: days to report.
    public init(quota: Quota, usedByDay: [Int64: Int], currentLimit: Int, currentRemaining: Int? = nil, nowSeconds: Int64, count: Int) {
        let offset = Int64(quota.offsetHours * 3600)
        let today = QuotaCalendar.floorDiv(nowSeconds - offset, 86400)
        let currentWindow = QuotaCalendar.window(period: quota.period, offsetSeconds: offset, at: nowSeconds)
        var days: [Day] = []
        days.reserveCapacity(count)
        for day in stride(from: today, to: today - Int64(count), by: -1) {
            let start = day * 86400 + offset
            let window = QuotaCalendar.window(period: quota.period, offsetSeconds: offset, at: start)
            let limit = window == currentWindow ? currentLimit : quota.limit
            // Units used in the window up to and including this day.
            var usedInWindow = 0
            var d = QuotaCalendar.floorDiv(window.start - offset, 86400)
            while d <= day {
                usedInWindow += usedByDay[d] ?? 0
                d += 1
            }
            days.append(
                Day(
                    day: day, start: start, end: start + 86400, date: QuotaCalendar.dateString(day: day),
                    used: usedByDay[day] ?? 0,
                    remaining: day == today ? (currentRemaining ?? max(0, limit - usedInWindow)) : max(0, limit - usedInWindow)
                )
            )
        }
        self.days = days
    }
}

/// The calendar math of `prelude.lua`, in Swift: quota windows and day numbers, in
/// UTC shifted by an offset, on the proleptic Gregorian calendar.
public enum QuotaCalendar {
    /// A window's start and end, in seconds since the epoch.
    public struct Window: Sendable, Hashable {
        public let start: Int64
        public let end: Int64
    }

    /// Division rounding toward negative infinity.
    public static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// The window of `period` holding the instant `seconds`.
    public static func window(period: QuotaPeriod, offsetSeconds offset: Int64, at seconds: Int64) -> Window {
        let t = seconds - offset
        switch period {
        case .day:
            let start = self.floorDiv(t, 86400) * 86400
            return Window(start: start + offset, end: start + 86400 + offset)
        case .week:
            // 1970-01-05 (day 4) was a Monday.
            let start = self.floorDiv(t - 345_600, 604_800) * 604_800 + 345_600
            return Window(start: start + offset, end: start + 604_800 + offset)
        case .month:
            let (y, m, _) = self.civil(days: self.floorDiv(t, 86400))
            let (ny, nm) = m == 12 ? (y + 1, Int64(1)) : (y, m + 1)
            return Window(start: self.days(year: y, month: m, day: 1) * 86400 + offset, end: self.days(year: ny, month: nm, day: 1) * 86400 + offset)
        }
    }

    /// `YYYY-MM-DD` of a day number.
    public static func dateString(day: Int64) -> String {
        let (y, m, d) = self.civil(days: day)
        func pad(_ v: Int64, _ width: Int) -> String {
            let text = String(v)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return pad(y, 4) + "-" + pad(m, 2) + "-" + pad(d, 2)
    }

    /// Days since 1970-01-01 of a date (H. Hinnant's algorithm).
    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = self.floorDiv(y, 400)
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date of a day number.
    public static func civil(days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = self.floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
    }

    /// RFC 3339 UTC text of an instant in seconds (`2026-11-27T02:00:00Z`).
    public static func timestamp(seconds: Int64) -> String {
        let day = self.floorDiv(seconds, 86400)
        let rest = seconds - day * 86400
        func two(_ v: Int64) -> String { v < 10 ? "0" + String(v) : String(v) }
        return self.dateString(day: day) + "T" + two(rest / 3600) + ":" + two(rest / 60 % 60) + ":" + two(rest % 60) + "Z"
    }
}
