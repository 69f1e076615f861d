import CofreAPI
import CofreCore
import CofreSQLite
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

@Suite("Key lifecycle: rotate, rewrap, retire, key sources and usage limits")
struct KeyLifecycleTests {
    @Test("after rotate new subjects use the new KEK and old ones still read; after rewrap none is left on v1; then retire")
    func rotateRewrapRetire() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let first = try await withAPI(tv) { api in try await api.createSubject(key: crm, ref: "old", joao).tokens }
        #expect(try await tv.vault.rotateKEK() == 2)
        #expect(throws: KeyRingError.self) { try tv.vault.dataKeys.provider.retire(2) }
        let second = try await withAPI(tv) { api in try await api.createSubject(key: crm, ref: "new", ["name": "Ana", "cpf": "529.982.247-25"]).tokens }
        var counts = try await tv.vault.dataKeys.store.countByKEKVersion()
        #expect(counts[2] == 2)
        #expect(counts[1] == joao.count + 2)

        await #expect(throws: KeyRingError.self) { try await tv.vault.retireKEK(1) }

        let r = try await tv.vault.rewrapDataKeys(batchSize: 3, maxBatches: nil)
        #expect(r.rewrapped == joao.count + 2)
        #expect(r.remaining == 0)
        counts = try await tv.vault.dataKeys.store.countByKEKVersion()
        #expect(counts[1] == nil)
        let status = try await tv.vault.keyStatus()
        #expect(status.systemKeys == [Vault.indexKeyGroup: 2, Vault.auditKeyGroup: 2])

        let archived = try await tv.vault.retireKEK(1)
        #expect(tv.vault.dataKeys.ring.versions == [2])
        #expect(!FileManager.default.fileExists(atPath: tv.keysPath + "/kek-v1.key"))
        #expect(archived == tv.keysPath + "/retired/kek-v1.key" && FileManager.default.fileExists(atPath: archived))
        // Everything still reads, also after a restart with only v2 on disk.
        let restarted = try await tv.reopen()
        try await withAPI(restarted) { api in
            let a = try await api.detokenize(key: crm, purpose: "legal-defense", [first["name"]!, first["cpf"]!, first["address"]!])
            #expect(a.results.map(\.value) == ["João da Silva", "12345678909", "Rua das Flores, 10, São Paulo"])
            let b = try await api.detokenize(key: crm, purpose: "payment", [second["cpf"]!])
            #expect(b.results[0].value == "52998224725")
            // Lookups and the audit chain survived: their keys were re-wrapped, not replaced.
            let l = try await api.lookup(key: crm, purpose: "payment", field: "cpf", value: "123.456.789-09")
            #expect(l.status == .ok)
        }
        #expect(try await restarted.vault.verifyAudit().ok)
        let actions = try await restarted.vault.store.auditEvents(AuditQuery(service: "operator", limit: 100)).map(\.draft.action)
        #expect(actions.contains(AuditAction.keysRotate.rawValue) && actions.contains(AuditAction.keysRewrap.rawValue)
                && actions.contains(AuditAction.keysRetire.rawValue))
    }

    @Test("a rewrap interrupted halfway resumes and finishes; reads work at every step")
    func interruptedRewrap() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let tokens = try await withAPI(tv) { api in try await api.createSubject(key: crm, ref: "old", joao).tokens }
        _ = try await tv.vault.rotateKEK()
        let partial = try await tv.vault.rewrapDataKeys(batchSize: 2, maxBatches: 2)
        #expect(partial.rewrapped == 4)
        #expect(partial.remaining == joao.count + 2 - 4)
        try await withAPI(tv) { api in
            let r = try await api.detokenize(key: crm, purpose: "legal-defense", Array(tokens.values))
            #expect(r.results.count == tokens.count)
            #expect(r.results.allSatisfy { $0.denied == nil || deniedCode($0) == .fieldNotAllowed })
        }
        let rest = try await tv.vault.rewrapDataKeys(batchSize: 2, maxBatches: nil)
        #expect(rest.rewrapped == joao.count + 2 - 4)
        #expect(rest.remaining == 0)
        #expect(try await tv.vault.rewrapDataKeys(batchSize: 2, maxBatches: nil).rewrapped == 0, "a finished rewrap has nothing to do")
    }

    @Test("another instance's rotation is picked up: on reload, and at once when it meets a key wrapped by the new version")
    func rotationReachesOtherInstances() async throws {
        let a = try await TestVault.make()
        let b = try await a.reopen()
        let crm = try await a.principal("crm").key
        _ = try await a.vault.rotateKEK()
        // B has not reloaded, but reads a key wrapped by v2: it reloads on the miss.
        let tokens = try await withAPI(a) { api in try await api.createSubject(key: crm, ref: "x", ["name": "Ana"]).tokens }
        #expect(b.vault.dataKeys.ring.primaryVersion == 1)
        try await withAPI(b) { api in
            let r = try await api.detokenize(key: crm, purpose: "payment", [tokens["name"]!])
            #expect(r.results[0].value == "Ana")
        }
        #expect(b.vault.dataKeys.ring.primaryVersion == 2, "the miss made B reload, so its new wraps use v2")
    }

    @Test("keys from COFRE_KEK (environment) and a KEK file: loaded, mode-checked; rotation where the operator can do it")
    func productionSources() throws {
        let k1 = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let k2 = Data((0..<32).map { UInt8(255 - $0) }).base64EncodedString()
        let logger = LogCapture().logger
        let env = try KeyRingProvider(environmentValue: "v1:\(k1), v2:\(k2)", logger: logger)
        #expect(env.current.versions == [1, 2])
        let refused = #expect(throws: KeyRingError.self) { _ = try env.rotate() }
        #expect(refused?.description.contains("secret store") == true)
        for bad in ["v1:short", "1:\(k1)", "v1:\(k1),v1:\(k2)", ""] {
            #expect(throws: KeyRingError.self) { _ = try KeyRingProvider(environmentValue: bad, logger: logger) }
        }
        let noLeak = #expect(throws: KeyRingError.self) {
            _ = try KeyRingProvider(environmentValue: "v1:\(k1.dropLast(4))", logger: logger)
        }
        #expect(noLeak?.description.contains(String(k1.prefix(10))) == false, "errors never quote key material")

        let dir = try makeTempDirectory()
        let file = dir + "/kek"
        FileManager.default.createFile(atPath: file, contents: Data("v1:\(k1)\n".utf8), attributes: [.posixPermissions: 0o644])
        let open = #expect(throws: KeyRingError.self) { _ = try KeyRingProvider(source: .file(file), allowCreate: false, logger: logger) }
        #expect(open?.description.contains("chmod 600") == true)
        chmod(file, 0o600)
        let fromFile = try KeyRingProvider(source: .file(file), allowCreate: false, logger: logger)
        #expect(try fromFile.rotate() == 2)
        #expect(try String(contentsOfFile: file, encoding: .utf8).hasPrefix("v1:\(k1)\nv2:"))
        try fromFile.retire(1)
        #expect(fromFile.current.versions == [2])
    }

    @Test("a shared key's uses are counted and refused past the limit")
    func usageCounter() async throws {
        let tv = try await TestVault.make()
        let id = DataKeyID(subject: "sub_x", group: "consent", generation: 1)
        _ = try await tv.vault.dataKeys.getOrCreate(id, now: Date())
        #expect(try await tv.vault.dataKeys.store.reserveUses(id, count: 2, limit: 3))
        #expect(try await tv.vault.dataKeys.store.reserveUses(id, count: 1, limit: 3))
        #expect(try await tv.vault.dataKeys.store.reserveUses(id, count: 1, limit: 3) == false)
    }
}

@Suite("Two-phase retire and the health of the key ring")
struct RetireSafetyTests {
    @Test("retire is refused, naming the instance, while a live instance still has the old primary or switched too recently")
    func instancesBlockRetire() async throws {
        let tv = try await TestVault.make()
        let other = try await tv.reopen()  // a second serving instance on the same stores
        let me = try ServingInstance(startedAt: tv.clock.now)
        let them = try ServingInstance(startedAt: tv.clock.now)
        try await tv.vault.heartbeat(me)
        try await other.vault.heartbeat(them)
        #expect(try await tv.vault.rotateKEK() == 2)
        _ = try await tv.vault.rewrapDataKeys(batchSize: 100, maxBatches: nil)
        // `other` has not reloaded its ring: it would still wrap new keys under v1.
        try await tv.vault.heartbeat(me)
        var refusal = await #expect(throws: KeyRingError.self) { try await tv.vault.retireKEK(1) }
        #expect(refusal?.description.contains(them.id) == true && refusal?.description.contains("not all loaded v2") == true,
                "\(refusal?.description ?? "")")
        // It reloads and reports v2: refused for a little while more, then allowed.
        try other.vault.dataKeys.provider.reload()
        try await other.vault.heartbeat(them)
        refusal = await #expect(throws: KeyRingError.self) { try await tv.vault.retireKEK(1) }
        #expect(refusal?.description.contains("less than") == true, "\(refusal?.description ?? "")")
        tv.clock.advance(days: 31.0 / 86400)
        try await tv.vault.heartbeat(me)
        try await other.vault.heartbeat(them)
        // An instance gone quiet for more than a minute no longer counts.
        let stale = try ServingInstance(startedAt: tv.clock.now.addingTimeInterval(-600))
        _ = try await tv.vault.store.commit(WriteBatch([.heartbeat(InstanceHeartbeat(
            id: stale.id, host: "old", pid: 1, startedAt: stale.startedAt, seenAt: tv.clock.now.addingTimeInterval(-120),
            versions: [1], primary: 1, primarySince: stale.startedAt))]))
        #expect(try await tv.vault.liveInstances().map(\.id).sorted() == [me.id, them.id].sorted())
        try await tv.vault.retireKEK(1)
        #expect(try await tv.vault.keyStatus().instances.count == 2)
        // Purge deletes the archive only; a version still in the ring cannot be purged.
        #expect(throws: KeyRingError.self) { _ = try tv.vault.dataKeys.provider.purge(2) }
        _ = try await tv.vault.purgeKEK(1)
        #expect(!FileManager.default.fileExists(atPath: tv.keysPath + "/retired/kek-v1.key"))
    }

    @Test("a key ring that keeps failing to reload turns readiness off after the grace period, and back on when it loads")
    func reloadFailureReadiness() async throws {
        let tv = try await TestVault.make()
        try await withAPI(tv) { api in
            #expect(try await api.call(.get, "/readyz").status == .ok)
            chmod(tv.keysPath + "/kek-v1.key", 0o644)
            #expect(throws: KeyRingError.self) { try tv.vault.dataKeys.provider.reload(now: tv.clock.now) }
            #expect(try await api.call(.get, "/readyz").status == .ok, "within the grace period")
            tv.clock.advance(days: 31.0 / 86400)
            #expect(try await api.call(.get, "/readyz").status == .serviceUnavailable)
            chmod(tv.keysPath + "/kek-v1.key", 0o600)
            try tv.vault.dataKeys.provider.reload(now: tv.clock.now)
            #expect(try await api.call(.get, "/readyz").status == .ok)
        }
    }
}

@Suite("Binding of the data store to its key store, on the engine under test")
struct BindingVaultTests {
    @Test("another vault's key store and ring, or an empty key store, are refused before anything is written")
    func refused() async throws {
        let a = try await TestVault.make()
        let b = try await TestVault.make()
        _ = try await a.principal("crm")
        let head = try await a.vault.store.lastAuditEvent()?.seq
        let foreign = await #expect(throws: BindingError.self) { _ = try await TestVault.openMismatched(data: a, keys: b) }
        #expect(foreign?.description.contains("belongs to key store") == true, "\(foreign?.description ?? "")")
        let empty = await #expect(throws: BindingError.self) { _ = try await TestVault.openMismatched(data: a, keys: a, freshKeyStore: true) }
        #expect(empty?.description.contains("the key store is empty") == true, "\(empty?.description ?? "")")
        #expect(try await a.vault.store.lastAuditEvent()?.seq == head)
        #expect(try await a.vault.verifyAudit().ok)
        // A vault from before bindings existed (no binding on either side) is adopted once its audit chain
        // verifies under the key store's audit key.
        try await a.tamper("DELETE FROM vault_binding")
        try await a.tamperKeyStore("UPDATE identity SET bound_data_store = NULL")
        let adopted = try await a.reopen()
        #expect(adopted.vault.binding.dataStoreID != a.vault.binding.dataStoreID)
        // And then is bound like any other.
        let again = try await a.reopen()
        #expect(again.vault.binding == adopted.vault.binding)
        #expect(try await a.vault.dataKeys.store.identity().boundDataStore == adopted.vault.binding.dataStoreID)
        _ = head
    }
}
