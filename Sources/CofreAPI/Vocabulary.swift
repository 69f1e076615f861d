/// The words of the interface, declared once: every wire string the vault sends or accepts is a raw
/// value written out here, never a Swift case name, so renaming a case cannot change the API.
/// The server, the domain, the CLI, the client and the tests all use these declarations.

/// The release, as `cofre --version` prints it and docs/openapi.yaml's `info.version` states it.
public enum CofreVersion {
    public static let current = "0.16.0"
}

/// An error code of `{"error":{"code":…}}` (docs/reference.md, "Errors"). Every code the vault can
/// answer is a static member and is listed in `all`; the README's error table is checked against it.
/// (Codable as its raw string: the standard library's `RawRepresentable` conformance.)
public struct ErrorCode: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    // 400
    public static let malformedRequest = ErrorCode("malformed_request")
    public static let tooManyTokens = ErrorCode("too_many_tokens")
    // 401, 403
    public static let unauthenticated = ErrorCode("unauthenticated")
    public static let forbidden = ErrorCode("forbidden")
    public static let purposeNotAllowed = ErrorCode("purpose_not_allowed")
    public static let fieldNotAllowed = ErrorCode("field_not_allowed")
    // 404, 405
    public static let notFound = ErrorCode("not_found")
    public static let methodNotAllowed = ErrorCode("method_not_allowed")
    public static let subjectNotFound = ErrorCode("subject_not_found")
    public static let purposeUnknown = ErrorCode("purpose_unknown")
    public static let noMatch = ErrorCode("no_match")
    public static let deliveryUnknown = ErrorCode("delivery_unknown")
    // 409
    public static let subjectExists = ErrorCode("subject_exists")
    public static let subjectErased = ErrorCode("subject_erased")
    public static let subjectBlocked = ErrorCode("subject_blocked")
    public static let concurrentUpdate = ErrorCode("concurrent_update")
    public static let ambiguousMatch = ErrorCode("ambiguous_match")
    /// A notification delivery that is already delivered cannot be re-driven (its receiver has it).
    public static let alreadyDelivered = ErrorCode("already_delivered")
    // 413
    public static let bodyTooLarge = ErrorCode("body_too_large")
    // 422
    public static let fieldUnknown = ErrorCode("field_unknown")
    public static let fieldNotSearchable = ErrorCode("field_not_searchable")
    public static let checkpointInvalid = ErrorCode("checkpoint_invalid")
    public static let consentNotApplicable = ErrorCode("consent_not_applicable")
    public static let objectionNotApplicable = ErrorCode("objection_not_applicable")
    public static let evidenceRequired = ErrorCode("evidence_required")
    public static let noticeVersionRequired = ErrorCode("notice_version_required")
    // 429
    public static let rateLimited = ErrorCode("rate_limited")
    // 500, 503
    public static let internalError = ErrorCode("internal_error")
    public static let unavailable = ErrorCode("unavailable")
    public static let auditUnavailable = ErrorCode("audit_unavailable")
    public static let notReady = ErrorCode("not_ready")
    public static let integrityFailure = ErrorCode("integrity_failure")
    public static let keyExhausted = ErrorCode("key_exhausted")
    /// Operator commands only (`cofre service issue|revoke`): never answered over HTTP.
    public static let serviceUnknown = ErrorCode("service_unknown")

    /// `invalid_<type>`: a value that fails its field's type, e.g. `invalid_cpf`.
    public static func invalid(_ type: FieldType) -> ErrorCode { ErrorCode("invalid_\(type.rawValue)") }

    /// Every code the vault answers, the `invalid_<type>` family included.
    public static var all: [ErrorCode] {
        [.malformedRequest, .tooManyTokens, .unauthenticated, .forbidden, .purposeNotAllowed, .fieldNotAllowed,
         .notFound, .methodNotAllowed, .subjectNotFound, .purposeUnknown, .noMatch, .deliveryUnknown,
         .subjectExists, .subjectErased, .subjectBlocked, .concurrentUpdate, .ambiguousMatch, .alreadyDelivered,
         .bodyTooLarge,
         .fieldUnknown, .fieldNotSearchable, .checkpointInvalid, .consentNotApplicable, .objectionNotApplicable,
         .evidenceRequired, .noticeVersionRequired, .rateLimited,
         .internalError, .unavailable, .auditUnavailable, .notReady, .integrityFailure, .keyExhausted]
            + FieldType.allCases.map(invalid)
    }
}

/// The `action` of an audit event (docs/reference.md, "The audit log"), declared once.
public struct AuditAction: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    private init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    // Data plane (services)
    public static let subjectCreate = AuditAction("subject.create")
    public static let fieldsPut = AuditAction("fields.put")
    public static let tokenize = AuditAction("tokenize")
    public static let detokenize = AuditAction("detokenize")
    public static let lookup = AuditAction("lookup")
    public static let bulkReveal = AuditAction("bulk_reveal")
    /// A dialer's eligibility check of a campaign's tokens (one event per call; nothing revealed or counted).
    public static let contactEligibility = AuditAction("contact.eligibility")
    // Consent and objections (services, DPO)
    public static let consentRead = AuditAction("consent.read")
    /// A consent write refused before its body was read (the route's own check).
    public static let consentRecord = AuditAction("consent.record")
    public static let consentGrant = AuditAction("consent.grant")
    public static let consentRevoke = AuditAction("consent.revoke")
    public static let objectionRecord = AuditAction("objection.record")
    public static let objectionWithdraw = AuditAction("objection.withdraw")
    // Subject rights (DPO) and retention
    public static let subjectExport = AuditAction("subject.export")
    public static let subjectErase = AuditAction("subject.erase")
    public static let retentionShred = AuditAction("retention.shred")
    // Recipients (Art. 18 §6) and incidents (Art. 48)
    /// One attempt to deliver a notification to a recipient's webhook (service `webhook-delivery`, role `system`).
    public static let deliveryAttempt = AuditAction("delivery.attempt")
    public static let deliveryRead = AuditAction("delivery.read")
    public static let deliveryRetry = AuditAction("delivery.retry")
    public static let incidentScope = AuditAction("incident.scope")
    // Auditors
    public static let auditRead = AuditAction("audit.read")
    public static let auditVerify = AuditAction("audit.verify")
    public static let auditCheckpoint = AuditAction("audit.checkpoint")
    /// The aggregate counts behind the console's charts (`GET /v1/audit/stats`).
    public static let auditStats = AuditAction("audit.stats")
    // The console (dpo, auditor)
    public static let consoleLogin = AuditAction("console.login")
    public static let consoleLogout = AuditAction("console.logout")
    /// The DPO looked a subject up by id, external reference or searchable value (the value only as a keyed hash).
    public static let subjectFind = AuditAction("subject.find")
    /// The DPO opened a subject's overview: statuses, consents, contact attempts, access history; no values.
    public static let subjectView = AuditAction("subject.view")
    // Operator
    public static let serviceIssue = AuditAction("service.issue")
    public static let serviceRevoke = AuditAction("service.revoke")
    public static let keysRotate = AuditAction("keys.rotate")
    public static let keysRewrap = AuditAction("keys.rewrap")
    public static let keysRetire = AuditAction("keys.retire")
    public static let keysPurge = AuditAction("keys.purge")
    public static let keysSweep = AuditAction("keys.sweep")

    public static let all: [AuditAction] = [
        .subjectCreate, .fieldsPut, .tokenize, .detokenize, .lookup, .bulkReveal, .contactEligibility,
        .consentRead, .consentRecord, .consentGrant, .consentRevoke, .objectionRecord, .objectionWithdraw,
        .subjectExport, .subjectErase, .retentionShred,
        .deliveryAttempt, .deliveryRead, .deliveryRetry, .incidentScope,
        .auditRead, .auditVerify, .auditCheckpoint, .auditStats,
        .consoleLogin, .consoleLogout, .subjectFind, .subjectView,
        .serviceIssue, .serviceRevoke, .keysRotate, .keysRewrap, .keysRetire, .keysPurge, .keysSweep,
    ]
}

/// What a notification to recipients (CONTRACT §9, LGPD Art. 18 §6) says happened to a subject.
public enum NotificationType: String, Sendable, CaseIterable, Codable {
    case subjectCorrected = "subject.corrected"
    case subjectErased = "subject.erased"
    case consentRevoked = "consent.revoked"
    case objectionRecorded = "objection.recorded"
}

/// Where a notification's delivery to one recipient stands: `pending` (being tried, with backoff),
/// `delivered` (the receiver answered 2xx), `failed` (still refused when its retry period ended).
public enum DeliveryStatus: String, Sendable, CaseIterable, Codable {
    case pending = "pending", delivered = "delivered", failed = "failed"
}

/// Why one token of a reveal was refused.
public enum DenialCode: String, Sendable, CaseIterable, Codable {
    case purposeNotAllowed = "purpose_not_allowed"
    case fieldNotAllowed = "field_not_allowed"
    case consentMissing = "consent_missing"
    case consentRevoked = "consent_revoked"
    case objection = "objection"
    case subjectBlocked = "subject_blocked"
    case subjectErased = "subject_erased"
    case tokenUnknown = "token_unknown"
    case tokenExpired = "token_expired"
    /// A contact purpose's field outside the debtor's window (local time, state law, holidays).
    case outsideContactWindow = "outside_contact_window"
    /// A contact purpose's daily or weekly cap for the subject is used up.
    case contactLimitReached = "contact_limit_reached"
}

/// LGPD Art. 7 legal bases that Cofre understands.
public enum LegalBasis: String, Sendable, CaseIterable, Codable {
    case consent = "consent"                        // Art. 7 I
    case legalObligation = "legal_obligation"       // Art. 7 II
    case contract = "contract"                      // Art. 7 V
    case exerciseOfRights = "exercise_of_rights"    // Art. 7 VI
    case legitimateInterest = "legitimate_interest" // Art. 7 IX
    case creditProtection = "credit_protection"     // Art. 7 X
}

/// How much of a value a purpose may see.
public enum RevealLevel: String, Sendable, CaseIterable, Codable {
    case plain = "plain", masked = "masked", redacted = "redacted"
}

/// Who a caller is; no role can do another's work.
public enum Role: String, Sendable, CaseIterable, Codable {
    case service = "service", dpo = "dpo", auditor = "auditor"
}

/// The value types a policy field can have.
public enum FieldType: String, Sendable, CaseIterable, Codable {
    case text = "text", cpf = "cpf", email = "email", phone = "phone", date = "date", decimal = "decimal"
    /// One of the 27 Brazilian state codes (case-insensitive, stored upper-case).
    case uf = "uf"
}

/// The subject's latest consent for one purpose.
public enum ConsentState: String, Sendable, Equatable, CaseIterable, Codable {
    case none = "none", granted = "granted", revoked = "revoked"
}

/// An entry of the consent ledger is a consent (purposes on the `consent` basis) or an objection (all others).
public enum ConsentKind: String, Sendable, CaseIterable, Codable {
    case consent = "consent", objection = "objection"
}

/// The status a ledger entry records.
public enum ConsentStatus: String, Sendable, CaseIterable, Codable {
    case granted = "granted", revoked = "revoked"      // consent
    case objected = "objected", withdrawn = "withdrawn" // objection
}

/// An audit event's decision.
public enum AuditDecision: String, Sendable, CaseIterable, Codable {
    case allow = "allow", deny = "deny"
}

/// A subject's life cycle; `erasing`: an erasure has begun and no write is accepted any more.
public enum SubjectStatus: String, Sendable, CaseIterable, Codable {
    case active = "active", erasing = "erasing", erased = "erased"
}

/// A stored field's state: `blocked` fields are kept after an erasure only for the retaining purpose.
public enum FieldStatus: String, Sendable, CaseIterable, Codable {
    case active = "active", blocked = "blocked", erased = "erased"
}

/// What an erasure did to one field.
public enum ErasureOutcome: String, Sendable, CaseIterable, Codable {
    case erased = "erased", retained = "retained"
}
