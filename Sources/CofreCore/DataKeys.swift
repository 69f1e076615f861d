public import CofreCrypto
public import Foundation

/// Creates, wraps and unwraps data keys. Values are encrypted under data keys; data keys under the KEK.
public struct DataKeys: Sendable {
    public let provider: KeyRingProvider
    public let store: any DataKeyStore
    /// Unwrapped keys recently used (see `KeyCache` for why this cannot outlive a destroyed version).
    let cache: KeyCache
    public static let defaultCacheCapacity = 50_000
    /// NIST SP 800-38D: at most 2^32 encryptions with random nonces under one key. Only keys
    /// shared by several values (a subject's consent-evidence key) count their uses.
    public static let maxUsesPerSharedKey: Int64 = 1 << 32

    public init(provider: KeyRingProvider, store: any DataKeyStore, cacheCapacity: Int = DataKeys.defaultCacheCapacity) {
        self.provider = provider
        self.store = store
        cache = KeyCache(capacity: cacheCapacity)
    }

    /// The key ring as it stands (it may be reloaded at any time).
    public var ring: KeyRing { provider.current }

    static func context(_ id: DataKeyID) -> AssociatedData {
        AssociatedData(["cofre.datakey.v1", id.subject, id.group, String(id.generation)])
    }

    /// A fresh random data key wrapped under the primary KEK (not yet stored).
    public func generate(_ id: DataKeyID, now: Date) throws -> (key: SymmetricKey, wrapped: WrappedDataKey) {
        let key = try SymmetricKey.generate()
        return (key, try wrap(key, id: id, now: now))
    }

    public func wrap(_ key: SymmetricKey, id: DataKeyID, now: Date) throws -> WrappedDataKey {
        let ring = self.ring
        let version = ring.primaryVersion
        let kek = ring.key(version: version)!
        var plain = key.withUnsafeBytes { Array($0) }
        defer { for i in plain.indices { plain[i] = 0 } }
        let wrapped = try Envelope.seal(plain, key: kek, keyVersion: version, context: Self.context(id))
        return WrappedDataKey(id: id, kekVersion: version, wrapped: wrapped, createdAt: now)
    }

    public func unwrap(_ stored: WrappedDataKey) throws -> SymmetricKey {
        let version = try Envelope.keyVersion(of: stored.wrapped)
        var kek = ring.key(version: version)
        if kek == nil {
            // Another instance may have rotated: look at the source once more before failing.
            _ = try? provider.reload()
            kek = ring.key(version: version)
        }
        guard let kek else {
            throw VaultError(.unavailable, .unavailable, "a data key is wrapped under a key-encryption key version that is not loaded")
        }
        var raw = try Envelope.open(stored.wrapped, key: kek, context: Self.context(stored.id))
        defer { for i in raw.indices { raw[i] = 0 } }
        return try SymmetricKey(bytes: raw)
    }

    /// Fetches and unwraps (from the cache when it holds them); missing keys (shredded) are simply
    /// absent from the result.
    public func load(_ ids: [DataKeyID]) async throws -> [DataKeyID: SymmetricKey] {
        var out = cache.get(ids)
        let missing = ids.filter { out[$0] == nil }
        guard !missing.isEmpty else { return out }
        let epoch = cache.currentEpoch
        let stored = try await store.fetch(missing)
        var fresh: [DataKeyID: SymmetricKey] = [:]
        for (id, w) in stored { fresh[id] = try unwrap(w) }
        cache.put(fresh, loadedAt: epoch)
        out.merge(fresh) { a, _ in a }
        return out
    }

    /// Destroys keys in the key store, dropping them from the cache first.
    public func destroy(_ ids: [DataKeyID]) async throws {
        cache.drop(ids)
        try await store.destroy(ids)
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

    /// Re-wraps data keys that are not under the primary KEK, in batches, without decrypting any value.
    /// Stateless, so an interrupted run simply continues where the keys say it stopped; safe while
    /// serving, since each row is replaced only if it still holds the wrapping that was read.
    public func rewrap(batchSize: Int = 500, maxBatches: Int? = nil, now: Date) async throws -> (rewrapped: Int, remaining: Int) {
        var done = 0
        var batches = 0
        let primary = ring.primaryVersion
        while maxBatches.map({ batches < $0 }) ?? true {
            let stale = try await store.fetch(notWrappedBy: primary, limit: batchSize)
            if stale.isEmpty { break }
            var updates: [(old: WrappedDataKey, new: WrappedDataKey)] = []
            for old in stale {
                let key = try unwrap(old)
                updates.append((old, try wrap(key, id: old.id, now: old.createdAt)))
            }
            done += try await store.replace(updates)
            batches += 1
        }
        let remaining = try await store.countByKEKVersion().filter { $0.key != primary }.values.reduce(0, +)
        return (done, remaining)
    }
}
