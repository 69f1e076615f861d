import CofreCrypto
public import Foundation
public import Logging

extension Vault {
    /// Opens the vault, after proving that the data store, the key store and the key ring belong
    /// together (CONTRACT §7 v2); a mismatch throws `BindingError`, naming the side that does not
    /// match, before anything is written.
    ///
    /// - A bound data store must name this key store, and its key-check value must be reproduced by
    ///   the keys this ring unwraps from it.
    /// - An empty key store beside a data store that holds anything is refused; so is a key store
    ///   bound to another data store, and a ring that cannot unwrap the key store's keys.
    /// - A data store from before 0.7 (data, no binding) is adopted once its newest audit event
    ///   verifies under the key store's audit key.
    /// - A new data store is bound at its first open; `developmentRing` records that the ring was a
    ///   development ring created for it.
    public static func open(
        policy: Policy, keyRing: KeyRingProvider, keyStore: any DataKeyStore, logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() }, developmentRing: Bool = false, deliveryConfig: DeliveryConfig = DeliveryConfig(),
        makeStore: (AuditChain) async throws -> any VaultStore
    ) async throws -> Vault {
        try await keyStore.migrate()
        let keys = DataKeys(provider: keyRing, store: keyStore)
        let identity = try await keyStore.identity()
        let systemIDs = [indexKeyGroup, auditKeyGroup].map { DataKeyID(subject: DataKeyID.systemSubject, group: $0, generation: 1) }
        let stored = try await keyStore.fetch(systemIDs)
        let indexKey: SymmetricKey, auditKey: SymmetricKey
        let store: any VaultStore
        switch stored.count {
        case systemIDs.count:
            do {
                indexKey = try keys.unwrap(stored[systemIDs[0]]!)
                auditKey = try keys.unwrap(stored[systemIDs[1]]!)
            } catch {
                throw BindingError("the key ring (\(keyRing.source.description)) cannot open the keys in this key store: "
                    + "point --keys, COFRE_KEK or COFRE_KEK_FILE at this vault's key ring, or --key-store at the key store that ring belongs to")
            }
            store = try await makeStore(AuditChain(key: auditKey))
            try await store.migrate()
        case 0:
            // A new key store: refuse it beside a data store that already holds a vault.
            let probe = try await makeStore(AuditChain(key: try SymmetricKey.generate()))
            try await probe.migrate()
            let bound = try await probe.binding() != nil
            let holdsData = try await probe.hasData()
            if bound || holdsData {
                throw BindingError("the key store is empty, but the data store holds a vault: point --key-store at this vault's key store "
                    + "(by default keys/datakeys.sqlite beside its key ring); nothing was changed")
            }
            let now = clock()
            indexKey = try await keys.systemKey(indexKeyGroup, now: now)
            auditKey = try await keys.systemKey(auditKeyGroup, now: now)
            store = try await makeStore(AuditChain(key: auditKey))
            try await store.migrate()
        default:
            throw BindingError("the key store holds only some of the vault's own keys; it is damaged or not Cofre's: restore it from its backup")
        }
        let chain = AuditChain(key: auditKey)
        let binding = try await bind(store: store, keyStore: keyStore, identity: identity, chain: chain, auditKey: auditKey, indexKey: indexKey,
                                     developmentRing: developmentRing, now: clock(), logger: logger)
        return Vault(policy: policy, store: store, dataKeys: keys, chain: chain, indexKey: indexKey, binding: binding, clock: clock, logger: logger,
                     deliveryConfig: deliveryConfig)
    }

    /// Checks (or, for a new or pre-0.7 data store, records) the binding.
    static func bind(store: any VaultStore, keyStore: any DataKeyStore, identity: KeyStoreIdentity, chain: AuditChain, auditKey: SymmetricKey,
                     indexKey: SymmetricKey, developmentRing: Bool, now: Date, logger: Logger) async throws -> VaultBinding {
        if let b = try await store.binding() {
            guard b.keyStoreID == identity.id else {
                throw BindingError("the data store belongs to key store \(b.keyStoreID), but --key-store points at key store \(identity.id): "
                    + "point --key-store at this vault's key store")
            }
            let expected = VaultBinding.kcv(dataStoreID: b.dataStoreID, keyStoreID: identity.id, auditKey: auditKey, indexKey: indexKey)
            guard Digest.constantTimeEquals(Array(expected.utf8), Array(b.kcv.utf8)) else {
                throw BindingError("the key-check value does not match: the key store or its keys were replaced; restore this vault's key store")
            }
            if let bound = identity.boundDataStore, bound != b.dataStoreID {
                throw BindingError("the key store serves data store \(bound), not this one (\(b.dataStoreID))")
            }
            if identity.boundDataStore == nil { try await keyStore.bind(dataStore: b.dataStoreID) }
            return b
        }
        if let bound = identity.boundDataStore {
            throw BindingError("this key store already serves another data store (\(bound)): point --database at that vault's data store, "
                + "or use a new key store for a new vault")
        }
        if try await store.hasData() {
            // A vault from before bindings existed: adopt it only if its audit chain is this key store's.
            if let head = try await store.lastAuditEvent() {
                // Verified from the stored bytes in whichever canonical form wrote it (v1 before 0.9).
                guard chain.verifies(head) else {
                    throw BindingError("the data store's audit log was not written with this key store's audit key: "
                        + "point --key-store (and the key ring) at this vault's")
                }
            }
            logger.notice("binding a data store from before 0.7 to its key store")
        }
        let dataStoreID = "ds_" + Identifiers.base32(try Random.bytes(10))
        let b = VaultBinding(dataStoreID: dataStoreID, keyStoreID: identity.id,
                             kcv: VaultBinding.kcv(dataStoreID: dataStoreID, keyStoreID: identity.id, auditKey: auditKey, indexKey: indexKey),
                             createdAt: now, developmentRing: developmentRing)
        // The data store first: if the key store's half fails, the next open finds the binding and completes it.
        _ = try await store.commit(WriteBatch([.insertBinding(b)]))
        try await keyStore.bind(dataStore: dataStoreID)
        return b
    }
}
