import CofreCore

/// Request and response bodies of CONTRACT §4, with the contract's snake_case keys.
struct CreateSubjectBody: Decodable {
    let externalRef: String
    let fields: [String: String]
    enum CodingKeys: String, CodingKey { case externalRef = "external_ref", fields }
}

struct PutFieldsBody: Decodable {
    let fields: [String: String]
}

struct TokenizeBody: Decodable {
    let subject: String
    let field: String
    let value: String
}

struct DetokenizeBody: Decodable {
    let purpose: String
    let tokens: [String]
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
