import CofreAPI
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
            #expect(try h.decode(StatusResponse.self).status == "ok")
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
            let subject = try created.subject
            #expect(Identifiers.isSubject(subject))
            #expect(Set(created.tokens.keys) == Set(joao.keys))
            #expect(created.tokens.values.allSatisfy(Identifiers.isToken))
            #expect(Set(created.tokens.values).count == joao.count)

            let t = created.tokens
            let call = try await api.detokenize(key: crm, purpose: "collection-call", [t["phone"]!, t["name"]!, t["cpf"]!, t["debt_amount"]!])
            #expect(call.status == .ok)
            let r = call.results
            #expect(r[0].value == "+5511987654321")
            #expect(r[0].reveal == .plain)
            #expect(r[0].field == "phone")
            #expect(r[1].value == "João da Silva")
            #expect(r[2].value == "***.456.789-**")
            #expect(r[2].reveal == .masked)
            #expect(deniedCode(r[3]) == .fieldNotAllowed)
            #expect(r[3].value == nil)
            #expect(!call.raw.contains(#""value":null"#))

            let pay = try await api.detokenize(key: crm, purpose: "payment", [t["cpf"]!, t["debt_amount"]!])
            #expect(pay.results[0].value == "12345678909")
            #expect(pay.results[1].value == "1234.50")
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
                #expect(deniedCode(item) == .consentMissing)
                #expect(item.value == nil)
            }
            #expect(!r.raw.contains(#""value":null"#))
        }
    }

    @Test("a purpose the service does not hold is 403 for the whole call; one the policy does not have is 404")
    func purposeNotHeld() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        try await withAPI(tv) { api in
            let t = try await api.createSubject(key: crm, ref: "crm-1", joao).tokens
            let cases: [(String, String, HTTPResponse.Status, ErrorCode)] = [
                (bot, "payment", .forbidden, .purposeNotAllowed),
                (crm, "collection-whatsapp", .forbidden, .purposeNotAllowed),
                (crm, "marketing", .notFound, .purposeUnknown),
            ]
            for (key, purpose, status, code) in cases {
                let r = try await api.detokenize(key: key, purpose: purpose, [t["phone"]!])
                #expect(r.status == status, "\(purpose): \(r.raw)")
                #expect(r.errorCode == code, "\(purpose)")
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
            for i in 0..<3 { #expect(deniedCode(r.results[i]) == .tokenUnknown) }
            #expect(r.results[3].value == "+5511987654321")
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
                #expect(r.errorCode == .forbidden)
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
            #expect(second.errorCode == .subjectExists)
            #expect(second.error?.subject == (try first.subject))
        }
        #expect(try await tv.vault.dataKeys.store.countByKEKVersion()[1] == joao.count + 2)  // + blind-index and audit keys
    }

    @Test("correction replaces a field: a new token, the old token stops resolving, the old key is shredded")
    func correction() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let subject = try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let subject = try created.subject
            let old = created.tokens["phone"]!
            let put = try await api.putFields(key: crm, subject: subject, ["phone": "+55 21 99999-0000"])
            #expect(put.status == .ok)
            let fresh = try #require(put.tokens["phone"])
            #expect(fresh != old)
            let r = try await api.detokenize(key: crm, purpose: "collection-call", [old, fresh, created.tokens["name"]!])
            #expect(deniedCode(r.results[0]) == .tokenUnknown)
            #expect(r.results[1].value == "+5521999990000")
            #expect(r.results[2].value == "João da Silva")

            let tok = try await api.tokenize(key: crm, subject: subject, field: "phone", value: "11 91234-5678")
            #expect(tok.status == .ok)
            let third = try tok.decode(TokenizeResponse.self).token
            let r2 = try await api.detokenize(key: crm, purpose: "collection-call", [fresh, third])
            #expect(deniedCode(r2.results[0]) == .tokenUnknown)
            #expect(r2.results[1].value == "+5511912345678")
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
            let subject = try created.subject
            let missing = "sub_" + String(repeating: "a", count: 26)
            for s in [missing, "not-a-subject"] {
                let r = try await api.putFields(key: crm, subject: s, ["phone": "11987654321"])
                #expect(r.status == .notFound)
                #expect(r.errorCode == .subjectNotFound)
            }
            let bad = try await api.putFields(key: crm, subject: subject, ["phone": "11987654321", "cpf": "111"])
            #expect(bad.status == .unprocessableContent)
            #expect(bad.errorCode == .invalid(.cpf))
            // The phone was not replaced: the original token still reads.
            let r = try await api.detokenize(key: crm, purpose: "collection-call", [created.tokens["phone"]!])
            #expect(r.results[0].value == "+5511987654321")
            let unknownField = try await api.tokenize(key: crm, subject: subject, field: "salary", value: "1")
            #expect(unknownField.status == .unprocessableContent)
            #expect(unknownField.errorCode == .fieldUnknown)
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
            #expect(r.results[0].reveal == .redacted)
            #expect(r.results[0].value == nil)
            #expect(r.results[1].reveal == .redacted)
            #expect(r.results[1].value == nil)
            #expect(r.results[2].value == "j***@example.com")
            #expect(r.results[3].value == "1985-**-**")
            // A redacted result carries no value key at all, not even a null one.
            #expect(!r.raw.contains(#""value":null"#))
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
            #expect(r.results.map(\.value) == ["João da Silva", "12345678909", "Rua das Flores, 10, São Paulo"])
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
            let existing = try await api.createSubject(key: crm, ref: "dup", ["name": "Ana"]).subject
            let body = BatchCreateRequest(subjects: [
                CreateSubjectRequest(externalRef: "b-1", fields: ["name": "Bia", "cpf": "529.982.247-25"]),
                CreateSubjectRequest(externalRef: "dup", fields: ["name": "Ana again"]),
                CreateSubjectRequest(externalRef: "b-3", fields: ["cpf": "111.111.111-12"]),
                CreateSubjectRequest(externalRef: "b-4", fields: ["salary": "1"]),
                CreateSubjectRequest(externalRef: "b-1", fields: ["name": "twice in one batch"]),
                CreateSubjectRequest(externalRef: "b-6", fields: ["name": "Cida", "phone": "11 97777-6666"]),
            ])
            let r = try await api.post("/v1/subjects/batch", key: crm, body)
            #expect(r.status == .ok)
            let results = try r.decode(BatchCreateResponse.self).results
            #expect(results.map(\.externalRef) == ["b-1", "dup", "b-3", "b-4", "b-1", "b-6"])
            let codes = results.map { $0.error?.code }
            #expect(codes == [nil, .subjectExists, .invalid(.cpf), .fieldUnknown, .malformedRequest, nil])
            #expect(results[1].error?.subject == existing)
            let tokens = try #require(results[5].tokens)
            let d = try await api.detokenize(key: crm, purpose: "collection-call", [tokens["phone"]!])
            #expect(d.results[0].value == "+5511977776666")
            #expect(!r.raw.contains("111.111.111-12") && !r.raw.contains("Ana again"), "no value is echoed")
            // Too many, or none: refused whole.
            let many = (0...1000).map { CreateSubjectRequest(externalRef: "m-\($0)", fields: ["name": "x"]) }
            #expect(try await api.post("/v1/subjects/batch", key: crm, BatchCreateRequest(subjects: many)).status == .badRequest)
            #expect(try await api.post("/v1/subjects/batch", key: crm, BatchCreateRequest(subjects: [])).status == .badRequest)
        }
        // Keys exist for the created subjects only: the duplicate's attempt destroyed its own.
        let creates = try await tv.vault.store.auditEvents(AuditQuery(action: AuditAction.subjectCreate.rawValue, limit: 100))
        #expect(creates.filter { $0.draft.decision == .allow }.count == 3)
        #expect(creates.filter { $0.draft.code == ErrorCode.subjectExists.rawValue }.count == 1)
        let allowed = creates.filter { $0.draft.decision == .allow }.compactMap(\.draft.subject)
        #expect(try await tv.invariantViolations(subjects: allowed) == [])
        let counts = try await tv.vault.dataKeys.store.countByKEKVersion()
        #expect(counts[1] == 1 + 2 + 2 + 2, "Ana, b-1 (2 fields), b-6 (2 fields), and the two system keys")
    }
}
