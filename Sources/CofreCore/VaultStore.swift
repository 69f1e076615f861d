public import Foundation

/// The data store's engine: the few primitives an engine must supply. Every use case (create, correct,
/// erase, consent, lookup, retention, credentials) is written once in the core, as reads followed by one
/// `commit` of a `WriteBatch` whose preconditions make it a compare-and-swap; an engine only reads,
/// interprets the batch's operations inside one transaction, appends its audit events after the chain's
/// head, and migrates (GRDB's `DatabaseWriter` is the model: small requirements, shared behaviour in
/// extensions).
public protocol VaultStore: Sendable {
    /// Applies the migrations named in `StoreMigrations.ids`, in that order, each once.
    func migrate() async throws
    /// The migration ids applied so far, oldest first (for the conformance suite and `keys status`).
    func appliedMigrations() async throws -> [String]
    func checkHealth() async throws

    // MARK: reads (each one consistent read)

    func credential(keyHash: String) async throws -> CredentialRecord?
    func credentials() async throws -> [CredentialRecord]
    func subject(id: String) async throws -> SubjectRecord?
    func fields(subjects: Set<String>) async throws -> [FieldRecord]
    /// Subjects whose blind-index entry for `field` has this keyed hash.
    func lookup(field: String, hash: String) async throws -> [String]
    /// The whole ledger of a subject, oldest first.
    func consentHistory(subject: String) async throws -> [ConsentRecord]
    /// Everything a decision needs, read in one transaction: the tokens with these hashes, the subjects
    /// whose blind-index entry matches `index` (a lookup), and the fields and consent state of all of
    /// those subjects and of `subjects`.
    func snapshot(tokenHashes: [String], subjects: Set<String>, index: BlindIndexQuery?) async throws -> StoreSnapshot
    /// Events matching `query`, oldest first, at most `query.limit`.
    func auditEvents(_ query: AuditQuery) async throws -> [AuditEvent]
    /// Events with `seq > after` in sequence order, at most `limit`, unfiltered (for verification).
    func auditPage(after: Int64, limit: Int) async throws -> [AuditEvent]
    /// The newest event, the chain's head.
    func lastAuditEvent() async throws -> AuditEvent?
    /// The stored receipt of an erasure, as the JSON the core wrote.
    func erasureReceiptJSON(subject: String) async throws -> String?
    /// A subject's contact attempts at or after `since` (all when nil), oldest first.
    func contactAttempts(subject: String, since: Date?) async throws -> [ContactAttempt]
    /// Blocked fields whose retention ended at or before `now`, at most `limit`.
    func expiredRetentions(now: Date, limit: Int) async throws -> [FieldRecord]
    /// Data keys that a committed change superseded and that still await destruction in the key store.
    func queuedKeyShreds(limit: Int) async throws -> [DataKeyID]
    /// What binds this data store to its key store and ring; nil before the first initialisation.
    func binding() async throws -> VaultBinding?
    /// Whether the data store holds anything at all (a subject, a credential or an audit event).
    func hasData() async throws -> Bool
    /// Every serving instance's last heartbeat.
    func instances() async throws -> [InstanceHeartbeat]
    /// The subject holding this external-reference hash (none after its erasure released it).
    func subjects(externalRefHash: String) async throws -> [String]
    /// Allowed and denied `detokenize` decisions with `since <= time < until`, counted per bucket of
    /// `bucketMillis` (from the epoch), purpose, service, decision and code.
    func auditStats(since: Date, until: Date, bucketMillis: Int64) async throws -> [AuditStatRow]
    /// Notifications not yet fanned out whose change is at or before `atOrBefore`, oldest first.
    func pendingOutbox(atOrBefore: Date, limit: Int) async throws -> [OutboxEvent]
    /// Who was ever allowed to reveal what of the subject: the distinct (service, purpose, fields) of its
    /// allowed `detokenize` events.
    func revealRecipients(subject: String) async throws -> Set<RevealRecord>
    /// Deliveries matching `query`, in store order.
    func deliveries(_ query: DeliveryQuery) async throws -> [DeliveryRecord]
    /// A delivery's attempt log, oldest first.
    func deliveryAttempts(delivery: String) async throws -> [DeliveryAttemptRecord]
    /// The allowed `detokenize`, `lookup` and `consent.read` events of `service` with `since <= time < until` and
    /// `seq <= through`, ordered by subject then sequence, after the `(subject, seq)` cursor.
    func accessEvents(service: String, since: Date, until: Date, through: Int64, after: AccessCursor?, limit: Int) async throws -> [AuditEvent]

    // MARK: the one write primitive

    /// Runs `batch` in one transaction: its operations in order, then its audit events appended after
    /// the chain's head. A failed precondition throws its `StoreError` and nothing of the batch is kept;
    /// a failed audit append throws `StoreError.auditUnavailable`.
    func commit(_ batch: WriteBatch) async throws -> CommitResult
}

/// A blind-index search: the subjects whose entry for `field` has this keyed hash.
public struct BlindIndexQuery: Sendable, Equatable {
    public let field: String
    public let hash: String
    public init(field: String, hash: String) {
        self.field = field
        self.hash = hash
    }
}

/// A consistent read of what a decision needs (see `VaultStore.snapshot`).
public struct StoreSnapshot: Sendable {
    /// The subjects an `index` query matched, in id order.
    public var indexed: [String] = []
    public var tokens: [String: TokenRecord]
    /// Per subject, per field.
    public var fields: [String: [String: FieldRecord]]
    public var states: [String: [String: PurposeState]]
    /// The status of each subject read (absent: no such subject).
    public var subjects: [String: SubjectRecord.Status]
    public init(tokens: [String: TokenRecord] = [:], fields: [String: [String: FieldRecord]] = [:],
                states: [String: [String: PurposeState]] = [:], subjects: [String: SubjectRecord.Status] = [:]) {
        self.tokens = tokens
        self.fields = fields
        self.states = states
        self.subjects = subjects
    }
}

/// One storage operation of a `WriteBatch`. `expect…` cases are preconditions (compare-and-swap):
/// when one does not hold, the batch throws and writes nothing.
public enum WriteOp: Sendable {
    /// The subject exists (else `.notFound`) with one of these statuses (else `.subjectGone`).
    case expectSubject(String, in: Set<SubjectRecord.Status>)
    /// No subject holds this external-reference hash (else `.exists` carrying that subject).
    case expectExternalRefFree(String)
    /// The field is at `generation` (nil: the field does not exist) and, when given, in one of `statuses`;
    /// else `.conflict`.
    case expectField(subject: String, field: String, generation: Int?, statuses: Set<FieldRecord.Status>? = nil)
    /// The subject's fields are exactly these, at these generations; else `.conflict`.
    case expectFieldSet(subject: String, [String: Int])

    case insertSubject(SubjectRecord)
    case setSubjectStatus(String, SubjectRecord.Status)
    /// The external reference stops leading to the subject (after erasure).
    case releaseExternalRef(String)
    /// Inserts or replaces a field.
    case putField(FieldRecord)
    /// Changes a field's state; `.erased` also drops its ciphertext.
    case setFieldState(subject: String, field: String, status: FieldRecord.Status, retainedFor: String?, retainedUntil: Date?)
    case deleteTokens(subject: String, field: String)
    case deleteIndex(subject: String, field: String)
    case insertTokens([TokenRecord])
    case insertIndex([BlindIndexEntry])
    /// Appends to the consent ledger; the entry's sequence number is returned in `CommitResult.consentSeqs`.
    case insertConsent(ConsentRecord)
    case setConsentState(subject: String, purpose: String, ConsentState)
    case setObjectionState(subject: String, purpose: String, Bool)
    case clearEvidence(subject: String)
    case insertErasureReceipt(subject: String, at: Date, json: String)
    /// Records superseded data keys, to be destroyed in the key store once this batch has committed.
    case queueKeyShred([DataKeyID])
    case dequeueKeyShred([DataKeyID])
    case insertCredential(CredentialRecord)
    case revokeCredentials(ids: [String], at: Date)
    /// Records the binding; refused (`.conflict`) when one exists.
    case insertBinding(VaultBinding)
    /// Inserts or replaces an instance's heartbeat.
    case heartbeat(InstanceHeartbeat)
    case removeInstance(String)
    /// Rewrites the one-row write probe: readiness's proof that the store takes writes again.
    case probe(Date)
    /// Fewer than `max` contact attempts of the subject through the purpose at or after `since`; else
    /// `.limitReached`. Serialised per subject and purpose across instances, with the insert that follows.
    case expectContactsBelow(subject: String, purpose: String, since: Date, max: Int)
    case insertContact(ContactAttempt)
    /// Records a notification to recipients, in the same transaction as the change it reports.
    case insertOutbox(OutboxEvent)
    /// Marks the notification fanned out and inserts one delivery per recipient; `.conflict` when it
    /// was fanned out already (by another instance).
    case fanOut(event: String, [DeliveryRecord])
    /// Takes a pending, due delivery at `attempts` for `owner` until `until`; `.conflict` when it is not
    /// pending, has moved on, or another owner's lease has not expired at `now`.
    case leaseDelivery(id: String, attempts: Int, owner: String, until: Date, now: Date)
    /// Records an attempt by the lease's owner and the delivery's new state (releasing the lease);
    /// `.conflict` when `owner` no longer holds it at `attempt.attempt - 1` attempts. A `failed` status
    /// becomes `pending` (due at `nextAttemptAt`) when the retry period was extended after `retryUntil`
    /// was read (the DPO re-drove it during the attempt).
    case recordDeliveryAttempt(DeliveryAttemptRecord, owner: String, status: DeliveryStatus, nextAttemptAt: Date, retryUntil: Date)
    /// Makes a pending or failed delivery due at `at`, retried until `retryUntil`; `.notFound` when
    /// there is no such delivery, `.conflict` when it was delivered. A lease in force is kept, so an
    /// attempt in flight is neither doubled nor left unrecorded.
    case retryDelivery(id: String, at: Date, retryUntil: Date)
}

/// One group of `VaultStore.auditStats`.
public struct AuditStatRow: Sendable, Equatable {
    /// The bucket's index: its start is `bucket * bucketMillis` ms after the epoch.
    public let bucket: Int64
    public let purpose: String?
    public let service: String
    public let decision: AuditDraft.Decision
    public let code: String?
    public let count: Int
    public init(bucket: Int64, purpose: String?, service: String, decision: AuditDraft.Decision, code: String?, count: Int) {
        self.bucket = bucket
        self.purpose = purpose
        self.service = service
        self.decision = decision
        self.code = code
        self.count = count
    }
}

/// One kind of allowed reveal of a subject, from the audit log (`VaultStore.revealRecipients`).
public struct RevealRecord: Sendable, Hashable {
    public let service: String
    public let purpose: String?
    public let fields: [String]
    public init(service: String, purpose: String?, fields: [String]) {
        self.service = service
        self.purpose = purpose
        self.fields = fields
    }
}

/// A position in the subject-ordered scan of `VaultStore.accessEvents`.
public struct AccessCursor: Sendable, Equatable {
    public let subject: String
    public let seq: Int64
    public init(subject: String, seq: Int64) {
        self.subject = subject
        self.seq = seq
    }
}

/// A data-store transaction: operations, then audit events, committed together or not at all.
public struct WriteBatch: Sendable {
    public var ops: [WriteOp]
    public var audit: [AuditDraft]
    public init(_ ops: [WriteOp] = [], audit: [AuditDraft] = []) {
        self.ops = ops
        self.audit = audit
    }
}

/// What a committed batch produced.
public struct CommitResult: Sendable {
    /// Ledger sequence numbers of `insertConsent` operations, in order.
    public var consentSeqs: [Int64]
    public init(consentSeqs: [Int64] = []) { self.consentSeqs = consentSeqs }
}

/// The migrations every engine applies, by the same ids in the same order; each engine supplies
/// its own SQL for each id, and the conformance suite checks both applied exactly this list.
public enum StoreMigrations {
    public static let ids = [
        "v1-subjects-fields-tokens", "v1-credentials", "v1-audit", "v2-consent-ledger", "v3-audit-read-indexes", "v4-erasures",
        "v5-atomic-writes", "v6-binding-instances", "v7-write-probe", "v8-contact-attempts", "v9-notifications",
    ]
}

extension VaultStore {
    /// One subject's fields, by name.
    public func fields(subject: String) async throws -> [FieldRecord] {
        try await fields(subjects: [subject]).sorted { $0.field < $1.field }
    }

    /// Appends audit events on their own.
    public func appendAudit(_ events: [AuditDraft]) async throws {
        _ = try await commit(WriteBatch(audit: events))
    }

    public func snapshot(tokenHashes: [String], subjects: Set<String>) async throws -> StoreSnapshot {
        try await snapshot(tokenHashes: tokenHashes, subjects: subjects, index: nil)
    }

    public func consentStates(subjects: Set<String>) async throws -> [String: [String: PurposeState]] {
        try await snapshot(tokenHashes: [], subjects: subjects).states
    }

    public func tokens(hashes: [String]) async throws -> [String: TokenRecord] {
        try await snapshot(tokenHashes: hashes, subjects: []).tokens
    }

    public func erasureReceipt(subject: String) async throws -> ErasureReceipt? {
        guard let json = try await erasureReceiptJSON(subject: subject) else { return nil }
        return try ErasureReceipt.decoder.decode(ErasureReceipt.self, from: Data(json.utf8))
    }
}

/// The erasure receipt (declared in CofreAPI) as the stores keep it.
extension ErasureReceipt {
    /// The stored form: sorted keys, dates in milliseconds, identical on every engine.
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .millisecondsSince1970
        return e
    }()

    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .millisecondsSince1970
        return d
    }()
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
    /// The newest `limit` events, newest first (the console's latest alerts and accesses).
    public var newestFirst = false

    public init(subject: String? = nil, service: String? = nil, purpose: String? = nil, action: String? = nil,
                decision: AuditDraft.Decision? = nil, since: Date? = nil, until: Date? = nil, ref: String? = nil,
                after: Int64? = nil, through: Int64? = nil, limit: Int = 100, newestFirst: Bool = false) {
        self.newestFirst = newestFirst
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
///
/// `conflict`, `notFound`, `subjectGone` and `exists` come from a batch's preconditions: the batch
/// certainly wrote nothing. Any other failure of a commit may hide a commit that happened.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable { case conflict, notFound, subjectGone, exists, limitReached, auditUnavailable, unavailable }
    public let code: Code
    /// For `exists`: the subject that holds the external reference.
    public let subject: String?
    public init(_ code: Code, subject: String? = nil) {
        self.code = code
        self.subject = subject
    }
    public var description: String { "store error: \(code.rawValue)" }

    /// Whether the failed batch certainly committed nothing (a precondition refused it).
    public var certainlyNotCommitted: Bool {
        switch code {
        case .conflict, .notFound, .subjectGone, .exists, .limitReached: true
        case .auditUnavailable, .unavailable: false
        }
    }
}
