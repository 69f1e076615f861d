import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

/// The answer of `GET /v1/audit/verify`: its body when it is a `VerifyResponse`, and its text.
struct Verified: Sendable {
    let body: VerifyResponse?
    let raw: String
    var ok: Bool? { body?.ok }
    var events: Int64? { body?.events }
    var firstBadSeq: Int64? { body?.firstBadSeq }
    var broken: [VerifyResponse.BrokenRange] { body?.broken ?? [] }
}

extension AuditCheckpoint {
    /// The query of `GET /v1/audit/verify` that checks the log against this checkpoint.
    var query: String {
        let stamp = WireJSON.formatDate(time)
        let t = stamp.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? stamp
        return "?checkpoint_seq=\(seq)&checkpoint_head=\(head)&checkpoint_time=\(t)&checkpoint_mac=\(mac)"
    }
}

func verify(_ tv: TestVault, _ auditor: String, checkpoint: AuditCheckpoint? = nil) async throws -> Verified {
    try await withAPI(tv) { api in
        let r = try await api.call(.get, "/v1/audit/verify" + (checkpoint?.query ?? ""), key: auditor)
        return Verified(body: try? r.decode(VerifyResponse.self), raw: r.raw)
    }
}

@Suite("Tampering with the audit log is detected at the right sequence")
struct AuditTamperTests {
    static let columns = ["time", "service", "role", "action", "subject_id", "fields", "purpose", "legal_basis", "decision",
                          "code", "request_id", "ref", "target", "prev_hash", "hash"]

    @Test("editing any column of an event breaks the chain at that event", arguments: columns)
    func editColumn(_ column: String) async throws {
        let tv = try await TestVault.make()
        let (auditor, _, _, _) = try await populated(tv)
        let value = column == "time" ? "1" : "'x'"
        try await tv.tamper("UPDATE audit_events SET \(column) = \(value) WHERE seq = 6")
        let r = try await verify(tv, auditor)
        #expect(r.ok == false)
        #expect(r.firstBadSeq == 6, "\(r.raw)")
    }

    @Test("verify goes on after a break: two separate edits are two ranges, and every event is counted")
    func everyRange() async throws {
        let tv = try await TestVault.make()
        let (auditor, _, _, _) = try await populated(tv)
        let total = try await tv.vault.store.lastAuditEvent()!.seq
        try await tv.tamper("UPDATE audit_events SET purpose = 'payment' WHERE seq = 4;\nUPDATE audit_events SET code = 'x' WHERE seq = 8")
        let r = try await verify(tv, auditor)
        #expect(r.ok == false)
        #expect(r.events == total, "every event is checked, not only those before the first break: \(r.raw)")
        #expect(r.broken.map { [$0.from, $0.to] } == [[4, 4], [8, 8]], "\(r.raw)")
        #expect(r.broken.allSatisfy { !$0.reason.isEmpty })
    }

    @Test("stored bytes are MAC'd as stored: an unknown decision or an odd field list is not normalised away", arguments: [
        "UPDATE audit_events SET decision = 'maybe' WHERE decision = 'deny'",
        "UPDATE audit_events SET fields = fields || ',' WHERE fields <> '' AND seq = (SELECT MIN(seq) FROM audit_events WHERE fields <> '')",
    ])
    func storedBytes(_ sql: String) async throws {
        let tv = try await TestVault.make()
        let (auditor, _, _, _) = try await populated(tv)
        #expect(try await verify(tv, auditor).ok == true)
        try await tv.tamper(sql)
        let r = try await verify(tv, auditor)
        #expect(r.ok == false, "\(r.raw)")
    }

    @Test("deleting, swapping or inserting events is detected")
    func structural() async throws {
        let tv = try await TestVault.make()
        let (auditor, _, _, _) = try await populated(tv)
        try await tv.tamper("DELETE FROM audit_events WHERE seq = 4")
        #expect(try await verify(tv, auditor).firstBadSeq == 4)

        let tv2 = try await TestVault.make()
        let (auditor2, _, _, _) = try await populated(tv2)
        try await tv2.tamper("""
            UPDATE audit_events SET seq = CASE seq WHEN 5 THEN -6 WHEN 6 THEN -5 END WHERE seq IN (5, 6);
            UPDATE audit_events SET seq = -seq WHERE seq < 0;
            """)
        #expect(try await verify(tv2, auditor2).firstBadSeq == 5)

        let tv3 = try await TestVault.make()
        let (auditor3, _, _, _) = try await populated(tv3)
        try await tv3.tamper("""
            INSERT INTO audit_events (seq, time, service, role, action, fields, decision, prev_hash, hash)
            SELECT seq + 1, time, 'crm', 'service', 'detokenize', 'cpf', 'allow', hash, 'forged' FROM audit_events ORDER BY seq DESC LIMIT 1
            """)
        #expect(try await verify(tv3, auditor3).firstBadSeq == 11)
    }

    @Test("a log cut back below a checkpoint, or rewritten before it with the key, fails verify --checkpoint")
    func checkpoints() async throws {
        let tv = try await TestVault.make()
        let (auditor, crm, token, _) = try await populated(tv)
        let checkpoint = try await withAPI(tv) { api in
            let r = try await api.call(.get, "/v1/audit/checkpoint", key: auditor)
            #expect(r.status == .ok)
            return try r.decode(AuditCheckpoint.self)
        }
        #expect(checkpoint.seq == 11)
        try await withAPI(tv) { api in _ = try await api.detokenize(key: crm, purpose: "collection-call", [token]) }
        var r = try await verify(tv, auditor, checkpoint: checkpoint)
        #expect(r.ok == true, "\(r.raw)")

        // An altered checkpoint is refused outright.
        let forged = AuditCheckpoint(seq: 3, head: checkpoint.head, time: checkpoint.time, mac: checkpoint.mac)
        let refused = try await withAPI(tv) { api in
            let a = try await api.call(.get, "/v1/audit/verify" + forged.query, key: auditor)
            return (a.status, a.errorCode)
        }
        #expect(refused.0 == .unprocessableContent)
        #expect(refused.1 == .checkpointInvalid)

        // Someone holding the audit key rewrites event 3 and re-chains everything after it:
        // the chain verifies on its own, but not against the checkpoint.
        let chain = tv.vault.chain
        let rows = try await tv.vault.store.auditPage(after: 2, limit: 1000)
        var prev = try #require(try await tv.vault.store.auditPage(after: 1, limit: 1).first).hash
        var statements: [String] = []
        for e in rows {
            var draft = e.draft
            if e.seq == 3 { draft.target = "rewritten" }
            let sealed = chain.seal(draft, seq: e.seq, prevHash: prev)
            let target = draft.target.map { "'\($0)'" } ?? "NULL"
            statements.append("UPDATE audit_events SET target = \(target), prev_hash = '\(sealed.prevHash)', hash = '\(sealed.hash)' WHERE seq = \(e.seq)")
            prev = sealed.hash
        }
        try await tv.tamper(statements.joined(separator: ";\n"))
        r = try await verify(tv, auditor)
        #expect(r.ok == true, "re-chained with the key, the chain alone looks intact: \(r.raw)")
        r = try await verify(tv, auditor, checkpoint: checkpoint)
        #expect(r.ok == false)
        #expect(r.firstBadSeq == 11, "\(r.raw)")

        // Cut back below the checkpoint.
        try await tv.tamper("DELETE FROM audit_events WHERE seq >= 9")
        r = try await verify(tv, auditor, checkpoint: checkpoint)
        #expect(r.ok == false)
        #expect(r.firstBadSeq == 9, "\(r.raw)")
    }

    @Test("a broken chain does not stop the vault: it starts, logs the break, keeps appending")
    func brokenChainKeepsServing() async throws {
        let tv = try await TestVault.make()
        let (auditor, crm, token, _) = try await populated(tv)
        try await tv.tamper("UPDATE audit_events SET service = 'someone-else' WHERE seq = 5")
        let restarted = try await tv.reopen()
        await restarted.vault.checkAuditChainOnStart()
        #expect(restarted.logs.text.contains("AUDIT CHAIN BROKEN"))
        try await withAPI(restarted) { api in
            let c = try await api.createSubject(key: crm, ref: "after-break", ["name": "Ana"])
            #expect(c.status == .created)
            let r = try await api.detokenize(key: crm, purpose: "payment", [c.tokens["name"]!, token])
            #expect(r.results[0].value == "Ana")
        }
        let r = try await verify(restarted, auditor)
        #expect(r.firstBadSeq == 5)
        let last = try await restarted.vault.store.lastAuditEvent()
        #expect(last?.seq == 14, "creation, two reveal decisions and the verify itself were appended after the break")
    }

    @Test("many concurrent requests share commits and leave one valid, gap-free chain")
    func concurrentWrites() async throws {
        let tv = try await TestVault.make()
        let (auditor, crm, token, _) = try await populated(tv)
        try await withAPI(tv) { api in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<40 {
                    group.addTask {
                        if i % 2 == 0 {
                            _ = try await api.detokenize(key: crm, purpose: "collection-call", [token, token])
                        } else {
                            _ = try await api.createSubject(key: crm, ref: "bulk-\(i)", ["name": "Pessoa \(i)", "cpf": "529.982.247-25"])
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let r = try await verify(tv, auditor)
        #expect(r.ok == true, "\(r.raw)")
        #expect(r.events == Int64(10 + 20 * 2 + 20))
    }
}
