import CofreCrypto
import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Gives each request a random id and logs one line per request: method, route, status, duration.
/// Headers (Authorization above all), bodies and query strings are never logged.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = CofreRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.requestID = "req_" + Identifiers.base32((try? Random.bytes(10)) ?? [])
        context.logger[metadataKey: "request_id"] = .string(context.requestID)
        let start = ContinuousClock.now
        var response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        context.logger.info("request", metadata: [
            "method": .string(request.method.rawValue),
            "route": .string(context.endpointPath ?? "unmatched"),
            "status": .stringConvertible(response.status.code),
            "duration_ms": .string(String(format: "%.2f", ms)),
        ])
        response.headers[HTTPField.Name("X-Request-Id")!] = context.requestID
        return response
    }
}
