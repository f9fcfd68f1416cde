extension AdminAPI {
    /// `POST /admin/v1/reload`'s answer: what the config now holds.
    public struct ReloadResult: Codable, Sendable, Hashable {
        /// Always ``Status/reloaded``.
        public var status: Status
        /// Plans in the config.
        public var plans: Int
        /// API keys in the config file.
        public var apiKeys: Int

        /// Creates the answer.
        public init(status: Status = .reloaded, plans: Int, apiKeys: Int) {
            self.status = status
            self.plans = plans
            self.apiKeys = apiKeys
        }

        enum CodingKeys: String, CodingKey {
            case status, plans
            case apiKeys = "api_keys"
        }

        /// The outcome (a refused file is an error answer, not a status).
        public enum Status: String, Codable, Sendable, Hashable {
            /// The file validated and is in force.
            case reloaded
        }
    }
}
