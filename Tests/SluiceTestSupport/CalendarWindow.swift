import Foundation

/// Quota windows computed the way a person would, with Foundation's calendar,
/// to check the decision script's own arithmetic against.
public enum CalendarWindow {
    /// The end, in seconds since the epoch, of the window holding `nowMs`.
    /// - Parameters:
    ///   - period: "day", "week" (from Monday) or "month".
    ///   - offsetHours: windows start this many hours after 00:00 UTC.
    public static func end(period: String, offsetHours: Int, nowMs: Int64) -> Int64 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        calendar.firstWeekday = 2
        let offset = TimeInterval(offsetHours * 3600)
        let shifted = Date(timeIntervalSince1970: TimeInterval(nowMs / 1000) - offset)
        let component: Calendar.Component
        switch period {
        case "day": component = .day
        case "week": component = .weekOfYear
        default: component = .month
        }
        let interval = calendar.dateInterval(of: component, for: shifted)!
        return Int64(interval.end.timeIntervalSince1970 + offset)
    }
}
