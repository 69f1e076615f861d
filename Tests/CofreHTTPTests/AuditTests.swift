import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

func events(_ api: API, _ auditor: String, _ query: String = "") async throws -> [[String: Any]] {
    let r = try await api.call(.get, "/v1/audit/events?limit=1000" + query, key: auditor)
    #expect(r.status == .ok, "\(r.raw)")
    return r.json["events"] as? [[String: Any]] ?? []
}

/// Builds a log with a bit of everything, and returns the auditor's key and a token.
func populated(_ tv: TestVault) async throws -> (auditor: String, crm: String, token: String, subject: String) {
    let crm = try await tv.principal("crm").key
    let bot = try await tv.principal("whatsapp-bot").key
    let auditor = try await tv.principal("auditor").key
    let (token, subject) = try await withAPI(tv) { api in
        let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
        let s = c["subject"] as! String
        _ = try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!, c.tokens["cpf"]!, c.tokens["debt_amount"]!])
        _ = try await api.detokenize(key: bot, purpose: "payment", [c.tokens["phone"]!])
        _ = try await api.post("/v1/lookup", key: crm, ["purpose": "payment", "field": "cpf", "value": "123.456.789-09"])
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
            let summary = all.map { "\($0["action"]!)/\($0["decision"]!)/\(($0["code"] as? String) ?? "-")" }
            #expect(summary == [
                "service.issue/allow/-", "service.issue/allow/-", "service.issue/allow/-",
                "subject.create/allow/-",
                "detokenize/allow/-", "detokenize/allow/-", "detokenize/deny/field_not_allowed",
                "detokenize/deny/purpose_not_allowed",
                "lookup/allow/-",
                "objection.record/allow/-",
            ])
            let reveal = all[4]
            #expect(reveal["service"] as? String == "crm")
            #expect(reveal["role"] as? String == "service")
            #expect(reveal["subject"] as? String == subject)
            #expect(reveal["fields"] as? [String] == ["phone"])
            #expect(reveal["purpose"] as? String == "collection-call")
            #expect(reveal["legal_basis"] as? String == "credit_protection")
            #expect((reveal["request_id"] as? String)?.hasPrefix("req_") == true)
            #expect((reveal["ref"] as? String)?.count == 64)
            // Reading was itself audited.
            let after = try await events(api, auditor, "&action=audit.read")
            #expect(after.count == 1)
            #expect(after[0]["service"] as? String == "auditor")
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
            #expect(try await events(api, auditor, "&action=detokenize").count == 4)
            #expect(try await events(api, auditor, "&action=detokenize&decision=deny").count == 2)
            #expect(try await events(api, auditor, "&service=whatsapp-bot&action=detokenize").count == 1)
            #expect(try await events(api, auditor, "&purpose=payment").count == 2)
            // create, three reveal decisions, lookup, objection (the bot's 403 names no subject).
            #expect(try await events(api, auditor, "&subject=\(subject)").count == 6)
            // The token itself is never stored; its keyed reference finds its events.
            let byToken = try await events(api, auditor, "&token=\(token)")
            #expect(byToken.count == 1)
            #expect(byToken.first?["fields"] as? [String] == ["phone"])
            #expect(try await events(api, auditor, "&since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z&action=lookup").count == 1)
            #expect(try await events(api, auditor, "&until=2000-01-01T00:00:00Z").isEmpty)

            var seen: [Int] = []
            var cursor: String? = nil
            repeat {
                let r = try await api.call(.get, "/v1/audit/events?action=detokenize&limit=3" + (cursor.map { "&after=\($0)" } ?? ""), key: auditor)
                seen += (r.json["events"] as? [[String: Any]] ?? []).compactMap { $0["seq"] as? Int }
                cursor = r.json["next"] as? String
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
                    #expect(r.errorCode == "forbidden")
                }
            }
            #expect(try await api.call(.get, "/v1/audit/events").status == .unauthorized)
            for action in ["audit.read", "audit.verify", "audit.checkpoint"] {
                let refused = try await events(api, auditor, "&action=\(action)&decision=deny")
                #expect(refused.map { $0["service"] as? String } == ["crm", "dpo"], "\(action)")
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
            #expect(r.json["ok"] as? Bool == true)
            #expect(r.json["events"] as? Int == 10)
            #expect((r.json["head"] as? String)?.count == 64)
        }
    }
}
