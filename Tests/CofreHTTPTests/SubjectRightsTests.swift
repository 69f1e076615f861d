import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

func field(_ export: [String: Any], _ name: String) -> [String: Any]? {
    (export["fields"] as? [[String: Any]])?.first { $0["field"] as? String == name }
}

let eraseBody: [String: String] = ["reason": "Art. 18 VI request received by e-mail", "ticket": "DPO-2026-0042"]

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
            let s = c["subject"] as! String
            _ = try await api.call(.put, "/v1/subjects/\(s)/consents/collection-whatsapp", key: bot, body: jsonText(grant))
            _ = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [c.tokens["phone"]!])
            _ = try await api.detokenize(key: crm, purpose: "payment", [c.tokens["cpf"]!, c.tokens["phone"]!])
            _ = try await api.post("/v1/subjects/\(s)/fields", key: crm, ["fields": ["email": "novo@example.com"]])

            let r = try await api.call(.get, "/v1/subjects/\(s)/export", key: dpo)
            #expect(r.status == .ok, "\(r.raw)")
            let e = r.json
            #expect(e["schema"] as? String == "cofre.export.v1")
            #expect((e["subject"] as? [String: Any])?["id"] as? String == s)
            let values = Dictionary(uniqueKeysWithValues: (e["fields"] as! [[String: Any]]).map { ($0["field"] as! String, $0["value"] as? String) })
            #expect(values["name"] == "João da Silva")
            #expect(values["cpf"] == "12345678909")
            #expect(values["phone"] == "+5511987654321")
            #expect(values["email"] == "novo@example.com")
            #expect(values["address"] == "Rua das Flores, 10, São Paulo")
            #expect(values["birth_date"] == "1985-02-28")
            #expect(values["debt_amount"] == "1234.50")
            #expect(field(e, "cpf")?["type"] as? String == "cpf")
            #expect(field(e, "cpf")?["stored_by"] as? String == "crm")
            #expect(field(e, "email")?["version"] as? Int == 2)
            #expect(field(e, "email")?["corrected"] as? Bool == true)
            #expect(field(e, "cpf")?["corrected"] as? Bool == false)

            let consents = try #require(e["consents"] as? [[String: Any]])
            #expect(consents.count == 1)
            #expect(consents[0]["evidence"] as? String == grant["evidence"])
            let purposes = try #require(e["purposes"] as? [[String: Any]])
            #expect(purposes.contains { $0["purpose"] as? String == "legal-defense" && $0["retention_days"] as? Int == 1825 })
            #expect(purposes.contains { $0["purpose"] as? String == "collection-whatsapp" && $0["consent"] as? String == "granted" })

            let history = try #require(e["access_history"] as? [[String: Any]])
            let reveals = history.filter { $0["action"] as? String == "detokenize" }
            #expect(reveals.count == 3)
            #expect(reveals.contains { $0["service"] as? String == "whatsapp-bot" && $0["purpose"] as? String == "collection-whatsapp"
                && $0["fields"] as? [String] == ["phone"] && $0["decision"] as? String == "allow" })
            #expect(reveals.contains { $0["service"] as? String == "crm" && $0["purpose"] as? String == "payment"
                && $0["fields"] as? [String] == ["phone"] && $0["code"] as? String == "field_not_allowed" })
            #expect(history.contains { $0["action"] as? String == "fields.put" && $0["fields"] as? [String] == ["email"] })
            #expect(e["erasure"] == nil || e["erasure"] is NSNull)

            let simple = try await api.call(.get, "/v1/subjects/\(s)/export?format=simple", key: dpo)
            #expect(simple.status == .ok)
            #expect(simple["processing"] as? Bool == true)
            #expect(Set(simple["fields"] as? [String] ?? []) == Set(joao.keys))
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
            let r = try await api.call(.get, "/v1/subjects/\(c["subject"] as! String)/export", key: dpo)
            let history = try #require(r.json["access_history"] as? [[String: Any]])
            #expect(history.count == 3001)
            let seqs = history.compactMap { $0["seq"] as? Int }
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
            let s = c["subject"] as! String
            let t = c.tokens
            _ = try await api.call(.put, "/v1/subjects/\(s)/consents/collection-whatsapp", key: bot, body: jsonText(grant))

            let r = try await api.post("/v1/subjects/\(s)/erase", key: dpo, eraseBody)
            #expect(r.status == .ok, "\(r.raw)")
            let outcomes = Dictionary(uniqueKeysWithValues: (r["fields"] as! [[String: Any]]).map { ($0["field"] as! String, $0) })
            for f in ["phone", "email", "birth_date"] { #expect(outcomes[f]?["outcome"] as? String == "erased", "\(f)") }
            for f in ["name", "cpf", "debt_amount", "address"] {
                #expect(outcomes[f]?["outcome"] as? String == "retained", "\(f)")
                #expect(outcomes[f]?["purpose"] as? String == "legal-defense")
                #expect(outcomes[f]?["legal_basis"] as? String == "exercise_of_rights")
                #expect((outcomes[f]?["until"] as? String)?.hasPrefix(String(ISO8601DateFormatter().string(from: tv.clock.now + 1825 * 86400).prefix(10))) == true)
            }
            #expect(r["ticket"] as? String == "DPO-2026-0042")

            // Erased fields answer subject_erased for every purpose.
            for purpose in ["collection-call", "payment", "legal-defense"] {
                let d = try await api.detokenize(key: crm, purpose: purpose, [t["phone"]!, t["email"]!, t["birth_date"]!])
                for item in d.results where deniedCode(item) != "field_not_allowed" { #expect(deniedCode(item) == "subject_erased", "\(purpose)") }
            }
            let wa = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [t["phone"]!])
            #expect(deniedCode(wa.results[0]) == "subject_erased")
            // Retained fields: only legal-defense reads them.
            let ld = try await api.detokenize(key: crm, purpose: "legal-defense", [t["name"]!, t["cpf"]!, t["address"]!, t["debt_amount"]!])
            #expect(ld.results.map { $0["value"] as? String } == ["João da Silva", "12345678909", "Rua das Flores, 10, São Paulo", "1234.50"])
            let call = try await api.detokenize(key: crm, purpose: "collection-call", [t["name"]!, t["cpf"]!])
            #expect(call.results.map(deniedCode) == ["subject_blocked", "subject_blocked"])
            let pay = try await api.detokenize(key: crm, purpose: "payment", [t["debt_amount"]!])
            #expect(deniedCode(pay.results[0]) == "subject_blocked")

            // Lookups: an erased phone is gone from the index; a retained CPF is found only for legal-defense.
            let byPhone = try await api.post("/v1/lookup", key: crm, ["purpose": "collection-call", "field": "phone", "value": "11987654321"])
            #expect(byPhone.errorCode == "no_match")
            let byCPF = try await api.post("/v1/lookup", key: crm, ["purpose": "payment", "field": "cpf", "value": "12345678909"])
            #expect(byCPF.errorCode == "no_match")
            let legal = try await api.post("/v1/lookup", key: crm, ["purpose": "legal-defense", "field": "cpf", "value": "12345678909"])
            #expect(legal["subject"] as? String == s)

            // Nothing can be written to an erased subject, and its external_ref is free again.
            #expect(try await api.post("/v1/subjects/\(s)/fields", key: crm, ["fields": ["phone": "11987654321"]]).errorCode == "subject_erased")
            #expect(try await api.call(.put, "/v1/subjects/\(s)/consents/collection-whatsapp", key: bot, body: jsonText(grant)).errorCode == "subject_erased")
            #expect(try await api.createSubject(key: crm, ref: "crm-1", ["name": "João da Silva"]).status == .created)

            // Idempotent: the same receipt again.
            let again = try await api.post("/v1/subjects/\(s)/erase", key: dpo, eraseBody)
            #expect(again.status == .ok)
            #expect(again.raw == r.raw)

            // The export shows the erasure and only what is retained.
            let e = try await api.call(.get, "/v1/subjects/\(s)/export", key: dpo).json
            #expect(field(e, "phone")?["value"] == nil)
            #expect(field(e, "phone")?["status"] as? String == "erased")
            #expect(field(e, "cpf")?["status"] as? String == "blocked")
            #expect(field(e, "cpf")?["value"] as? String == "12345678909")
            #expect((e["erasure"] as? [String: Any])?["ticket"] as? String == "DPO-2026-0042")
            #expect((e["consents"] as? [[String: Any]])?.first?["evidence"] == nil, "consent evidence is erased too")
            #expect((e["consents"] as? [[String: Any]])?.first?["status"] as? String == "granted", "the ledger entry stays")
            return s
        }
        // Erased fields' keys are gone from the key store; retained ones are still there.
        let remaining = try await tv.vault.dataKeys.store.ids(subject: subject)
        let retained = try await tv.vault.store.fields(subject: subject).filter { $0.status == .blocked }
        #expect(Set(remaining) == Set(retained.map(\.keyID)))
        #expect(retained.contains { $0.field == "cpf" } && !remaining.contains { $0.group == "consent" || $0.group.hasPrefix("field:phone:") })
        // Audit events are never deleted by erasure.
        let history = try await tv.vault.store.auditEvents(AuditQuery(subject: subject, limit: 1000))
        #expect(history.contains { $0.draft.action == "subject.create" })
        #expect(history.contains { $0.draft.action == "subject.erase" && $0.draft.code == nil })
        #expect(history.contains { $0.draft.action == "subject.erase" && $0.draft.code == "already_erased" })
    }

    @Test("erasure input and roles: reason and ticket required, DPO only, unknown subject 404")
    func erasureErrors() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = c["subject"] as! String
            #expect(try await api.post("/v1/subjects/\(s)/erase", key: crm, eraseBody).status == .forbidden)
            #expect(try await api.post("/v1/subjects/\(s)/erase", key: dpo, ["reason": "x"]).status == .badRequest)
            #expect(try await api.post("/v1/subjects/\(s)/erase", key: dpo, ["reason": " ", "ticket": "T"]).status == .badRequest)
            #expect(try await api.post("/v1/subjects/sub_aaaaaaaaaaaaaaaaaaaaaaaaaa/erase", key: dpo, eraseBody).status == .notFound)
            // Nothing was erased by the refused calls.
            let r = try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!])
            #expect(r.results[0]["value"] as? String == "+5511987654321")
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
            return (c["subject"] as! String, c.tokens)
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
            let d = try await api.post("/v1/detokenize", key: crm, ["purpose": "collection-call", "tokens": [tokens["phone"]!]])
            #expect(d.status == .serviceUnavailable)
            #expect(d.errorCode == "integrity_failure")
            #expect(!d.raw.contains("+5511987654321"))
            let kept = try await api.detokenize(key: crm, purpose: "legal-defense", [tokens["name"]!])
            #expect(kept.results[0]["value"] as? String == "João da Silva", "retained fields keep their keys")
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
            #expect(try await api.post("/v1/subjects/\(c["subject"] as! String)/erase", key: dpo, eraseBody).status == .ok)
            return c.tokens
        }
        tv.clock.advance(days: 1824)
        #expect(try await tv.vault.sweepRetention() == 0)
        tv.clock.advance(days: 2)
        #expect(try await tv.vault.sweepRetention() == 4)
        try await withAPI(tv) { api in
            let d = try await api.detokenize(key: crm, purpose: "legal-defense", [tokens["name"]!, tokens["cpf"]!])
            #expect(d.results.map(deniedCode) == ["subject_erased", "subject_erased"])
        }
        #expect(try await tv.vault.dataKeys.store.countByKEKVersion()[1] == 2, "only the system keys remain")
        let shred = try await tv.vault.store.auditEvents(AuditQuery(action: "retention.shred", limit: 10))
        #expect(shred.count == 1)
        #expect(shred.first?.draft.fields == ["address", "cpf", "debt_amount", "name"])
    }
}
