import CofreTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Sends raw bytes to 127.0.0.1:`port` and returns what comes back within two seconds.
func rawExchange(port: Int, _ request: String) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw CLIFailure("socket") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard connected == 0 else { throw CLIFailure("connect") }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    _ = request.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, 0) }
    var out = [UInt8](), buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        out += buffer[0..<n]
        if String(decoding: out, as: UTF8.self).contains("}}") { break }
    }
    return String(decoding: out, as: UTF8.self)
}

struct CLIFailure: Error { let what: String; init(_ what: String) { self.what = what } }

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
        let text = try ChildProcess.run("/usr/bin/curl", ["-s", "-i", "--max-time", "30", "http://127.0.0.1:\(server.port)/healthz",
                                                         "-H", "X-Padding: " + String(repeating: "a", count: 100_000)]).stdout
        #expect(text.hasPrefix("HTTP/1.1 400"), "\(text.prefix(200))")
        #expect(text.lowercased().contains("x-request-id: req_"))
        #expect(text.lowercased().contains("content-type: application/json"))
        #expect(text.contains(#"{"error":{"code":"malformed_request""#))
        #expect(try server.curl("GET", "/healthz").status == 200)

        // A broken chunked body, found while the body is read: a 400 too, not a 500 or an error log line.
        let key = try issueKey("crm", in: dir)
        let broken = try rawExchange(port: server.port, "POST /v1/detokenize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(key)\r\n"
                                     + "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n5\r\n{\"pur\r\nZZZZ\r\n")
        #expect(broken.hasPrefix("HTTP/1.1 400"), "\(broken.prefix(200))")
        #expect(broken.contains(#""code":"malformed_request""#))
        #expect(try await server.stop() == 0)
        #expect(!server.log.contains("unhandled error"))
    }
}
