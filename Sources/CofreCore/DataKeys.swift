public import CofreCrypto
public import Foundation

/// Creates, wraps and unwraps data keys. Values are encrypted under data keys; data keys under the KEK.
public struct DataKeys: Sendable {
    public let ring: KeyRing
    public let store: any DataKeyStore

    public init(ring: KeyRing, store: any DataKeyStore) {
        self.ring = ring
        self.store = store
    }

    static func context(_ id: DataKeyID) -> AssociatedData {
        AssociatedData(["cofre.datakey.v1", id.subject, id.group, String(id.generation)])
    }

    /// A fresh random data key wrapped under the primary KEK (not yet stored).
    public func generate(_ id: DataKeyID, now: Date) throws -> (key: SymmetricKey, wrapped: WrappedDataKey) {
        let key = try SymmetricKey.generate()
        return (key, try wrap(key, id: id, now: now))
    }

    public func wrap(_ key: SymmetricKey, id: DataKeyID, now: Date) throws -> WrappedDataKey {
        let version = ring.primaryVersion
        let kek = ring.key(version: version)!
        var plain = key.withUnsafeBytes { Array($0) }
        defer { for i in plain.indices { plain[i] = 0 } }
        let wrapped = try Envelope.seal(plain, key: kek, keyVersion: version, context: Self.context(id))
        return WrappedDataKey(id: id, kekVersion: version, wrapped: wrapped, createdAt: now)
    }

    public func unwrap(_ stored: WrappedDataKey) throws -> SymmetricKey {
        let version = try Envelope.keyVersion(of: stored.wrapped)
        guard let kek = ring.key(version: version) else {
            throw VaultError(.unavailable, .unavailable, "a data key is wrapped under a key-encryption key version that is not loaded")
        }
        var raw = try Envelope.open(stored.wrapped, key: kek, context: Self.context(stored.id))
        defer { for i in raw.indices { raw[i] = 0 } }
        return try SymmetricKey(bytes: raw)
    }

    /// Fetches and unwraps; missing keys (shredded) are simply absent from the result.
    public func load(_ ids: [DataKeyID]) async throws -> [DataKeyID: SymmetricKey] {
        let stored = try await store.fetch(ids)
        var out: [DataKeyID: SymmetricKey] = [:]
        for (id, w) in stored { out[id] = try unwrap(w) }
        return out
    }

    /// The vault's own key for `group` (blind index, audit chain), created on first use.
    public func systemKey(_ group: String, now: Date) async throws -> SymmetricKey {
        try await getOrCreate(DataKeyID(subject: DataKeyID.systemSubject, group: group, generation: 1), now: now)
    }

    /// Loads a key, creating it on first use. Safe against a concurrent creator: the stored one wins.
    public func getOrCreate(_ id: DataKeyID, now: Date) async throws -> SymmetricKey {
        if let existing = try await store.fetch([id])[id] { return try unwrap(existing) }
        let (key, wrapped) = try generate(id, now: now)
        do {
            try await store.insert([wrapped])
            return key
        } catch {
            // Another request or instance created it first: use theirs.
            guard let kept = try await store.fetch([id])[id] else { throw error }
            return try unwrap(kept)
        }
    }
}
