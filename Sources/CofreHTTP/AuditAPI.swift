import CofreAPI
import CofreCore
import Foundation
import HTTPTypes
import Hummingbird

/// The auditor's routes: events, verify, checkpoint.
struct AuditAPI: Sendable {
    let vault: Vault
    let auth: VaultAPI

    static let eventFilters: Set<String> = ["subject", "service", "purpose", "action", "decision", "since", "until", "after", "through", "limit", "token", "ref"]
    static let verifyParameters: Set<String> = ["checkpoint_seq", "checkpoint_head", "checkpoint_time", "checkpoint_mac"]

    func register(on routes: RouteRecorder) {
        routes.get("/v1/audit/events") { request, context in
            let principal = try await auth.authorize(request, context, .init(roles: [.auditor]), action: .auditRead)
            let q = try Self.parameters(request, allowed: Self.eventFilters)
            var query = AuditQuery(subject: q["subject"], service: q["service"], purpose: q["purpose"], action: q["action"], ref: q["ref"])
            if let d = q["decision"] {
                guard let decision = AuditDraft.Decision(rawValue: d) else { throw VaultError.badRequest("'decision' must be allow or deny") }
                query.decision = decision
            }
            query.since = try q["since"].map { try Self.date($0, "since") }
            query.until = try q["until"].map { try Self.date($0, "until") }
            query.after = try q["after"].map { try Self.integer($0, "after") }
            query.through = try q["through"].map { try Self.integer($0, "through") }
            query.limit = try q["limit"].map { Int(try Self.integer($0, "limit")) } ?? 100
            let page = try await vault.auditEvents(principal, query: query, token: q["token"], requestID: context.requestID)
            return try VaultAPI.json(AuditEventsResponse(events: page.events.map(AuditEventResponse.init), next: page.next.map(String.init),
                                                         head: page.head))
        }
        routes.get("/v1/audit/verify") { request, context in
            let principal = try await auth.authorize(request, context, .init(roles: [.auditor]), action: .auditVerify)
            let q = try Self.parameters(request, allowed: Self.verifyParameters)
            var checkpoint: AuditCheckpoint?
            if !q.isEmpty {
                guard let seq = q["checkpoint_seq"], let head = q["checkpoint_head"], let time = q["checkpoint_time"], let mac = q["checkpoint_mac"] else {
                    throw VaultError.badRequest("a checkpoint needs checkpoint_seq, checkpoint_head, checkpoint_time and checkpoint_mac")
                }
                checkpoint = AuditCheckpoint(seq: try Self.integer(seq, "checkpoint_seq"), head: head, time: try Self.date(time, "checkpoint_time"), mac: mac)
            }
            let r = try await vault.verifyAudit(principal, checkpoint: checkpoint, requestID: context.requestID)
            return try VaultAPI.json(VerifyResponse(ok: r.ok, events: r.events, head: r.head, firstBadSeq: r.firstBadSeq, reason: r.reason,
                                                    broken: r.broken.map { .init(from: $0.from, to: $0.to, reason: $0.reason) }))
        }
        routes.get("/v1/audit/stats") { request, context in
            let principal = try await auth.authorize(request, context, .init(roles: [.auditor]), action: .auditStats)
            let q = try Self.parameters(request, allowed: ["since", "until", "bucket"])
            guard let since = q["since"], let until = q["until"] else { throw VaultError.badRequest("'since' and 'until' are required") }
            return try VaultAPI.json(try await vault.auditStats(principal, since: try Self.date(since, "since"), until: try Self.date(until, "until"),
                                                                bucket: q["bucket"] ?? "hour", requestID: context.requestID))
        }
        routes.get("/v1/audit/checkpoint") { request, context in
            let principal = try await auth.authorize(request, context, .init(roles: [.auditor]), action: .auditCheckpoint)
            _ = try Self.parameters(request, allowed: [])
            return try VaultAPI.json(try await vault.checkpoint(principal, requestID: context.requestID))
        }
    }

    /// Query parameters, refusing any this route does not know (a typo must not silently widen a filter).
    static func parameters(_ request: Request, allowed: Set<String>) throws -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in request.uri.queryParameters {
            let key = String(k)
            guard allowed.contains(key) else { throw VaultError.badRequest("unknown query parameter '\(key)'") }
            out[key] = String(v)
        }
        return out
    }

    static func date(_ s: String, _ name: String) throws -> Date {
        if let d = WireJSON.parseDate(s) { return d }
        throw VaultError.badRequest("'\(name)' must be an ISO 8601 time such as 2026-11-29T12:00:00Z")
    }

    static func integer(_ s: String, _ name: String) throws -> Int64 {
        guard let n = Int64(s), n >= 0 else { throw VaultError.badRequest("'\(name)' must be a non-negative integer") }
        return n
    }
}
