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
    let p = Process()
    if let viaScript {
        p.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        p.arguments = ["-q", "-e", "-c", viaScript, "/dev/null"]
    } else {
        p.executableURL = URL(fileURLWithPath: cofreBinary)
        p.arguments = args
    }
    p.currentDirectoryURL = URL(fileURLWithPath: directory)
    var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COFRE_") }
    environment.merge(env) { $1 }
    p.environment = environment
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return RunResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
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
    FileManager.default.createFile(atPath: directory + "/kek-v1.key", contents: Data(key.utf8), attributes: [.posixPermissions: 0o600])
}

/// A `cofre serve` process on a loopback port, stopped with SIGTERM.
final class Server: @unchecked Sendable {
    let process = Process()
    let port: Int
    let logPath: String
    let directory: String

    init(directory: String, env: [String: String] = [:], arguments: [String] = []) throws {
        self.directory = directory
        // Below the ephemeral range (32768 and up on Linux), where thousands of client connections in
        // TIME_WAIT could hold the port.
        port = Int.random(in: 20000...32000)
        logPath = directory + "/serve-\(port).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: cofreBinary)
        process.arguments = ["serve", "--port", String(port)] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COFRE_") }
        environment.merge(env) { $1 }
        process.environment = environment
        let log = FileHandle(forWritingAtPath: logPath)!
        process.standardOutput = log
        process.standardError = log
        try process.run()
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
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let nl = text.lastIndex(of: "\n") else { return (0, text) }
        return (Int(text[text.index(after: nl)...]) ?? 0, String(text[..<nl]))
    }

    /// SIGKILL: the process dies at once, wherever it is (a crash, as far as the vault can tell).
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    func stop() async throws -> Int32 {
        process.terminate()
        for _ in 0..<100 where process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); Issue.record("server ignored SIGTERM") }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

func json(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}
