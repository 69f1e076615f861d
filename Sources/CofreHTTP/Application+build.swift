public import CofreCore
import Foundation
import HTTPTypes
public import Hummingbird
public import Logging
public import ServiceLifecycle

/// Where and how the HTTP server listens.
public struct HTTPSettings: Sendable {
    public var host: String
    public var port: Int
    public init(host: String = "127.0.0.1", port: Int = 8200) {
        self.host = host
        self.port = port
    }
}

/// Builds the router over a vault: every route of CONTRACT §4 that this version serves.
public func buildRouter(vault: Vault) -> Router<CofreRequestContext> {
    _ = MetricsExport.bootstrap
    let router = Router(context: CofreRequestContext.self)
    // Middlewares first: they wrap every route added after them, and the not-found answer.
    router.add(middleware: RequestLogMiddleware())
    // Counts and times requests by route pattern (never the concrete path) and final status.
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: InputHygieneMiddleware())
    let api = VaultAPI(vault: vault)
    api.register(on: router)
    AuditAPI(vault: vault, auth: api).register(on: router)
    RightsAPI(vault: vault, auth: api).register(on: router)
    return router
}

/// Builds the whole application: the router, the listener, and extra services (sweepers) to run beside it.
public func buildApplication(vault: Vault, settings: HTTPSettings, logger: Logger, services: [any Service] = []) -> some ApplicationProtocol {
    Application(
        router: buildRouter(vault: vault),
        configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "cofre"),
        services: services,
        logger: logger)
}
