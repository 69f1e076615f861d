public import Foundation

// The response bodies of the HTTP API (docs/openapi.yaml), with the interface's snake_case keys.
// Codable both ways: the server encodes them, the client (CofreClient), the CLI and the tests decode
// them. An optional member is omitted from the JSON when nil, except where a comment says otherwise.

/// `{"error":{"code":…,"message":…}}`, the shape of every error the vault answers.
public struct ErrorResponse: Codable, Sendable, Equatable {
    public struct Body: Codable, Sendable, Equatable {
        public let code: ErrorCode
        public let message: String
        /// The field a validation error is about.
        public let field: String?
        /// For `subject_exists`: the subject that already holds the external reference.
        public let subject: String?
        /// Also in the `X-Request-Id` header and the request's log line.
        public let requestID: String?
        public init(code: ErrorCode, message: String, field: String? = nil, subject: String? = nil, requestID: String? = nil) {
            self.code = code
            self.message = message
            self.field = field
            self.subject = subject
            self.requestID = requestID
        }
        enum CodingKeys: String, CodingKey { case code, message, field, subject, requestID = "request_id" }
    }
    public let error: Body
    public init(error: Body) { self.error = error }
}

/// `/healthz` and `/readyz`.
public struct StatusResponse: Codable, Sendable, Equatable {
    public let status: String
    public init(status: String) { self.status = status }
}

/// `POST /v1/subjects` (201) and `POST /v1/subjects/{subject}/fields`.
public struct CreateSubjectResponse: Codable, Sendable, Equatable {
    public let subject: String
    /// Field name → its new token.
    public let tokens: [String: String]
    public init(subject: String, tokens: [String: String]) {
        self.subject = subject
        self.tokens = tokens
    }
}

/// `POST /v1/subjects/{subject}/fields`: the same shape as a creation.
public typealias PutFieldsResponse = CreateSubjectResponse

/// `POST /v1/subjects/batch`: one result per subject, in the order given.
public struct BatchCreateResponse: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        /// A subject's own failure; `subject` is set for `subject_exists`.
        public struct Failure: Codable, Sendable, Equatable {
            public let code: ErrorCode
            public let message: String
            public let subject: String?
            public init(code: ErrorCode, message: String, subject: String? = nil) {
                self.code = code
                self.message = message
                self.subject = subject
            }
        }
        public let externalRef: String
        public let subject: String?
        public let tokens: [String: String]?
        public let error: Failure?
        public init(externalRef: String, subject: String?, tokens: [String: String]?, error: Failure?) {
            self.externalRef = externalRef
            self.subject = subject
            self.tokens = tokens
            self.error = error
        }
        enum CodingKeys: String, CodingKey { case externalRef = "external_ref", subject, tokens, error }
    }
    public let results: [Item]
    public init(results: [Item]) { self.results = results }
}

/// `POST /v1/tokenize`.
public struct TokenizeResponse: Codable, Sendable, Equatable {
    public let token: String
    public init(token: String) { self.token = token }
}

/// `POST /v1/detokenize`: one decision per token, in the order given.
public struct DetokenizeResponse: Codable, Sendable, Equatable {
    public struct Denial: Codable, Sendable, Equatable {
        public let code: DenialCode
        public let message: String
        /// For `outside_contact_window` and `contact_limit_reached`: when a contact will next be allowed.
        public let nextWindowAt: Date?
        public init(code: DenialCode, message: String, nextWindowAt: Date? = nil) {
            self.code = code
            self.message = message
            self.nextWindowAt = nextWindowAt
        }
        enum CodingKeys: String, CodingKey { case code, message, nextWindowAt = "next_window_at" }
    }
    /// Either `field` and `reveal` (with `value` unless redacted), or `denied`.
    public struct Result: Codable, Sendable, Equatable {
        public let token: String
        public let field: String?
        public let value: String?
        public let reveal: RevealLevel?
        public let denied: Denial?
        public init(token: String, field: String? = nil, value: String? = nil, reveal: RevealLevel? = nil, denied: Denial? = nil) {
            self.token = token
            self.field = field
            self.value = value
            self.reveal = reveal
            self.denied = denied
        }
    }
    public let results: [Result]
    public init(results: [Result]) { self.results = results }
}

/// `POST /v1/contact/eligibility`: per token, whether a contact through it is allowed now.
public struct ContactEligibilityResponse: Codable, Sendable, Equatable {
    public struct Result: Codable, Sendable, Equatable {
        public let token: String
        public let field: String?
        public let eligible: Bool
        public let denied: DetokenizeResponse.Denial?
        public init(token: String, field: String?, eligible: Bool, denied: DetokenizeResponse.Denial?) {
            self.token = token
            self.field = field
            self.eligible = eligible
            self.denied = denied
        }
    }
    public let results: [Result]
    public init(results: [Result]) { self.results = results }
}

/// `POST /v1/lookup`.
public struct LookupResponse: Codable, Sendable, Equatable {
    public let subject: String
    public let token: String
    public init(subject: String, token: String) {
        self.subject = subject
        self.token = token
    }
}

/// One entry of the consent and objection ledger: the answer of a consent or objection write, and
/// the history of `GET …/consents` and of the export. The same record everywhere, to the millisecond.
public struct ConsentEvent: Codable, Sendable, Equatable {
    public let seq: Int64
    public let subject: String
    public let purpose: String
    public let kind: ConsentKind
    public let status: ConsentStatus
    public let channel: String?
    public let evidence: String?
    public let noticeVersion: String?
    public let recordedBy: String
    public let recordedRole: String
    public let recordedAt: Date
    public init(seq: Int64, subject: String, purpose: String, kind: ConsentKind, status: ConsentStatus, channel: String?,
                evidence: String?, noticeVersion: String?, recordedBy: String, recordedRole: String, recordedAt: Date) {
        self.seq = seq
        self.subject = subject
        self.purpose = purpose
        self.kind = kind
        self.status = status
        self.channel = channel
        self.evidence = evidence
        self.noticeVersion = noticeVersion
        self.recordedBy = recordedBy
        self.recordedRole = recordedRole
        self.recordedAt = recordedAt
    }
    enum CodingKeys: String, CodingKey {
        case seq, subject, purpose, kind, status, channel, evidence
        case noticeVersion = "notice_version", recordedBy = "recorded_by", recordedRole = "recorded_role", recordedAt = "recorded_at"
    }
}

/// `GET /v1/subjects/{subject}/consents`: the current state and full history per purpose.
public struct ConsentsResponse: Codable, Sendable, Equatable {
    public struct PurposeState: Codable, Sendable, Equatable {
        public let legalBasis: LegalBasis
        public let consent: ConsentState
        public let objection: Bool
        /// Whether an objection stops this purpose (it cannot stop a legal obligation or the exercise of rights).
        public let objectionBlocks: Bool
        public let history: [ConsentEvent]
        public init(legalBasis: LegalBasis, consent: ConsentState, objection: Bool, objectionBlocks: Bool, history: [ConsentEvent]) {
            self.legalBasis = legalBasis
            self.consent = consent
            self.objection = objection
            self.objectionBlocks = objectionBlocks
            self.history = history
        }
        enum CodingKeys: String, CodingKey {
            case legalBasis = "legal_basis", consent, objection, objectionBlocks = "objection_blocks", history
        }
    }
    public let subject: String
    /// Purpose name → its state.
    public let purposes: [String: PurposeState]
    public init(subject: String, purposes: [String: PurposeState]) {
        self.subject = subject
        self.purposes = purposes
    }
}

/// The proof of an erasure (LGPD Art. 18 VI, Art. 16): what was erased, what was kept, why and until when.
public struct ErasureReceipt: Sendable, Codable, Equatable {
    public struct Outcome: Sendable, Codable, Equatable {
        public let field: String
        public let outcome: ErasureOutcome
        /// For a retained field: the purpose that keeps it, its legal basis, and until when.
        public let purpose: String?
        public let legalBasis: String?
        public let until: Date?
        public init(field: String, outcome: ErasureOutcome, purpose: String?, legalBasis: String?, until: Date?) {
            self.field = field
            self.outcome = outcome
            self.purpose = purpose
            self.legalBasis = legalBasis
            self.until = until
        }
        enum CodingKeys: String, CodingKey { case field, outcome, purpose, legalBasis = "legal_basis", until }
    }

    public let subject: String
    public let erasedAt: Date
    public let requestedBy: String
    public let reason: String
    public let ticket: String
    public let fields: [Outcome]

    public init(subject: String, erasedAt: Date, requestedBy: String, reason: String, ticket: String, fields: [Outcome]) {
        self.subject = subject
        self.erasedAt = erasedAt
        self.requestedBy = requestedBy
        self.reason = reason
        self.ticket = ticket
        self.fields = fields
    }
    enum CodingKeys: String, CodingKey {
        case subject, erasedAt = "erased_at", requestedBy = "requested_by", reason, ticket, fields
    }
}

/// `GET /v1/subjects/{subject}/export` (schema `cofre.export.v1`): everything about a subject, values included.
public struct ExportResponse: Codable, Sendable, Equatable {
    public static let schemaName = "cofre.export.v1"

    public struct Subject: Codable, Sendable, Equatable {
        public let id: String
        public let status: SubjectStatus
        public let createdAt: Date
        public let createdBy: String
        public init(id: String, status: SubjectStatus, createdAt: Date, createdBy: String) {
            self.id = id
            self.status = status
            self.createdAt = createdAt
            self.createdBy = createdBy
        }
        enum CodingKeys: String, CodingKey { case id, status, createdAt = "created_at", createdBy = "created_by" }
    }
    public struct Field: Codable, Sendable, Equatable {
        public let field: String
        public let type: FieldType
        /// Absent once the field is erased.
        public let value: String?
        public let status: FieldStatus
        public let version: Int
        public let corrected: Bool
        public let storedAt: Date
        public let storedBy: String
        public let retainedFor: String?
        public let retainedUntil: Date?
        public init(field: String, type: FieldType, value: String?, status: FieldStatus, version: Int, corrected: Bool, storedAt: Date,
                    storedBy: String, retainedFor: String?, retainedUntil: Date?) {
            self.field = field
            self.type = type
            self.value = value
            self.status = status
            self.version = version
            self.corrected = corrected
            self.storedAt = storedAt
            self.storedBy = storedBy
            self.retainedFor = retainedFor
            self.retainedUntil = retainedUntil
        }
        enum CodingKeys: String, CodingKey {
            case field, type, value, status, version, corrected, storedAt = "stored_at", storedBy = "stored_by"
            case retainedFor = "retained_for", retainedUntil = "retained_until"
        }
    }
    public struct Purpose: Codable, Sendable, Equatable {
        public let purpose: String
        public let legalBasis: LegalBasis
        public let fields: [String: RevealLevel]
        public let retentionDays: Int?
        public let consent: ConsentState
        public let objection: Bool
        public init(purpose: String, legalBasis: LegalBasis, fields: [String: RevealLevel], retentionDays: Int?, consent: ConsentState,
                    objection: Bool) {
            self.purpose = purpose
            self.legalBasis = legalBasis
            self.fields = fields
            self.retentionDays = retentionDays
            self.consent = consent
            self.objection = objection
        }
        enum CodingKeys: String, CodingKey {
            case purpose, legalBasis = "legal_basis", fields, retentionDays = "retention_days", consent, objection
        }
    }
    /// One line of the access history: who did what with which fields, when, and why.
    public struct Access: Codable, Sendable, Equatable {
        public let seq: Int64
        public let time: Date
        public let service: String
        public let role: String
        public let action: AuditAction
        public let fields: [String]
        public let purpose: String?
        public let legalBasis: String?
        public let decision: AuditDecision
        public let code: String?
        public init(seq: Int64, time: Date, service: String, role: String, action: AuditAction, fields: [String], purpose: String?,
                    legalBasis: String?, decision: AuditDecision, code: String?) {
            self.seq = seq
            self.time = time
            self.service = service
            self.role = role
            self.action = action
            self.fields = fields
            self.purpose = purpose
            self.legalBasis = legalBasis
            self.decision = decision
            self.code = code
        }
        enum CodingKeys: String, CodingKey { case seq, time, service, role, action, fields, purpose, legalBasis = "legal_basis", decision, code }
    }

    public let schema: String
    public let generatedAt: Date
    public let note: String
    public let subject: Subject
    public let fields: [Field]
    public let consents: [ConsentEvent]
    public let purposes: [Purpose]
    public let erasure: ErasureReceipt?
    /// One contact attempt (a reveal of a contact purpose's field): when, for which purpose, through
    /// which channel, by which service.
    public struct ContactAttempt: Codable, Sendable, Equatable {
        public let at: Date
        public let purpose: String
        public let channel: String?
        public let service: String
        public init(at: Date, purpose: String, channel: String?, service: String) {
            self.at = at
            self.purpose = purpose
            self.channel = channel
            self.service = service
        }
    }
    public let contactAttempts: [ContactAttempt]
    /// Streamed by the server page by page (never held whole); the client reads it like any other key.
    public let accessHistory: [Access]

    public init(generatedAt: Date, note: String, subject: Subject, fields: [Field], consents: [ConsentEvent], purposes: [Purpose],
                erasure: ErasureReceipt?, contactAttempts: [ContactAttempt] = [], accessHistory: [Access]) {
        self.schema = Self.schemaName
        self.generatedAt = generatedAt
        self.note = note
        self.subject = subject
        self.fields = fields
        self.consents = consents
        self.purposes = purposes
        self.erasure = erasure
        self.contactAttempts = contactAttempts
        self.accessHistory = accessHistory
    }
    enum CodingKeys: String, CodingKey {
        case schema, generatedAt = "generated_at", note, subject, fields, consents, purposes, erasure, accessHistory = "access_history"
        case contactAttempts = "contact_attempts"
    }
}

/// `GET /v1/subjects/{subject}/export?format=simple`: confirmation and the field list, without values.
public struct SimpleExportResponse: Codable, Sendable, Equatable {
    public static let schemaName = "cofre.export.simple.v1"
    public let schema: String
    public let generatedAt: Date
    public let subject: String
    public let processing: Bool
    public let status: SubjectStatus
    public let fields: [String]
    public init(generatedAt: Date, subject: String, processing: Bool, status: SubjectStatus, fields: [String]) {
        self.schema = Self.schemaName
        self.generatedAt = generatedAt
        self.subject = subject
        self.processing = processing
        self.status = status
        self.fields = fields
    }
    enum CodingKeys: String, CodingKey { case schema, generatedAt = "generated_at", subject, processing, status, fields }
}

/// One audit event as auditors read it.
public struct AuditEventResponse: Codable, Sendable, Equatable {
    public let seq: Int64
    public let time: Date
    public let service: String
    public let role: String
    /// An `AuditAction` raw value (kept as text so that an older client reads actions it does not know).
    public let action: String
    public let subject: String?
    public let fields: [String]
    public let purpose: String?
    public let legalBasis: String?
    public let decision: AuditDecision
    public let code: String?
    public let requestID: String?
    public let ref: String?
    public let target: String?
    public let prevHash: String
    public let hash: String
    public init(seq: Int64, time: Date, service: String, role: String, action: String, subject: String?, fields: [String],
                purpose: String?, legalBasis: String?, decision: AuditDecision, code: String?, requestID: String?, ref: String?,
                target: String?, prevHash: String, hash: String) {
        self.seq = seq
        self.time = time
        self.service = service
        self.role = role
        self.action = action
        self.subject = subject
        self.fields = fields
        self.purpose = purpose
        self.legalBasis = legalBasis
        self.decision = decision
        self.code = code
        self.requestID = requestID
        self.ref = ref
        self.target = target
        self.prevHash = prevHash
        self.hash = hash
    }
    enum CodingKeys: String, CodingKey {
        case seq, time, service, role, action, subject, fields, purpose, legalBasis = "legal_basis", decision, code
        case requestID = "request_id", ref, target, prevHash = "prev_hash", hash
    }
}

/// `GET /v1/audit/events`.
public struct AuditEventsResponse: Codable, Sendable, Equatable {
    public let events: [AuditEventResponse]
    /// Pass as `after` (with `through` = `head`) to read the next page. Always present: null on the last page.
    public let next: String?
    /// The newest sequence number when the page was read.
    public let head: Int64
    public init(events: [AuditEventResponse], next: String?, head: Int64) {
        self.events = events
        self.next = next
        self.head = head
    }
    enum CodingKeys: String, CodingKey { case events, next, head }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(events, forKey: .events)
        try c.encode(next, forKey: .next)  // explicit null
        try c.encode(head, forKey: .head)
    }
}

/// `GET /v1/audit/verify`: every event checked, every broken stretch listed.
public struct VerifyResponse: Codable, Sendable, Equatable {
    public struct BrokenRange: Codable, Sendable, Equatable {
        public let from: Int64
        public let to: Int64
        public let reason: String
        public init(from: Int64, to: Int64, reason: String) {
            self.from = from
            self.to = to
            self.reason = reason
        }
    }
    public let ok: Bool
    public let events: Int64
    public let head: String
    public let firstBadSeq: Int64?
    public let reason: String?
    public let broken: [BrokenRange]
    public init(ok: Bool, events: Int64, head: String, firstBadSeq: Int64?, reason: String?, broken: [BrokenRange]) {
        self.ok = ok
        self.events = events
        self.head = head
        self.firstBadSeq = firstBadSeq
        self.reason = reason
        self.broken = broken
    }
    enum CodingKeys: String, CodingKey { case ok, events, head, firstBadSeq = "first_bad_seq", reason, broken }
}

/// `GET /v1/audit/checkpoint`: the chain's head, MACed, to keep outside the vault.
public struct AuditCheckpoint: Sendable, Equatable, Codable {
    public let seq: Int64
    public let head: String
    public let time: Date
    public let mac: String

    public init(seq: Int64, head: String, time: Date, mac: String) {
        self.seq = seq
        self.head = head
        self.time = time
        self.mac = mac
    }
}

/// The one JSON form of the wire: sorted keys, dates in ISO 8601 with milliseconds (a checkpoint's
/// time must round-trip exactly).
public enum WireJSON {
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(formatDate(date))
        }
        return e
    }

    public static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let text = try c.decode(String.self)
            guard let date = parseDate(text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an ISO 8601 time")
            }
            return date
        }
        return d
    }

    public static func formatDate(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    /// An ISO 8601 instant, with or without fractional seconds.
    public static func parseDate(_ text: String) -> Date? {
        let withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return withFraction.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }
}
