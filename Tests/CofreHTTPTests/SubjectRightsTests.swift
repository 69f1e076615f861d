import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

func field(_ export: ExportResponse, _ name: String) -> ExportResponse.Field? {
    export.fields.first { $0.field == name }
}

let eraseBody = EraseRequest(reason: "Art. 18 VI request received by e-mail", ticket: "DPO-2026-0042")

@Suite("Subject rights over HTTP: export, correction, erasure, retention")
struct SubjectRightsTests {
    @Test("the export holds every value, the consent history and each earlier reveal; simple has names only")
    func export() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = try c.subject
            _ = try await api.send(.put, "/v1/subjects/\(s)/consents/collection-whatsapp", key: bot, grant)
            _ = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [c.tokens["phone"]!])
            _ = try await api.detokenize(key: crm, purpose: "payment", [c.tokens["cpf"]!, c.tokens["phone"]!])
            _ = try await api.putFields(key: crm, subject: s, ["email": "novo@example.com"])

            let r = try await api.call(.get, "/v1/subjects/\(s)/export", key: dpo)
            #expect(r.status == .ok, "\(r.raw)")
            let e = try r.decode(ExportResponse.self)
            #expect(e.schema == ExportResponse.schemaName)
            #expect(e.schema == "cofre.export.v1")
            #expect(e.subject.id == s)
            let values = Dictionary(uniqueKeysWithValues: e.fields.map { ($0.field, $0.value) })
            #expect(values["name"] == "João da Silva")
            #expect(values["cpf"] == "12345678909")
            #expect(values["phone"] == "+5511987654321")
            #expect(values["email"] == "novo@example.com")
            #expect(values["address"] == "Rua das Flores, 10, São Paulo")
            #expect(values["birth_date"] == "1985-02-28")
            #expect(values["debt_amount"] == "1234.50")
            #expect(field(e, "cpf")?.type == .cpf)
            #expect(field(e, "cpf")?.storedBy == "crm")
            #expect(field(e, "email")?.version == 2)
            #expect(field(e, "email")?.corrected == true)
            #expect(field(e, "cpf")?.corrected == false)

            let consents = e.consents
            #expect(consents.count == 1)
            #expect(consents[0].evidence == grant.evidence)
            let purposes = e.purposes
            #expect(purposes.contains { $0.purpose == "legal-defense" && $0.retentionDays == 1825 })
            #expect(purposes.contains { $0.purpose == "collection-whatsapp" && $0.consent == .granted })

            let history = e.accessHistory
            let reveals = history.filter { $0.action == .detokenize }
            #expect(reveals.count == 3)
            #expect(reveals.contains { $0.service == "whatsapp-bot" && $0.purpose == "collection-whatsapp"
                && $0.fields == ["phone"] && $0.decision == .allow })
            #expect(reveals.contains { $0.service == "crm" && $0.purpose == "payment"
                && $0.fields == ["phone"] && $0.code == DenialCode.fieldNotAllowed.rawValue })
            #expect(history.contains { $0.action == .fieldsPut && $0.fields == ["email"] })
            #expect(e.erasure == nil)

            let simple = try await api.call(.get, "/v1/subjects/\(s)/export?format=simple", key: dpo)
            #expect(simple.status == .ok)
            let summary = try simple.decode(SimpleExportResponse.self)
            #expect(summary.processing == true)
            #expect(Set(summary.fields) == Set(joao.keys))
            for v in joaoStored { #expect(!simple.raw.contains(v)) }

            for key in [crm, try await tv.principal("auditor").key] {
                #expect(try await api.call(.get, "/v1/subjects/\(s)/export", key: key).status == .forbidden)
            }
            #expect(try await api.call(.get, "/v1/subjects/sub_aaaaaaaaaaaaaaaaaaaaaaaaaa/export", key: dpo).status == .notFound)
            #expect(try await api.call(.get, "/v1/subjects/\(s)/export?format=pdf", key: dpo).status == .badRequest)
        }
    }

    @Test("a long access history is streamed page by page, complete and valid")
    func longHistory() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            for _ in 0..<3 { _ = try await api.detokenize(key: crm, purpose: "collection-call", Array(repeating: c.tokens["phone"]!, count: 1000)) }
            let r = try await api.call(.get, "/v1/subjects/\(try c.subject)/export", key: dpo)
            let history = try r.decode(ExportResponse.self).accessHistory
            #expect(history.count == 3001)
            let seqs = history.map(\.seq)
            #expect(seqs == seqs.sorted())
        }
    }

    @Test("erasure: shreds what nothing retains, blocks what legal-defense keeps, and is idempotent")
    func erasure() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        let dpo = try await tv.principal("dpo").key
        let subject = try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = try c.subject
            let t = c.tokens
            _ = try await api.send(.put, "/v1/subjects/\(s)/consents/collection-whatsapp", key: bot, grant)

            let r = try await api.post("/v1/subjects/\(s)/erase", key: dpo, eraseBody)
            #expect(r.status == .ok, "\(r.raw)")
            let receipt = try r.decode(ErasureReceipt.self)
            let outcomes = Dictionary(uniqueKeysWithValues: receipt.fields.map { ($0.field, $0) })
            for f in ["phone", "email", "birth_date"] { #expect(outcomes[f]?.outcome == .erased, "\(f)") }
            let retainedUntil = String(ISO8601DateFormatter().string(from: tv.clock.now + 1825 * 86400).prefix(10))
            for f in ["name", "cpf", "debt_amount", "address"] {
                #expect(outcomes[f]?.outcome == .retained, "\(f)")
                #expect(outcomes[f]?.purpose == "legal-defense")
                #expect(outcomes[f]?.legalBasis == LegalBasis.exerciseOfRights.rawValue)
                #expect(outcomes[f]?.until.map { WireJSON.formatDate($0).hasPrefix(retainedUntil) } == true)
            }
            #expect(receipt.ticket == "DPO-2026-0042")

            // Erased fields answer subject_erased for every purpose.
            for purpose in ["collection-call", "payment", "legal-defense"] {
                let d = try await api.detokenize(key: crm, purpose: purpose, [t["phone"]!, t["email"]!, t["birth_date"]!])
                for item in d.results where deniedCode(item) != .fieldNotAllowed { #expect(deniedCode(item) == .subjectErased, "\(purpose)") }
            }
            let wa = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [t["phone"]!])
            #expect(deniedCode(wa.results[0]) == .subjectErased)
            // Retained fields: only legal-defense reads them.
            let ld = try await api.detokenize(key: crm, purpose: "legal-defense", [t["name"]!, t["cpf"]!, t["address"]!, t["debt_amount"]!])
            #expect(ld.results.map(\.value) == ["João da Silva", "12345678909", "Rua das Flores, 10, São Paulo", "1234.50"])
            let call = try await api.detokenize(key: crm, purpose: "collection-call", [t["name"]!, t["cpf"]!])
            #expect(call.results.map(deniedCode) == [.subjectBlocked, .subjectBlocked])
            let pay = try await api.detokenize(key: crm, purpose: "payment", [t["debt_amount"]!])
            #expect(deniedCode(pay.results[0]) == .subjectBlocked)

            // Lookups: an erased phone is gone from the index; a retained CPF is found only for legal-defense.
            let byPhone = try await api.lookup(key: crm, purpose: "collection-call", field: "phone", value: "11987654321")
            #expect(byPhone.errorCode == .noMatch)
            let byCPF = try await api.lookup(key: crm, purpose: "payment", field: "cpf", value: "12345678909")
            #expect(byCPF.errorCode == .noMatch)
            let legal = try await api.lookup(key: crm, purpose: "legal-defense", field: "cpf", value: "12345678909")
            #expect(try legal.decode(LookupResponse.self).subject == s)

            // Nothing can be written to an erased subject, and its external_ref is free again.
            #expect(try await api.putFields(key: crm, subject: s, ["phone": "11987654321"]).errorCode == .subjectErased)
            #expect(try await api.send(.put, "/v1/subjects/\(s)/consents/collection-whatsapp", key: bot, grant).errorCode == .subjectErased)
            #expect(try await api.createSubject(key: crm, ref: "crm-1", ["name": "João da Silva"]).status == .created)

            // Idempotent: the same receipt again.
            let again = try await api.post("/v1/subjects/\(s)/erase", key: dpo, eraseBody)
            #expect(again.status == .ok)
            #expect(again.raw == r.raw)

            // The export shows the erasure and only what is retained.
            let e = try await api.call(.get, "/v1/subjects/\(s)/export", key: dpo).decode(ExportResponse.self)
            #expect(field(e, "phone") != nil)
            #expect(field(e, "phone")?.value == nil)
            #expect(field(e, "phone")?.status == .erased)
            #expect(field(e, "cpf")?.status == .blocked)
            #expect(field(e, "cpf")?.value == "12345678909")
            #expect(e.erasure?.ticket == "DPO-2026-0042")
            #expect(e.consents.first != nil)
            #expect(e.consents.first?.evidence == nil, "consent evidence is erased too")
            #expect(e.consents.first?.status == .granted, "the ledger entry stays")
            return s
        }
        // Erased fields' keys are gone from the key store; retained ones are still there.
        let remaining = try await tv.vault.dataKeys.store.ids(subject: subject)
        let retained = try await tv.vault.store.fields(subject: subject).filter { $0.status == .blocked }
        #expect(Set(remaining) == Set(retained.map(\.keyID)))
        #expect(retained.contains { $0.field == "cpf" } && !remaining.contains { $0.group == "consent" || $0.group.hasPrefix("field:phone:") })
        // Audit events are never deleted by erasure.
        let history = try await tv.vault.store.auditEvents(AuditQuery(subject: subject, limit: 1000))
        #expect(history.contains { $0.draft.action == AuditAction.subjectCreate.rawValue })
        #expect(history.contains { $0.draft.action == AuditAction.subjectErase.rawValue && $0.draft.code == nil })
        #expect(history.contains { $0.draft.action == AuditAction.subjectErase.rawValue && $0.draft.code == "already_erased" })
    }

    @Test("erasure input and roles: reason and ticket required, DPO only, unknown subject 404")
    func erasureErrors() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = try c.subject
            #expect(try await api.post("/v1/subjects/\(s)/erase", key: crm, eraseBody).status == .forbidden)
            #expect(try await api.call(.post, "/v1/subjects/\(s)/erase", key: dpo, body: #"{"reason":"x"}"#).status == .badRequest)
            #expect(try await api.post("/v1/subjects/\(s)/erase", key: dpo, EraseRequest(reason: " ", ticket: "T")).status == .badRequest)
            #expect(try await api.post("/v1/subjects/sub_aaaaaaaaaaaaaaaaaaaaaaaaaa/erase", key: dpo, eraseBody).status == .notFound)
            // Nothing was erased by the refused calls.
            let r = try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!])
            #expect(r.results[0].value == "+5511987654321")
            #expect(try await tv.vault.store.erasureReceipt(subject: s) == nil)
        }
    }

    @Test("a data-store backup taken before an erasure cannot bring erased values back")
    func backupCannotRevive() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let dpo = try await tv.principal("dpo").key
        let created = try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            return (try c.subject, c.tokens)
        }
        let (subject, tokens) = created
        let backup = try await tv.backupDataStore()
        try await withAPI(tv) { api in
            let r = try await api.post("/v1/subjects/\(subject)/erase", key: dpo, eraseBody)
            #expect(r.status == .ok)
        }
        // Restore the old data store beside the current key store, as an operator recovering from a disaster would.
        let restored = try await tv.restored(from: backup)
        try await withAPI(restored) { api in
            // In the old copy the subject is active and its ciphertexts are there, but their keys are gone:
            // the vault says so (an integrity failure) and reveals nothing.
            let d = try await api.post("/v1/detokenize", key: crm, DetokenizeRequest(purpose: "collection-call", tokens: [tokens["phone"]!]))
            #expect(d.status == .serviceUnavailable)
            #expect(d.errorCode == .integrityFailure)
            #expect(!d.raw.contains("+5511987654321"))
            let kept = try await api.detokenize(key: crm, purpose: "legal-defense", [tokens["name"]!])
            #expect(kept.results[0].value == "João da Silva", "retained fields keep their keys")
            let e = try await api.call(.get, "/v1/subjects/\(subject)/export", key: dpo)
            #expect(e.status == .serviceUnavailable)
            #expect(!e.raw.contains("+5511987654321"))
        }
        // And directly: the old ciphertext is in the backup, its key is not in the key store.
        let old = try #require(try await restored.vault.store.fields(subject: subject).first { $0.field == "phone" })
        #expect(!old.ciphertext.isEmpty)
        #expect(old.status == .active)
        #expect(try await restored.vault.dataKeys.store.fetch([old.keyID]).isEmpty)
    }

    @Test("the retention sweeper shreds a retained field once its date has passed")
    func retentionSweep() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let dpo = try await tv.principal("dpo").key
        let tokens = try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            #expect(try await api.post("/v1/subjects/\(try c.subject)/erase", key: dpo, eraseBody).status == .ok)
            return c.tokens
        }
        tv.clock.advance(days: 1824)
        #expect(try await tv.vault.sweepRetention() == 0)
        tv.clock.advance(days: 2)
        #expect(try await tv.vault.sweepRetention() == 4)
        try await withAPI(tv) { api in
            let d = try await api.detokenize(key: crm, purpose: "legal-defense", [tokens["name"]!, tokens["cpf"]!])
            #expect(d.results.map(deniedCode) == [.subjectErased, .subjectErased])
        }
        #expect(try await tv.vault.dataKeys.store.countByKEKVersion()[1] == 2, "only the system keys remain")
        let shred = try await tv.vault.store.auditEvents(AuditQuery(action: AuditAction.retentionShred.rawValue, limit: 10))
        #expect(shred.count == 1)
        #expect(shred.first?.draft.fields == ["address", "cpf", "debt_amount", "name"])
    }
}
