/// The request bodies of the HTTP API (docs/CONTRACT.md §4), with the contract's snake_case keys.
/// Foundation only, so that a client, the fuzz targets and the server share one definition.

public struct CreateSubjectRequest: Codable, Sendable, Equatable {
    public let externalRef: String
    public let fields: [String: String]
    public init(externalRef: String, fields: [String: String]) {
        self.externalRef = externalRef
        self.fields = fields
    }
    enum CodingKeys: String, CodingKey { case externalRef = "external_ref", fields }
}

public struct BatchCreateRequest: Codable, Sendable, Equatable {
    public let subjects: [CreateSubjectRequest]
    public init(subjects: [CreateSubjectRequest]) { self.subjects = subjects }
}

public struct PutFieldsRequest: Codable, Sendable, Equatable {
    public let fields: [String: String]
    public init(fields: [String: String]) { self.fields = fields }
}

public struct TokenizeRequest: Codable, Sendable, Equatable {
    public let subject: String
    public let field: String
    public let value: String
    public init(subject: String, field: String, value: String) {
        self.subject = subject
        self.field = field
        self.value = value
    }
}

public struct DetokenizeRequest: Codable, Sendable, Equatable {
    public let purpose: String
    public let tokens: [String]
    public init(purpose: String, tokens: [String]) {
        self.purpose = purpose
        self.tokens = tokens
    }
}

/// `POST /v1/contact/eligibility`: a dialer's campaign, checked without revealing or counting.
public struct ContactEligibilityRequest: Codable, Sendable, Equatable {
    public let purpose: String
    public let tokens: [String]
    public init(purpose: String, tokens: [String]) {
        self.purpose = purpose
        self.tokens = tokens
    }
}

public struct LookupRequest: Codable, Sendable, Equatable {
    public let purpose: String
    public let field: String
    public let value: String
    public init(purpose: String, field: String, value: String) {
        self.purpose = purpose
        self.field = field
        self.value = value
    }
}

/// A consent (PUT) or objection withdrawal (DELETE, with evidence) record.
public struct ConsentRequest: Codable, Sendable, Equatable {
    public let status: String?
    public let channel: String?
    public let evidence: String?
    public let noticeVersion: String?
    public init(status: String? = nil, channel: String? = nil, evidence: String? = nil, noticeVersion: String? = nil) {
        self.status = status
        self.channel = channel
        self.evidence = evidence
        self.noticeVersion = noticeVersion
    }
    enum CodingKeys: String, CodingKey { case status, channel, evidence, noticeVersion = "notice_version" }
}

public struct EraseRequest: Codable, Sendable, Equatable {
    public let reason: String
    public let ticket: String
    public init(reason: String, ticket: String) {
        self.reason = reason
        self.ticket = ticket
    }
}
