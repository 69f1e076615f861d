import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

let grant = ConsentRequest(status: ConsentStatus.granted.rawValue, channel: "whatsapp", evidence: "wamid.HBgLNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA",
                           noticeVersion: "2026-01")
let revoke = ConsentRequest(status: ConsentStatus.revoked.rawValue, channel: "whatsapp", evidence: "wamid.revoked-by-reply-SAIR")

@Suite("Consent, objections and lookup over HTTP")
struct ConsentAndLookupTests {
    @Test("a consent event reads the same, to the millisecond, in the answer that recorded it, the history and the export")
    func consentEvidenceIdentical() async throws {
        // A clock with sub-millisecond parts, as a real one has.
        let clock = TestClock(Date(timeIntervalSince1970: 1_790_000_000.123_456_7))
        let tv = try await TestVault.make(clock: clock)
        let crm = try await tv.principal("crm").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let subject = try await api.createSubject(key: crm, ref: "ms-1", joao).subject
            var answered: [ConsentEvent] = []
            for i in 0..<40 {
                let r = try await api.send(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: dpo, i % 2 == 0 ? grant : revoke)
                #expect(r.status == .ok)
                answered.append(try r.decode(ConsentEvent.self))
                clock.advance(seconds: Double.random(in: 0.000_01...0.01))
            }
            let history = try await api.call(.get, "/v1/subjects/\(subject)/consents", key: dpo).decode(ConsentsResponse.self)
            #expect(history.purposes["collection-whatsapp"]?.history == answered)
            let export = try await api.call(.get, "/v1/subjects/\(subject)/export", key: dpo).decode(ExportResponse.self)
            #expect(export.consents == answered)
        }
    }

    @Test("WhatsApp bot: consent_missing, then plain phone and masked CPF after consent, then consent_revoked at once")
    func consentLifecycle() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let subject = try created.subject
            let t = created.tokens
            let ask = [t["phone"]!, t["cpf"]!, t["name"]!, t["debt_amount"]!, t["address"]!]

            var r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", ask)
            #expect(r.results.map(deniedCode) == Array(repeating: .consentMissing, count: 4) + [.fieldNotAllowed])

            // The bot holds the purpose, so it may record the opt-in it collected.
            let g = try await api.send(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: bot, grant)
            #expect(g.status == .ok, "\(g.raw)")
            let granted = try g.decode(ConsentEvent.self)
            #expect(granted.status == .granted)
            #expect(granted.recordedBy == "whatsapp-bot")
            #expect(granted.noticeVersion == "2026-01")

            r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", ask)
            #expect(r.results[0].value == "+5511987654321")
            #expect(r.results[0].reveal == .plain)
            #expect(r.results[1].value == "***.456.789-**")
            #expect(r.results[2].value == "João da Silva")
            #expect(r.results[3].value == "1234.50")
            #expect(deniedCode(r.results[4]) == .fieldNotAllowed)

            // The DPO records the revocation; the very next request is denied.
            let v = try await api.send(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: dpo, revoke)
            #expect(v.status == .ok)
            r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", ask)
            #expect(r.results.prefix(4).map(deniedCode) == Array(repeating: .consentRevoked, count: 4))

            // Granting again restores access: the latest event wins; history keeps all three.
            _ = try await api.send(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: dpo, grant)
            r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [t["phone"]!])
            #expect(r.results[0].value == "+5511987654321")

            let history = try await api.call(.get, "/v1/subjects/\(subject)/consents", key: dpo)
            #expect(history.status == .ok)
            let purposes = try history.decode(ConsentsResponse.self).purposes
            let wa = try #require(purposes["collection-whatsapp"])
            #expect(wa.consent == .granted)
            #expect(wa.legalBasis == .consent)
            let events = wa.history
            #expect(events.map(\.status) == [.granted, .revoked, .granted])
            #expect(events.map(\.recordedBy) == ["whatsapp-bot", "dpo", "dpo"])
            #expect(events[0].evidence == grant.evidence)
            let seqs = events.map(\.seq)
            #expect(seqs == seqs.sorted() && Set(seqs).count == 3)
            #expect(purposes.count == tv.vault.policy.purposes.count, "every purpose of the policy")
            #expect(purposes["collection-call"]?.consent == ConsentState.none)
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
            let subject = try created.subject
            let phone = created.tokens["phone"]!, name = created.tokens["name"]!
            var r = try await api.detokenize(key: crm, purpose: "collection-call", [phone])
            #expect(r.results[0].value == "+5511987654321")

            let o = try await api.send(.put, "/v1/subjects/\(subject)/objections/collection-call", key: crm,
                                       ConsentRequest(channel: "phone", evidence: "call-2026-11-29-0042"))
            #expect(o.status == .ok, "\(o.raw)")
            #expect(try o.decode(ConsentEvent.self).status == .objected)
            r = try await api.detokenize(key: crm, purpose: "collection-call", [phone])
            #expect(deniedCode(r.results[0]) == .objection)
            r = try await api.detokenize(key: crm, purpose: "payment", [name])
            #expect(r.results[0].value == "João da Silva", "an objection is per purpose")

            // Exercise of rights (Art. 7 VI) is not stopped by an objection.
            _ = try await api.call(.put, "/v1/subjects/\(subject)/objections/legal-defense", key: crm)
            r = try await api.detokenize(key: crm, purpose: "legal-defense", [name])
            #expect(r.results[0].value == "João da Silva")

            // Withdrawing needs evidence, and a service that holds the purpose (or the DPO).
            let bare = try await api.call(.delete, "/v1/subjects/\(subject)/objections/collection-call", key: crm)
            #expect(bare.status == .unprocessableContent && bare.errorCode == .evidenceRequired)
            let w = try await api.send(.delete, "/v1/subjects/\(subject)/objections/collection-call", key: crm,
                                       ConsentRequest(evidence: "call-2026-11-29-0042: the debtor agreed to be called again"))
            #expect(w.status == .ok)
            #expect(try w.decode(ConsentEvent.self).status == .withdrawn)
            r = try await api.detokenize(key: crm, purpose: "collection-call", [phone])
            #expect(r.results[0].value == "+5511987654321")

            let states = try await api.call(.get, "/v1/subjects/\(subject)/consents", key: crm)
            let purposes = try states.decode(ConsentsResponse.self).purposes
            #expect(Set(purposes.keys) == ["collection-call", "payment", "legal-defense"], "a service sees only its purposes")
            let ld = try #require(purposes["legal-defense"])
            #expect(ld.objection == true)
            #expect(ld.objectionBlocks == false)
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
            let subject = try await api.createSubject(key: crm, ref: "crm-1", joao).subject
            let base = "/v1/subjects/\(subject)"
            let noEvidence = ConsentRequest(status: grant.status, channel: grant.channel, noticeVersion: grant.noticeVersion)
            let noNotice = ConsentRequest(status: grant.status, channel: grant.channel, evidence: grant.evidence)
            let badStatus = ConsentRequest(status: "maybe", channel: grant.channel, evidence: grant.evidence, noticeVersion: grant.noticeVersion)
            let cases: [(String, String, ConsentRequest, HTTPResponse.Status, ErrorCode)] = [
                (base + "/consents/collection-call", dpo, grant, .unprocessableContent, .consentNotApplicable),
                (base + "/consents/marketing", dpo, grant, .notFound, .purposeUnknown),
                // A service naming a purpose the policy does not have: the same 404 as the DPO.
                (base + "/consents/marketing", bot, grant, .notFound, .purposeUnknown),
                (base + "/consents/collection-whatsapp", dpo, noEvidence, .unprocessableContent, .evidenceRequired),
                (base + "/consents/collection-whatsapp", dpo, noNotice, .unprocessableContent, .noticeVersionRequired),
                (base + "/consents/collection-whatsapp", dpo, badStatus, .badRequest, .malformedRequest),
                // A service may record consent only for a purpose it holds; the auditor may not record any.
                (base + "/consents/collection-whatsapp", crm, grant, .forbidden, .purposeNotAllowed),
                (base + "/consents/collection-whatsapp", auditor, grant, .forbidden, .forbidden),
                ("/v1/subjects/sub_aaaaaaaaaaaaaaaaaaaaaaaaaa/consents/collection-whatsapp", bot, grant, .notFound, .subjectNotFound),
                (base + "/objections/collection-whatsapp", crm, ConsentRequest(), .unprocessableContent, .objectionNotApplicable),
                (base + "/objections/marketing", crm, ConsentRequest(), .notFound, .purposeUnknown),
                (base + "/objections/marketing", dpo, ConsentRequest(), .notFound, .purposeUnknown),
                (base + "/objections/collection-call", auditor, ConsentRequest(), .forbidden, .forbidden),
            ]
            for (uri, key, body, status, code) in cases {
                let r = try await api.send(.put, uri, key: key, body)
                #expect(r.status == status, "\(uri) \(r.raw)")
                #expect(r.errorCode == code, "\(uri)")
            }
            // Withdrawing an objection to a purpose the policy does not have is 404, whoever asks.
            for key in [crm, dpo] {
                let r = try await api.send(.delete, base + "/objections/marketing", key: key, ConsentRequest(evidence: "call 42"))
                #expect(r.status == .notFound && r.errorCode == .purposeUnknown, "\(r.raw)")
            }
            let revokeOnly = try await api.send(.put, base + "/consents/collection-whatsapp", key: dpo,
                                                ConsentRequest(status: ConsentStatus.revoked.rawValue))
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
            _ = try await api.send(.put, "/v1/subjects/\(try c.subject)/consents/collection-whatsapp", key: dpo, grant)
            return (try c.subject, c.tokens["phone"]!)
        }
        try await withAPI(b) { api in
            let r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [phone])
            #expect(r.results[0].value == "+5511987654321")
        }
        try await withAPI(a) { api in
            _ = try await api.send(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: dpo, revoke)
        }
        try await withAPI(b) { api in
            let r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [phone])
            #expect(deniedCode(r.results[0]) == .consentRevoked)
        }
    }

    @Test("lookup by CPF in both spellings and by phone with or without +55 finds the subject; the token reveals")
    func lookupFinds() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let subject = try await api.createSubject(key: crm, ref: "crm-1", joao).subject
            _ = try await api.createSubject(key: crm, ref: "crm-2", ["cpf": "529.982.247-25", "phone": "+55 21 3456-7890", "name": "Maria"])
            for (purpose, field, value) in [("payment", "cpf", "123.456.789-09"), ("payment", "cpf", "12345678909"),
                                            ("collection-call", "phone", "+55 11 98765-4321"), ("collection-call", "phone", "(11) 98765-4321"),
                                            ("collection-call", "phone", "11987654321")] {
                let r = try await api.lookup(key: crm, purpose: purpose, field: field, value: value)
                #expect(r.status == .ok, "\(value): \(r.raw)")
                let found = try r.decode(LookupResponse.self)
                #expect(found.subject == subject)
                let d = try await api.detokenize(key: crm, purpose: purpose, [found.token])
                #expect(d.results[0].field == field)
                #expect(d.results[0].value != nil)
            }
        }
    }

    @Test("lookup: not searchable 422, outside the purpose 403, purpose not held 403, unknown purpose 404, a miss and a denial look the same")
    func lookupRefusals() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        try await withAPI(tv) { api in
            let subject = try await api.createSubject(key: crm, ref: "crm-1", joao).subject
            var r = try await api.lookup(key: crm, purpose: "payment", field: "name", value: "João da Silva")
            #expect(r.status == .unprocessableContent)
            #expect(r.errorCode == .fieldNotSearchable)
            r = try await api.lookup(key: crm, purpose: "payment", field: "phone", value: "11987654321")
            #expect(r.status == .forbidden)
            #expect(r.errorCode == .fieldNotAllowed)
            r = try await api.lookup(key: bot, purpose: "payment", field: "cpf", value: "12345678909")
            #expect(r.status == .forbidden)
            #expect(r.errorCode == .purposeNotAllowed)
            r = try await api.lookup(key: crm, purpose: "marketing", field: "cpf", value: "12345678909")
            #expect(r.status == .notFound)
            #expect(r.errorCode == .purposeUnknown)
            r = try await api.lookup(key: crm, purpose: "payment", field: "cpf", value: "123")
            #expect(r.status == .unprocessableContent)
            #expect(r.errorCode == .invalid(.cpf))

            let miss = try await api.lookup(key: crm, purpose: "collection-call", field: "phone", value: "11 91111-2222")
            _ = try await api.call(.put, "/v1/subjects/\(subject)/objections/collection-call", key: crm)
            let denied = try await api.lookup(key: crm, purpose: "collection-call", field: "phone", value: "11987654321")
            #expect(miss.status == .notFound)
            #expect(denied.status == .notFound)
            #expect(miss.errorCode == .noMatch)
            #expect(denied.errorCode == .noMatch)
            #expect(miss.errorMessage == denied.errorMessage)
            #expect(!denied.raw.contains(subject))
            #expect(!denied.raw.contains("objection"))
        }
    }
}
