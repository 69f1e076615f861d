import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

func deniedCode(_ item: [String: Any]) -> String? { (item["denied"] as? [String: Any])?["code"] as? String }

let grant: [String: String] = ["status": "granted", "channel": "whatsapp", "evidence": "wamid.HBgLNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA", "notice_version": "2026-01"]
let revoke: [String: String] = ["status": "revoked", "channel": "whatsapp", "evidence": "wamid.revoked-by-reply-SAIR"]

@Suite("Consent, objections and lookup over HTTP")
struct ConsentAndLookupTests {
    @Test("WhatsApp bot: consent_missing, then plain phone and masked CPF after consent, then consent_revoked at once")
    func consentLifecycle() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let subject = created["subject"] as! String
            let t = created.tokens
            let ask = [t["phone"]!, t["cpf"]!, t["name"]!, t["debt_amount"]!, t["address"]!]

            var r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", ask)
            #expect(r.results.map(deniedCode) == Array(repeating: "consent_missing", count: 4) + ["field_not_allowed"])

            // The bot holds the purpose, so it may record the opt-in it collected.
            let g = try await api.call(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: bot, body: jsonText(grant))
            #expect(g.status == .ok, "\(g.raw)")
            #expect(g["status"] as? String == "granted")
            #expect(g["recorded_by"] as? String == "whatsapp-bot")
            #expect(g["notice_version"] as? String == "2026-01")

            r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", ask)
            #expect(r.results[0]["value"] as? String == "+5511987654321")
            #expect(r.results[0]["reveal"] as? String == "plain")
            #expect(r.results[1]["value"] as? String == "***.456.789-**")
            #expect(r.results[2]["value"] as? String == "João da Silva")
            #expect(r.results[3]["value"] as? String == "1234.50")
            #expect(deniedCode(r.results[4]) == "field_not_allowed")

            // The DPO records the revocation; the very next request is denied.
            let v = try await api.call(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: dpo, body: jsonText(revoke))
            #expect(v.status == .ok)
            r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", ask)
            #expect(r.results.prefix(4).map(deniedCode) == Array(repeating: "consent_revoked", count: 4))

            // Granting again restores access: the latest event wins; history keeps all three.
            _ = try await api.call(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: dpo, body: jsonText(grant))
            r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [t["phone"]!])
            #expect(r.results[0]["value"] as? String == "+5511987654321")

            let history = try await api.call(.get, "/v1/subjects/\(subject)/consents", key: dpo)
            #expect(history.status == .ok)
            let purposes = try #require(history["purposes"] as? [String: Any])
            let wa = try #require(purposes["collection-whatsapp"] as? [String: Any])
            #expect(wa["consent"] as? String == "granted")
            #expect(wa["legal_basis"] as? String == "consent")
            let events = try #require(wa["history"] as? [[String: Any]])
            #expect(events.map { $0["status"] as? String } == ["granted", "revoked", "granted"])
            #expect(events.map { $0["recorded_by"] as? String } == ["whatsapp-bot", "dpo", "dpo"])
            #expect(events[0]["evidence"] as? String == grant["evidence"])
            let seqs = events.compactMap { $0["seq"] as? Int }
            #expect(seqs == seqs.sorted() && Set(seqs).count == 3)
            #expect(purposes.count == 4)
            #expect((purposes["collection-call"] as? [String: Any])?["consent"] as? String == "none")
        }
        // Evidence is encrypted at rest.
        #expect(!(try await tv.storeBytes()).contains(bytes: Array("HBgLNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA".utf8)))
    }

    @Test("CRM: collection-call needs no consent until the subject objects; withdrawal restores it; legal-defense ignores objections")
    func objections() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let subject = created["subject"] as! String
            let phone = created.tokens["phone"]!, name = created.tokens["name"]!
            var r = try await api.detokenize(key: crm, purpose: "collection-call", [phone])
            #expect(r.results[0]["value"] as? String == "+5511987654321")

            let o = try await api.call(.put, "/v1/subjects/\(subject)/objections/collection-call", key: crm,
                                       body: #"{"channel":"phone","evidence":"call-2026-11-29-0042"}"#)
            #expect(o.status == .ok, "\(o.raw)")
            #expect(o["status"] as? String == "objected")
            r = try await api.detokenize(key: crm, purpose: "collection-call", [phone])
            #expect(deniedCode(r.results[0]) == "objection")
            r = try await api.detokenize(key: crm, purpose: "payment", [name])
            #expect(r.results[0]["value"] as? String == "João da Silva", "an objection is per purpose")

            // Exercise of rights (Art. 7 VI) is not stopped by an objection.
            _ = try await api.call(.put, "/v1/subjects/\(subject)/objections/legal-defense", key: crm)
            r = try await api.detokenize(key: crm, purpose: "legal-defense", [name])
            #expect(r.results[0]["value"] as? String == "João da Silva")

            // Withdrawing needs evidence, and a service that holds the purpose (or the DPO).
            let bare = try await api.call(.delete, "/v1/subjects/\(subject)/objections/collection-call", key: crm)
            #expect(bare.status == .unprocessableContent && bare.errorCode == "evidence_required")
            let w = try await api.call(.delete, "/v1/subjects/\(subject)/objections/collection-call", key: crm,
                                       body: #"{"evidence":"call-2026-11-29-0042: the debtor agreed to be called again"}"#)
            #expect(w.status == .ok)
            #expect(w["status"] as? String == "withdrawn")
            r = try await api.detokenize(key: crm, purpose: "collection-call", [phone])
            #expect(r.results[0]["value"] as? String == "+5511987654321")

            let states = try await api.call(.get, "/v1/subjects/\(subject)/consents", key: crm)
            let purposes = try #require(states["purposes"] as? [String: Any])
            #expect(Set(purposes.keys) == ["collection-call", "payment", "legal-defense"], "a service sees only its purposes")
            let ld = try #require(purposes["legal-defense"] as? [String: Any])
            #expect(ld["objection"] as? Bool == true)
            #expect(ld["objection_blocks"] as? Bool == false)
        }
    }

    @Test("consent and objection input is validated with the contract's codes")
    func consentErrors() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        let dpo = try await tv.principal("dpo").key
        let auditor = try await tv.principal("auditor").key
        try await withAPI(tv) { api in
            let subject = try await api.createSubject(key: crm, ref: "crm-1", joao)["subject"] as! String
            let base = "/v1/subjects/\(subject)"
            var noEvidence = grant
            noEvidence["evidence"] = nil
            var noNotice = grant
            noNotice["notice_version"] = nil
            var badStatus = grant
            badStatus["status"] = "maybe"
            let cases: [(String, String, String?, Any, HTTPResponse.Status, String)] = [
                (base + "/consents/collection-call", dpo, nil, grant, .unprocessableContent, "consent_not_applicable"),
                (base + "/consents/marketing", dpo, nil, grant, .notFound, "purpose_unknown"),
                (base + "/consents/collection-whatsapp", dpo, nil, noEvidence, .unprocessableContent, "evidence_required"),
                (base + "/consents/collection-whatsapp", dpo, nil, noNotice, .unprocessableContent, "notice_version_required"),
                (base + "/consents/collection-whatsapp", dpo, nil, badStatus, .badRequest, "malformed_request"),
                (base + "/consents/collection-whatsapp", crm, nil, grant, .forbidden, "forbidden"),
                (base + "/consents/collection-whatsapp", auditor, nil, grant, .forbidden, "forbidden"),
                ("/v1/subjects/sub_aaaaaaaaaaaaaaaaaaaaaaaaaa/consents/collection-whatsapp", bot, nil, grant, .notFound, "subject_not_found"),
                (base + "/objections/collection-whatsapp", crm, "PUT", [:] as [String: Any], .unprocessableContent, "objection_not_applicable"),
                (base + "/objections/collection-call", auditor, "PUT", [:] as [String: Any], .forbidden, "forbidden"),
            ]
            for (uri, key, _, body, status, code) in cases {
                let r = try await api.call(.put, uri, key: key, body: jsonText(body))
                #expect(r.status == status, "\(uri) \(r.raw)")
                #expect(r.errorCode == code, "\(uri)")
            }
            let revokeOnly = try await api.call(.put, base + "/consents/collection-whatsapp", key: dpo, body: #"{"status":"revoked"}"#)
            #expect(revokeOnly.status == .ok, "revocation needs no evidence (Art. 8 §5)")
            #expect(try await api.call(.get, base + "/consents", key: auditor).status == .forbidden)
            #expect(try await api.call(.get, "/v1/subjects/sub_aaaaaaaaaaaaaaaaaaaaaaaaaa/consents", key: dpo).status == .notFound)
        }
    }

    @Test("a revocation through one vault instance is enforced by another on its next request")
    func revocationAcrossInstances() async throws {
        let a = try await TestVault.make()
        let b = try await a.reopen()
        let crm = try await a.principal("crm").key
        let bot = try await a.principal("whatsapp-bot").key
        let dpo = try await a.principal("dpo").key
        let (subject, phone) = try await withAPI(a) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            _ = try await api.call(.put, "/v1/subjects/\(c["subject"] as! String)/consents/collection-whatsapp", key: dpo, body: jsonText(grant))
            return (c["subject"] as! String, c.tokens["phone"]!)
        }
        try await withAPI(b) { api in
            let r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [phone])
            #expect(r.results[0]["value"] as? String == "+5511987654321")
        }
        try await withAPI(a) { api in
            _ = try await api.call(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: dpo, body: jsonText(revoke))
        }
        try await withAPI(b) { api in
            let r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [phone])
            #expect(deniedCode(r.results[0]) == "consent_revoked")
        }
    }

    @Test("lookup by CPF in both spellings and by phone with or without +55 finds the subject; the token reveals")
    func lookupFinds() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let subject = try await api.createSubject(key: crm, ref: "crm-1", joao)["subject"] as! String
            _ = try await api.createSubject(key: crm, ref: "crm-2", ["cpf": "529.982.247-25", "phone": "+55 21 3456-7890", "name": "Maria"])
            for (purpose, field, value) in [("payment", "cpf", "123.456.789-09"), ("payment", "cpf", "12345678909"),
                                            ("collection-call", "phone", "+55 11 98765-4321"), ("collection-call", "phone", "(11) 98765-4321"),
                                            ("collection-call", "phone", "11987654321")] {
                let r = try await api.post("/v1/lookup", key: crm, ["purpose": purpose, "field": field, "value": value])
                #expect(r.status == .ok, "\(value): \(r.raw)")
                #expect(r["subject"] as? String == subject)
                let token = try #require(r["token"] as? String)
                let d = try await api.detokenize(key: crm, purpose: purpose, [token])
                #expect(d.results[0]["field"] as? String == field)
                #expect(d.results[0]["value"] != nil)
            }
        }
    }

    @Test("lookup: not searchable 422, outside the purpose 403, purpose not held 403, a miss and a denial look the same")
    func lookupRefusals() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        try await withAPI(tv) { api in
            let subject = try await api.createSubject(key: crm, ref: "crm-1", joao)["subject"] as! String
            var r = try await api.post("/v1/lookup", key: crm, ["purpose": "payment", "field": "name", "value": "João da Silva"])
            #expect(r.status == .unprocessableContent)
            #expect(r.errorCode == "field_not_searchable")
            r = try await api.post("/v1/lookup", key: crm, ["purpose": "payment", "field": "phone", "value": "11987654321"])
            #expect(r.status == .forbidden)
            #expect(r.errorCode == "field_not_allowed")
            r = try await api.post("/v1/lookup", key: bot, ["purpose": "payment", "field": "cpf", "value": "12345678909"])
            #expect(r.status == .forbidden)
            #expect(r.errorCode == "purpose_not_allowed")
            r = try await api.post("/v1/lookup", key: crm, ["purpose": "payment", "field": "cpf", "value": "123"])
            #expect(r.status == .unprocessableContent)
            #expect(r.errorCode == "invalid_cpf")

            let miss = try await api.post("/v1/lookup", key: crm, ["purpose": "collection-call", "field": "phone", "value": "11 91111-2222"])
            _ = try await api.call(.put, "/v1/subjects/\(subject)/objections/collection-call", key: crm)
            let denied = try await api.post("/v1/lookup", key: crm, ["purpose": "collection-call", "field": "phone", "value": "11987654321"])
            #expect(miss.status == .notFound)
            #expect(denied.status == .notFound)
            #expect(miss.errorCode == "no_match")
            #expect(denied.errorCode == "no_match")
            #expect(miss.errorMessage == denied.errorMessage)
            #expect(!denied.raw.contains(subject))
            #expect(!denied.raw.contains("objection"))
        }
    }
}

func jsonText(_ object: Any) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
}
