import CofreAPI
import CofreTestSupport
import Foundation
import GRDB
import Testing

@Suite("cofre audit (the auditor's commands over HTTP)", .serialized)
struct AuditorCommandTests {
    @Test("an auditor's session: events as a table and JSON, verify, checkpoint, verify --checkpoint")
    func session() async throws {
        let dir = try makeWorkdir()
        let crm = try issueKey("crm", in: dir)
        let auditor = try issueKey("auditor", in: dir)
        let server = try Server(directory: dir)
        try await server.waitReady()
        let env = ["COFRE_ADDR": "http://127.0.0.1:\(server.port)", "COFRE_TOKEN": auditor]

        let created = try server.curl("POST", "/v1/subjects", key: crm,
                                      sending: CreateSubjectRequest(externalRef: "a-1", fields: ["name": "Maria Souza", "phone": "11 98888-7777"]))
        let tokens = try decode(CreateSubjectResponse.self, created.body).tokens
        _ = try server.curl("POST", "/v1/detokenize", key: crm, sending: DetokenizeRequest(purpose: "collection-call", tokens: [tokens["phone"]!]))

        let table = try runCofre(["audit", "events"], in: dir, env: env)
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("SEQ"))
        #expect(table.stdout.contains("subject.create"))
        #expect(table.stdout.contains("collection-call"))
        #expect(!table.stdout.contains("Maria"))

        let filtered = try runCofre(["audit", "events", "--token", tokens["phone"]!, "--json"], in: dir, env: env)
        let events = try decode(AuditEventsResponse.self, filtered.stdout).events
        #expect(events.count == 1)
        #expect(events.first?.action == AuditAction.detokenize.rawValue)

        let paged = try runCofre(["audit", "events", "--limit", "1"], in: dir, env: env)
        #expect(paged.stdout.contains("more: cofre audit events --after 1"))
        let all = try runCofre(["audit", "events", "--limit", "1", "--all", "--json"], in: dir, env: env)
        #expect(try decode(AuditEventsResponse.self, all.stdout).events.count >= 6)

        let ok = try runCofre(["audit", "verify"], in: dir, env: env)
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("OK: the audit chain is intact"))

        let cp = try runCofre(["audit", "checkpoint", "--out", "cp.json"], in: dir, env: env)
        #expect(cp.status == 0)
        #expect(!(try decode(AuditCheckpoint.self, cp.stdout).mac.isEmpty))
        let withCheckpoint = try runCofre(["audit", "verify", "--checkpoint", "cp.json"], in: dir, env: env)
        #expect(withCheckpoint.status == 0, "\(withCheckpoint.stdout)\(withCheckpoint.stderr)")
        #expect(withCheckpoint.stdout.contains("still holds the checkpoint"))

        // Tamper with the file behind the running server: verify now fails with the sequence.
        try tamperFile(dir + "/data/cofre.sqlite", "UPDATE audit_events SET purpose = 'payment' WHERE seq = 5")
        let broken = try runCofre(["audit", "verify"], in: dir, env: env)
        #expect(broken.status != 0)
        // Text that reached the log behind the vault's back is printed escaped, never as terminal control.
        try tamperFile(dir + "/data/cofre.sqlite", "UPDATE audit_events SET purpose = 'pay' || char(27) || '[2J' || char(13) || 'ment' WHERE seq = 6")
        let escaped = try runCofre(["audit", "events", "--limit", "10"], in: dir, env: env)
        #expect(!escaped.stdout.contains("\u{1b}") && !escaped.stdout.contains("\r"), "a control character reached the terminal")
        #expect(escaped.stdout.contains("pay\\u{1b}[2J\\u{d}ment"), "\(escaped.stdout)")
        #expect(broken.stdout.contains("BROKEN: 1 bad range(s)") && broken.stdout.contains("sequence 5: event content does not match its hash"),
                "\(broken.stdout)")

        // Clear failures for the wrong key, the wrong role, a missing key and no server.
        let wrong = try runCofre(["audit", "verify"], in: dir, env: ["COFRE_ADDR": env["COFRE_ADDR"]!, "COFRE_TOKEN": "cofre_sk_nope"])
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("401"))
        let role = try runCofre(["audit", "events"], in: dir, env: ["COFRE_ADDR": env["COFRE_ADDR"]!, "COFRE_TOKEN": crm])
        #expect(role.status != 0)
        #expect(role.stderr.contains("403"))
        let missing = try runCofre(["audit", "events"], in: dir, env: ["COFRE_ADDR": env["COFRE_ADDR"]!])
        #expect(missing.stderr.contains("set COFRE_TOKEN"))
        #expect(try await server.stop() == 0)
        let down = try runCofre(["audit", "verify"], in: dir, env: env)
        #expect(down.status != 0)
        #expect(down.stderr.contains("cannot reach the vault"))
    }
}

/// Edits an SQLite file behind the server's back, as an attacker with file access would.
func tamperFile(_ path: String, _ sql: String) throws {
    let db = try DatabaseQueue(path: path)
    try db.write { try $0.execute(sql: sql) }
    try db.close()
}
