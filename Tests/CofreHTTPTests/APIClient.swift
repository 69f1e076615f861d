import CofreAPI
import CofreHTTP
import CofreTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// An answer from the router: its status, headers and the body's bytes, read through the typed wire
/// types of `CofreAPI`. Immutable and made of value types, so it may cross tasks in the concurrency tests.
struct Answer: Sendable {
    let status: HTTPResponse.Status
    let body: Data
    var headers: HTTPFields = [:]

    /// The body as text: for what has no wire type (metrics, a 400's raw JSON) and for messages.
    var raw: String { String(decoding: body, as: UTF8.self) }

    /// The body decoded as `type`, the way a client reads it (`WireJSON.decoder`).
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try WireJSON.decoder.decode(T.self, from: body)
        } catch {
            throw UndecodableAnswer(type: "\(T.self)", status: status, raw: raw, underlying: "\(error)")
        }
    }

    /// The error of an error answer (`{"error":{…}}`); nil for any other body.
    var error: ErrorResponse.Body? { try? decode(ErrorResponse.self).error }
    var errorCode: ErrorCode? { error?.code }
    var errorMessage: String? { error?.message }

    /// The subject of a creation or a field write (`CreateSubjectResponse`); throws for any other body.
    var subject: String { get throws { try decode(CreateSubjectResponse.self).subject } }
    /// The tokens of a creation or a field write; empty for any other body.
    var tokens: [String: String] { (try? decode(CreateSubjectResponse.self))?.tokens ?? [:] }
    /// The per-token decisions of a detokenize; empty for any other body.
    var results: [DetokenizeResponse.Result] { (try? decode(DetokenizeResponse.self))?.results ?? [] }
}

/// A body that is not the wire type a test expected, with what it was instead.
struct UndecodableAnswer: Error, CustomStringConvertible {
    let type: String
    let status: HTTPResponse.Status
    let raw: String
    let underlying: String
    var description: String { "the \(status.code) answer is not a \(type) (\(underlying)): \(raw.prefix(500))" }
}

/// Why one token of a detokenize was refused, if it was.
func deniedCode(_ item: DetokenizeResponse.Result) -> DenialCode? { item.denied?.code }

/// A request body as the wire writes it (`WireJSON.encoder`).
func jsonText(_ body: some Encodable) -> String {
    String(decoding: try! WireJSON.encoder.encode(body), as: UTF8.self)
}

/// Drives the real router of a `TestVault` in-process, as `app.test(.router)` does.
struct API {
    let client: any TestClientProtocol

    func call(_ method: HTTPRequest.Method, _ uri: String, key: String? = nil, body: String? = nil,
              rawBody: ByteBuffer? = nil) async throws -> Answer {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let key { headers[.authorization] = "Bearer \(key)" }
        let buffer = rawBody ?? body.map { ByteBuffer(string: $0) }
        let response = try await client.executeRequest(uri: uri, method: method, headers: headers, body: buffer)
        return Answer(status: response.status, body: Data(response.body.readableBytesView), headers: response.headers)
    }

    /// Sends `body`, encoded as the wire does, with `method` (POST unless told).
    func send(_ method: HTTPRequest.Method, _ uri: String, key: String?, _ body: some Encodable) async throws -> Answer {
        try await call(method, uri, key: key, body: jsonText(body))
    }

    func post(_ uri: String, key: String?, _ body: some Encodable) async throws -> Answer {
        try await send(.post, uri, key: key, body)
    }

    func createSubject(key: String, ref: String, _ fields: [String: String]) async throws -> Answer {
        try await post("/v1/subjects", key: key, CreateSubjectRequest(externalRef: ref, fields: fields))
    }

    func putFields(key: String, subject: String, _ fields: [String: String]) async throws -> Answer {
        try await post("/v1/subjects/\(subject)/fields", key: key, PutFieldsRequest(fields: fields))
    }

    func tokenize(key: String, subject: String, field: String, value: String) async throws -> Answer {
        try await post("/v1/tokenize", key: key, TokenizeRequest(subject: subject, field: field, value: value))
    }

    func detokenize(key: String, purpose: String, _ tokens: [String]) async throws -> Answer {
        try await post("/v1/detokenize", key: key, DetokenizeRequest(purpose: purpose, tokens: tokens))
    }

    func lookup(key: String, purpose: String, field: String, value: String) async throws -> Answer {
        try await post("/v1/lookup", key: key, LookupRequest(purpose: purpose, field: field, value: value))
    }
}

/// Runs `body` against the router of a fresh (or given) test vault.
@discardableResult
func withAPI<T: Sendable>(_ tv: TestVault, _ body: @Sendable @escaping (API) async throws -> T) async throws -> T {
    let app = buildApplication(vault: tv.vault, settings: HTTPSettings(), logger: tv.logs.logger)
    return try await app.test(.router) { client in try await body(API(client: client)) }
}
