import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

/// Keeps the failing key store that `TestVault.make` builds, so the test can flip it.
final class FailingKeyStoreBox: @unchecked Sendable {
    var store: FailingKeyStore?
    func wrap(_ base: any DataKeyStore) -> any DataKeyStore {
        let s = FailingKeyStore(base)
        store = s
        return s
    }
}

extension WriteBatch {
    /// Whether this batch stores a field version (a create or a correction).
    var storesField: Bool { ops.contains { if case .putField = $0 { true } else { false } } }
    /// Whether this batch applies an erasure plan.
    var erases: Bool { ops.contains { if case .insertErasureReceipt = $0 { true } else { false } } }
}

/// A phone number in the vault's accepted form, distinct per `i`.
func phone(_ i: Int) -> String { "11 9\(String(format: "%04d", 1000 + i % 9000))-\(String(format: "%04d", i % 10000))" }

/// CONTRACT §4 "Concurrency", through the HTTP router with many concurrent clients, on the engine
/// under test: racing writes end with one winner and success-after or 409, never a 5xx, never a value
/// without its key; an erasure wins over every write racing it; failures injected at each step of a
/// write lose nothing and leave no key that a committed field needs destroyed.
@Suite("Concurrent writes and injected faults keep every active field readable and every erasure complete")
struct ConcurrencyTests {
    @Test("racing corrections of one field: success or 409, never 5xx; exactly one version and one key survive")
    func racingCorrections() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let s = try await api.createSubject(key: crm, ref: "crm-1", joao).subject
            var issued: [String] = []
            for round in 0..<5 {
                let answers = try await withThrowingTaskGroup(of: Answer.self) { group in
                    for i in 0..<24 {
                        group.addTask {
                            try await api.tokenize(key: crm, subject: s, field: "phone", value: phone(round * 100 + i))
                        }
                    }
                    return try await group.reduce(into: [Answer]()) { $0.append($1) }
                }
                for a in answers {
                    #expect(a.status == .ok || (a.status == .conflict && a.errorCode == .concurrentUpdate), "\(a.status) \(a.raw)")
                    if a.status == .ok { issued.append(try a.decode(TokenizeResponse.self).token) }
                }
                #expect(answers.contains { $0.status == .ok })
                #expect(try await tv.invariantViolations(subjects: [s]) == [])
            }
            // Only the last version's token resolves, and it reads a value that was written.
            let r = try await api.detokenize(key: crm, purpose: "collection-call", issued)
            let values = r.results.compactMap(\.value)
            #expect(values.count == 1)
            #expect(r.results.filter { deniedCode($0) == .tokenUnknown }.count == issued.count - 1)
            // One key for the phone: every loser destroyed its own, every winner's predecessor was shredded.
            let current = try #require(try await tv.vault.store.fields(subject: s).first { $0.field == "phone" })
            #expect(try await tv.vault.dataKeys.store.ids(subject: s).filter { $0.group.hasPrefix("field:phone:") } == [current.keyID])
            #expect(try await tv.vault.store.queuedKeyShreds(limit: 100).isEmpty)
        }
    }

    @Test("an erasure racing corrections and new fields wins: writes land before it or answer 409 subject_erased; nothing is revealed after it")
    func erasureRacingWrites() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            var subjects: [String] = []
            for round in 0..<8 {
                let c = try await api.createSubject(key: crm, ref: "crm-\(round)", ["name": "Ana \(round)", "cpf": "529.982.247-25", "phone": phone(round)])
                let s = try c.subject
                subjects.append(s)
                enum Outcome: Sendable { case write(Answer), erase(Answer) }
                let outcomes = try await withThrowingTaskGroup(of: Outcome.self) { group in
                    for i in 0..<12 {
                        group.addTask {
                            let fields = i % 3 == 0 ? ["email": "ana\(i)@example.com"] : ["phone": phone(round * 100 + i)]
                            return .write(try await api.putFields(key: crm, subject: s, fields))
                        }
                        if i == 5 {
                            group.addTask { .erase(try await api.post("/v1/subjects/\(s)/erase", key: dpo, eraseBody)) }
                        }
                    }
                    return try await group.reduce(into: [Outcome]()) { $0.append($1) }
                }
                var tokens = c.tokens.values.map { $0 }
                for o in outcomes {
                    switch o {
                    case .erase(let a):
                        #expect(a.status == .ok, "erase: \(a.status) \(a.raw)")
                    case .write(let a):
                        let allowed = a.status == .ok || (a.status == .conflict && (a.errorCode == .concurrentUpdate || a.errorCode == .subjectErased))
                        #expect(allowed, "write: \(a.status) \(a.raw)")
                        tokens += a.tokens.values
                    }
                }
                // The erasure has answered: no token of any write reveals a value it did not retain.
                for purpose in ["collection-call", "payment"] {
                    let r = try await api.detokenize(key: crm, purpose: purpose, tokens)
                    #expect(r.status == .ok)
                    #expect(r.results.count == tokens.count)
                    #expect(r.results.allSatisfy { $0.value == nil }, "\(purpose) revealed a value after the erasure")
                }
                let byPhone = try await api.lookup(key: crm, purpose: "collection-call", field: "phone", value: phone(round))
                #expect(byPhone.status == .notFound)
                let export = try await api.call(.get, "/v1/subjects/\(s)/export", key: dpo).decode(ExportResponse.self)
                for f in ["phone", "email"] { #expect(field(export, f).map { $0.value == nil } ?? true, "\(f) exported after erasure") }
                #expect(field(export, "phone")?.status == .erased)
                #expect(try await tv.invariantViolations(subjects: [s]) == [])
            }
            #expect(try await tv.invariantViolations(subjects: subjects) == [])
        }
    }

    @Test("a commit that fails before the data store: 503, nothing changes, the attempt's key is swept after the grace period")
    func failBeforeCommit() async throws {
        let failing = FailingStoreBox()
        let tv = try await TestVault.make(wrapStore: { failing.wrap($0) })
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = try c.subject
            let before = try await tv.vault.dataKeys.store.ids(subject: s).count
            failing.store!.commitFault = { $0.storesField ? .failBefore : nil }
            let r = try await api.tokenize(key: crm, subject: s, field: "phone", value: "11 91234-5678")
            #expect(r.status == .serviceUnavailable)
            failing.store!.commitFault = nil
            // Unknown outcome: the attempt's key stays until the sweeper is sure nothing needs it.
            #expect(try await tv.vault.dataKeys.store.ids(subject: s).count == before + 1)
            #expect(try await tv.vault.sweepKeys() == KeySweepResult())
            tv.clock.advance(days: 1)
            #expect(try await tv.vault.sweepKeys().orphans == 1)
            #expect(try await tv.vault.dataKeys.store.ids(subject: s).count == before)
            let d = try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!])
            #expect(d.results[0].value == "+5511987654321")
            #expect(try await tv.invariantViolations(subjects: [s]) == [])
        }
    }

    @Test("a commit whose outcome is lost after it happened: the new version keeps its key; the old one is shredded by the sweeper")
    func failAfterCommit() async throws {
        let failing = FailingStoreBox()
        let tv = try await TestVault.make(wrapStore: { failing.wrap($0) })
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = try c.subject
            failing.store!.commitFault = { $0.storesField ? .failAfterCommit : nil }
            let r = try await api.tokenize(key: crm, subject: s, field: "phone", value: "11 91234-5678")
            #expect(r.status == .serviceUnavailable)
            failing.store!.commitFault = nil
            // The change did commit: the old token stops resolving, the field decrypts (never a value without its key).
            let d = try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!])
            #expect(deniedCode(d.results[0]) == .tokenUnknown)
            #expect(try await tv.invariantViolations(subjects: [s]) == [])
            let export = try await api.call(.get, "/v1/subjects/\(s)/export", key: try await tv.principal("dpo").key).decode(ExportResponse.self)
            #expect(field(export, "phone")?.value == "+5511912345678")
            // The superseded key was queued in the same commit; the sweeper destroys it at once (no grace needed).
            #expect(try await tv.vault.store.queuedKeyShreds(limit: 10).count == 1)
            #expect(try await tv.vault.sweepKeys().superseded == 1)
            #expect(try await tv.vault.dataKeys.store.ids(subject: s).filter { $0.group.hasPrefix("field:phone:") }.count == 1)
            // And the orphan sweep, past the grace period, finds nothing the field needs.
            tv.clock.advance(days: 1)
            #expect(try await tv.vault.sweepKeys().orphans == 0)
            #expect(try await tv.invariantViolations(subjects: [s]) == [])
        }
    }

    @Test("the key store failing: a write is 503 and changes nothing; a failed shred after a commit is retried by the sweeper")
    func keyStoreFaults() async throws {
        let keys = FailingKeyStoreBox()
        let tv = try await TestVault.make(wrapKeyStore: { keys.wrap($0) })
        let crm = try await tv.principal("crm").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = try c.subject
            keys.store!.failInsert = true
            let r = try await api.tokenize(key: crm, subject: s, field: "phone", value: "11 91234-5678")
            #expect(r.status == .serviceUnavailable)
            keys.store!.failInsert = false
            #expect(try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!]).results[0].value == "+5511987654321")

            // Destruction fails after a correction committed: the answer is 200, the old key waits in the queue.
            keys.store!.failDestroy = true
            let ok = try await api.tokenize(key: crm, subject: s, field: "phone", value: "11 91234-5678")
            #expect(ok.status == .ok)
            #expect(try await tv.vault.store.queuedKeyShreds(limit: 10).count == 1)
            // An erasure while destruction fails: answered, nothing revealable, keys queued.
            let e = try await api.post("/v1/subjects/\(s)/erase", key: dpo, eraseBody)
            #expect(e.status == .ok)
            let after = try await api.detokenize(key: crm, purpose: "collection-call", [try ok.decode(TokenizeResponse.self).token])
            #expect(deniedCode(after.results[0]) == .subjectErased)
            #expect(try await tv.invariantViolations(subjects: [s]).count == 1, "erased groups' keys remain until the sweeper runs")
            let status = try await tv.vault.keyStatus()
            #expect(status.unneeded > 0 && status.queuedForShred > 0)
            #expect(await (try? tv.vault.sweepKeys()) == nil, "the sweeper reports the failure")
            keys.store!.failDestroy = false
            _ = try await tv.vault.sweepKeys()
            tv.clock.advance(days: 1)
            _ = try await tv.vault.sweepKeys()
            #expect(try await tv.invariantViolations(subjects: [s]) == [])
            #expect(try await tv.vault.keyStatus().unneeded == 0)
        }
    }

    @Test("an erasure interrupted after marking the subject: writes are refused, reveals still work, and a retry completes it")
    func interruptedErasure() async throws {
        let failing = FailingStoreBox()
        let tv = try await TestVault.make(wrapStore: { failing.wrap($0) })
        let crm = try await tv.principal("crm").key
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = try c.subject
            failing.store!.commitFault = { $0.erases ? .failBefore : nil }
            #expect(try await api.post("/v1/subjects/\(s)/erase", key: dpo, eraseBody).status == .serviceUnavailable)
            failing.store!.commitFault = nil
            #expect(try await tv.vault.store.subject(id: s)?.status == .erasing)
            let w = try await api.tokenize(key: crm, subject: s, field: "phone", value: "11 91234-5678")
            #expect(w.status == .conflict && w.errorCode == .subjectErased)
            #expect(try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!]).results[0].value == "+5511987654321")
            let again = try await api.post("/v1/subjects/\(s)/erase", key: dpo, eraseBody)
            #expect(again.status == .ok)
            #expect(deniedCode(try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!]).results[0]) == .subjectErased)
            #expect(try await tv.invariantViolations(subjects: [s]) == [])
        }
    }

    @Test("a missing key on an active field is an integrity failure (503), logged and counted, never reported as erased")
    func missingKeyIsIntegrityFailure() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "crm-1", joao)
            let s = try c.subject
            let phoneField = try #require(try await tv.vault.store.fields(subject: s).first { $0.field == "phone" })
            try await tv.vault.dataKeys.store.destroy([phoneField.keyID])
            let r = try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!])
            #expect(r.status == .serviceUnavailable)
            #expect(r.errorCode == .integrityFailure)
            #expect(try await tv.invariantViolations(subjects: [s]) == ["\(s)/phone: active without its data key"])
            #expect(tv.logs.text.contains("integrity failure"))
        }
    }
}
