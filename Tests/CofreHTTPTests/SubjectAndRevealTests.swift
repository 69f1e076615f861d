import CofreCore
import HTTPTypes
import CofreTestSupport
import Foundation
import Testing

let joao: [String: String] = [
    "name": "João da Silva", "cpf": "123.456.789-09", "phone": "(11) 98765-4321", "email": "Joao.Silva@Example.com",
    "address": "Rua das Flores, 10, São Paulo", "birth_date": "1985-02-28", "debt_amount": "1234.50",
]
/// The stored (normalised) forms of `joao`, which must never appear in logs or store files.
let joaoStored = ["João da Silva", "12345678909", "+5511987654321", "joao.silva@example.com", "Rua das Flores", "1985-02-28", "1234.50"]

@Suite("Subjects, tokens and purpose-bound reveal over HTTP")
struct SubjectAndRevealTests {
    @Test("health and readiness")
    func health() async throws {
        let tv = try await TestVault.make()
        try await withAPI(tv) { api in
            let h = try await api.call(.get, "/healthz")
            #expect(h.status == .ok)
            #expect(h["status"] as? String == "ok")
            #expect(try await api.call(.get, "/readyz").status == .ok)
        }
    }

    @Test("create a subject, then reveal per purpose with the policy's levels")
    func createAndReveal() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "crm-1", joao)
            #expect(created.status == .created)
            let subject = try #require(created["subject"] as? String)
            #expect(Identifiers.isSubject(subject))
            #expect(Set(created.tokens.keys) == Set(joao.keys))
            #expect(created.tokens.values.allSatisfy(Identifiers.isToken))
            #expect(Set(created.tokens.values).count == joao.count)

            let t = created.tokens
            let call = try await api.detokenize(key: crm, purpose: "collection-call", [t["phone"]!, t["name"]!, t["cpf"]!, t["debt_amount"]!])
            #expect(call.status == .ok)
            let r = call.results
            #expect(r[0]["value"] as? String == "+5511987654321")
            #expect(r[0]["reveal"] as? String == "plain")
            #expect(r[0]["field"] as? String == "phone")
            #expect(r[1]["value"] as? String == "João da Silva")
            #expect(r[2]["value"] as? String == "***.456.789-**")
            #expect(r[2]["reveal"] as? String == "masked")
            #expect((r[3]["denied"] as? [String: Any])?["code"] as? String == "field_not_allowed")
            #expect(r[3]["value"] == nil)

            let pay = try await api.detokenize(key: crm, purpose: "payment", [t["cpf"]!, t["debt_amount"]!])
            #expect(pay.results[0]["value"] as? String == "12345678909")
            #expect(pay.results[1]["value"] as? String == "1234.50")
        }
    }

    @Test("a consent purpose is denied with consent_missing until consent exists")
    func consentMissing() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        try await withAPI(tv) { api in
            let t = try await api.createSubject(key: crm, ref: "crm-1", joao).tokens
            let r = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [t["phone"]!, t["cpf"]!])
            #expect(r.status == .ok)
            for item in r.results {
                #expect((item["denied"] as? [String: Any])?["code"] as? String == "consent_missing")
                #expect(item["value"] == nil)
            }
        }
    }

    @Test("a purpose the service does not hold is 403 for the whole call")
    func purposeNotHeld() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        try await withAPI(tv) { api in
            let t = try await api.createSubject(key: crm, ref: "crm-1", joao).tokens
            for (key, purpose) in [(bot, "payment"), (crm, "collection-whatsapp"), (crm, "marketing")] {
                let r = try await api.detokenize(key: key, purpose: purpose, [t["phone"]!])
                #expect(r.status == .forbidden)
                #expect(r.errorCode == "purpose_not_allowed")
                #expect(!r.raw.contains("+5511987654321"))
            }
        }
    }

    @Test("unknown and malformed tokens are each denied token_unknown")
    func unknownTokens() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let t = try await api.createSubject(key: crm, ref: "crm-1", joao).tokens
            let fake = "tok_" + String(repeating: "a", count: 32)
            let r = try await api.detokenize(key: crm, purpose: "collection-call", [fake, "tok_short", "", t["phone"]!])
            #expect(r.results.count == 4)
            for i in 0..<3 { #expect((r.results[i]["denied"] as? [String: Any])?["code"] as? String == "token_unknown") }
            #expect(r.results[3]["value"] as? String == "+5511987654321")
        }
    }

    @Test("services without tokenize, the DPO and the auditor may not store data")
    func tokenizeRole() async throws {
        let tv = try await TestVault.make()
        for service in ["whatsapp-bot", "dpo", "auditor"] {
            let key = try await tv.principal(service).key
            try await withAPI(tv) { api in
                let r = try await api.createSubject(key: key, ref: "x-\(service)", ["name": "Maria"])
                #expect(r.status == .forbidden)
                #expect(r.errorCode == "forbidden")
                let d = try await api.detokenize(key: key, purpose: "collection-call", ["tok_x"])
                #expect(d.status == .forbidden)
            }
        }
    }

    @Test("the same external_ref twice is 409 with the existing subject, and stores nothing new")
    func duplicate() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let first = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let second = try await api.createSubject(key: crm, ref: "crm-1", ["name": "Outra Pessoa"])
            #expect(second.status == .conflict)
            #expect(second.errorCode == "subject_exists")
            #expect((second.json["error"] as? [String: Any])?["subject"] as? String == first["subject"] as? String)
        }
        #expect(try await tv.vault.dataKeys.store.countByKEKVersion()[1] == joao.count + 2)  // + blind-index and audit keys
    }

    @Test("correction replaces a field: a new token, the old token stops resolving, the old key is shredded")
    func correction() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let subject = try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let subject = created["subject"] as! String
            let old = created.tokens["phone"]!
            let put = try await api.post("/v1/subjects/\(subject)/fields", key: crm, ["fields": ["phone": "+55 21 99999-0000"]])
            #expect(put.status == .ok)
            let fresh = try #require(put.tokens["phone"])
            #expect(fresh != old)
            let r = try await api.detokenize(key: crm, purpose: "collection-call", [old, fresh, created.tokens["name"]!])
            #expect((r.results[0]["denied"] as? [String: Any])?["code"] as? String == "token_unknown")
            #expect(r.results[1]["value"] as? String == "+5521999990000")
            #expect(r.results[2]["value"] as? String == "João da Silva")

            let tok = try await api.post("/v1/tokenize", key: crm, ["subject": subject, "field": "phone", "value": "11 91234-5678"])
            #expect(tok.status == .ok)
            let third = try #require(tok["token"] as? String)
            let r2 = try await api.detokenize(key: crm, purpose: "collection-call", [fresh, third])
            #expect((r2.results[0]["denied"] as? [String: Any])?["code"] as? String == "token_unknown")
            #expect(r2.results[1]["value"] as? String == "+5511912345678")
            return subject
        }
        // Generations 1 and 2 of the phone's data key were destroyed; only generation 3's remains, in a
        // key group of its own (namespaced, unique to the write that stored it).
        let phone = try await tv.vault.dataKeys.store.ids(subject: subject).filter { $0.group.hasPrefix("field:phone:") }
        let current = try #require(try await tv.vault.store.fields(subject: subject).first { $0.field == "phone" })
        #expect(phone == [current.keyID])
        #expect(current.generation == 3)
        #expect(try await tv.vault.dataKeys.store.countByKEKVersion()[1] == joao.count + 2)
    }

    @Test("writes to an unknown subject are 404; a bad value stores nothing")
    func putErrors() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let subject = created["subject"] as! String
            let missing = "sub_" + String(repeating: "a", count: 26)
            for s in [missing, "not-a-subject"] {
                let r = try await api.post("/v1/subjects/\(s)/fields", key: crm, ["fields": ["phone": "11987654321"]])
                #expect(r.status == .notFound)
                #expect(r.errorCode == "subject_not_found")
            }
            let bad = try await api.post("/v1/subjects/\(subject)/fields", key: crm, ["fields": ["phone": "11987654321", "cpf": "111"]])
            #expect(bad.status == .unprocessableContent)
            #expect(bad.errorCode == "invalid_cpf")
            // The phone was not replaced: the original token still reads.
            let r = try await api.detokenize(key: crm, purpose: "collection-call", [created.tokens["phone"]!])
            #expect(r.results[0]["value"] as? String == "+5511987654321")
            let unknownField = try await api.post("/v1/tokenize", key: crm, ["subject": subject, "field": "salary", "value": "1"])
            #expect(unknownField.status == .unprocessableContent)
            #expect(unknownField.errorCode == "field_unknown")
        }
    }

    @Test("redacted and value-less masks answer without a value")
    func redacted() async throws {
        var policy = try PolicyLoader.load(file: examplePolicyPath)
        policy.purposes["summary"] = Purpose(name: "summary", legalBasis: .legitimateInterest,
                                             fields: ["name": .redacted, "debt_amount": .masked, "email": .masked, "birth_date": .masked])
        policy.services["crm"]!.purposes.insert("summary")
        let tv = try await TestVault.make(policy: policy)
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let t = try await api.createSubject(key: crm, ref: "crm-1", joao).tokens
            let r = try await api.detokenize(key: crm, purpose: "summary", [t["name"]!, t["debt_amount"]!, t["email"]!, t["birth_date"]!])
            #expect(r.results[0]["reveal"] as? String == "redacted")
            #expect(r.results[0]["value"] == nil)
            #expect(r.results[1]["reveal"] as? String == "redacted")
            #expect(r.results[1]["value"] == nil)
            #expect(r.results[2]["value"] as? String == "j***@example.com")
            #expect(r.results[3]["value"] as? String == "1985-**-**")
        }
    }

    @Test("a restarted vault reads every subject it stored")
    func restart() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let captured = try await withAPI(tv) { api in try await api.createSubject(key: crm, ref: "crm-1", joao).tokens }
        let reopened = try await tv.reopen()
        try await withAPI(reopened) { api in
            let r = try await api.detokenize(key: crm, purpose: "legal-defense", [captured["name"]!, captured["cpf"]!, captured["address"]!])
            #expect(r.results.map { $0["value"] as? String } == ["João da Silva", "12345678909", "Rua das Flores, 10, São Paulo"])
        }
    }
}

@Suite("Batch creation: each subject succeeds or fails on its own")
struct BatchTests {
    @Test("a batch answers per subject in order: created, duplicate (with the existing subject), invalid; only the created hold keys")
    func mixed() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let existing = try await api.createSubject(key: crm, ref: "dup", ["name": "Ana"])["subject"] as! String
            let body: [String: Any] = ["subjects": [
                ["external_ref": "b-1", "fields": ["name": "Bia", "cpf": "529.982.247-25"]],
                ["external_ref": "dup", "fields": ["name": "Ana again"]],
                ["external_ref": "b-3", "fields": ["cpf": "111.111.111-12"]],
                ["external_ref": "b-4", "fields": ["salary": "1"]],
                ["external_ref": "b-1", "fields": ["name": "twice in one batch"]],
                ["external_ref": "b-6", "fields": ["name": "Cida", "phone": "11 97777-6666"]],
            ]]
            let r = try await api.post("/v1/subjects/batch", key: crm, body)
            #expect(r.status == .ok)
            let results = r.results
            #expect(results.map { $0["external_ref"] as? String } == ["b-1", "dup", "b-3", "b-4", "b-1", "b-6"])
            let codes = results.map { ($0["error"] as? [String: Any])?["code"] as? String }
            #expect(codes == [nil, "subject_exists", "invalid_cpf", "field_unknown", "malformed_request", nil])
            #expect((results[1]["error"] as? [String: Any])?["subject"] as? String == existing)
            let tokens = try #require(results[5]["tokens"] as? [String: String])
            let d = try await api.detokenize(key: crm, purpose: "collection-call", [tokens["phone"]!])
            #expect(d.results[0]["value"] as? String == "+5511977776666")
            #expect(!r.raw.contains("111.111.111-12") && !r.raw.contains("Ana again"), "no value is echoed")
            // Too many, or none: refused whole.
            let many = (0...1000).map { ["external_ref": "m-\($0)", "fields": ["name": "x"]] as [String: Any] }
            #expect(try await api.post("/v1/subjects/batch", key: crm, ["subjects": many]).status == .badRequest)
            #expect(try await api.post("/v1/subjects/batch", key: crm, ["subjects": [Any]()]).status == .badRequest)
        }
        // Keys exist for the created subjects only: the duplicate's attempt destroyed its own.
        let creates = try await tv.vault.store.auditEvents(AuditQuery(action: "subject.create", limit: 100))
        #expect(creates.filter { $0.draft.decision == .allow }.count == 3)
        #expect(creates.filter { $0.draft.code == "subject_exists" }.count == 1)
        let allowed = creates.filter { $0.draft.decision == .allow }.compactMap(\.draft.subject)
        #expect(try await tv.invariantViolations(subjects: allowed) == [])
        let counts = try await tv.vault.dataKeys.store.countByKEKVersion()
        #expect(counts[1] == 1 + 2 + 2 + 2, "Ana, b-1 (2 fields), b-6 (2 fields), and the two system keys")
    }
}
