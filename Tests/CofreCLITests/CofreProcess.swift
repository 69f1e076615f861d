import CofreAPI
import CofreTestSupport
import Foundation
import Testing

/// The `cofre` binary that `swift build` made (tests never build a second one).
let cofreBinary: String = {
    if let explicit = ProcessInfo.processInfo.environment["COFRE_BINARY"] { return explicit }
    return repositoryRoot + "/.build/debug/cofre"
}()

struct RunResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs `cofre` with `args` in `directory`, with a clean COFRE_* environment plus `env`.
/// With `viaScript`, runs that shell command on a pseudo-terminal through util-linux `script`,
/// as a person at a terminal would.
func runCofre(_ args: [String], in directory: String, env: [String: String] = [:], viaScript: String? = nil, stdin: String? = nil) throws -> RunResult {
    var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COFRE_") }
    environment.merge(env) { $1 }
    let (path, arguments) = viaScript.map { ("/usr/bin/script", ["-q", "-e", "-c", $0, "/dev/null"]) } ?? (cofreBinary, args)
    // Standard input is always a pipe, closed once `stdin` (if any) is written.
    let r = try ChildProcess.run(path, arguments, environment: environment, directory: directory, stdin: stdin ?? "")
    return RunResult(status: r.status, stdout: r.stdout, stderr: r.stderr)
}

/// A working directory laid out like a checkout: `deploy/policy.example.yaml`, `keys/README.md` and,
/// with `ring` (the default), a key-encryption key in `keys/` as the platform would supply one
/// (only `cofre serve` creates a development ring, so operator commands need a ring to exist).
func makeWorkdir(ring: Bool = true) throws -> String {
    let dir = try makeTempDirectory()
    try FileManager.default.createDirectory(atPath: dir + "/deploy", withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: examplePolicyPath, toPath: dir + "/deploy/policy.example.yaml")
    // As git checks it out: keys/ holds only its README, with the umask's (open) mode.
    try FileManager.default.createDirectory(atPath: dir + "/keys", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    try FileManager.default.copyItem(atPath: repositoryRoot + "/keys/README.md", toPath: dir + "/keys/README.md")
    if ring { try writeRing(dir + "/keys") }
    return dir
}

/// A fresh key-encryption key `kek-v1.key` in `directory` (made private), not marked as a development ring.
func writeRing(_ directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    chmod(directory, 0o700)
    let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() + "\n"
    _ = FileManager.default.createFile(atPath: directory + "/kek-v1.key", contents: Data(key.utf8), attributes: [.posixPermissions: 0o600])
}

/// A `cofre serve` process on a loopback port, stopped with SIGTERM.
final class Server: @unchecked Sendable {
    let process: ChildProcess
    let port: Int
    let logPath: String
    let directory: String

    init(directory: String, env: [String: String] = [:], arguments: [String] = []) throws {
        self.directory = directory
        // Below the ephemeral range (32768 and up on Linux), where thousands of client connections in
        // TIME_WAIT could hold the port.
        port = Int.random(in: 20000...32000)
        logPath = directory + "/serve-\(port).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COFRE_") }
        environment.merge(env) { $1 }
        // Standard output and error to one open file, the log; standard input /dev/null.
        let log = ChildProcess.Stream.file(logPath, append: true)
        process = try ChildProcess(cofreBinary, ["serve", "--port", String(port)] + arguments, environment: environment,
                                   directory: directory, stdout: log, stderr: log)
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits (bounded) until /healthz answers.
    func waitReady() async throws {
        for _ in 0..<150 {
            if !process.isRunning { break }
            if let r = try? curl("GET", "/healthz"), r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("server did not become ready; log:\n\(log)")
        throw CancellationError()
    }

    /// One HTTP call through curl; returns the status and body.
    func curl(_ method: String, _ path: String, key: String? = nil, body: String? = nil) throws -> (status: Int, body: String) {
        var args = ["-s", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}", "-X", method, "http://127.0.0.1:\(port)\(path)", "-H", "Content-Type: application/json"]
        if let key { args += ["-H", "Authorization: Bearer \(key)"] }
        if let body { args += ["--data-binary", body] }
        let text = try ChildProcess.run("/usr/bin/curl", args).stdout
        guard let nl = text.lastIndex(of: "\n") else { return (0, text) }
        return (Int(text[text.index(after: nl)...]) ?? 0, String(text[..<nl]))
    }

    /// One HTTP call whose body is `request`, a request struct of `CofreAPI`, as the wire's JSON.
    func curl(_ method: String, _ path: String, key: String? = nil, sending request: some Encodable) throws -> (status: Int, body: String) {
        try curl(method, path, key: key, body: try wire(request))
    }

    /// SIGKILL: the process dies at once, wherever it is (a crash, as far as the vault can tell).
    func kill9() {
        process.kill()
        process.waitUntilExit()
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    func stop() async throws -> Int32 {
        process.terminate()
        for _ in 0..<100 where process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning { process.kill(); Issue.record("server ignored SIGTERM") }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// Text that did not decode as the type a test expected: the type, the text and the decoder's complaint.
struct UndecodableJSON: Error, CustomStringConvertible {
    let type: String
    let text: String
    let underlying: String
    var description: String { "not a \(type): \(underlying)\n\(text.prefix(2000))" }
}

/// An answer of the vault's HTTP API, or the `--json` output of a DPO's or auditor's command (the API's
/// own shape), decoded as the wire type `type` of `CofreAPI`, the way a client reads it (`WireJSON.decoder`).
func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
    do {
        return try WireJSON.decoder.decode(T.self, from: Data(text.utf8))
    } catch {
        throw UndecodableJSON(type: "\(T.self)", text: text, underlying: "\(error)")
    }
}

/// A request body of the HTTP API as the wire's JSON text (`WireJSON.encoder`).
func wire(_ request: some Encodable) throws -> String {
    String(decoding: try WireJSON.encoder.encode(request), as: UTF8.self)
}

// The operator commands' `--json` outputs (Sources/CofreCLI/ServiceCommand.swift, KeysCommand.swift) are
// not API types: one line, snake_case keys. These mirror them for the tests.

/// `cofre service issue NAME --json`.
struct IssuedKey: Decodable {
    let service: String
    let key: String
}

/// One row of `cofre service list --json`.
struct ServiceRow: Decodable {
    let service: String
    let role: String
    let activeKeys: Int
    let revokedKeys: Int
    let lastIssued: Date?
}

/// `cofre keys status --json`.
struct KeysStatus: Decodable {
    struct Version: Decodable {
        let version: Int
        let primary: Bool
        let dataKeys: Int
        /// ISO 8601, or empty when unknown.
        let createdAt: String
    }
    struct Instance: Decodable {
        let id: String
        let host: String
        let pid: Int
        let seenAt: String
        let versions: [Int]
        let primary: Int
        let primarySince: String
    }
    let source: String
    let primary: Int
    let versions: [Version]
    let systemKeys: [String: Int]
    let orphanedDataKeys: Int
    let unneededDataKeys: Int
    let queuedForShred: Int
    let instances: [Instance]
}

/// An operator command's `--json` output decoded as `type` (snake_case keys, ISO 8601 dates).
func decodeOperator<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    decoder.dateDecodingStrategy = .iso8601
    do {
        return try decoder.decode(T.self, from: Data(text.utf8))
    } catch {
        throw UndecodableJSON(type: "\(T.self)", text: text, underlying: "\(error)")
    }
}

/// Issues a key for `service` (`cofre service issue SERVICE --json`, plus `arguments`) and returns it.
func issueKey(_ service: String, in directory: String, env: [String: String] = [:], arguments: [String] = []) throws -> String {
    let r = try runCofre(["service", "issue", service, "--json"] + arguments, in: directory, env: env)
    guard r.status == 0 else {
        throw UndecodableJSON(type: "IssuedKey", text: r.stdout, underlying: "cofre service issue \(service) exited \(r.status): \(r.stderr)")
    }
    return try decodeOperator(IssuedKey.self, r.stdout).key
}

/// `cofre keys status --json`, decoded.
func keysStatus(in directory: String, env: [String: String] = [:]) throws -> KeysStatus {
    try decodeOperator(KeysStatus.self, try runCofre(["keys", "status", "--json"], in: directory, env: env).stdout)
}
