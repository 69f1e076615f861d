import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

func events(_ api: API, _ auditor: String, _ query: String = "") async throws -> [AuditEventResponse] {
    let r = try await api.call(.get, "/v1/audit/events?limit=1000" + query, key: auditor)
    #expect(r.status == .ok, "\(r.raw)")
    return try r.decode(AuditEventsResponse.self).events
}

/// Builds a log with a bit of everything, and returns the auditor's key and a token.
func populated(_ tv: TestVault) async throws -> (auditor: String, crm: String, token: String, subject: String) {
    let crm = try await tv.principal("crm").key
    let bot = try await tv.principal("whatsapp-bot").key
    let auditor = try await tv.principal("auditor").key
    let (token, subject) = try await withAPI(tv) { api in
        let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
        let s = try c.subject
        _ = try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!, c.tokens["cpf"]!, c.tokens["debt_amount"]!])
        _ = try await api.detokenize(key: bot, purpose: "payment", [c.tokens["phone"]!])
        _ = try await api.lookup(key: crm, purpose: "payment", field: "cpf", value: "123.456.789-09")
        _ = try await api.call(.put, "/v1/subjects/\(s)/objections/collection-call", key: crm)
        return (c.tokens["phone"]!, s)
    }
    return (auditor, crm, token, subject)
}

@Suite("The audit log over HTTP")
struct AuditTests {
    @Test("every decision leaves exactly one event, with names and codes but no values")
    func oneEventPerDecision() async throws {
        let tv = try await TestVault.make()
        let (auditor, _, _, subject) = try await populated(tv)
        try await withAPI(tv) { api in
            let all = try await events(api, auditor)
            let summary = all.map { "\($0.action)/\($0.decision.rawValue)/\($0.code ?? "-")" }
            #expect(summary == [
                "service.issue/allow/-", "service.issue/allow/-", "service.issue/allow/-",
                "subject.create/allow/-",
                "detokenize/allow/-", "detokenize/allow/-", "detokenize/deny/field_not_allowed",
                "detokenize/deny/purpose_not_allowed",
                "lookup/allow/-",
                "objection.record/allow/-",
            ])
            let reveal = all[4]
            #expect(reveal.action == AuditAction.detokenize.rawValue)
            #expect(reveal.service == "crm")
            #expect(reveal.role == Role.service.rawValue)
            #expect(reveal.subject == subject)
            #expect(reveal.fields == ["phone"])
            #expect(reveal.purpose == "collection-call")
            #expect(reveal.legalBasis == LegalBasis.creditProtection.rawValue)
            #expect(reveal.requestID?.hasPrefix("req_") == true)
            #expect(reveal.ref?.count == 64)
            // Reading was itself audited.
            let after = try await events(api, auditor, "&action=\(AuditAction.auditRead)")
            #expect(after.count == 1)
            #expect(after[0].service == "auditor")
        }
        // Nothing personal in the audit rows.
        let rows = try await tv.vault.store.auditPage(after: 0, limit: 1000).map { "\($0)" }.joined(separator: "\n")
        #expect(rows.contains(subject))
        for secret in joaoStored + joao.values { #expect(!rows.contains(secret)) }
    }

    @Test("filters, the token filter and the cursor")
    func filters() async throws {
        let tv = try await TestVault.make()
        let (auditor, _, token, subject) = try await populated(tv)
        try await withAPI(tv) { api in
            #expect(try await events(api, auditor, "&action=\(AuditAction.detokenize)").count == 4)
            #expect(try await events(api, auditor, "&action=\(AuditAction.detokenize)&decision=\(AuditDecision.deny.rawValue)").count == 2)
            #expect(try await events(api, auditor, "&service=whatsapp-bot&action=\(AuditAction.detokenize)").count == 1)
            #expect(try await events(api, auditor, "&purpose=payment").count == 2)
            // create, three reveal decisions, lookup, objection (the bot's 403 names no subject).
            #expect(try await events(api, auditor, "&subject=\(subject)").count == 6)
            // The token itself is never stored; its keyed reference finds its events.
            let byToken = try await events(api, auditor, "&token=\(token)")
            #expect(byToken.count == 1)
            #expect(byToken.first?.fields == ["phone"])
            #expect(try await events(api, auditor, "&since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z&action=\(AuditAction.lookup)").count == 1)
            #expect(try await events(api, auditor, "&until=2000-01-01T00:00:00Z").isEmpty)

            var seen: [Int64] = []
            var cursor: String? = nil
            repeat {
                let r = try await api.call(.get, "/v1/audit/events?action=\(AuditAction.detokenize)&limit=3" + (cursor.map { "&after=\($0)" } ?? ""),
                                           key: auditor)
                let page = try r.decode(AuditEventsResponse.self)
                seen += page.events.map(\.seq)
                cursor = page.next
            } while cursor != nil
            #expect(seen.count == 4 && seen == seen.sorted())

            for bad in ["?limit=0", "?limit=1001", "?decision=maybe", "?since=yesterday", "?after=-1", "?subjcet=x"] {
                let r = try await api.call(.get, "/v1/audit/events" + bad, key: auditor)
                #expect(r.status == .badRequest, "\(bad)")
            }
        }
    }

    @Test("services and the DPO get 403 on the audit API, and the refusal is audited")
    func onlyAuditors() async throws {
        let tv = try await TestVault.make()
        let (auditor, crm, _, _) = try await populated(tv)
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            for key in [crm, dpo] {
                for path in ["/v1/audit/events", "/v1/audit/verify", "/v1/audit/checkpoint"] {
                    let r = try await api.call(.get, path, key: key)
                    #expect(r.status == .forbidden)
                    #expect(r.errorCode == .forbidden)
                }
            }
            #expect(try await api.call(.get, "/v1/audit/events").status == .unauthorized)
            for action in [AuditAction.auditRead, .auditVerify, .auditCheckpoint] {
                let refused = try await events(api, auditor, "&action=\(action)&decision=\(AuditDecision.deny.rawValue)")
                #expect(refused.map(\.service) == ["crm", "dpo"], "\(action)")
            }
        }
    }

    @Test("verify passes on an intact log")
    func verifyIntact() async throws {
        let tv = try await TestVault.make()
        let (auditor, _, _, _) = try await populated(tv)
        try await withAPI(tv) { api in
            let r = try await api.call(.get, "/v1/audit/verify", key: auditor)
            #expect(r.status == .ok)
            let verified = try r.decode(VerifyResponse.self)
            #expect(verified.ok == true)
            #expect(verified.events == 10)
            #expect(verified.head.count == 64)
        }
    }
}
