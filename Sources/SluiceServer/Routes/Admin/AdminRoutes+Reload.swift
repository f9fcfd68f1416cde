import Hummingbird
import SluiceAdminAPI
import SluiceCore

extension AdminRoutes {
    /// `POST /admin/v1/reload`: re-reads the config file, like SIGHUP.
    func reload() throws -> Response {
        guard let reloader = self.reloader else {
            throw APIError(.notFound, code: "not_found", message: "this instance was not started from a config file")
        }
        switch reloader.reload() {
        case .success(let config):
            return try Self.response(AdminAPI.ReloadResult(plans: config.rules.plans.count, apiKeys: config.rules.keyCount))
        case .failure(let error):
            throw APIError(.badRequest, code: "invalid_config", message: error.description)
        }
    }
}
