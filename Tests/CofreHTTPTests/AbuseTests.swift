import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

/// The example policy with one service's quota changed.
func policy(quota service: String, _ change: (inout Quota) -> Void) throws -> Policy {
    var p = try PolicyLoader.load(file: examplePolicyPath)
    change(&p.services[service]!.quota)
    return p
}

/// Every audit row as text, to search for what must never be stored.
func auditText(_ tv: TestVault) async throws -> String {
    try await tv.vault.store.auditPage(after: 0, limit: 100_000).map { "\($0)" }.joined(separator: "\n")
}

/// CONTRACT §2 and §4 v2: a service gets no more than the policy gives it — not by lookup, not by
/// withdrawing objections, not by volume — and cannot write what it likes into the audit log.
@Suite("Abuse resistance: lookup cannot unmask, objections need standing, quotas, audit input")
struct AbuseTests {
    @Test("a lookup on a field the purpose shows masked is 403 field_not_allowed, audited; the CPF brute force cannot start")
    func lookupNeedsPlain() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = try c.subject
            _ = try await api.send(.put, "/v1/subjects/\(s)/consents/collection-whatsapp", key: bot, grant)
            // collection-whatsapp shows the CPF masked (***.456.789-**): a lookup would undo the mask.
            for guess in ["123.456.789-09", "000.456.789-00"] {
                let r = try await api.lookup(key: bot, purpose: "collection-whatsapp", field: "cpf", value: guess)
                #expect(r.status == .forbidden && r.errorCode == .fieldNotAllowed, "\(r.raw)")
            }
            // collection-call shows it masked to the CRM too; payment shows it plain, so the CRM may look it up there.
            #expect(try await api.lookup(key: crm, purpose: "collection-call", field: "cpf", value: "123.456.789-09").status == .forbidden)
            #expect(try await api.lookup(key: crm, purpose: "payment", field: "cpf", value: "123.456.789-09").status == .ok)
        }
        let refused = try await tv.vault.store.auditEvents(AuditQuery(service: "whatsapp-bot", action: AuditAction.lookup.rawValue, limit: 10))
        #expect(refused.count == 2 && refused.allSatisfy { $0.draft.code == ErrorCode.fieldNotAllowed.rawValue && $0.draft.decision == .deny })
    }

    @Test("lookups past the quota answer 429 with Retry-After, one audited refusal per call, and pass again after a minute")
    func lookupQuota() async throws {
        let tv = try await TestVault.make(policy: try policy(quota: "crm") { $0.lookupsPerMinute = 5 })
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            _ = try await api.createSubject(key: crm, ref: "crm-1", joao)
            var statuses: [HTTPResponse.Status] = []
            var last: Answer?
            for i in 0..<8 {
                last = try await api.lookup(key: crm, purpose: "payment", field: "cpf", value: "529.982.247-\(String(format: "%02d", i))")
                statuses.append(last!.status)
            }
            #expect(statuses.prefix(5).allSatisfy { $0 != .tooManyRequests })
            #expect(statuses.suffix(3).allSatisfy { $0 == .tooManyRequests })
            #expect(last?.errorCode == .rateLimited)
            let m = try await api.call(.get, "/metrics")
            #expect(m.raw.contains("cofre_quota_refusals_total") && m.raw.contains("kind=\"lookups\""))
            tv.clock.advance(days: 61.0 / 86400)
            #expect(try await api.lookup(key: crm, purpose: "payment", field: "cpf", value: "123.456.789-09").status == .ok)
        }
        let refusals = try await tv.vault.store.auditEvents(AuditQuery(action: AuditAction.lookup.rawValue, decision: .deny, limit: 100))
            .filter { $0.draft.code == ErrorCode.rateLimited.rawValue }
        #expect(refusals.count == 3)
        #expect(tv.logs.text.contains("quota exceeded"))
    }

    @Test("reveals count per token: a call past the quota is one 429 (Retry-After) and one audit event, whatever its size")
    func revealQuota() async throws {
        let tv = try await TestVault.make(policy: try policy(quota: "crm") { $0.revealsPerMinute = 10; $0.writesPerMinute = 3 })
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let t = try await api.createSubject(key: crm, ref: "crm-1", joao).tokens
            let tokens = Array(t.values)
            #expect(try await api.detokenize(key: crm, purpose: "collection-call", Array(tokens.prefix(7))).status == .ok)
            let refused = try await api.detokenize(key: crm, purpose: "collection-call", Array(tokens.prefix(5)))
            #expect(refused.status == .tooManyRequests && refused.errorCode == .rateLimited)
            let retry = try await api.detokenize(key: crm, purpose: "collection-call", Array(tokens.prefix(4)))
            let seconds = Int(retry.headers[.retryAfter] ?? "") ?? 0
            #expect(retry.status == .tooManyRequests && seconds >= 1 && seconds <= 60)
            // Writes have their own bucket: the create above and two more pass, the fourth does not.
            #expect(try await api.createSubject(key: crm, ref: "crm-2", ["name": "Ana"]).status == .created)
            #expect(try await api.createSubject(key: crm, ref: "crm-3", ["name": "Bia"]).status == .created)
            #expect(try await api.createSubject(key: crm, ref: "crm-4", ["name": "Cia"]).status == .tooManyRequests)
        }
        let events = try await tv.vault.store.auditEvents(AuditQuery(action: AuditAction.detokenize.rawValue, limit: 100))
        #expect(events.filter { $0.draft.code == ErrorCode.rateLimited.rawValue }.count == 2, "one event per refused call, not per token")
    }

    @Test("a minute of reveals far above the service's hourly average raises a bulk_reveal event in the audit log")
    func bulkRevealAlert() async throws {
        let tv = try await TestVault.make(policy: try policy(quota: "crm") { $0.bulkRevealFactor = 10 })
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            var tokens: [String] = []
            for i in 0..<40 {
                let c = try await api.createSubject(key: crm, ref: "crm-\(i)", ["name": "Pessoa \(i)", "cpf": "529.982.247-25", "phone": phone(i)])
                tokens += c.tokens.values
            }
            // An hour at a steady 3 reveals a minute.
            for _ in 0..<60 {
                #expect(try await api.detokenize(key: crm, purpose: "collection-call", Array(tokens.prefix(3))).status == .ok)
                tv.clock.advance(days: 60.0 / 86400)
            }
            #expect(try await tv.vault.store.auditEvents(AuditQuery(action: AuditAction.bulkReveal.rawValue, limit: 10)).isEmpty)
            // Then a drain: 120 values in one minute, 40× the average, still under the quota.
            for _ in 0..<1 { _ = try await api.detokenize(key: crm, purpose: "collection-call", tokens) }
            let alerts = try await tv.vault.store.auditEvents(AuditQuery(action: AuditAction.bulkReveal.rawValue, limit: 10))
            #expect(alerts.count == 1 && alerts.first?.draft.service == "crm" && alerts.first?.draft.code == "bulk_reveal")
            let m = try await api.call(.get, "/metrics")
            #expect(m.raw.contains("cofre_bulk_reveal_alerts_total"))
        }
        #expect(tv.logs.text.contains("bulk reveal"))
    }

    @Test("withdrawing an objection needs the DPO or a service holding the purpose, with evidence; recording stays open")
    func objectionStanding() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = try c.subject
            // Any service that hears it may record an objection, even to a purpose it does not hold.
            let objected = try await api.send(.put, "/v1/subjects/\(s)/objections/collection-call", key: bot, ConsentRequest(channel: "whatsapp"))
            #expect(objected.status == .ok)
            #expect(try objected.decode(ConsentEvent.self).channel == "whatsapp")
            // The bot does not hold collection-call: it may not withdraw it, with or without evidence.
            let evidence = ConsentRequest(evidence: "the debtor asked to be called")
            let byBot = try await api.send(.delete, "/v1/subjects/\(s)/objections/collection-call", key: bot, evidence)
            #expect(byBot.status == .forbidden && byBot.errorCode == .purposeNotAllowed, "\(byBot.raw)")
            #expect(deniedCode(try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!]).results[0]) == .objection)
            #expect(try await api.call(.delete, "/v1/subjects/\(s)/objections/collection-call", key: dpo).errorCode == .evidenceRequired)
            #expect(try await api.send(.delete, "/v1/subjects/\(s)/objections/collection-call", key: dpo, evidence).status == .ok)
        }
        let refusals = try await tv.vault.store.auditEvents(AuditQuery(service: "whatsapp-bot", action: AuditAction.objectionWithdraw.rawValue, limit: 10))
        #expect(refusals.count == 1 && refusals[0].draft.decision == .deny)
    }

    @Test("names the policy does not know are stored as unknown:<keyed hash>, never as sent; a CPF in a path never reaches the log")
    func auditInput() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let auditor = try await tv.principal("auditor").key
        let bigPurpose = String(repeating: "p", count: 900_000)
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let phoneToken = c.tokens["phone"]!
            // A purpose the policy does not have: 404, audited under its keyed hash.
            for purpose in [bigPurpose, "x-not-a-purpose"] {
                let r = try await api.detokenize(key: crm, purpose: purpose, [phoneToken])
                #expect(r.status == .notFound && r.errorCode == .purposeUnknown, "\(r.raw.prefix(300))")
            }
            let lookup = try await api.lookup(key: crm, purpose: "payment", field: "cpf,phone,name", value: "1")
            #expect(lookup.status == .unprocessableContent)
            let path = try await api.call(.get, "/v1/subjects/529.982.247-25/export", key: crm)
            #expect(path.status == .forbidden)
            let filter = try await api.call(.get, "/v1/audit/events?service=no-such-service", key: auditor)
            #expect(filter.status == .ok)
        }
        let text = try await auditText(tv)
        #expect(!text.contains(bigPurpose.prefix(300)))
        #expect(!text.contains("x-not-a-purpose") && !text.contains("cpf,phone,name") && !text.contains("no-such-service"))
        #expect(!text.contains("529.982.247-25") && !text.contains("52998224725"))
        #expect(text.contains("unknown:"))
        let events = try await tv.vault.store.auditPage(after: 0, limit: 10_000)
        var longest = 0
        for e in events {
            let parts: [String] = [e.draft.purpose ?? "", e.draft.subject ?? "", e.draft.target ?? ""] + e.draft.fields
            longest = max(longest, parts.map { $0.unicodeScalars.count }.max() ?? 0)
        }
        #expect(longest <= AuditChain.maxAttribute)
        #expect(try await tv.vault.verifyAudit().ok)
    }

    @Test("a NUL or any control character in a body, a path or a query is 400 at the edge, and the chain stays intact", arguments: [
        ("POST", "/v1/detokenize", #"{"purpose":"pay\u0000ment","tokens":["tok_x"]}"#),
        ("POST", "/v1/lookup", #"{"purpose":"payment","field":"cpf","value":"1\u001b[2J"}"#),
        ("POST", "/v1/detokenize", "{\"purpose\":\"pay\u{7f}ment\",\"tokens\":[\"tok_x\"]}"),
        ("GET", "/v1/audit/events?service=a%00b", ""),
        ("GET", "/v1/subjects/sub_a%00b/consents", ""),
    ])
    func controlCharacters(_ method: String, _ uri: String, _ body: String) async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let auditor = try await tv.principal("auditor").key
        try await withAPI(tv) { api in
            let key = uri.hasPrefix("/v1/audit") ? auditor : crm
            let r = try await api.call(HTTPRequest.Method(method)!, uri, key: key, body: body.isEmpty ? nil : body)
            #expect(r.status == .badRequest && r.errorCode == .malformedRequest, "\(r.raw)")
        }
        #expect(try await tv.vault.verifyAudit().ok)
        #expect(!(try await auditText(tv)).contains("\u{0}"))
    }

    @Test("the role is checked before the body: a wrong caller gets 403 (audited) whatever it sends; text limits count bytes")
    func authorizeFirst() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let auditor = try await tv.principal("auditor").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let s = try await api.createSubject(key: crm, ref: "crm-1", joao).subject
            for body in ["{not json", #"{"reason":"x"}"#, #"{"reason":"x","ticket":"T-1"}"#] {
                let r = try await api.call(.post, "/v1/subjects/\(s)/erase", key: crm, body: body)
                #expect(r.status == .forbidden, "\(body): \(r.raw)")
            }
            #expect(try await api.call(.post, "/v1/subjects", key: auditor, body: "{broken").status == .forbidden)
            #expect(try await api.call(.get, "/v1/audit/events?nonsense=1", key: crm).status == .forbidden)
            // Limits in bytes as well as characters: a 200 KB ticket, a name that is a few letters under piles of combining marks.
            let ticket = try await api.post("/v1/subjects/\(s)/erase", key: dpo, EraseRequest(reason: "r", ticket: String(repeating: "T", count: 200_000)))
            #expect(ticket.status == .badRequest)
            let marks = "Ana" + String(repeating: "\u{0301}", count: 400_000)
            let name = try await api.createSubject(key: crm, ref: "crm-2", ["name": marks])
            #expect(name.status == .unprocessableContent, "\(name.status)")
        }
        let refusals = try await tv.vault.store.auditEvents(AuditQuery(action: AuditAction.subjectErase.rawValue, decision: .deny, limit: 10))
        #expect(refusals.count == 3, "every refusal is audited, whatever the body")
    }
}
