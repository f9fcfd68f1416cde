import Hummingbird
import SluiceAdminAPI
import SluiceCore

extension AdminRoutes {
    /// `GET /admin/v1/plans`: the plans in force, by name.
    func plans() throws -> Response {
        let plans = self.store.current.config.rules.plans.values.sorted(by: { $0.name < $1.name })
        return try Self.response(AdminAPI.PlanList(plans: plans.map(AdminAPI.Plan.init)))
    }
}
