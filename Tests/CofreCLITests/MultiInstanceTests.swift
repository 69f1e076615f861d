import CofreAPI
import CofreTestSupport
import Foundation
import Testing

/// Two real `cofre serve` processes on one PostgreSQL data database and one key database.
@Suite("Several vault instances on PostgreSQL", .serialized, .enabled(if: !TestEngine.current.isSQLite))
struct MultiInstanceTests {
    @Test("a subject created through one is read through the other; a revocation through one binds the other; concurrent writes keep one valid chain")
    func twoInstances() async throws {
        guard case .postgres(let admin) = TestEngine.current else { return }
        let dir = try makeWorkdir()
        let dbs = try await TestVault.createDatabases(admin: admin)
        // CI's throwaway cluster holds both databases: refused unless the operator accepts the shared cluster.
        let refused = try runCofre(["service", "list", "--database", dbs.data, "--key-store", dbs.keys], in: dir)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("same PostgreSQL cluster"), "\(refused.stderr)")
        let stores = ["--database", dbs.data, "--key-store", dbs.keys, "--allow-shared-cluster"]
        func issue(_ name: String) throws -> String {
            let r = try runCofre(["service", "issue", name, "--json"] + stores, in: dir)
            #expect(r.status == 0, "\(r.stderr)")
            return try decodeOperator(IssuedKey.self, r.stdout).key
        }
        let crm = try issue("crm"), bot = try issue("whatsapp-bot"), dpo = try issue("dpo"), auditor = try issue("auditor")
        let a = try Server(directory: dir, arguments: stores)
        let b = try Server(directory: dir, arguments: stores)
        try await a.waitReady()
        try await b.waitReady()
        #expect(a.log.contains("shares the data store's PostgreSQL cluster"))

        let created = try decode(CreateSubjectResponse.self, try a.curl(
            "POST", "/v1/subjects", key: crm,
            sending: CreateSubjectRequest(externalRef: "m-1", fields: ["name": "Maria Souza", "phone": "11 98888-7777"])).body)
        let subject = created.subject
        let phone = try #require(created.tokens["phone"])
        let viaB = try b.curl("POST", "/v1/detokenize", key: crm, sending: DetokenizeRequest(purpose: "collection-call", tokens: [phone]))
        #expect(viaB.body.contains("+5511988887777"), "\(viaB.body)")

        let grant = ConsentRequest(status: ConsentStatus.granted.rawValue, channel: "whatsapp", evidence: "wamid.X", noticeVersion: "2026-01")
        #expect(try a.curl("PUT", "/v1/subjects/\(subject)/consents/collection-whatsapp", key: dpo, sending: grant).status == 200)
        let reveal = DetokenizeRequest(purpose: "collection-whatsapp", tokens: [phone])
        #expect(try b.curl("POST", "/v1/detokenize", key: bot, sending: reveal).body.contains("+5511988887777"))
        #expect(try a.curl("PUT", "/v1/subjects/\(subject)/consents/collection-whatsapp", key: dpo,
                           sending: ConsentRequest(status: ConsentStatus.revoked.rawValue)).status == 200)
        #expect(try b.curl("POST", "/v1/detokenize", key: bot, sending: reveal).body.contains("consent_revoked"))

        // Concurrent writes through both instances.
        try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<24 {
                let server = i % 2 == 0 ? a : b
                group.addTask {
                    try server.curl("POST", "/v1/subjects", key: crm,
                                    sending: CreateSubjectRequest(externalRef: "c-\(i)", fields: ["name": "Pessoa \(i)"])).status
                }
                group.addTask {
                    try server.curl("POST", "/v1/detokenize", key: crm, sending: DetokenizeRequest(purpose: "collection-call", tokens: [phone])).status
                }
            }
            for try await status in group { #expect(status == 200 || status == 201) }
        }
        for server in [a, b] {
            let v = try decode(VerifyResponse.self, try server.curl("GET", "/v1/audit/verify", key: auditor).body)
            #expect(v.ok == true, "\(v)")
        }
        let count = try decode(VerifyResponse.self, try a.curl("GET", "/v1/audit/verify", key: auditor).body).events
        #expect(count >= 4 + 1 + 1 + 2 + 2 + 48)
        #expect(try await a.stop() == 0)
        #expect(try await b.stop() == 0)
    }
}
