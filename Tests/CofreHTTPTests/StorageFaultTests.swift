import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

/// Real SQLite I/O failures (through the fault VFS, not a mocked store): a full disk, write errors,
/// and reads failing too, first on the data store (which holds the audit log), then on the key
/// store. Every affected call answers 503 with nothing revealed or changed; `/readyz` says so; when
/// the fault clears the same vault, not restarted, serves again and has lost nothing acknowledged.
@Suite("Storage faults: a full disk or an I/O error is a 503 that reveals and changes nothing, and the vault recovers by itself",
       .serialized, .enabled(if: TestEngine.current.isSQLite))
struct StorageFaultTests {
    enum Target: String, CaseIterable { case dataStore, keyStore }

    @Test("a fault on one store, then cleared", arguments: [FaultVFS.Fault.diskFull, .writeIOError, .allIOError], Target.allCases)
    func faultThenRecovery(fault: FaultVFS.Fault, target: Target) async throws {
        let dir = try makeTempDirectory()
        FaultVFS.watch(dir, image: dir + ".image")
        defer { FaultVFS.unwatch(dir) }
        let tv = try await TestVault.make(directory: dir, engine: .sqlite)
        let crm = try await tv.principal("crm").key
        let auditor = try await tv.principal("auditor").key
        let prefix = target == .dataStore ? tv.dataPath : tv.keyStorePath
        let label = "\(fault) on the \(target)"

        try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "f-1", ["name": "Ana Souza", "phone": "11 98888-7777"])
            let s = try created.subject
            let nameToken = try #require(created.tokens["name"])
            #expect(try await api.call(.get, "/readyz").status == .ok)
            let eventsBefore = try await tv.vault.store.auditPage(after: 0, limit: 100_000).count
            let fieldsBefore = try await tv.vault.store.fields(subject: s)

            FaultVFS.set(fault, prefix: prefix)
            // Writes: refused whole.
            let create = try await api.createSubject(key: crm, ref: "f-2", ["name": "Bia Lima"])
            #expect(create.status == .serviceUnavailable, "\(label): create answered \(create.status)")
            let correct = try await api.putFields(key: crm, subject: s, ["phone": "11 97777-6666"])
            #expect(correct.status == .serviceUnavailable, "\(label): correction answered \(correct.status)")
            // A reveal needs its audit event in the data store: without it, nothing leaves. With the key
            // store failing, a reveal may still be served (its keys may be cached), audited as usual.
            let reveal = try await api.detokenize(key: crm, purpose: "collection-call", [nameToken])
            if target == .dataStore {
                #expect(reveal.status == .serviceUnavailable, "\(label): reveal answered \(reveal.status)")
                #expect(!reveal.raw.contains("Ana"), "\(label): a value left without its audit event")
            } else {
                #expect(reveal.status == .ok || reveal.status == .serviceUnavailable, "\(label): reveal answered \(reveal.status)")
            }
            for a in [create, correct, reveal] where a.status == .serviceUnavailable {
                #expect(a.errorCode == .unavailable || a.errorCode == .auditUnavailable, "\(label): \(a.raw)")
            }
            let ready = try await api.call(.get, "/readyz")
            #expect(ready.status == .serviceUnavailable, "\(label): /readyz answered \(ready.status) while the store fails")

            FaultVFS.set(.none, prefix: prefix)
            // The same vault, not restarted: ready again, and serving.
            #expect(try await api.call(.get, "/readyz").status == .ok, "\(label): not ready after the fault cleared")
            // Nothing changed while it failed (but the reveal's own event, when the key store was the one failing).
            let fieldsAfter = try await tv.vault.store.fields(subject: s)
            #expect(fieldsAfter == fieldsBefore, "\(label): a refused write changed a field")
            #expect(try await tv.vault.store.subject(id: s) != nil)
            let eventsDuring = try await tv.vault.store.auditPage(after: 0, limit: 100_000).count - eventsBefore
            #expect(eventsDuring <= (reveal.status == .ok ? 1 : 0), "\(label): \(eventsDuring) events recorded for refused calls")

            let again = try await api.createSubject(key: crm, ref: "f-2", ["name": "Bia Lima"])
            #expect(again.status == .created, "\(label): create after recovery answered \(again.status) \(again.raw)")
            let fixed = try await api.putFields(key: crm, subject: s, ["phone": "11 97777-6666"])
            #expect(fixed.status == .ok, "\(label): correction after recovery answered \(fixed.status)")
            let revealed = try await api.detokenize(key: crm, purpose: "collection-call", [nameToken])
            #expect(revealed.results.first?.value == "Ana Souza", "\(label): the acknowledged name is gone")
            let verify = try await api.call(.get, "/v1/audit/verify", key: auditor)
            #expect((try? verify.decode(VerifyResponse.self))?.ok == true, "\(label): \(verify.raw)")
            let subjects = [s] + [try? again.subject].compactMap { $0 }
            #expect(try await tv.invariantViolations(subjects: subjects) == [], "\(label)")
        }
    }
}
