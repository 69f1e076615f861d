public import Foundation

extension DenialCode {
    /// A short explanation that names rules, never values.
    public var message: String {
        switch self {
        case .purposeNotAllowed: "the purpose is not allowed for this service"
        case .fieldNotAllowed: "this field is not part of the purpose"
        case .consentMissing: "the purpose rests on consent and the subject has not granted it"
        case .consentRevoked: "the subject revoked consent for this purpose"
        case .objection: "the subject objected to processing for this purpose (LGPD Art. 18 §2)"
        case .subjectBlocked: "the data is blocked and readable only through the purpose that retains it"
        case .subjectErased: "the data was erased at the subject's request"
        case .tokenUnknown: "no such token"
        case .tokenExpired: "the token has expired"
        case .outsideContactWindow: "the debtor may not be contacted now (collection hours in the debtor's state and time zone)"
        case .contactLimitReached: "the purpose's contact cap for this subject is reached"
        }
    }
}

/// Whether a field can be read at all, after erasure requests.
public enum FieldState: Sendable, Equatable {
    case active
    /// Kept after an erasure request only for `purpose`, until `until` (LGPD Art. 16, Art. 5 XIII).
    case blocked(purpose: String, until: Date)
    case erased
}

/// Everything one reveal decision depends on, and nothing else.
public struct RevealRequest: Sendable {
    public var service: ServicePolicy
    public var purposeName: String
    public var purpose: Purpose?
    public var field: String
    public var fieldState: FieldState
    public var consent: ConsentState
    public var objection: Bool
    public var now: Date

    public init(service: ServicePolicy, purposeName: String, purpose: Purpose?, field: String, fieldState: FieldState,
                consent: ConsentState, objection: Bool, now: Date) {
        self.service = service
        self.purposeName = purposeName
        self.purpose = purpose
        self.field = field
        self.fieldState = fieldState
        self.consent = consent
        self.objection = objection
        self.now = now
    }
}

/// The outcome of one decision.
public enum RevealDecision: Sendable, Equatable {
    case allow(RevealLevel)
    case deny(DenialCode)
}

/// The one place that decides whether a value may leave the vault. Deny by default.
public enum RevealPolicy {
    public static func decide(_ r: RevealRequest) -> RevealDecision {
        guard r.service.role == .service, r.service.purposes.contains(r.purposeName), let purpose = r.purpose else {
            return .deny(.purposeNotAllowed)
        }
        guard let level = purpose.fields[r.field] else { return .deny(.fieldNotAllowed) }
        switch r.fieldState {
        case .erased:
            return .deny(.subjectErased)
        case .blocked(let retaining, let until):
            // Past its date a blocked field is due for shredding: nobody reads it any more.
            guard retaining == purpose.name, r.now < until else { return .deny(.subjectBlocked) }
        case .active:
            break
        }
        switch purpose.legalBasis {
        case .consent:
            switch r.consent {
            case .granted: break
            case .none: return .deny(.consentMissing)
            case .revoked: return .deny(.consentRevoked)
            }
        default:
            if r.objection, purpose.legalBasis.objectionBlocks { return .deny(.objection) }
        }
        return .allow(level)
    }
}
