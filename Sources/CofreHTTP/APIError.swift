import CofreAPI
import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOHTTP1

/// Maps every error to the contract's JSON in one place. Messages are fixed texts: no SQL, no stack, no value.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = CofreRequestContext
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as VaultError {
            var response = Self.response(Self.status(e.kind), code: e.code, message: e.message, field: e.field,
                                         subject: e.existingSubject, context: context)
            if let retryAfter = e.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
            return response
        } catch is HTTPParserError {
            // A broken body (a bad chunk) found while reading it: the caller's fault, not the vault's.
            return Self.response(.badRequest, code: .malformedRequest, message: "the request is malformed", context: context)
        } catch let e as any HTTPResponseError {
            // A known path with another method: 405 with the methods it accepts.
            if e.status == .notFound, let allow = routes.allow(for: request.uri.path) {
                var response = Self.response(.methodNotAllowed, code: .methodNotAllowed, message: "method not allowed on this route",
                                             context: context)
                response.headers[.allow] = allow
                return response
            }
            let (code, message): (ErrorCode, String) = switch e.status.code {
            case 404: (.notFound, "no such route")
            case 405: (.methodNotAllowed, "method not allowed on this route")
            case 413: (.bodyTooLarge, "the request body exceeds 1 MiB")
            case 400: (.malformedRequest, "the request is malformed")
            default: (.internalError, "the request could not be served")
            }
            return Self.response(e.status, code: code, message: message, context: context)
        } catch {
            context.logger.error("unhandled error", metadata: ["error.type": "\(type(of: error))"])
            return Self.response(.internalServerError, code: .internalError, message: "an internal error occurred", context: context)
        }
    }

    static func status(_ kind: VaultError.Kind) -> HTTPResponse.Status {
        switch kind {
        case .badRequest: .badRequest
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .conflict: .conflict
        case .payloadTooLarge: .contentTooLarge
        case .unprocessable: .unprocessableContent
        case .rateLimited: .tooManyRequests
        case .unavailable: .serviceUnavailable
        case .internalFailure: .internalServerError
        }
    }

    static func response(_ status: HTTPResponse.Status, code: ErrorCode, message: String, field: String? = nil, subject: String? = nil,
                         context: Context) -> Response {
        let body = ErrorResponse(error: .init(code: code, message: message, field: field, subject: subject,
                                              requestID: context.requestID.isEmpty ? nil : context.requestID))
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        let data = (try? WireJSON.encoder.encode(body)) ?? Data(#"{"error":{"code":"internal_error","message":"encoding failed"}}"#.utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
