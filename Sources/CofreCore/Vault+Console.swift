import CofreCrypto
public import Foundation

/// What the web console (CONTRACT §11) needs beyond the API's use cases: the charts' aggregates, the
/// DPO's subject search and overview. Same roles, same audit as every other use case.
extension Vault {
    public static let maxStatBuckets = 400

    /// `GET /v1/audit/stats` (auditor): reveal decisions per bucket, by purpose, denial code and service.
    public func auditStats(_ p: Principal, since: Date, until: Date, bucket: String, requestID: String?) async throws(VaultError) -> AuditStatsResponse {
        try await requireAuditor(p, action: .auditStats, requestID: requestID)
        let width: Int64
        switch bucket {
        case "hour": width = 3_600_000
        case "day": width = 86_400_000
        default: throw VaultError.badRequest("'bucket' must be hour or day")
        }
        guard since < until else { throw VaultError.badRequest("'since' must be before 'until'") }
        let first = Int64((since.timeIntervalSince1970 * 1000).rounded(.down)) / width
        let last = (Int64((until.timeIntervalSince1970 * 1000).rounded(.up)) - 1) / width
        guard last - first < Int64(Self.maxStatBuckets) else {
            throw VaultError.badRequest("at most \(Self.maxStatBuckets) buckets: widen 'bucket' or narrow the window")
        }
        do {
            let rows = try await store.auditStats(since: since, until: until, bucketMillis: width)
            var a = draft(p, action: .auditStats, requestID: requestID, decision: .allow)
            a.target = bucket
            try await store.appendAudit([a])
            var buckets = (first...last).map { AuditStatsResponse.Bucket(start: Date(timeIntervalSince1970: Double($0 * width) / 1000)) }
            var totals = AuditStatsResponse.Bucket(start: since)
            func add(_ r: AuditStatRow, to b: inout AuditStatsResponse.Bucket) {
                // A purpose the policy does not know (a caller's typo, recorded by its keyed hash) is one key.
                let purpose = r.purpose.map { policy.purposes[$0] == nil ? "unknown" : $0 } ?? "none"
                var d = b.byPurpose[purpose] ?? .init()
                if r.decision == .allow {
                    d.allow += r.count
                    b.revealsByService[r.service, default: 0] += r.count
                } else {
                    d.deny += r.count
                    b.byCode[r.code ?? "none", default: 0] += r.count
                }
                b.byPurpose[purpose] = d
            }
            for r in rows {
                let i = Int(r.bucket - first)
                guard buckets.indices.contains(i) else { continue }
                add(r, to: &buckets[i])
                add(r, to: &totals)
            }
            return AuditStatsResponse(since: since, until: until, bucket: bucket, buckets: buckets, totals: totals)
        } catch {
            throw mapStore(error)
        }
    }

    /// How the DPO looks a subject up.
    public enum SubjectSearch: Sendable, Equatable {
        case id(String)
        case externalRef(String)
        /// A searchable field's value, through the blind index.
        case value(field: String, String)
    }

    /// The DPO finds subjects by id, external reference or a searchable value. The search is audited
    /// with what was searched by (`target`) and the value only as a keyed reference.
    public func findSubjects(_ p: Principal, _ search: SubjectSearch, requestID: String?) async throws(VaultError) -> [String] {
        try await requireDPO(p, action: .subjectFind, requestID: requestID)
        var a = draft(p, action: .subjectFind, requestID: requestID, decision: .allow)
        let found: [String]
        do {
            switch search {
            case .id(let id):
                a.target = "id"
                var exists = false
                if Identifiers.isSubject(id) { exists = try await store.subject(id: id) != nil }
                found = exists ? [id] : []
            case .externalRef(let ref):
                a.target = "external_ref"
                a.ref = chain.ref("external_ref", ref)
                found = try await store.subjects(externalRefHash: externalRefHash(ref))
            case .value(let field, let value):
                // The same refusals and the same keyed reference as `POST /v1/lookup`, so an auditor
                // finds a console search and an API lookup of one value alike.
                guard let spec = policy.fields[field] else {
                    throw VaultError(.unprocessable, .fieldUnknown, "field '\(field)' is not in the policy", field: field)
                }
                guard spec.searchable else {
                    throw VaultError(.unprocessable, .fieldNotSearchable, "field '\(field)' is not searchable", field: field)
                }
                a.target = "field:\(field)"
                let normalized = try spec.type.normalize(value, field: field)
                a.ref = chain.ref("lookup:\(field)", normalized)
                found = try await store.lookup(field: field, hash: indexHash(field: field, normalized: normalized))
            }
            a.subject = found.count == 1 ? found[0] : nil
            try await store.appendAudit([a])
            return found.sorted()
        } catch {
            throw mapStore(error)
        }
    }

    /// A subject as the DPO's console shows it: never a value.
    public struct SubjectOverview: Sendable {
        public let subject: SubjectRecord
        /// Each field's metadata (the ciphertext is not carried).
        public let fields: [(name: String, type: FieldType, status: FieldRecord.Status, version: Int, storedAt: Date, storedBy: String,
                             retainedFor: String?, retainedUntil: Date?)]
        public let consents: [PurposeConsents]
        public let contactAttempts: [ContactAttempt]
        /// The subject's newest audit events, newest first, at most `Vault.overviewHistory`.
        public let history: [AuditEvent]
        public let historyTruncated: Bool
        public let receipt: ErasureReceipt?
    }

    public static let overviewHistory = 500

    /// The DPO's view of a subject: statuses, consents and objections with their history, contact
    /// attempts, the access history and any erasure receipt. Audited as `subject.view`.
    public func subjectOverview(_ p: Principal, subject id: String, requestID: String?) async throws(VaultError) -> SubjectOverview {
        try await requireDPO(p, action: .subjectView, subject: id, requestID: requestID)
        do {
            let subject = try await existingSubject(id)
            let records = try await store.fields(subject: id)
            let ledger = try await store.consentHistory(subject: id)
            let views = try await decryptLedger(ledger, subject: id)
            let states = PurposeState.fold(ledger)
            let consents = policy.purposes.values.sorted { $0.name < $1.name }.map { purpose in
                let s = states[purpose.name] ?? PurposeState()
                return PurposeConsents(purpose: purpose.name, legalBasis: purpose.legalBasis, consent: s.consent, objection: s.objection,
                                       objectionBlocks: purpose.legalBasis.objectionBlocks, history: views.filter { $0.purpose == purpose.name })
            }
            let contacts = try await store.contactAttempts(subject: id, since: nil)
            let history = try await store.auditEvents(AuditQuery(subject: id, limit: Self.overviewHistory + 1, newestFirst: true))
            let receipt = try await store.erasureReceipt(subject: id)
            try await store.appendAudit([draft(p, action: .subjectView, requestID: requestID, subject: id, decision: .allow)])
            return SubjectOverview(
                subject: subject,
                fields: records.map { ($0.field, $0.type, $0.status, $0.generation, $0.storedAt, $0.storedBy, $0.retainedFor, $0.retainedUntil) },
                consents: consents, contactAttempts: contacts, history: Array(history.prefix(Self.overviewHistory)),
                historyTruncated: history.count > Self.overviewHistory, receipt: receipt)
        } catch {
            throw mapStore(error)
        }
    }

    /// An erasure receipt for the DPO to download again (`subject.export`, target `receipt`).
    public func erasureReceipt(_ p: Principal, subject id: String, requestID: String?) async throws(VaultError) -> ErasureReceipt {
        try await requireDPO(p, action: .subjectExport, subject: id, requestID: requestID)
        do {
            _ = try await existingSubject(id)
            guard let receipt = try await store.erasureReceipt(subject: id) else { throw VaultError.subjectNotFound }
            var a = draft(p, action: .subjectExport, requestID: requestID, subject: id, decision: .allow)
            a.target = "receipt"
            try await store.appendAudit([a])
            return receipt
        } catch {
            throw mapStore(error)
        }
    }

    /// Whether the key a console session signed in with is still live: a revoked key ends its
    /// sessions at their next request. A store that cannot answer counts as no (fail closed).
    public func credentialIsLive(_ p: Principal) async -> Bool {
        guard let all = try? await store.credentials() else { return false }
        return all.contains { $0.id == p.credentialID && $0.revokedAt == nil } && policy.services[p.name] != nil
    }

    /// Records a console sign-in or sign-out (allowed or refused); the caller is the key's service
    /// when it is known. `target` notes refused sign-ins left out of the log before this one.
    public func recordConsole(_ action: AuditAction, principal: Principal?, allowed: Bool, code: ErrorCode? = nil, target: String? = nil,
                              requestID: String?) async throws(VaultError) {
        do {
            var a = draft(principal, action: action, requestID: requestID, decision: allowed ? .allow : .deny, code: code?.rawValue)
            a.target = target
            if principal == nil {
                // A key the vault does not know: no name to record.
                a.service = "console"
                a.role = "none"
            }
            try await store.appendAudit([a])
        } catch {
            throw mapStore(error)
        }
    }
}
