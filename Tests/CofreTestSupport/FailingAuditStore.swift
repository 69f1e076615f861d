public import CofreCore
public import Foundation

/// A data store whose audit writes can be made to fail, to prove the vault fails closed.
/// Every other call goes to the real store underneath.
public final class FailingAuditStore: VaultStore, @unchecked Sendable {
    let base: any VaultStore
    private let lock = NSLock()
    private var failing = false

    public init(_ base: any VaultStore) { self.base = base }

    public var failAudit: Bool {
        get { lock.withLock { failing } }
        set { lock.withLock { failing = newValue } }
    }

    func check() throws { if failAudit { throw StoreError(.auditUnavailable) } }

    public func migrate() async throws { try await base.migrate() }
    public func checkHealth() async throws { try await base.checkHealth() }
    public func insertCredential(_ c: CredentialRecord, audit: AuditDraft) async throws {
        try check(); try await base.insertCredential(c, audit: audit)
    }
    public func revokeCredentials(service: String, at: Date, audit: AuditDraft) async throws -> Int {
        try check(); return try await base.revokeCredentials(service: service, at: at, audit: audit)
    }
    public func credential(keyHash: String) async throws -> CredentialRecord? { try await base.credential(keyHash: keyHash) }
    public func credentials() async throws -> [CredentialRecord] { try await base.credentials() }
    public func createSubject(_ s: SubjectRecord, fields: [FieldRecord], tokens: [TokenRecord], index: [BlindIndexEntry],
                              audit: [AuditDraft], conflictAudit: AuditDraft) async throws -> String? {
        try check()
        return try await base.createSubject(s, fields: fields, tokens: tokens, index: index, audit: audit, conflictAudit: conflictAudit)
    }
    public func subject(id: String) async throws -> SubjectRecord? { try await base.subject(id: id) }
    public func fields(subject: String) async throws -> [FieldRecord] { try await base.fields(subject: subject) }
    public func fields(subjects: Set<String>) async throws -> [FieldRecord] { try await base.fields(subjects: subjects) }
    public func putFields(subject: String, _ writes: [FieldWrite], tokens: [TokenRecord], index: [BlindIndexEntry], audit: [AuditDraft]) async throws {
        try check(); try await base.putFields(subject: subject, writes, tokens: tokens, index: index, audit: audit)
    }
    public func tokens(hashes: [String]) async throws -> [String: TokenRecord] { try await base.tokens(hashes: hashes) }
    public func appendAudit(_ events: [AuditDraft]) async throws { try check(); try await base.appendAudit(events) }
    public func insertTokens(_ tokens: [TokenRecord], audit: [AuditDraft]) async throws {
        try check(); try await base.insertTokens(tokens, audit: audit)
    }
    public func lookup(field: String, hash: String) async throws -> [String] { try await base.lookup(field: field, hash: hash) }
    public func appendConsent(_ record: ConsentRecord, audit: AuditDraft) async throws -> Int64 {
        try check(); return try await base.appendConsent(record, audit: audit)
    }
    public func consentHistory(subject: String) async throws -> [ConsentRecord] { try await base.consentHistory(subject: subject) }
    public func consentStates(subjects: Set<String>) async throws -> [String: [String: PurposeState]] {
        try await base.consentStates(subjects: subjects)
    }
    public func auditEvents(_ query: AuditQuery) async throws -> [AuditEvent] { try await base.auditEvents(query) }
    public func auditPage(after: Int64, limit: Int) async throws -> [AuditEvent] { try await base.auditPage(after: after, limit: limit) }
    public func lastAuditEvent() async throws -> AuditEvent? { try await base.lastAuditEvent() }
    public func erase(subject: String, erased: [String], retained: [RetainedField], receipt: ErasureReceipt, audit: AuditDraft) async throws {
        try check(); try await base.erase(subject: subject, erased: erased, retained: retained, receipt: receipt, audit: audit)
    }
    public func erasureReceipt(subject: String) async throws -> ErasureReceipt? { try await base.erasureReceipt(subject: subject) }
    public func expiredRetentions(now: Date) async throws -> [FieldRecord] { try await base.expiredRetentions(now: now) }
    public func shredExpired(_ fields: [FieldRecord], audit: [AuditDraft]) async throws {
        try check(); try await base.shredExpired(fields, audit: audit)
    }
}
