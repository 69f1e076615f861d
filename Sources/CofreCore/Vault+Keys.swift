public import Foundation

/// The key ring as `cofre keys status` reports it.
public struct KeyStatus: Sendable {
    public struct Version: Sendable {
        public let version: UInt32
        public let primary: Bool
        public let createdAt: Date?
        public let dataKeys: Int
    }
    public let source: String
    public let versions: [Version]
    /// The KEK version wrapping the blind-index and audit-chain keys.
    public let systemKeys: [String: UInt32]
    /// Data keys wrapped by a version no longer in the ring (should be zero).
    public let orphaned: Int
    /// Data keys no committed field or subject needs any more (superseded, erased, or left by a failed
    /// write): the key sweeper destroys them (queued ones at once, the rest after `Vault.orphanGrace`).
    public let unneeded: Int
    /// Of those, keys a committed change queued for destruction.
    public let queuedForShred: Int
    /// Serving instances seen within the last minute, with the KEK versions they have loaded.
    public let instances: [InstanceHeartbeat]
}

extension Vault {
    func operatorEvent(_ action: AuditAction, target: String?, code: String? = nil) -> AuditDraft {
        var a = draft(nil, action: action, requestID: nil, decision: .allow, code: code)
        a.target = target
        return a
    }

    public func keyStatus() async throws -> KeyStatus {
        let ring = dataKeys.ring
        let counts = try await dataKeys.store.countByKEKVersion()
        let system = try await dataKeys.store.fetch([Self.indexKeyGroup, Self.auditKeyGroup].map {
            DataKeyID(subject: DataKeyID.systemSubject, group: $0, generation: 1)
        })
        let unneeded = try await unneededKeyCounts()
        return KeyStatus(
            source: dataKeys.provider.source.description,
            versions: ring.versions.map { .init(version: $0, primary: $0 == ring.primaryVersion, createdAt: ring.createdAt[$0], dataKeys: counts[$0] ?? 0) },
            systemKeys: Dictionary(uniqueKeysWithValues: system.map { ($0.key.group, $0.value.kekVersion) }),
            orphaned: counts.filter { ring.key(version: $0.key) == nil }.values.reduce(0, +),
            unneeded: unneeded.unreferenced, queuedForShred: unneeded.queued, instances: try await liveInstances())
    }

    /// `cofre keys rotate`: a new primary KEK version; running servers pick it up on their next reload.
    public func rotateKEK() async throws -> UInt32 {
        let version = try dataKeys.provider.rotate()
        try await store.appendAudit([operatorEvent(.keysRotate, target: "v\(version)")])
        return version
    }

    /// `cofre keys rewrap`: every data key under the primary KEK, without decrypting a value.
    public func rewrapDataKeys(batchSize: Int, maxBatches: Int?) async throws -> (rewrapped: Int, remaining: Int) {
        let result = try await dataKeys.rewrap(batchSize: batchSize, maxBatches: maxBatches, now: now)
        try await store.appendAudit([operatorEvent(.keysRewrap, target: "v\(dataKeys.ring.primaryVersion)",
                                                   code: "rewrapped_\(result.rewrapped)_remaining_\(result.remaining)")])
        return result
    }

    /// `cofre keys retire VERSION`: refused while any live instance still has VERSION as primary, lacks
    /// the newest version or switched to it too recently, and while any data key (or system key) still
    /// needs it — counted again at the moment of retiring. The key is archived, not deleted.
    /// Returns where it was archived.
    @discardableResult
    public func retireKEK(_ version: UInt32) async throws -> String {
        try dataKeys.provider.reload(now: now)
        let ring = dataKeys.ring
        guard ring.key(version: version) != nil else { throw KeyRingError("there is no key-encryption key v\(version)") }
        guard version != ring.primaryVersion else {
            throw KeyRingError("v\(version) is the primary key-encryption key; rotate first, rewrap, then retire it")
        }
        let newest = ring.primaryVersion
        if let needed = try await dataKeys.store.countByKEKVersion()[version], needed > 0 {
            throw KeyRingError("v\(version) still wraps \(needed) data key(s); run `cofre keys rewrap` first")
        }
        let live = try await liveInstances()
        let stale = live.filter { $0.primary == version || !$0.versions.contains(newest) }
        guard stale.isEmpty else {
            throw KeyRingError("running instances have not all loaded v\(newest) as primary: \(stale.map(\.label).joined(separator: ", ")); "
                + "wait for their key-ring reload (COFRE_KEY_RELOAD_SECONDS) or fix what keeps it from loading, then retire again")
        }
        let settling = live.filter { now.timeIntervalSince($0.primarySince) < Self.primarySettleTime }
        guard settling.isEmpty else {
            throw KeyRingError("instances switched to v\(newest) less than \(Int(Self.primarySettleTime)) s ago: "
                + "\(settling.map(\.label).joined(separator: ", ")); run `cofre keys rewrap` again, then retire")
        }
        // Counted again now that every instance is known to wrap under the newest version.
        let needed = try await dataKeys.store.countByKEKVersion()[version] ?? 0
        guard needed == 0 else {
            throw KeyRingError("v\(version) still wraps \(needed) data key(s); run `cofre keys rewrap` first")
        }
        let archived = try dataKeys.provider.retire(version)
        try await store.appendAudit([operatorEvent(.keysRetire, target: "v\(version)")])
        return archived
    }

    /// `cofre keys purge VERSION`: deletes an archived key for good, once the operator confirms that no
    /// key-store backup from before the rotation is kept any more.
    @discardableResult
    public func purgeKEK(_ version: UInt32) async throws -> String {
        let path = try dataKeys.provider.purge(version)
        try await store.appendAudit([operatorEvent(.keysPurge, target: "v\(version)")])
        return path
    }
}
