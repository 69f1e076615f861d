import CofreAPI
import CofreTestSupport
import Foundation
import Testing

/// A real full disk under a real server: the data store (and with it the audit log) on a 4 MiB tmpfs,
/// filled to the last byte while clients write and reveal. Needs root (mount); elsewhere the fault VFS
/// suite (`StorageFaultTests`) covers the same answers in-process.
@Suite("Disk full under a real server: 201 or 503, never a value without its audit event, and recovery once space is freed",
       .serialized, .enabled(if: TestEngine.current.isSQLite && getuid() == 0))
struct DiskFullTests {
    @Test("the data store's filesystem fills up, then space is freed")
    func diskFills() async throws {
        let dir = try makeWorkdir()
        let volume = dir + "/data"
        try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard sh("mount -t tmpfs -o size=4m,mode=0700 tmpfs '\(volume)'") == 0 else {
            // Root without the right to mount (a restricted container): nothing to judge here.
            return
        }
        defer { _ = sh("umount -l '\(volume)'") }
        let crm = try issueKey("crm", in: dir)
        let auditor = try issueKey("auditor", in: dir)
        let server = try Server(directory: dir)
        try await server.waitReady()

        var acked: [(name: String, token: String)] = []
        func create(_ n: Int) throws -> Int {
            let name = "Pessoa \(n)"
            let r = try server.curl("POST", "/v1/subjects", key: crm,
                                    sending: CreateSubjectRequest(externalRef: "d-\(n)", fields: ["name": name, "phone": "11 9\(String(format: "%08d", n))"]))
            if r.status == 201, let t = try decode(CreateSubjectResponse.self, r.body).tokens["name"] { acked.append((name, t)) }
            return r.status
        }
        #expect(try create(0) == 201)

        // Fill the filesystem with a file the test can delete.
        let filler = volume + "/filler"
        _ = FileManager.default.createFile(atPath: filler, contents: nil)
        let handle = try #require(FileHandle(forWritingAtPath: filler))
        let chunk = Data(count: 16 * 1024)
        while (try? handle.write(contentsOf: chunk)) != nil {}
        try? handle.close()

        var statuses: [Int: Int] = [:]
        for n in 1...300 {
            statuses[try create(n), default: 0] += 1
            if n.isMultiple(of: 10), let first = acked.first {
                let r = try server.curl("POST", "/v1/detokenize", key: crm, sending: DetokenizeRequest(purpose: "collection-call", tokens: [first.token]))
                statuses[r.status, default: 0] += 1
                if r.status != 200 { #expect(!r.body.contains(first.name), "a value left while its audit event could not be written") }
            }
        }
        #expect(Set(statuses.keys).isSubset(of: [200, 201, 503]), "answers on a full disk: \(statuses)")
        #expect(statuses[503, default: 0] > 0, "the disk never showed as full: \(statuses)")

        // Space comes back: the same process serves again, by itself.
        try FileManager.default.removeItem(atPath: filler)
        var ready = false
        for _ in 0..<50 where !ready {
            ready = try server.curl("GET", "/readyz").status == 200
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready, "not ready after space was freed")
        #expect(try create(1000) == 201)
        let tokens = acked.map(\.token)
        let r = try server.curl("POST", "/v1/detokenize", key: crm, sending: DetokenizeRequest(purpose: "collection-call", tokens: tokens))
        let values = try decode(DetokenizeResponse.self, r.body).results.map(\.value)
        #expect(values == acked.map(\.name), "an acknowledged subject is not readable after the disk filled")
        let verify = try server.curl("GET", "/v1/audit/verify", key: auditor)
        #expect(try decode(VerifyResponse.self, verify.body).ok == true, "\(verify.body)")
        #expect(try await server.stop() == 0)
    }

    private func sh(_ command: String) -> Int32 {
        guard let p = try? ChildProcess("/bin/sh", ["-c", command + " >/dev/null 2>&1"]) else { return -1 }
        return p.terminationStatus
    }
}
