import CofreTestSupport
import Foundation
import Testing

/// What a newcomer with the README in hand ran into, through the real binary.
@Suite("first steps: version, help, a busy port, a missing policy, a malformed request", .serialized)
struct NewcomerTests {
    @Test("--version prints the release; --help names postgres:// and every config key")
    func versionAndHelp() throws {
        let dir = try makeWorkdir()
        let version = try runCofre(["--version"], in: dir)
        #expect(version.status == 0)
        #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).range(of: #"^\d+\.\d+\.\d+$"#, options: .regularExpression) != nil)
        let help = try runCofre(["serve", "--help"], in: dir)
        #expect(help.stdout.contains("postgres://"))
        for key in ["policy", "database", "key_store", "keys", "kek_file", "host", "port", "log_level", "retention_sweep_seconds",
                    "key_reload_seconds", "allow_shared_cluster"] {
            #expect(help.stdout.contains(key), "--config help omits \(key)")
        }
        // Export is always JSON: it has no --json that would do nothing.
        #expect(!(try runCofre(["subject", "export", "--help"], in: dir).stdout.contains("--json")))
    }

    @Test("a second server on a busy port says so before it creates a key ring or opens a store")
    func busyPort() async throws {
        let dir = try makeWorkdir()
        let first = try Server(directory: dir)
        try await first.waitReady()
        let fresh = try makeWorkdir(ring: false)
        let second = try runCofre(["serve", "--port", String(first.port)], in: fresh)
        #expect(second.status != 0)
        #expect(second.stderr.contains("port \(first.port)") && second.stderr.contains("in use"), "\(second.stderr)")
        #expect(!second.stderr.contains("bind("), "no raw system call in the message")
        #expect(!FileManager.default.fileExists(atPath: fresh + "/keys/kek-v1.key"), "no key ring created")
        #expect(!FileManager.default.fileExists(atPath: fresh + "/data/cofre.sqlite"), "no store opened")
        #expect(try await first.stop() == 0)
    }

    @Test("a missing policy file says no such file")
    func missingPolicy() throws {
        let dir = try makeWorkdir()
        let r = try runCofre(["serve", "--policy", "nowhere.yaml", "--port", "0"], in: dir)
        #expect(r.status != 0)
        #expect(r.stderr.contains("nowhere.yaml") && r.stderr.contains("no such file"), "\(r.stderr)")
    }

    @Test("an oversized header block answers the contract's JSON error with X-Request-Id, and the server goes on")
    func oversizedHeader() async throws {
        let dir = try makeWorkdir()
        let server = try Server(directory: dir)
        try await server.waitReady()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-s", "-i", "--max-time", "30", "http://127.0.0.1:\(server.port)/healthz",
                       "-H", "X-Padding: " + String(repeating: "a", count: 100_000)]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(text.hasPrefix("HTTP/1.1 400"), "\(text.prefix(200))")
        #expect(text.lowercased().contains("x-request-id: req_"))
        #expect(text.lowercased().contains("content-type: application/json"))
        #expect(text.contains(#"{"error":{"code":"malformed_request""#))
        #expect(try server.curl("GET", "/healthz").status == 200)
        #expect(try await server.stop() == 0)
    }
}
