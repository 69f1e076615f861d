public import Foundation
import Logging

/// What one run of the key sweeper destroyed.
public struct KeySweepResult: Sendable, Equatable {
    /// Keys that committed changes superseded (corrections, erasures, retention ends) and queued.
    public var superseded = 0
    /// Keys that no committed state refers to: attempts that failed, crashed or never learned their outcome.
    public var orphans = 0
    public init(superseded: Int = 0, orphans: Int = 0) {
        self.superseded = superseded
        self.orphans = orphans
    }
}

/// How a write attempt owns its data keys. Each attempt wraps fresh keys under groups no other attempt
/// uses, so its keys are its own: it destroys them only when its batch certainly did not commit; when
/// the outcome is unknown it leaves them to the sweeper, which destroys a key only once no committed
/// field refers to it and it is older than `orphanGrace`. A key that a committed version refers to
/// is destroyed only after a later commit superseded or erased that version (through the shred queue).
extension Vault {
    /// How long a key may stay unreferenced before the sweeper takes it for an orphan: far longer
    /// than any write attempt can take between storing its keys and committing.
    public static let orphanGrace: TimeInterval = 15 * 60
    /// How often a write that lost a compare-and-swap race is tried again before answering 409.
    static let maxWriteAttempts = 4

    /// Stores an attempt's fresh keys, then commits its batch. On a failure that certainly wrote nothing,
    /// the attempt's own keys are destroyed; on any other failure they stay for the sweeper.
    func commit(_ batch: WriteBatch, storing keys: [WrappedDataKey]) async throws -> CommitResult {
        // Keys first: a crash after this leaves an unused key, never a value without its key.
        try await dataKeys.store.insert(keys)
        do {
            return try await store.commit(batch)
        } catch let error as StoreError where error.certainlyNotCommitted {
            do {
                try await dataKeys.destroy(keys.map(\.id))
            } catch {
                logger.warning("an aborted write's keys are left to the key sweeper", metadata: ["error.type": "\(type(of: error))"])
            }
            throw error
        }
    }

    /// Destroys keys that a committed batch superseded and queued, then takes them off the queue. A failure
    /// here loses nothing: the queue is durable and the sweeper retries.
    func shredSuperseded(_ ids: [DataKeyID]) async {
        guard !ids.isEmpty else { return }
        do {
            try await dataKeys.destroy(ids)
            _ = try await store.commit(WriteBatch([.dequeueKeyShred(ids)]))
        } catch {
            VaultMetrics.keyShredDeferred(ids.count)
            logger.warning("superseded data keys are left queued for the key sweeper",
                           metadata: ["keys": "\(ids.count)", "error.type": "\(type(of: error))"])
        }
    }

    /// The keys among `ids` that no committed state needs: not the vault's own keys, not a consent key of
    /// a subject that is not erased, and not the key of any field version that is active or blocked.
    func unreferenced(_ ids: [DataKeyID]) async throws -> [DataKeyID] {
        let subjects = Set(ids.map(\.subject)).subtracting([DataKeyID.systemSubject])
        let snap = try await store.snapshot(tokenHashes: [], subjects: subjects)
        var live = Set<DataKeyID>()
        for fields in snap.fields.values {
            for f in fields.values where f.needsKey { live.insert(f.keyID) }
        }
        return ids.filter { id in
            if id.subject == DataKeyID.systemSubject || live.contains(id) { return false }
            if id.group == Self.consentKeyGroup, let status = snap.subjects[id.subject], status != .erased { return false }
            return true
        }
    }

    /// One run of the key sweeper (in `cofre serve`'s periodic service): destroys queued superseded keys,
    /// then scans keys created since its last run (older than `grace`) and destroys those nothing refers to.
    @discardableResult
    public func sweepKeys(grace: TimeInterval = Vault.orphanGrace, batch: Int = 500) async throws -> KeySweepResult {
        var result = KeySweepResult()
        while true {
            let ids = try await store.queuedKeyShreds(limit: batch)
            if ids.isEmpty { break }
            try await dataKeys.destroy(ids)
            _ = try await store.commit(WriteBatch([.dequeueKeyShred(ids)]))
            result.superseded += ids.count
            if ids.count < batch { break }
        }
        let through = now.addingTimeInterval(-grace)
        var cursor = try await dataKeys.store.sweepCursor()
        while true {
            let page = try await dataKeys.store.scan(after: cursor, createdThrough: through, limit: batch)
            guard let last = page.last else { break }
            let orphans = try await unreferenced(page.map(\.id))
            if !orphans.isEmpty {
                try await dataKeys.destroy(orphans)
                result.orphans += orphans.count
            }
            cursor = KeyScanCursor(createdAtMillis: AuditChain.millis(last.createdAt), subject: last.id.subject,
                                   group: last.id.group, generation: last.id.generation)
            try await dataKeys.store.setSweepCursor(cursor!)
            if page.count < batch { break }
        }
        // Reclaim what this round (and any shred since the last) destroyed, so no key lingers in free space.
        try await dataKeys.store.compact()
        if result != KeySweepResult() {
            var a = draft(nil, action: .keysSweep, requestID: nil, decision: .allow,
                          code: "superseded_\(result.superseded)_orphans_\(result.orphans)")
            a.service = "key-sweeper"
            a.role = "system"
            try await store.appendAudit([a])
            VaultMetrics.keysSwept(superseded: result.superseded, orphans: result.orphans)
            logger.info("key sweep destroyed unneeded data keys",
                        metadata: ["superseded": "\(result.superseded)", "orphans": "\(result.orphans)"])
        }
        return result
    }

    /// For `cofre keys status`: keys queued for destruction, and keys in the key store that nothing refers
    /// to (whatever their age: recent ones may belong to writes in flight).
    public func unneededKeyCounts() async throws -> (queued: Int, unreferenced: Int) {
        let queued = try await store.queuedKeyShreds(limit: 1_000_000).count
        var unreferencedCount = 0
        var cursor: KeyScanCursor?
        let through = now
        while true {
            let page = try await dataKeys.store.scan(after: cursor, createdThrough: through, limit: 1000)
            guard let last = page.last else { break }
            unreferencedCount += try await unreferenced(page.map(\.id)).count
            cursor = KeyScanCursor(createdAtMillis: AuditChain.millis(last.createdAt), subject: last.id.subject,
                                   group: last.id.group, generation: last.id.generation)
            if page.count < 1000 { break }
        }
        return (queued, unreferencedCount)
    }
}
