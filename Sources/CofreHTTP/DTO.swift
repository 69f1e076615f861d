import CofreCore
import Foundation

// Response bodies of CONTRACT §4 (the request bodies are in CofreAPI), with the contract's snake_case keys.

/// One subject's answer in a batch: its tokens, or its own error (with the existing subject for a duplicate).
struct BatchItem: Encodable {
    struct Failure: Encodable {
        let code: String
        let message: String
        let subject: String?
    }
    let externalRef: String
    let subject: String?
    let tokens: [String: String]?
    let error: Failure?
    enum CodingKeys: String, CodingKey { case externalRef = "external_ref", subject, tokens, error }
}

struct BatchAnswer: Encodable {
    let results: [BatchItem]
}

struct SubjectTokens: Encodable {
    let subject: String
    let tokens: [String: String]
}

struct TokenAnswer: Encodable {
    let token: String
}

struct Denied: Encodable {
    let code: String
    let message: String
}

struct RevealItem: Encodable {
    let token: String
    let field: String?
    let value: String?
    let reveal: String?
    let denied: Denied?
}

struct RevealAnswer: Encodable {
    let results: [RevealItem]
}

struct StatusAnswer: Encodable {
    let status: String
}

struct ConsentEventDTO: Encodable {
    let seq: Int64
    let subject: String
    let purpose: String
    let kind: String
    let status: String
    let channel: String?
    let evidence: String?
    let noticeVersion: String?
    let recordedBy: String
    let recordedRole: String
    let recordedAt: Date
    enum CodingKeys: String, CodingKey {
        case seq, subject, purpose, kind, status, channel, evidence
        case noticeVersion = "notice_version", recordedBy = "recorded_by", recordedRole = "recorded_role", recordedAt = "recorded_at"
    }

    init(_ v: Vault.ConsentView) {
        seq = v.seq
        subject = v.subject
        purpose = v.purpose
        kind = v.kind.rawValue
        status = v.status.rawValue
        channel = v.channel
        evidence = v.evidence
        noticeVersion = v.noticeVersion
        recordedBy = v.recordedBy
        recordedRole = v.recordedRole
        recordedAt = v.recordedAt
    }
}

struct PurposeConsentsDTO: Encodable {
    let legalBasis: String
    let consent: String
    let objection: Bool
    let objectionBlocks: Bool
    let history: [ConsentEventDTO]
    enum CodingKeys: String, CodingKey {
        case legalBasis = "legal_basis", consent, objection, objectionBlocks = "objection_blocks", history
    }
}

struct ConsentsAnswer: Encodable {
    let subject: String
    let purposes: [String: PurposeConsentsDTO]
}

struct LookupAnswer: Encodable {
    let subject: String
    let token: String
}
