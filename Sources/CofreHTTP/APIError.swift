import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// The contract's error body: `{"error":{"code":"…","message":"…"}}`, plus `subject` for 409 duplicates
/// and `field` for validation errors.
struct ErrorBody: Encodable {
    struct Inner: Encodable {
        let code: String
        let message: String
        let field: String?
        let subject: String?
        let requestID: String?
        enum CodingKeys: String, CodingKey { case code, message, field, subject, requestID = "request_id" }
    }
    let error: Inner
}

/// Maps every error to the contract's JSON in one place. Messages are fixed texts: no SQL, no stack, no value.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = CofreRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as VaultError {
            var response = Self.response(status(e.kind), code: e.code.rawValue, message: e.message, field: e.field,
                                         subject: e.existingSubject, context: context)
            if let retryAfter = e.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
            return response
        } catch let e as any HTTPResponseError {
            let (code, message): (String, String) = switch e.status.code {
            case 404: ("not_found", "no such route")
            case 405: ("method_not_allowed", "method not allowed on this route")
            case 413: ("body_too_large", "the request body exceeds 1 MiB")
            case 400: ("malformed_request", "the request is malformed")
            default: ("http_error", "the request could not be served")
            }
            return Self.response(e.status, code: code, message: message, context: context)
        } catch {
            context.logger.error("unhandled error", metadata: ["error.type": "\(type(of: error))"])
            return Self.response(.internalServerError, code: "internal_error", message: "an internal error occurred", context: context)
        }
    }

    func status(_ kind: VaultError.Kind) -> HTTPResponse.Status {
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

    static func response(_ status: HTTPResponse.Status, code: String, message: String, field: String? = nil, subject: String? = nil,
                         context: Context) -> Response {
        let body = ErrorBody(error: .init(code: code, message: message, field: field, subject: subject,
                                          requestID: context.requestID.isEmpty ? nil : context.requestID))
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        let data = (try? JSONEncoder.cofre.encode(body)) ?? Data(#"{"error":{"code":"internal_error","message":"encoding failed"}}"#.utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension JSONEncoder {
    /// Sorted keys and ISO 8601 dates: stable output that diffs well.
    static var cofre: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Milliseconds, as the audit chain stores them: a checkpoint's time must round-trip exactly.
        e.dateEncodingStrategy = .custom { date, encoder in
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            var c = encoder.singleValueContainer()
            try c.encode(f.string(from: date))
        }
        return e
    }
}
