import CofreAPI
import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The export document (schema `cofre.export.v1`), less its access history, which is streamed after it.
struct ExportHead: Encodable {
    struct Field: Encodable {
        let field: String
        let type: String
        let value: String?
        let status: String
        let version: Int
        let corrected: Bool
        let storedAt: Date
        let storedBy: String
        let retainedFor: String?
        let retainedUntil: Date?
        enum CodingKeys: String, CodingKey {
            case field, type, value, status, version, corrected, storedAt = "stored_at", storedBy = "stored_by"
            case retainedFor = "retained_for", retainedUntil = "retained_until"
        }
    }
    struct Purpose: Encodable {
        let purpose: String
        let legalBasis: String
        let fields: [String: String]
        let retentionDays: Int?
        let consent: String
        let objection: Bool
        enum CodingKeys: String, CodingKey {
            case purpose, legalBasis = "legal_basis", fields, retentionDays = "retention_days", consent, objection
        }
    }
    struct Subject: Encodable {
        let id: String
        let status: String
        let createdAt: Date
        let createdBy: String
        enum CodingKeys: String, CodingKey { case id, status, createdAt = "created_at", createdBy = "created_by" }
    }
    let schema = "cofre.export.v1"
    let generatedAt: Date
    let controllerNote = "Exported under LGPD Art. 18 II and V and Art. 19. Values are shown in full."
    let subject: Subject
    let fields: [Field]
    let consents: [ConsentEventDTO]
    let purposes: [Purpose]
    let erasure: ErasureReceipt?
    enum CodingKeys: String, CodingKey {
        case schema, generatedAt = "generated_at", controllerNote = "note", subject, fields, consents, purposes, erasure
    }

    init(_ e: SubjectExport) {
        generatedAt = e.generatedAt
        subject = Subject(id: e.subject.id, status: e.subject.status.rawValue, createdAt: e.subject.createdAt, createdBy: e.subject.createdBy)
        fields = e.fields.map {
            Field(field: $0.field, type: $0.type.rawValue, value: $0.value, status: $0.status.rawValue, version: $0.version,
                  corrected: $0.version > 1, storedAt: $0.storedAt, storedBy: $0.storedBy, retainedFor: $0.retainedFor,
                  retainedUntil: $0.retainedUntil)
        }
        consents = e.consents.map(ConsentEventDTO.init)
        purposes = e.purposes.map {
            Purpose(purpose: $0.purpose, legalBasis: $0.legalBasis.rawValue, fields: $0.fields.mapValues(\.rawValue),
                    retentionDays: $0.retentionDays, consent: "\($0.consent)", objection: $0.objection)
        }
        erasure = e.erasure
    }
}

/// One line of the access history: who did what with which fields, when, and why.
struct AccessEntry: Encodable {
    let seq: Int64
    let time: Date
    let service: String
    let role: String
    let action: String
    let fields: [String]
    let purpose: String?
    let legalBasis: String?
    let decision: String
    let code: String?
    enum CodingKeys: String, CodingKey { case seq, time, service, role, action, fields, purpose, legalBasis = "legal_basis", decision, code }

    init(_ e: AuditEvent) {
        seq = e.seq
        time = e.draft.time
        service = e.draft.service
        role = e.draft.role
        action = e.draft.action
        fields = e.draft.fields
        purpose = e.draft.purpose
        legalBasis = e.draft.legalBasis
        decision = e.draft.decision.rawValue
        code = e.draft.code
    }
}

struct SimpleExport: Encodable {
    let schema = "cofre.export.simple.v1"
    let generatedAt: Date
    let subject: String
    let processing: Bool
    let status: String
    let fields: [String]
    enum CodingKeys: String, CodingKey { case schema, generatedAt = "generated_at", subject, processing, status, fields }
}

/// The DPO's routes: export and erase.
struct RightsAPI: Sendable {
    let vault: Vault
    let auth: VaultAPI

    func register(on router: Router<CofreRequestContext>) {
        router.get("/v1/subjects/:subject/export") { request, context in
            let subject = try context.parameters.require("subject")
            let principal = try await auth.authorize(request, context, .init(roles: [.dpo]), action: "subject.export", subject: subject)
            let q = try AuditAPI.parameters(request, allowed: ["format"])
            switch q["format"] {
            case "simple":
                let s = try await vault.exportSimple(principal, subject: subject, requestID: context.requestID)
                return try VaultAPI.json(SimpleExport(generatedAt: vault.now, subject: s.subject.id, processing: true,
                                                      status: s.subject.status.rawValue, fields: s.fields))
            case nil, "full":
                let export = try await vault.export(principal, subject: subject, requestID: context.requestID)
                return try Self.stream(export, vault: vault)
            default:
                throw VaultError.badRequest("'format' must be full or simple")
            }
        }
        router.post("/v1/subjects/:subject/erase") { request, context in
            let subject = try context.parameters.require("subject")
            let principal = try await auth.authorize(request, context, .init(roles: [.dpo]), action: "subject.erase", subject: subject)
            let body = try await VaultAPI.decode(EraseRequest.self, request, context)
            let receipt = try await vault.erase(principal, subject: subject, reason: body.reason, ticket: body.ticket,
                                                requestID: context.requestID)
            return try VaultAPI.json(receipt)
        }
    }

    /// Writes the head, then the access history page by page, so a long history never sits in memory.
    static func stream(_ export: SubjectExport, vault: Vault) throws -> Response {
        let encoder = JSONEncoder.cofre
        var head = try encoder.encode(ExportHead(export))
        head.removeLast()  // the closing brace: the access history follows
        let opening = head + Data(#","access_history":["#.utf8)
        let subject = export.subject.id, through = export.historyThrough
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(bytes: opening))
            var first = true
            try await vault.accessHistory(subject: subject, through: through) { events in
                var chunk = Data()
                for e in events {
                    if !first { chunk.append(UInt8(ascii: ",")) }
                    first = false
                    chunk.append(try encoder.encode(AccessEntry(e)))
                }
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.write(ByteBuffer(string: "]}"))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: body)
    }
}
