extension HTTPTestClient {
    /// ``request(port:method:path:headers:body:timeout:)`` on the calling thread, blocking it.
    ///
    /// For load from many clients at once, each on a thread of its own (`Thread`): blocking
    /// calls queued on Dispatch's global queue hold its few worker threads, and the pool grows
    /// only slowly, so dozens of concurrent clients there mostly wait for a thread.
    public static func requestOnThisThread(
        port: Int,
        method: String = "GET",
        path: String,
        headers: [String: String] = [:],
        body: String? = nil,
        timeout: Double = 10
    ) throws -> HTTPTestResponse {
        try self.blockingRequest(port: port, method: method, path: path, headers: headers, body: body, timeout: timeout)
    }
}
