/// The interface's vocabulary (error codes, audit actions, wire enums) is part of the domain's surface.
@_exported public import CofreAPI

/// A failure the vault reports to its callers: a stable code, a safe message, and what kind of failure it is.
///
/// Messages never hold a personal value, a token, a key or a credential: they name fields and rules only.
public struct VaultError: Error, Sendable, CustomStringConvertible {
    /// The contract's snake_case error code, declared in CofreAPI.
    public typealias Code = ErrorCode

    /// How the failure is classified; the HTTP layer maps each kind to one status.
    public enum Kind: Sendable {
        case badRequest, unauthenticated, forbidden, notFound, conflict, payloadTooLarge
        case unprocessable, rateLimited, unavailable, internalFailure
    }

    public let kind: Kind
    public let code: Code
    public let message: String
    /// The field a validation error is about, when there is one.
    public let field: String?
    /// For `subject_exists`: the subject that already holds the external reference.
    public let existingSubject: String?
    /// For `rate_limited`: seconds until the call may pass (`Retry-After`).
    public let retryAfter: Int?

    public init(_ kind: Kind, _ code: Code, _ message: String, field: String? = nil, existingSubject: String? = nil, retryAfter: Int? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.field = field
        self.existingSubject = existingSubject
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code): \(message)" }

    public static func badRequest(_ message: String, code: Code = .malformedRequest) -> VaultError {
        VaultError(.badRequest, code, message)
    }
    static func invalidValue(_ code: Code, field: String, _ message: String) -> VaultError {
        VaultError(.unprocessable, code, "field '\(field)': \(message)", field: field)
    }
    static let subjectNotFound = VaultError(.notFound, .subjectNotFound, "no such subject")
    static func storage(_ error: any Error) -> VaultError {
        // The underlying error may quote SQL; it is never shown. Callers log the type only.
        VaultError(.unavailable, .unavailable, "the vault cannot serve this request safely right now")
    }
    static let concurrentUpdate = VaultError(.conflict, .concurrentUpdate, "the subject changed during this request; retry")
    static let subjectErasedWrite = VaultError(.conflict, .subjectErased, "the subject was erased; its data cannot be changed")
    static let integrityFailure = VaultError(
        .unavailable, .integrityFailure, "a stored value cannot be read although it should be; nothing was revealed")
    static let auditUnavailable = VaultError(
        .unavailable, .auditUnavailable, "the audit log cannot be written; nothing was revealed or changed")
}
