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

/// Builds the router over a vault: every route of docs/openapi.yaml.
public func buildRouter(vault: Vault) -> Router<CofreRequestContext> {
    buildRoutes(vault: vault).router
}

/// The routes the vault serves (for the test that compares them with docs/openapi.yaml).
public func servedRoutes(vault: Vault) -> [RouteEntry] {
    buildRoutes(vault: vault).entries
}

func buildRoutes(vault: Vault) -> RouteRecorder {
    _ = MetricsExport.bootstrap
    // HEAD answers like GET without a body (health checks of load balancers use it).
    let router = Router(context: CofreRequestContext.self, options: .autoGenerateHeadEndpoints)
    // Middlewares first: they wrap every route added after them, and the not-found answer.
    router.add(middleware: RequestLogMiddleware())
    // Counts and times requests by route pattern (never the concrete path) and final status.
    router.add(middleware: MetricsMiddleware())
    let routes = RouteRecorder(router)
    router.add(middleware: ErrorMiddleware(routes: routes.table))
    router.add(middleware: InputHygieneMiddleware())
    let api = VaultAPI(vault: vault)
    api.register(on: routes)
    AuditAPI(vault: vault, auth: api).register(on: routes)
    RightsAPI(vault: vault, auth: api).register(on: routes)
    NotifyAPI(vault: vault, auth: api).register(on: routes)
    ConsoleRoutes(vault: vault).register(on: routes)
    routes.freeze()
    return routes
}

/// Builds the whole application: the router, the listener, and extra services (sweepers) to run beside it.
public func buildApplication(vault: Vault, settings: HTTPSettings, logger: Logger, services: [any Service] = []) -> some ApplicationProtocol {
    Application(
        router: buildRouter(vault: vault),
        server: .http1(configuration: .init(additionalChannelHandlers: [ParseErrorBodyHandler()])),
        configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "cofre"),
        services: services,
        logger: logger)
}
