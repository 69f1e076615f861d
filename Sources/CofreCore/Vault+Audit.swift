import CofreCrypto
import Foundation
import Logging

/// What `verify` found: every event counted, every bad stretch listed (CONTRACT §4 v2).
public struct AuditVerification: Sendable, Equatable {
    public let ok: Bool
    /// How many events were checked: all of them, whatever broke.
    public let events: Int64
    public let head: String
    public let broken: [AuditBreak]
    public var firstBadSeq: Int64? { broken.first?.from }
    public var reason: String? { broken.first?.reason }
}

/// A checkpoint (`AuditCheckpoint`, declared in CofreAPI) is a statement by the vault that its log held
/// `seq` events ending in `head` at `time`, with a MAC under the audit key. An auditor keeps it outside
/// the vault and later checks the log against it.
extension AuditChain {
    func checkpointMAC(seq: Int64, head: String, time: Date) -> String {
        Identifiers.hex(Digest.hmacSHA256(key: key, AssociatedData(["cofre.checkpoint.v1", String(seq), head, String(Self.millis(time))]).bytes))
    }
}

extension Vault {
    public static let auditPageLimit = 1000

    func requireAuditor(_ p: Principal, action: AuditAction, requestID: String?) async throws(VaultError) {
        guard p.role == .auditor else {
            throw await refuse(VaultError(.forbidden, .forbidden, "only an auditor may read the audit log"),
                               audit: draft(p, action: action, requestID: requestID, decision: .deny, code: ErrorCode.forbidden.rawValue))
        }
    }

    /// One page of the audit log for an auditor.
    public struct AuditPage: Sendable {
        public let events: [AuditEvent]
        /// The cursor for the next page, or nil when this page reached `head` (or `through`).
        public let next: Int64?
        /// The newest sequence number when this page was read, before this read's own event.
        public let head: Int64
    }

    /// `GET /v1/audit/events`: filtered events, oldest first, and the cursor for the next page.
    /// A `token` filter is turned into its keyed reference here; the token itself is never stored.
    public func auditEvents(_ p: Principal, query: AuditQuery, token: String?, requestID: String?) async throws(VaultError) -> AuditPage {
        try await requireAuditor(p, action: .auditRead, requestID: requestID)
        guard (1...Self.auditPageLimit).contains(query.limit) else {
            throw VaultError.badRequest("'limit' must be from 1 to \(Self.auditPageLimit)")
        }
        var q = query
        if let token { q.ref = chain.ref("token", token) }
        do {
            let head = try await store.lastAuditEvent()?.seq ?? 0
            // Reading is itself audited, so the log grows as it is read: a page never goes past the
            // head it started from, and the cursor stops there.
            let bound = min(q.through ?? head, head)
            q.through = bound
            let events = try await store.auditEvents(q)
            var read = draft(p, action: .auditRead, requestID: requestID, subject: q.subject, decision: .allow)
            // A filter is recorded only when it names something the policy knows; else as a keyed hash.
            read.target = q.service.map { policy.services[$0] == nil ? unknownName($0) : $0 }
            try await store.appendAudit([read])
            let next = events.count == q.limit && (events.last?.seq ?? bound) < bound ? events.last?.seq : nil
            return AuditPage(events: events, next: next, head: head)
        } catch {
            throw mapStore(error)
        }
    }

    /// Walks the whole chain page by page (bounded memory). With a checkpoint, also proves that the log
    /// still holds the checkpoint's event with the same hash: not cut back, not rewritten before it.
    public func verifyAudit(checkpoint: AuditCheckpoint? = nil) async throws -> AuditVerification {
        if let c = checkpoint {
            let expected = chain.checkpointMAC(seq: c.seq, head: c.head, time: c.time)
            guard Digest.constantTimeEquals(Array(expected.utf8), Array(c.mac.utf8)) else {
                throw VaultError(.unprocessable, .checkpointInvalid, "the checkpoint was not issued by this vault or was altered")
            }
        }
        var state: (expected: Int64, previous: String) = (1, AuditChain.genesis)
        var count: Int64 = 0
        var broken: [AuditBreak] = []
        var checkpointHash: String?
        var lastSeq: Int64 = 0
        while true {
            let page = try await store.auditPage(after: lastSeq, limit: Self.auditPageLimit)
            guard let last = page.last else { break }
            for b in chain.breaks(page, state: &state) {
                if let prior = broken.last, prior.to + 1 >= b.from {
                    broken[broken.count - 1].to = max(prior.to, b.to)
                } else {
                    broken.append(b)
                }
            }
            if let c = checkpoint, let e = page.first(where: { $0.seq == c.seq }) { checkpointHash = e.hash }
            count += Int64(page.count)
            lastSeq = last.seq
        }
        if let c = checkpoint {
            if lastSeq < c.seq {
                broken.append(AuditBreak(from: lastSeq + 1, to: c.seq,
                                         reason: "the log ends at sequence \(lastSeq), before the checkpoint's \(c.seq): it was cut back"))
            } else if checkpointHash != c.head {
                broken.append(AuditBreak(from: c.seq, to: c.seq,
                                         reason: "event \(c.seq) no longer has the checkpoint's hash: the log was rewritten up to it"))
            }
        }
        return AuditVerification(ok: broken.isEmpty, events: count, head: state.previous, broken: broken)
    }

    /// `GET /v1/audit/verify`, for an auditor; the verification itself is then audited.
    public func verifyAudit(_ p: Principal, checkpoint: AuditCheckpoint?, requestID: String?) async throws(VaultError) -> AuditVerification {
        try await requireAuditor(p, action: .auditVerify, requestID: requestID)
        do {
            let result = try await verifyAudit(checkpoint: checkpoint)
            try await store.appendAudit([draft(p, action: .auditVerify, requestID: requestID, decision: .allow,
                                               code: result.ok ? nil : "chain_broken_at_\(result.firstBadSeq ?? 0)_ranges_\(result.broken.count)")])
            return result
        } catch {
            throw mapStore(error)
        }
    }

    /// `GET /v1/audit/checkpoint`: the current head, MAC'd, after recording the request itself.
    public func checkpoint(_ p: Principal, requestID: String?) async throws(VaultError) -> AuditCheckpoint {
        try await requireAuditor(p, action: .auditCheckpoint, requestID: requestID)
        do {
            try await store.appendAudit([draft(p, action: .auditCheckpoint, requestID: requestID, decision: .allow)])
            // The head as it stands now (it includes the event just written).
            let last = try await store.lastAuditEvent()
            let at = Date(timeIntervalSince1970: Double(AuditChain.millis(now)) / 1000)
            let seq = last?.seq ?? 0, head = last?.hash ?? AuditChain.genesis
            return AuditCheckpoint(seq: seq, head: head, time: at, mac: chain.checkpointMAC(seq: seq, head: head, time: at))
        } catch {
            throw mapStore(error)
        }
    }

    /// At start: checks the chain and logs where it breaks. A broken chain never stops the service.
    public func checkAuditChainOnStart() async {
        do {
            let result = try await verifyAudit()
            if result.ok {
                logger.info("audit chain verified", metadata: ["events": "\(result.events)"])
            } else {
                logger.error("AUDIT CHAIN BROKEN; serving and appending anyway so auditors can investigate",
                             metadata: ["first_bad_seq": "\(result.firstBadSeq ?? 0)", "ranges": "\(result.broken.count)",
                                        "reason": "\(result.reason ?? "")"])
            }
        } catch {
            logger.error("audit chain could not be read at start", metadata: ["error.type": "\(type(of: error))"])
        }
    }
}
