import Foundation

/// Renders rows as a left-aligned text table with a header row.
enum TextTable {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    /// A text field as table text: `-` when it is null.
    static func cell(_ value: String?) -> String {
        value ?? "-"
    }

    /// An integer as table text.
    static func cell(_ value: Int) -> String {
        String(value)
    }

    /// A JSON number as table text, as it reads in the API's JSON: whole values without a
    /// fraction (`3`, not `3.0`), others in their shortest form (`0.01`).
    static func cell(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 {
            return String(Int64(value))
        }
        return String(value)
    }
}
