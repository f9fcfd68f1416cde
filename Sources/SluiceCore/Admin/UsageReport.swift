/// Per-day usage of a key (AWS GetUsage): units admitted each day, the units that remained
/// in the quota's window at the end of that day (plans with a quota), and the tokens and cost
/// used that day (plans with named limits).
///
/// Days start at the plan's usage offset (its quota's `offset_hours`, else its first named
/// quota's; ``Plan/usageOffsetSeconds``), like the quota's windows, so a day never straddles
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
        /// Units left in the quota window at the end of that day (or now, for today); nil
        /// without a quota.
        public let remaining: Int?
        /// Tokens and cost used that day; nil when the report has no token record.
        public let tokens: Tokens?
    }

    /// Tokens and cost of one day, as the ledger script records them (`sl:{<id>}:tu`).
    public struct Tokens: Sendable, Hashable {
        /// Input tokens, cached input included (field `<day>:i`).
        public var inputTokens: Int
        /// Output tokens (`<day>:o`).
        public var outputTokens: Int
        /// Cached input tokens (`<day>:k`).
        public var cachedInputTokens: Int
        /// Cost units (`<day>:c`).
        public var cost: Int

        /// Creates a day's tokens.
        public init(inputTokens: Int = 0, outputTokens: Int = 0, cachedInputTokens: Int = 0, cost: Int = 0) {
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
            self.cachedInputTokens = cachedInputTokens
            self.cost = cost
        }

        /// Nothing used.
        public static let zero = Tokens()

        /// Input + output tokens.
        public var totalTokens: Int { self.inputTokens + self.outputTokens }
    }

    /// Most recent first.
    public let days: [Day]

    /// Builds the report of a plan with a quota and no token record: the `count` days up to
    /// the one holding `nowSeconds`, starting at the quota's offset.
    /// - Parameters:
    ///   - quota: the plan's quota.
    ///   - usedByDay: units admitted, by day number, as the decision script records them.
    ///   - currentLimit: units of the current window, extension included.
    ///   - currentRemaining: units left in the quota now, as its live state says (today's
    ///     `remaining`; it also reflects resets, which the usage record does not).
    ///   - nowSeconds: Redis's clock.
    ///   - count: days to report.
    public init(quota: Quota, usedByDay: [Int64: Int], currentLimit: Int, currentRemaining: Int? = nil, nowSeconds: Int64, count: Int) {
        self.init(
            quota: quota, offsetSeconds: Int64(quota.offsetHours * 3600), usedByDay: usedByDay, tokensByDay: nil,
            currentLimit: currentLimit, currentRemaining: currentRemaining, nowSeconds: nowSeconds, count: count
        )
    }

    /// Builds the report of the `count` days up to the one holding `nowSeconds`.
    /// - Parameters:
    ///   - quota: the plan's quota; nil for a plan without one (days then have no `remaining`).
    ///   - offsetSeconds: where days start, in seconds after 00:00 UTC: the plan's
    ///     ``Plan/usageOffsetSeconds`` (its quota's offset when it has a quota).
    ///   - usedByDay: units admitted, by day number (`sl:{<id>}:u`).
    ///   - tokensByDay: tokens and cost by day number (``tokensByDay(_:)`` of `sl:{<id>}:tu`);
    ///     nil: the days carry no tokens; a day missing from it used none.
    ///   - currentLimit: units of the quota's current window, extension included.
    ///   - currentRemaining: units left in the quota now, as its live state says.
    ///   - nowSeconds: Redis's clock.
    ///   - count: days to report.
    public init(
        quota: Quota?, offsetSeconds offset: Int64, usedByDay: [Int64: Int], tokensByDay: [Int64: Tokens]?, currentLimit: Int?,
        currentRemaining: Int?, nowSeconds: Int64, count: Int
    ) {
        let today = QuotaCalendar.floorDiv(nowSeconds - offset, 86400)
        let currentWindow = quota.map { QuotaCalendar.window(period: $0.period, offsetSeconds: offset, at: nowSeconds) }
        var days: [Day] = []
        days.reserveCapacity(count)
        for day in stride(from: today, to: today - Int64(count), by: -1) {
            let start = day * 86400 + offset
            var remaining: Int?
            if let quota {
                let window = QuotaCalendar.window(period: quota.period, offsetSeconds: offset, at: start)
                let limit = window == currentWindow ? (currentLimit ?? quota.limit) : quota.limit
                // Units used in the window up to and including this day.
                var usedInWindow = 0
                var d = QuotaCalendar.floorDiv(window.start - offset, 86400)
                while d <= day {
                    usedInWindow += usedByDay[d] ?? 0
                    d += 1
                }
                remaining = day == today ? (currentRemaining ?? max(0, limit - usedInWindow)) : max(0, limit - usedInWindow)
            }
            days.append(
                Day(
                    day: day, start: start, end: start + 86400, date: QuotaCalendar.dateString(day: day),
                    used: usedByDay[day] ?? 0, remaining: remaining, tokens: tokensByDay.map { $0[day] ?? .zero }
                )
            )
        }
        self.days = days
    }

    /// Tokens by day number from the fields of a token usage record (`sl:{<id>}:tu`, a hash of
    /// `<day>:i|o|k|c` → units, and `day` → the day it was last trimmed). Other fields, and
    /// values that are not integers, are skipped; a negative total (never written) reads as 0.
    public static func tokensByDay(_ fields: [(field: String, value: Int64)]) -> [Int64: Tokens] {
        var result: [Int64: Tokens] = [:]
        for (field, value) in fields {
            guard let colon = field.lastIndex(of: ":"), let day = Int64(field[..<colon]) else { continue }
            let units = Int(clamping: max(0, value))
            switch field[field.index(after: colon)...] {
            case "i": result[day, default: .zero].inputTokens = units
            case "o": result[day, default: .zero].outputTokens = units
            case "k": result[day, default: .zero].cachedInputTokens = units
            case "c": result[day, default: .zero].cost = units
            default: continue
            }
        }
        return result
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
