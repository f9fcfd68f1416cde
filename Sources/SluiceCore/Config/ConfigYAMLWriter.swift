/// Writes the plans and keys of a config file as YAML, deterministically: mappings sorted by
/// key, every string double-quoted (route keys hold spaces and braces, stage names slashes),
/// numbers in their shortest exact form. `sluice import-aws` uses it (``AWSImport``).
struct ConfigYAMLWriter {
    /// A token bucket: `{ rate: R, burst: B }`.
    struct Bucket: Sendable, Equatable {
        var rate: Double
        var burst: Int
    }

    /// A calendar quota.
    struct QuotaEntry: Sendable, Equatable {
        var limit: Int
        var period: String
        var initialOffset: Int
    }

    /// One plan.
    struct PlanEntry: Sendable, Equatable {
        var name: String
        /// A comment line written above the plan's settings.
        var comment: String?
        var throttle: Bucket?
        var quota: QuotaEntry?
        /// Stage name → route key → bucket; nil writes no `stages`.
        var stages: [String: [String: Bucket]]?
    }

    /// One API key.
    struct KeyEntry: Sendable, Equatable {
        /// The raw key (`key:`) or its hex SHA-256 (`key_sha256:`).
        var key: String
        var isDigest: Bool
        var plan: String
        var name: String?
        var comment: String?
    }

    /// The whole document, with `header` as comment lines first.
    static func document(header: [String], plans: [PlanEntry], keys: [KeyEntry]) -> String {
        var out = header.map { "# " + self.commentText($0) + "\n" }.joined()
        if plans.isEmpty {
            out += "plans: {}\n"
        } else {
            out += "plans:\n"
            for plan in plans.sorted(by: { $0.name < $1.name }) {
                var body: [String] = []
                if let throttle = plan.throttle {
                    body.append("    throttle: \(self.flow(throttle))")
                }
                if let quota = plan.quota {
                    var fields = "limit: \(quota.limit), period: \(quota.period)"
                    if quota.initialOffset > 0 {
                        fields += ", initial_offset: \(quota.initialOffset)"
                    }
                    body.append("    quota: { \(fields) }")
                }
                if let stages = plan.stages {
                    body.append("    stages:")
                    for (stage, routes) in stages.sorted(by: { $0.key < $1.key }) {
                        if routes.isEmpty {
                            body.append("      \(self.quoted(stage)): {}")
                            continue
                        }
                        body.append("      \(self.quoted(stage)):")
                        body.append("        routes:")
                        for (route, bucket) in routes.sorted(by: { $0.key < $1.key }) {
                            body.append("          \(self.quoted(route)): \(self.flow(bucket))")
                        }
                    }
                }
                let comment = plan.comment.map { "  # " + self.commentText($0) } ?? ""
                if body.isEmpty {
                    // A plan with no limits is still a mapping.
                    out += "  \(self.quoted(plan.name)): {}\(comment)\n"
                } else {
                    out += "  \(self.quoted(plan.name)):\(comment)\n" + body.map { $0 + "\n" }.joined()
                }
            }
        }
        if keys.isEmpty {
            out += "api_keys: []\n"
        } else {
            out += "api_keys:\n"
            let ordered = keys.sorted { a, b in
                (a.plan, a.name ?? "", a.key) < (b.plan, b.name ?? "", b.key)
            }
            for key in ordered {
                if let comment = key.comment {
                    out += "  # \(self.commentText(comment))\n"
                }
                out += "  - \(key.isDigest ? "key_sha256" : "key"): \(self.quoted(key.key))\n"
                out += "    plan: \(self.quoted(key.plan))\n"
                if let name = key.name {
                    out += "    name: \(self.quoted(name))\n"
                }
            }
        }
        return out
    }

    private static func flow(_ bucket: Bucket) -> String {
        "{ rate: \(AWSImport.format(bucket.rate)), burst: \(bucket.burst) }"
    }

    /// A YAML double-quoted scalar: `\` and `"` escaped, and every character YAML could read
    /// as a line break or that is not printable (C0, DEL, C1, U+2028, U+2029, BOM) as `\uXXXX`.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                let value = scalar.value
                if value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029 || value == 0xFEFF {
                    let hex = String(value, radix: 16, uppercase: true)
                    out += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// Comment text on one line: anything YAML could read as a line break becomes a space.
    private static func commentText(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { scalar in
            let value = scalar.value
            return value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029 ? " " : scalar
        }))
    }
}
