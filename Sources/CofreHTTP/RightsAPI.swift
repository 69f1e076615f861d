import CofreAPI
import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The DPO's routes: export and erase.
struct RightsAPI: Sendable {
    let vault: Vault
    let auth: VaultAPI

    func register(on routes: RouteRecorder) {
        routes.get("/v1/subjects/:subject/export") { request, context in
            let subject = try context.parameters.require("subject")
            let principal = try await auth.authorize(request, context, .init(roles: [.dpo]), action: .subjectExport, subject: subject)
            let q = try AuditAPI.parameters(request, allowed: ["format"])
            switch q["format"] {
            case "simple":
                let s = try await vault.exportSimple(principal, subject: subject, requestID: context.requestID)
                return try VaultAPI.json(SimpleExportResponse(generatedAt: vault.now, subject: s.subject.id, processing: true,
                                                              status: s.subject.status, fields: s.fields))
            case nil, "full":
                let export = try await vault.export(principal, subject: subject, requestID: context.requestID)
                return try Self.stream(export, vault: vault)
            default:
                throw VaultError.badRequest("'format' must be full or simple")
            }
        }
        routes.post("/v1/subjects/:subject/erase") { request, context in
            let subject = try context.parameters.require("subject")
            let principal = try await auth.authorize(request, context, .init(roles: [.dpo]), action: .subjectErase, subject: subject)
            let body = try await VaultAPI.decode(EraseRequest.self, request, context)
            let receipt = try await vault.erase(principal, subject: subject, reason: body.reason, ticket: body.ticket,
                                                requestID: context.requestID)
            return try VaultAPI.json(receipt)
        }
    }

    /// Writes the head, then the access history page by page, so a long history never sits in memory.
    static func stream(_ export: SubjectExport, vault: Vault) throws -> Response {
        let encoder = WireJSON.encoder
        // The document is encoded with an empty access history, which is cut out and streamed in its place.
        var head = try encoder.encode(ExportResponse(head: export))
        let emptyHistory = Data(#""access_history":[]"#.utf8)
        guard let cut = head.range(of: emptyHistory) else { throw VaultError(.internalFailure, .internalError, "export encoding") }
        let tail = head[cut.upperBound...]
        head.removeSubrange(cut.lowerBound...)
        let opening = head + Data(#""access_history":["#.utf8)
        let closing = Data("]".utf8) + tail
        let subject = export.subject.id, through = export.historyThrough
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(bytes: opening))
            var first = true
            try await vault.accessHistory(subject: subject, through: through) { events in
                var chunk = Data()
                for e in events {
                    if !first { chunk.append(UInt8(ascii: ",")) }
                    first = false
                    chunk.append(try encoder.encode(ExportResponse.Access(e)))
                }
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.write(ByteBuffer(bytes: closing))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: body)
    }
}
