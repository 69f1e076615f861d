public import CofreCore
public import Foundation

/// A data store that fails on command, to prove the vault fails closed and loses nothing. Every call
/// goes to the real store underneath unless a fault is armed:
/// - `failAudit`: every commit that carries audit events fails before it reaches the store;
/// - `commitFault`: decides, per batch, to fail it before the store (nothing written) or after the
///   store committed it (the caller cannot tell: a commit whose outcome is unknown).
public final class FailingAuditStore: VaultStore, @unchecked Sendable {
    /// What to do with one batch.
    public enum Fault: Sendable {
        case failBefore
        case failAfterCommit
    }

    let base: any VaultStore
    private let lock = NSLock()
    private var failing = false
    private var fault: (@Sendable (WriteBatch) -> Fault?)?

    public init(_ base: any VaultStore) { self.base = base }

    public var failAudit: Bool {
        get { lock.withLock { failing } }
        set { lock.withLock { failing = newValue } }
    }

    public var commitFault: (@Sendable (WriteBatch) -> Fault?)? {
        get { lock.withLock { fault } }
        set { lock.withLock { fault = newValue } }
    }

    public func commit(_ batch: WriteBatch) async throws -> CommitResult {
        if failAudit && !batch.audit.isEmpty { throw StoreError(.auditUnavailable) }
        switch commitFault?(batch) {
        case .failBefore?:
            throw StoreError(.unavailable)
        case .failAfterCommit?:
            _ = try await base.commit(batch)
            throw StoreError(.unavailable)
        case nil:
            return try await base.commit(batch)
        }
    }

    public func migrate() async throws { try await base.migrate() }
    public func appliedMigrations() async throws -> [String] { try await base.appliedMigrations() }
    public func checkHealth() async throws { try await base.checkHealth() }
    public func credential(keyHash: String) async throws -> CredentialRecord? { try await base.credential(keyHash: keyHash) }
    public func credentials() async throws -> [CredentialRecord] { try await base.credentials() }
    public func subject(id: String) async throws -> SubjectRecord? { try await base.subject(id: id) }
    public func fields(subjects: Set<String>) async throws -> [FieldRecord] { try await base.fields(subjects: subjects) }
    public func lookup(field: String, hash: String) async throws -> [String] { try await base.lookup(field: field, hash: hash) }
    public func consentHistory(subject: String) async throws -> [ConsentRecord] { try await base.consentHistory(subject: subject) }
    public func snapshot(tokenHashes: [String], subjects: Set<String>, index: BlindIndexQuery?) async throws -> StoreSnapshot {
        try await base.snapshot(tokenHashes: tokenHashes, subjects: subjects, index: index)
    }
    public func auditEvents(_ query: AuditQuery) async throws -> [AuditEvent] { try await base.auditEvents(query) }
    public func auditPage(after: Int64, limit: Int) async throws -> [AuditEvent] { try await base.auditPage(after: after, limit: limit) }
    public func lastAuditEvent() async throws -> AuditEvent? { try await base.lastAuditEvent() }
    public func erasureReceiptJSON(subject: String) async throws -> String? { try await base.erasureReceiptJSON(subject: subject) }
    public func contactAttempts(subject: String, since: Date?) async throws -> [ContactAttempt] {
        try await base.contactAttempts(subject: subject, since: since)
    }
    public func expiredRetentions(now: Date, limit: Int) async throws -> [FieldRecord] { try await base.expiredRetentions(now: now, limit: limit) }
    public func queuedKeyShreds(limit: Int) async throws -> [DataKeyID] { try await base.queuedKeyShreds(limit: limit) }
    public func binding() async throws -> VaultBinding? { try await base.binding() }
    public func hasData() async throws -> Bool { try await base.hasData() }
    public func instances() async throws -> [InstanceHeartbeat] { try await base.instances() }
    public func subjects(externalRefHash: String) async throws -> [String] { try await base.subjects(externalRefHash: externalRefHash) }
    public func auditStats(since: Date, until: Date, bucketMillis: Int64) async throws -> [AuditStatRow] {
        try await base.auditStats(since: since, until: until, bucketMillis: bucketMillis)
    }
    public func pendingOutbox(atOrBefore: Date, limit: Int) async throws -> [OutboxEvent] { try await base.pendingOutbox(atOrBefore: atOrBefore, limit: limit) }
    public func revealRecipients(subject: String) async throws -> Set<RevealRecord> { try await base.revealRecipients(subject: subject) }
    public func deliveries(_ query: DeliveryQuery) async throws -> [DeliveryRecord] { try await base.deliveries(query) }
    public func deliveryAttempts(delivery: String) async throws -> [DeliveryAttemptRecord] { try await base.deliveryAttempts(delivery: delivery) }
    public func accessEvents(service: String, since: Date, until: Date, through: Int64, after: AccessCursor?, limit: Int) async throws -> [AuditEvent] {
        try await base.accessEvents(service: service, since: since, until: until, through: through, after: after, limit: limit)
    }
}

/// A key store that fails on command: inserts, destructions, or both.
public final class FailingKeyStore: DataKeyStore, @unchecked Sendable {
    let base: any DataKeyStore
    private let lock = NSLock()
    private var insertFails = false
    private var destroyFails = false

    public init(_ base: any DataKeyStore) { self.base = base }

    public var failInsert: Bool {
        get { lock.withLock { insertFails } }
        set { lock.withLock { insertFails = newValue } }
    }
    public var failDestroy: Bool {
        get { lock.withLock { destroyFails } }
        set { lock.withLock { destroyFails = newValue } }
    }

    public func migrate() async throws { try await base.migrate() }
    public func insert(_ keys: [WrappedDataKey]) async throws {
        if failInsert { throw StoreError(.unavailable) }
        try await base.insert(keys)
    }
    public func fetch(_ ids: [DataKeyID]) async throws -> [DataKeyID: WrappedDataKey] { try await base.fetch(ids) }
    public func destroy(_ ids: [DataKeyID]) async throws {
        if failDestroy { throw StoreError(.unavailable) }
        try await base.destroy(ids)
    }
    public func compact() async throws {
        if failDestroy { throw StoreError(.unavailable) }
        try await base.compact()
    }
    public func countByKEKVersion() async throws -> [UInt32: Int] { try await base.countByKEKVersion() }
    public func checkHealth() async throws { try await base.checkHealth() }
    public func checkWritable() async throws {
        if failInsert { throw StoreError(.unavailable) }
        try await base.checkWritable()
    }
    public func fetch(notWrappedBy version: UInt32, limit: Int) async throws -> [WrappedDataKey] {
        try await base.fetch(notWrappedBy: version, limit: limit)
    }
    public func replace(_ updates: [(old: WrappedDataKey, new: WrappedDataKey)]) async throws -> Int { try await base.replace(updates) }
    public func reserveUses(_ id: DataKeyID, count: Int64, limit: Int64) async throws -> Bool {
        try await base.reserveUses(id, count: count, limit: limit)
    }
    public func ids(subject: String) async throws -> [DataKeyID] { try await base.ids(subject: subject) }
    public func scan(after cursor: KeyScanCursor?, createdThrough: Date, limit: Int) async throws -> [(id: DataKeyID, createdAt: Date)] {
        try await base.scan(after: cursor, createdThrough: createdThrough, limit: limit)
    }
    public func identity() async throws -> KeyStoreIdentity { try await base.identity() }
    public func bind(dataStore: String) async throws { try await base.bind(dataStore: dataStore) }
    public func sweepCursor() async throws -> KeyScanCursor? { try await base.sweepCursor() }
    public func setSweepCursor(_ cursor: KeyScanCursor) async throws { try await base.setSweepCursor(cursor) }
}
