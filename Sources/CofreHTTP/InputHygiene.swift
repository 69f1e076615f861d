import CofreAPI
import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Applies the path and query rule before routing, so no handler ever sees a control character there.
struct InputHygieneMiddleware: RouterMiddleware {
    typealias Context = CofreRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path.removingPercentEncoding.map { Substring($0) } ?? Substring(request.uri.path)
        if RequestDecoding.hasControlCharacter(path)
            || request.uri.queryParameters.contains(where: { RequestDecoding.hasControlCharacter($0.key) || RequestDecoding.hasControlCharacter($0.value) }) {
            throw VaultError(.badRequest, .malformedRequest, "control characters (such as NUL) are not accepted in the path or query")
        }
        return try await next(request, context)
    }
}
