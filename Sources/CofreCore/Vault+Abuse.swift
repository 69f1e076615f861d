import CofreCrypto
import Foundation
import Logging

/// Abuse resistance (CONTRACT §4 v2): who may call a route is decided before its input is read,
/// quotas bound what a service (or a stolen key) can take per minute, unusual reveal volumes raise an
/// alert, and nothing a caller chose reaches the audit log unless the policy knows it.
extension Vault {
    /// What a route demands of its caller before its body is read.
    public struct Access: Sendable {
        public var roles: Set<Role>
        /// The service must hold `tokenize`.
        public var tokenize: Bool
        /// A service (not the DPO) must hold this purpose, named in the path.
        public var servicePurpose: String?
        public init(roles: Set<Role>, tokenize: Bool = false, servicePurpose: String? = nil) {
            self.roles = roles
            self.tokenize = tokenize
            self.servicePurpose = servicePurpose
        }
    }

    /// Checks the caller's role (and `tokenize`, and a purpose named in the path) before anything of the
    /// request is validated: a wrong caller gets the same 403 whatever it sent, and the refusal is audited.
    public func authorize(_ p: Principal, _ access: Access, action: AuditAction, subject: String? = nil, requestID: String?) async throws(VaultError) {
        var allowed = access.roles.contains(p.role)
        if allowed, p.role == .service, access.tokenize, !p.policy.tokenize { allowed = false }
        guard allowed else {
            throw await refuse(VaultError(.forbidden, .forbidden, "this caller may not do this"),
                               audit: draft(p, action: action, requestID: requestID, subject: subject,
                                            purposeName: access.servicePurpose, decision: .deny, code: ErrorCode.forbidden.rawValue))
        }
        if p.role == .service, let name = access.servicePurpose {
            _ = try await purpose(name, for: p, mustHold: true, action: action, subject: subject, requestID: requestID)
        }
    }

    /// A purpose the caller named: `404 purpose_unknown` when the policy has none by that name, and, when
    /// `mustHold`, `403 purpose_not_allowed` for a service that does not hold it. Both refusals are
    /// audited (an unknown name only as its keyed hash) and counted in the decision metric.
    func purpose(_ name: String, for p: Principal, mustHold: Bool, action: AuditAction, subject: String? = nil, fields: [String] = [],
                 requestID: String?) async throws(VaultError) -> Purpose {
        guard let purpose = policy.purposes[name] else {
            if action == .detokenize { VaultMetrics.decision(purpose: name, policy: policy, denied: .purposeNotAllowed) }
            throw await refuse(VaultError(.notFound, .purposeUnknown, "no such purpose in the policy"),
                               audit: draft(p, action: action, requestID: requestID, subject: subject, fields: fields, purposeName: name,
                                            decision: .deny, code: ErrorCode.purposeUnknown.rawValue))
        }
        if mustHold, p.role == .service, !p.policy.purposes.contains(name) {
            if action == .detokenize { VaultMetrics.decision(purpose: name, policy: policy, denied: .purposeNotAllowed) }
            throw await refuse(VaultError(.forbidden, .purposeNotAllowed, "this service does not hold that purpose"),
                               audit: draft(p, action: action, requestID: requestID, subject: subject, fields: fields, purpose: purpose,
                                            decision: .deny, code: ErrorCode.purposeNotAllowed.rawValue))
        }
        return purpose
    }

    /// Takes `count` units of the caller's quota of `kind`; past it, audits one refusal (one event per
    /// refused call, however many tokens it carried) and answers 429 with `Retry-After`.
    func enforceQuota(_ p: Principal, _ kind: RateLimiter.Kind, count: Int, action: AuditAction, subject: String? = nil,
                      purpose: Purpose? = nil, fields: [String] = [], requestID: String?) async throws(VaultError) {
        let perMinute = switch kind {
        case .reveals: p.policy.quota.revealsPerMinute
        case .lookups: p.policy.quota.lookupsPerMinute
        case .writes: p.policy.quota.writesPerMinute
        }
        guard let wait = limiter.take(count, kind, service: p.name, perMinute: perMinute, now: now) else { return }
        let retryAfter = max(1, Int(wait.rounded(.up)))
        VaultMetrics.quotaRefused(service: p.name, kind: kind.rawValue)
        logger.warning("quota exceeded; call refused", metadata: ["service": "\(p.name)", "kind": "\(kind.rawValue)", "retry_after": "\(retryAfter)"])
        let message = count > perMinute
            ? "this call asks for more \(kind.rawValue) than the per-minute quota allows; split it"
            : "the per-minute quota of \(kind.rawValue) is used up; retry later"
        throw await refuse(VaultError(.rateLimited, .rateLimited, message, retryAfter: retryAfter),
                           audit: draft(p, action: action, requestID: requestID, subject: subject, fields: fields, purpose: purpose,
                                        decision: .deny, code: VaultError.Code.rateLimited.rawValue))
    }

    /// Counts revealed values; when this minute's reveals of a service exceed its `bulk_reveal_factor`
    /// times its trailing hourly average, records a `bulk_reveal` warning event, a metric and a log line.
    func noteReveals(_ p: Principal, count: Int, requestID: String?) async {
        guard count > 0, let alert = revealMonitor.record(count, service: p.name, factor: p.policy.quota.bulkRevealFactor, now: now) else { return }
        VaultMetrics.bulkReveal(service: p.name)
        logger.warning("bulk reveal: a service revealed far more this minute than its hourly average",
                       metadata: ["service": "\(p.name)", "count": "\(alert.count)", "hourly_average": "\(Int(alert.average.rounded()))"])
        var a = draft(p, action: .bulkReveal, requestID: requestID, decision: .allow, code: "bulk_reveal")
        a.role = "system"
        a.target = "count_\(alert.count)_avg_\(Int(alert.average.rounded()))_factor_\(p.policy.quota.bulkRevealFactor)"
        do { try await store.appendAudit([a]) } catch {
            logger.error("the bulk-reveal alert could not be recorded", metadata: ["error.type": "\(type(of: error))"])
        }
    }

    /// A name the policy does not know, as the audit log may hold it: `unknown:` and a keyed hash, so
    /// repeated attempts can be correlated without the caller's text (or a CPF in a path) being stored.
    func unknownName(_ raw: String) -> String {
        "unknown:" + String(keyed("audit-name", raw).prefix(16))
    }

    /// The audit draft's caller-supplied parts, made safe: subject ids must look like subject ids,
    /// purposes and fields must be policy names; anything else becomes `unknown:<keyed hash>`.
    func sanitized(_ d: AuditDraft) -> AuditDraft {
        var d = d
        if let s = d.subject, !Identifiers.isSubject(s) { d.subject = unknownName(s) }
        if let p = d.purpose, policy.purposes[p] == nil { d.purpose = unknownName(p) }
        d.fields = d.fields.map { policy.fields[$0] == nil ? unknownName($0) : $0 }
        return d
    }
}
