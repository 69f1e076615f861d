public import Foundation

/// The data store: subjects, encrypted fields, token and blind-index hashes, credentials and the audit log.
///
/// Every method that changes state takes the audit events that describe the change and writes them
/// in the same transaction, so a change and its record commit together or not at all.
/// Implementations throw `StoreError.auditUnavailable` when the audit write fails.
public protocol VaultStore: Sendable {
    func migrate() async throws
    func checkHealth() async throws

    func insertCredential(_ credential: CredentialRecord, audit: AuditDraft) async throws
    /// Revokes every live key of `service`; returns how many.
    func revokeCredentials(service: String, at: Date, audit: AuditDraft) async throws -> Int
    func credential(keyHash: String) async throws -> CredentialRecord?
    func credentials() async throws -> [CredentialRecord]

    /// Creates a subject with its fields; when the external reference exists, returns that subject's id
    /// and writes nothing but `conflictAudit`, with that subject filled in.
    func createSubject(_ subject: SubjectRecord, fields: [FieldRecord], tokens: [TokenRecord], index: [BlindIndexEntry],
                       audit: [AuditDraft], conflictAudit: AuditDraft) async throws -> String?
    func subject(id: String) async throws -> SubjectRecord?
    func fields(subject: String) async throws -> [FieldRecord]
    func fields(subjects: Set<String>) async throws -> [FieldRecord]
    /// Replaces fields, their tokens and index entries. Throws `StoreError.conflict` if a field's
    /// generation is no longer the one the caller read, `StoreError.notFound` if the subject is gone.
    func putFields(subject: String, _ writes: [FieldWrite], tokens: [TokenRecord], index: [BlindIndexEntry], audit: [AuditDraft]) async throws
    func tokens(hashes: [String]) async throws -> [String: TokenRecord]

    /// Mints extra tokens (a lookup's answer) for fields that must still be at these generations.
    func insertTokens(_ tokens: [TokenRecord], audit: [AuditDraft]) async throws
    /// Subjects whose blind-index entry for `field` has this keyed hash.
    func lookup(field: String, hash: String) async throws -> [String]

    /// Appends to the consent ledger and returns the entry's sequence number. Throws
    /// `StoreError.notFound` if the subject is gone or erased.
    func appendConsent(_ record: ConsentRecord, audit: AuditDraft) async throws -> Int64
    /// The whole ledger of a subject, oldest first.
    func consentHistory(subject: String) async throws -> [ConsentRecord]
    /// The current state per subject and purpose, read fresh on every call.
    func consentStates(subjects: Set<String>) async throws -> [String: [String: PurposeState]]

    func appendAudit(_ events: [AuditDraft]) async throws
    /// Events matching `query`, oldest first, at most `query.limit`.
    func auditEvents(_ query: AuditQuery) async throws -> [AuditEvent]
    /// Events with `seq > after` in sequence order, at most `limit`, unfiltered (for verification).
    func auditPage(after: Int64, limit: Int) async throws -> [AuditEvent]
    /// The newest event, the chain's head.
    func lastAuditEvent() async throws -> AuditEvent?

    /// Erases a subject in one transaction: erased fields lose their ciphertext, index entries and
    /// (by the caller, before this) their data keys; retained fields become blocked; the receipt and
    /// the audit event are stored. Throws `StoreError.notFound` if the subject is gone.
    func erase(subject: String, erased: [String], retained: [RetainedField], receipt: ErasureReceipt, audit: AuditDraft) async throws
    /// The stored receipt of an earlier erasure, if any.
    func erasureReceipt(subject: String) async throws -> ErasureReceipt?
    /// Blocked fields whose retention ended at or before `now`.
    func expiredRetentions(now: Date) async throws -> [FieldRecord]
    /// Shreds fields whose retention ended: ciphertext and index entries gone, status erased.
    func shredExpired(_ fields: [FieldRecord], audit: [AuditDraft]) async throws
}

/// A field kept after erasure, for one purpose, until a date.
public struct RetainedField: Sendable, Equatable {
    public let field: String
    public let purpose: String
    public let until: Date
    public init(field: String, purpose: String, until: Date) {
        self.field = field
        self.purpose = purpose
        self.until = until
    }
}

/// The proof of an erasure (LGPD Art. 18 VI, Art. 16): what was erased, what was kept, why and until when.
public struct ErasureReceipt: Sendable, Codable, Equatable {
    public struct Outcome: Sendable, Codable, Equatable {
        public let field: String
        /// `erased` or `retained`.
        public let outcome: String
        public let purpose: String?
        public let legalBasis: String?
        public let until: Date?
        enum CodingKeys: String, CodingKey { case field, outcome, purpose, legalBasis = "legal_basis", until }
    }

    public let subject: String
    public let erasedAt: Date
    public let requestedBy: String
    public let reason: String
    public let ticket: String
    public let fields: [Outcome]

    enum CodingKeys: String, CodingKey {
        case subject, erasedAt = "erased_at", requestedBy = "requested_by", reason, ticket, fields
    }
}

/// Filters for reading the audit log; every field is optional but `limit`.
public struct AuditQuery: Sendable, Equatable {
    public var subject: String?
    public var service: String?
    public var purpose: String?
    public var action: String?
    public var decision: AuditDraft.Decision?
    public var since: Date?
    public var until: Date?
    public var ref: String?
    /// Cursor: only events with a greater sequence number.
    public var after: Int64?
    /// Only events up to this sequence number: pins a multi-page read to the log as it was at its start.
    public var through: Int64?
    public var limit: Int

    public init(subject: String? = nil, service: String? = nil, purpose: String? = nil, action: String? = nil,
                decision: AuditDraft.Decision? = nil, since: Date? = nil, until: Date? = nil, ref: String? = nil,
                after: Int64? = nil, through: Int64? = nil, limit: Int = 100) {
        self.subject = subject
        self.service = service
        self.purpose = purpose
        self.action = action
        self.decision = decision
        self.since = since
        self.until = until
        self.ref = ref
        self.after = after
        self.through = through
        self.limit = limit
    }
}


/// Storage failures the domain reacts to. Descriptions never quote SQL or values.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable { case conflict, notFound, auditUnavailable, unavailable }
    public let code: Code
    public init(_ code: Code) { self.code = code }
    public var description: String { "store error: \(code.rawValue)" }
}
