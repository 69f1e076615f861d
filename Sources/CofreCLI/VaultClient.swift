public import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Where the DPO's and auditor's commands reach the vault, and with which key.
public struct ClientOptions: ParsableArguments {
    @Option(help: "The vault's address (COFRE_ADDR). Default: http://127.0.0.1:8200")
    var addr: String?
    @Flag(help: "Print JSON instead of a table.")
    var json = false

    public init() {}
}

/// A small HTTP client for the vault's API. The key comes from COFRE_TOKEN only, never from a flag,
/// so it does not land in shell history or `ps`.
struct VaultClient {
    let base: String
    let token: String

    init(_ options: ClientOptions) throws {
        let env = ProcessInfo.processInfo.environment
        var base = options.addr ?? env["COFRE_ADDR"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:8200"
        while base.hasSuffix("/") { base.removeLast() }
        guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw CLIError("--addr must start with http:// or https://")
        }
        guard let token = env["COFRE_TOKEN"], !token.isEmpty else {
            throw CLIError("set COFRE_TOKEN to your key (issued by the operator with `cofre service issue NAME`)")
        }
        self.base = base
        self.token = token
    }

    enum Method { case get, post, put, delete }

    /// Sends one request; any non-2xx answer becomes a clear `CLIError` with the vault's code and message.
    func send(_ method: Method, _ path: String, query: [(String, String)] = [], body: (any Encodable)? = nil) async throws -> Data {
        var url = base + path
        if !query.isEmpty {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            url += "?" + query.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = switch method {
        case .get: .GET
        case .post: .POST
        case .put: .PUT
        case .delete: .DELETE
        }
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        }
        // A short connect timeout: the client keeps retrying a refused connection until it expires.
        let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                configuration: .init(timeout: .init(connect: .seconds(3), read: .seconds(120))))
        let status: Int
        let data: Data
        do {
            let response = try await client.execute(request, timeout: .seconds(120))
            status = Int(response.status.code)
            data = Data(try await response.body.collect(upTo: 256 << 20).readableBytesView)
            try? await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw CLIError("cannot reach the vault at \(base): \(Self.describe(error)). Is `cofre serve` running? (--addr / COFRE_ADDR)")
        }
        guard (200..<300).contains(status) else { throw Self.failure(status: status, data) }
        return data
    }

    /// Streams a response body to `sink` as it arrives (exports can be large).
    func download(_ path: String, query: [(String, String)] = [], to sink: FileHandle) async throws {
        var url = base + path
        if !query.isEmpty { url += "?" + query.map { "\($0.0)=\($0.1)" }.joined(separator: "&") }
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                configuration: .init(timeout: .init(connect: .seconds(3), read: .seconds(120))))
        do {
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: .seconds(3600))
            } catch {
                throw CLIError("cannot reach the vault at \(base): \(Self.describe(error)). Is `cofre serve` running? (--addr / COFRE_ADDR)")
            }
            guard (200..<300).contains(response.status.code) else {
                let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
                throw Self.failure(status: Int(response.status.code), data)
            }
            for try await chunk in response.body { sink.write(Data(chunk.readableBytesView)) }
            try? await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("connectTimeout") || text.contains("deadlineExceeded") { return "timed out" }
        return "network error"
    }

    static func failure(status: Int, _ data: Data) -> CLIError {
        let error = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        let inner = error?["error"] as? [String: Any]
        let code = inner?["code"] as? String ?? "http_\(status)"
        let message = inner?["message"] as? String ?? "unexpected answer"
        let hint: String = switch status {
        case 401: " — COFRE_TOKEN is missing, unknown or revoked"
        case 403: " — this key's role may not do that"
        default: ""
        }
        return CLIError("the vault answered \(status) \(code): \(message)\(hint)")
    }
}
