import CofreCrypto
public import Foundation
import Logging

/// Everything about one subject, for the DPO (LGPD Art. 18 II and V, Art. 19). The access history is
/// not held here: it is paged from the audit log by `accessHistory`, so any length fits in memory.
public struct SubjectExport: Sendable {
    public struct Field: Sendable, Equatable {
        public let field: String
        public let type: FieldType
        public let value: String?
        public let status: FieldRecord.Status
        public let version: Int
        public let storedAt: Date
        public let storedBy: String
        public let retainedFor: String?
        public let retainedUntil: Date?
    }

    public struct PurposeInfo: Sendable, Equatable {
        public let purpose: String
        public let legalBasis: LegalBasis
        public let fields: [String: RevealLevel]
        public let retentionDays: Int?
        public let consent: ConsentState
        public let objection: Bool
    }

    public let generatedAt: Date
    public let subject: SubjectRecord
    public let fields: [Field]
    public let consents: [Vault.ConsentView]
    public let purposes: [PurposeInfo]
    public let erasure: ErasureReceipt?
    /// The audit log's head when the export began: the access history stops there.
    public let historyThrough: Int64
}

extension Vault {
    static let exportPage = 1000

    func requireDPO(_ p: Principal, action: String, subject: String, requestID: String?) async throws(VaultError) {
        guard p.role == .dpo else {
            throw await refuse(VaultError(.forbidden, .forbidden, "only the DPO may do this"),
                               audit: draft(p, action: action, requestID: requestID, subject: subject, decision: .deny, code: "forbidden"))
        }
    }

    func existingSubject(_ id: String) async throws -> SubjectRecord {
        guard Identifiers.isSubject(id), let s = try await store.subject(id: id) else { throw VaultError.subjectNotFound }
        return s
    }

    /// `GET /v1/subjects/{subject}/export`: decrypts every readable field. The export is audited
    /// (durably) before anything is returned.
    public func export(_ p: Principal, subject id: String, requestID: String?) async throws(VaultError) -> SubjectExport {
        try await requireDPO(p, action: "subject.export", subject: id, requestID: requestID)
        do {
            let subject = try await existingSubject(id)
            let records = try await store.fields(subject: id)
            let keys = try await dataKeys.load(records.filter { $0.status != .erased }.map(\.keyID))
            var fields: [SubjectExport.Field] = []
            for r in records {
                var value: String?
                if r.status != .erased, let key = keys[r.keyID] {
                    let plain = try Envelope.open(r.ciphertext, key: key, context: Self.valueContext(subject: id, field: r.field))
                    value = String(decoding: plain, as: UTF8.self)
                }
                fields.append(.init(field: r.field, type: r.type, value: value, status: value == nil ? .erased : r.status,
                                    version: r.generation, storedAt: r.storedAt, storedBy: r.storedBy, retainedFor: r.retainedFor,
                                    retainedUntil: r.retainedUntil))
            }
            let history = try await store.consentHistory(subject: id)
            let states = PurposeState.fold(history)
            let consents = try await decryptLedger(history, subject: id)
            let purposes = policy.purposes.values.sorted { $0.name < $1.name }
                .filter { purpose in records.contains { purpose.fields[$0.field] != nil } }
                .map { purpose in
                    SubjectExport.PurposeInfo(purpose: purpose.name, legalBasis: purpose.legalBasis, fields: purpose.fields,
                                              retentionDays: purpose.retentionDays, consent: states[purpose.name]?.consent ?? .none,
                                              objection: states[purpose.name]?.objection ?? false)
                }
            let receipt = try await store.erasureReceipt(subject: id)
            let head = try await store.lastAuditEvent()?.seq ?? 0
            try await store.appendAudit([draft(p, action: "subject.export", requestID: requestID, subject: id,
                                               fields: fields.filter { $0.value != nil }.map(\.field), decision: .allow)])
            return SubjectExport(generatedAt: now, subject: subject, fields: fields, consents: consents, purposes: purposes,
                                 erasure: receipt, historyThrough: head)
        } catch {
            if error is CryptoError {
                logger.error("export refused: a ciphertext failed its integrity check", metadata: ["subject": "\(id)"])
                throw VaultError(.unavailable, .init("integrity_failure"), "a stored value failed its integrity check; nothing was exported")
            }
            throw mapStore(error)
        }
    }

    /// `?format=simple` (Art. 19 I): confirmation of processing and the field names, no values.
    public func exportSimple(_ p: Principal, subject id: String, requestID: String?) async throws(VaultError) -> (subject: SubjectRecord, fields: [String]) {
        try await requireDPO(p, action: "subject.export", subject: id, requestID: requestID)
        do {
            let subject = try await existingSubject(id)
            let names = try await store.fields(subject: id).filter { $0.status != .erased }.map(\.field)
            var a = draft(p, action: "subject.export", requestID: requestID, subject: id, decision: .allow)
            a.target = "simple"
            try await store.appendAudit([a])
            return (subject, names)
        } catch {
            throw mapStore(error)
        }
    }

    /// Pages through the subject's events in the audit log, up to the export's pinned head.
    public func accessHistory(subject: String, through: Int64, _ page: ([AuditEvent]) async throws -> Void) async throws {
        var after: Int64 = 0
        while true {
            let events = try await store.auditEvents(AuditQuery(subject: subject, after: after, through: through, limit: Self.exportPage))
            if events.isEmpty { return }
            try await page(events)
            after = events.last!.seq
            if events.count < Self.exportPage { return }
        }
    }

    /// `POST /v1/subjects/{subject}/erase`: crypto-shreds every field no retention covers, blocks the
    /// rest for their retaining purpose until their date, and returns the receipt. Idempotent.
    public func erase(_ p: Principal, subject id: String, reason: String, ticket: String, requestID: String?) async throws(VaultError) -> ErasureReceipt {
        try await requireDPO(p, action: "subject.erase", subject: id, requestID: requestID)
        guard let reason = try Self.checkedText(reason, key: "reason", max: 1000) else { throw VaultError.badRequest("'reason' is required") }
        guard let ticket = try Self.checkedText(ticket, key: "ticket", max: 200) else { throw VaultError.badRequest("'ticket' is required") }
        do {
            _ = try await existingSubject(id)
            if let earlier = try await store.erasureReceipt(subject: id) {
                var a = draft(p, action: "subject.erase", requestID: requestID, subject: id, decision: .allow, code: "already_erased")
                a.target = earlier.ticket == ticket ? nil : "ticket_differs"
                try await store.appendAudit([a])
                return earlier
            }
            let at = now
            let records = try await store.fields(subject: id)
            var outcomes: [ErasureReceipt.Outcome] = []
            var erased: [FieldRecord] = []
            var retained: [RetainedField] = []
            for r in records {
                // The longest retention among purposes that use this field keeps it.
                let keeper = policy.purposes.values
                    .filter { $0.retentionDays != nil && $0.fields[r.field] != nil }
                    .max { ($0.retentionDays!, $1.name) < ($1.retentionDays!, $0.name) }
                if let keeper, r.status != .erased {
                    let until = at.addingTimeInterval(Double(keeper.retentionDays!) * 86400)
                    retained.append(RetainedField(field: r.field, purpose: keeper.name, until: until))
                    outcomes.append(.init(field: r.field, outcome: "retained", purpose: keeper.name,
                                          legalBasis: keeper.legalBasis.rawValue, until: until))
                } else {
                    erased.append(r)
                    outcomes.append(.init(field: r.field, outcome: "erased", purpose: nil, legalBasis: nil, until: nil))
                }
            }
            let receipt = ErasureReceipt(subject: id, erasedAt: at, requestedBy: p.name, reason: reason, ticket: ticket, fields: outcomes)
            // Keys first: once they are gone no copy of the values, backups included, can be read.
            // If the next step fails, a retry finds the same plan and completes it.
            try await dataKeys.store.destroy(erased.map(\.keyID) + [DataKeyID(subject: id, group: Self.consentKeyGroup, generation: 1)])
            try await store.erase(subject: id, erased: erased.map(\.field), retained: retained, receipt: receipt,
                                  audit: draft(p, action: "subject.erase", requestID: requestID, subject: id,
                                               fields: erased.map(\.field), decision: .allow, ref: nil))
            logger.info("subject erased", metadata: ["subject": "\(id)", "erased": "\(erased.count)", "retained": "\(retained.count)"])
            return receipt
        } catch {
            throw mapStore(error)
        }
    }

    /// Shreds every blocked field whose retention has ended. Run by the retention sweeper; returns how many.
    @discardableResult
    public func sweepRetention() async throws -> Int {
        let at = now
        let due = try await store.expiredRetentions(now: at)
        guard !due.isEmpty else { return 0 }
        try await dataKeys.store.destroy(due.map(\.keyID))
        let bySubject = Dictionary(grouping: due, by: \.subject)
        let audit = bySubject.keys.sorted().map { subject in
            var a = draft(nil, action: "retention.shred", requestID: nil, subject: subject,
                          fields: bySubject[subject]!.map(\.field).sorted(), decision: .allow)
            a.service = "retention-sweeper"
            a.role = "system"
            return a
        }
        try await store.shredExpired(due, audit: audit)
        logger.info("retention sweep shredded expired fields", metadata: ["fields": "\(due.count)", "subjects": "\(bySubject.count)"])
        return due.count
    }
}
