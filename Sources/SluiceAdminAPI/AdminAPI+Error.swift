extension AdminAPI {
    /// Every error answer of the API: `{"error": {"code": ..., "message": ...}}`.
    ///
    /// The server writes it with its hot-path writer (the same shape answers decisions'
    /// errors); clients decode it with this type.
    public struct ErrorBody: Codable, Sendable, Hashable {
        /// The error.
        public var error: Detail

        /// Creates an error body.
        public init(error: Detail) {
            self.error = error
        }

        /// A machine-readable code and a message for people.
        public struct Detail: Codable, Sendable, Hashable {
            /// E.g. `unknown_key`, `invalid_body`.
            public var code: String
            /// For people.
            public var message: String

            /// Creates the detail.
            public init(code: String, message: String) {
                self.code = code
                self.message = message
            }
        }
    }
}
