import CofreHTTP
import CofreTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// A JSON answer from the router. Immutable, and its JSON values are plain Foundation values, so it
/// may cross tasks in the concurrency tests.
struct Answer: @unchecked Sendable {
    let status: HTTPResponse.Status
    let json: [String: Any]
    let raw: String
    var headers: HTTPFields = [:]

    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    var errorMessage: String? { (json["error"] as? [String: Any])?["message"] as? String }
    subscript(key: String) -> Any? { json[key] }
    var tokens: [String: String] { json["tokens"] as? [String: String] ?? [:] }
    var results: [[String: Any]] { json["results"] as? [[String: Any]] ?? [] }
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
        let raw = String(buffer: response.body)
        let json = (try? JSONSerialization.jsonObject(with: Data(raw.utf8))) as? [String: Any] ?? [:]
        return Answer(status: response.status, json: json, raw: raw, headers: response.headers)
    }

    func post(_ uri: String, key: String?, _ object: [String: Any]) async throws -> Answer {
        let data = try JSONSerialization.data(withJSONObject: object)
        return try await call(.post, uri, key: key, body: String(decoding: data, as: UTF8.self))
    }

    func createSubject(key: String, ref: String, _ fields: [String: String]) async throws -> Answer {
        try await post("/v1/subjects", key: key, ["external_ref": ref, "fields": fields])
    }

    func detokenize(key: String, purpose: String, _ tokens: [String]) async throws -> Answer {
        try await post("/v1/detokenize", key: key, ["purpose": purpose, "tokens": tokens])
    }
}

/// Runs `body` against the router of a fresh (or given) test vault.
@discardableResult
func withAPI<T: Sendable>(_ tv: TestVault, _ body: @Sendable @escaping (API) async throws -> T) async throws -> T {
    let app = buildApplication(vault: tv.vault, settings: HTTPSettings(), logger: tv.logs.logger)
    return try await app.test(.router) { client in try await body(API(client: client)) }
}
