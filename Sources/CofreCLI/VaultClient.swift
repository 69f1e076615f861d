public import ArgumentParser
import AsyncHTTPClient
import CofreAPI
import CofreClient
import Foundation
import NIOCore

/// Where the DPO's and auditor's commands reach the vault; the key comes from COFRE_TOKEN.
public struct ClientOptions: ParsableArguments {
    @Option(help: "The vault's address, http://… or https://… (COFRE_ADDR). Default: http://127.0.0.1:8200. The key comes from COFRE_TOKEN.")
    var addr: String?

    public init() {}
}

/// `--json`, for the commands whose answer has a text form too.
public struct OutputOptions: ParsableArguments {
    @Flag(help: "Print the vault's answer as JSON (the API's own shape) instead of text.")
    var json = false

    public init() {}
}

/// Runs a command's calls through `CofreClient`, the library services use too. The key comes from
/// COFRE_TOKEN only, never from a flag, so it does not land in shell history or `ps`.
enum VaultConnection {
    static func with<T>(_ options: ClientOptions, _ body: (CofreClient) async throws -> T) async throws -> T {
        let env = ProcessInfo.processInfo.environment
        var base = options.addr ?? env["COFRE_ADDR"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:8200"
        while base.hasSuffix("/") { base.removeLast() }
        guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw CLIError("--addr must start with http:// or https://")
        }
        guard let token = env["COFRE_TOKEN"], !token.isEmpty else {
            throw CLIError("set COFRE_TOKEN to your key (issued by the operator with `cofre service issue NAME`)")
        }
        // A short connect timeout: the client keeps retrying a refused connection until it expires.
        let http = HTTPClient(eventLoopGroupProvider: .singleton,
                              configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(3), read: .seconds(120))))
        let client = CofreClient(baseURL: base, key: token, httpClient: http)
        do {
            let result = try await body(client)
            try? await http.shutdown()
            return result
        } catch let e as CofreClientError {
            try? await http.shutdown()
            throw explain(e, base: base)
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    /// The vault's code and message, with a hint for the usual causes.
    static func explain(_ e: CofreClientError, base: String) -> CLIError {
        // What the vault (or whatever answers at that address) said is escaped before it reaches a terminal.
        guard let status = e.status else {
            if e.code == CofreClientError.transport {
                return CLIError("\(Terminal.escape(e.message)). Is `cofre serve` running? (--addr / COFRE_ADDR)")
            }
            return CLIError(Terminal.escape(e.message))
        }
        let hint: String = switch status {
        case 401: " — COFRE_TOKEN is missing, unknown or revoked"
        case 403: " — this key's role may not do that"
        default: ""
        }
        return CLIError("the vault answered \(status) \(Terminal.escape(e.code.rawValue)): \(Terminal.escape(e.message))\(hint)")
    }

    /// A wire value as the `--json` output prints it.
    static func json(_ value: some Encodable) throws -> String {
        String(decoding: try WireJSON.encoder.encode(value), as: UTF8.self)
    }
}
