import CofreAPI
import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The DPO's routes for recipients (CONTRACT §9) and incidents (§10).
struct NotifyAPI: Sendable {
    let vault: Vault
    let auth: VaultAPI

    static let deliveryFilters: Set<String> = ["status", "service", "subject", "after", "limit"]
    static let scopeParameters: Set<String> = ["service", "since", "until", "detected_at", "format"]

    func register(on routes: RouteRecorder) {
        routes.get("/v1/deliveries") { request, context in
            let principal = try await auth.authorize(request, context, .init(roles: [.dpo]), action: .deliveryRead)
            let q = try AuditAPI.parameters(request, allowed: Self.deliveryFilters)
            var query = DeliveryQuery(service: q["service"], subject: q["subject"])
            if let s = q["status"] {
                guard let status = DeliveryStatus(rawValue: s) else { throw VaultError.badRequest("'status' must be pending, failed or delivered") }
                query.status = status
            }
            query.after = try q["after"].map { try AuditAPI.integer($0, "after") }
            let limit = try q["limit"].map { Int(try AuditAPI.integer($0, "limit")) } ?? 100
            guard (1...1000).contains(limit) else { throw VaultError.badRequest("'limit' must be from 1 to 1000") }
            query.limit = limit
            let found = try await vault.deliveries(principal, query: query, requestID: context.requestID)
            let next = found.count == limit ? found.last.map { String($0.seq) } : nil
            return try VaultAPI.json(DeliveriesResponse(deliveries: found.map { Self.wire($0, log: nil) }, next: next))
        }
        routes.get("/v1/deliveries/:id") { request, context in
            let id = try context.parameters.require("id")
            let principal = try await auth.authorize(request, context, .init(roles: [.dpo]), action: .deliveryRead)
            _ = try AuditAPI.parameters(request, allowed: [])
            let (d, log) = try await vault.delivery(principal, id: id, requestID: context.requestID)
            return try VaultAPI.json(Self.wire(d, log: log))
        }
        routes.post("/v1/deliveries/:id/retry") { request, context in
            let id = try context.parameters.require("id")
            let principal = try await auth.authorize(request, context, .init(roles: [.dpo]), action: .deliveryRetry)
            _ = try AuditAPI.parameters(request, allowed: [])
            let d = try await vault.retryDelivery(principal, id: id, requestID: context.requestID)
            return try VaultAPI.json(Self.wire(d, log: nil))
        }
        routes.get("/v1/incidents/scope") { request, context in
            let principal = try await auth.authorize(request, context, .init(roles: [.dpo]), action: .incidentScope)
            let q = try AuditAPI.parameters(request, allowed: Self.scopeParameters)
            guard let service = q["service"] else { throw VaultError.badRequest("'service' is required") }
            guard let since = q["since"], let until = q["until"] else { throw VaultError.badRequest("'since' and 'until' are required") }
            let csv: Bool
            switch q["format"] {
            case nil, "json": csv = false
            case "csv": csv = true
            default: throw VaultError.badRequest("'format' must be json or csv")
            }
            let scan = try await vault.incidentScope(
                principal, service: service, since: try AuditAPI.date(since, "since"), until: try AuditAPI.date(until, "until"),
                detectedAt: try q["detected_at"].map { try AuditAPI.date($0, "detected_at") }, requestID: context.requestID)
            return csv ? Self.csv(scan, vault: vault) : try Self.json(scan, vault: vault)
        }
    }

    static func wire(_ d: DeliveryRecord, log: [DeliveryAttemptRecord]?) -> DeliveryResponse {
        DeliveryResponse(id: d.id, type: d.type, subject: d.subject, service: d.service, status: d.status, attempts: d.attempts,
                         createdAt: d.createdAt, nextAttemptAt: d.status == .pending ? d.nextAttemptAt : nil, retryUntil: d.retryUntil,
                         lastAttemptAt: d.lastAttemptAt, lastOutcome: d.lastOutcome, deliveredAt: d.deliveredAt,
                         attemptLog: log?.map { .init(attempt: $0.attempt, at: $0.at, outcome: $0.outcome, httpStatus: $0.httpStatus, durationMs: $0.durationMs) })
    }

    /// The scope as JSON: the query's head, the subjects streamed page by page, then the counts (known
    /// only once every subject has been read). The keys are those of `IncidentScopeResponse`.
    static func json(_ scan: IncidentScan, vault: Vault) throws -> Response {
        let encoder = WireJSON.encoder
        let empty = IncidentScopeResponse(service: scan.service, since: scan.since, until: scan.until, detectedAt: scan.detectedAt,
                                          notifyBy: scan.notifyBy, notifyByDate: scan.notifyByDate, through: scan.through, subjects: [],
                                          subjectCount: 0, accessCount: 0, byField: [:], byPurpose: [:])
        // The head is the document without its last four members; they follow the streamed subjects.
        var head = try encoder.encode(Head(empty))
        head.removeLast()  // "}"
        let opening = head + Data(#","subjects":["#.utf8)
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(bytes: opening))
            var first = true
            let totals = try await vault.scanIncident(scan) { subjects in
                var chunk = Data()
                for s in subjects {
                    if !first { chunk.append(UInt8(ascii: ",")) }
                    first = false
                    chunk.append(try encoder.encode(s))
                }
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            var tail = try encoder.encode(Tail(subjectCount: totals.subjects, accessCount: totals.accesses, byField: totals.byField,
                                               byPurpose: totals.byPurpose))
            tail.removeFirst()  // "{"
            try await writer.write(ByteBuffer(bytes: Data("],".utf8) + tail))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: body)
    }

    /// The scope as CSV: one row per subject (fields and purposes joined with `;`), streamed.
    static func csv(_ scan: IncidentScan, vault: Vault) -> Response {
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: IncidentScopeResponse.csvHeader + "\r\n"))
            _ = try await vault.scanIncident(scan) { subjects in
                var chunk = ""
                for s in subjects {
                    chunk += [s.subject, s.fields.joined(separator: ";"), s.purposes.joined(separator: ";"), String(s.accesses),
                              WireJSON.formatDate(s.firstAccess), WireJSON.formatDate(s.lastAccess)].map(csvCell).joined(separator: ",") + "\r\n"
                }
                try await writer.write(ByteBuffer(string: chunk))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8"], body: body)
    }

    /// RFC 4180 quoting, and a leading `'` before anything a spreadsheet would run as a formula.
    static func csvCell(_ s: String) -> String {
        var s = s
        if let c = s.first, "=+-@\t\r".contains(c) { s = "'" + s }
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    struct Head: Encodable {
        let r: IncidentScopeResponse
        init(_ r: IncidentScopeResponse) { self.r = r }
        enum CodingKeys: String, CodingKey {
            case service, since, until, through
            case detectedAt = "detected_at", notifyBy = "notify_by", notifyByDate = "notify_by_date"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(r.service, forKey: .service)
            try c.encode(r.since, forKey: .since)
            try c.encode(r.until, forKey: .until)
            try c.encode(r.detectedAt, forKey: .detectedAt)
            try c.encode(r.notifyBy, forKey: .notifyBy)
            try c.encode(r.notifyByDate, forKey: .notifyByDate)
            try c.encode(r.through, forKey: .through)
        }
    }

    struct Tail: Encodable {
        let subjectCount: Int
        let accessCount: Int
        let byField: [String: IncidentScopeResponse.Count]
        let byPurpose: [String: IncidentScopeResponse.Count]
        enum CodingKeys: String, CodingKey {
            case subjectCount = "subject_count", accessCount = "access_count", byField = "by_field", byPurpose = "by_purpose"
        }
    }
}
