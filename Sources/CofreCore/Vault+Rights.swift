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
    /// Contact attempts (CONTRACT §8), oldest first.
    public let contactAttempts: [ContactAttempt]
    /// The audit log's head when the export began: the access history stops there.
    public let historyThrough: Int64
}

extension Vault {
    static let exportPage = 1000

    func requireDPO(_ p: Principal, action: AuditAction, subject: String? = nil, requestID: String?, ref: String? = nil) async throws(VaultError) {
        guard p.role == .dpo else {
            throw await refuse(VaultError(.forbidden, .forbidden, "only the DPO may do this"),
                               audit: draft(p, action: action, requestID: requestID, subject: subject, decision: .deny,
                                            code: ErrorCode.forbidden.rawValue, ref: ref))
        }
    }

    func existingSubject(_ id: String) async throws -> SubjectRecord {
        guard Identifiers.isSubject(id), let s = try await store.subject(id: id) else { throw VaultError.subjectNotFound }
        return s
    }

    /// `GET /v1/subjects/{subject}/export`: decrypts every readable field. The export is audited
    /// (durably) before anything is returned. A field the vault holds as active or blocked whose key is
    /// missing (after a second, fresh read) is an integrity failure, never reported as erased.
    public func export(_ p: Principal, subject id: String, requestID: String?) async throws(VaultError) -> SubjectExport {
        try await requireDPO(p, action: .subjectExport, subject: id, requestID: requestID)
        do {
            var fields: [SubjectExport.Field]?
            var subject: SubjectRecord?
            var records: [FieldRecord] = []
            for attempt in 1...2 where fields == nil {
                subject = try await existingSubject(id)
                records = try await store.fields(subject: id)
                let keys = try await dataKeys.load(records.filter(\.needsKey).map(\.keyID))
                if records.contains(where: { $0.needsKey && keys[$0.keyID] == nil }) {
                    // A correction or erasure may have superseded the version just read: read again once.
                    if attempt == 1 { continue }
                    throw integrityFailure(subject: id, "a field's data key is missing")
                }
                fields = try records.map { r in
                    var value: String?
                    if r.needsKey, let key = keys[r.keyID] {
                        value = try Envelope.openText(r.ciphertext, key: key, context: Self.valueContext(subject: id, field: r.field))
                    }
                    return .init(field: r.field, type: r.type, value: value, status: r.status, version: r.generation, storedAt: r.storedAt,
                                 storedBy: r.storedBy, retainedFor: r.retainedFor, retainedUntil: r.retainedUntil)
                }
            }
            guard let fields, let subject else { throw integrityFailure(subject: id, "a field's data key is missing") }
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
            let attempts = try await store.contactAttempts(subject: id, since: nil)
            let head = try await store.lastAuditEvent()?.seq ?? 0
            try await store.appendAudit([draft(p, action: .subjectExport, requestID: requestID, subject: id,
                                               fields: fields.filter { $0.value != nil }.map(\.field), decision: .allow)])
            return SubjectExport(generatedAt: now, subject: subject, fields: fields, consents: consents, purposes: purposes,
                                 erasure: receipt, contactAttempts: attempts, historyThrough: head)
        } catch {
            if error is CryptoError {
                throw integrityFailure(subject: id, "a ciphertext failed its integrity check")
            }
            throw mapStore(error)
        }
    }

    /// Logs and counts a value the vault should be able to read but cannot; the caller answers 503.
    func integrityFailure(subject: String, _ what: String) -> VaultError {
        logger.error("integrity failure: \(what); nothing was revealed", metadata: ["subject": "\(subject)"])
        VaultMetrics.integrityFailure(what.contains("key") ? "missing_key" : "bad_ciphertext")
        return .integrityFailure
    }

    /// `?format=simple` (Art. 19 I): confirmation of processing and the field names, no values.
    public func exportSimple(_ p: Principal, subject id: String, requestID: String?) async throws(VaultError) -> (subject: SubjectRecord, fields: [String]) {
        try await requireDPO(p, action: .subjectExport, subject: id, requestID: requestID)
        do {
            let subject = try await existingSubject(id)
            let names = try await store.fields(subject: id).filter { $0.status != .erased }.map(\.field)
            var a = draft(p, action: .subjectExport, requestID: requestID, subject: id, decision: .allow)
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
    ///
    /// First the subject is marked `erasing`, after which every write to it answers 409 `subject_erased`;
    /// then the plan is computed from a fresh read and applied in one transaction that compares every
    /// field's generation (and the set of fields) with what was read. The erased versions' keys are queued
    /// in that transaction; after it, every key of the subject that no retained field needs (all
    /// generations, and any a failed write left behind) is destroyed, and the sweeper retries what fails.
    public func erase(_ p: Principal, subject id: String, reason: String, ticket: String, requestID: String?) async throws(VaultError) -> ErasureReceipt {
        try await requireDPO(p, action: .subjectErase, subject: id, requestID: requestID)
        guard let reason = try Self.checkedText(reason, key: "reason", max: 1000) else { throw VaultError.badRequest("'reason' is required") }
        guard let ticket = try Self.checkedText(ticket, key: "ticket", max: 200) else { throw VaultError.badRequest("'ticket' is required") }
        guard Identifiers.isSubject(id) else { throw VaultError.subjectNotFound }
        do {
            for _ in 1...Self.maxWriteAttempts {
                let status = try await store.snapshot(tokenHashes: [], subjects: [id]).subjects[id]
                guard let status else { throw VaultError.subjectNotFound }
                if status == .erased, let earlier = try await store.erasureReceipt(subject: id) {
                    var a = draft(p, action: .subjectErase, requestID: requestID, subject: id, decision: .allow, code: "already_erased")
                    a.target = earlier.ticket == ticket ? nil : "ticket_differs"
                    try await store.appendAudit([a])
                    await shredErased(subject: id)
                    return earlier
                }
                if status == .active {
                    do {
                        _ = try await store.commit(WriteBatch([.expectSubject(id, in: [.active]), .setSubjectStatus(id, .erasing)]))
                    } catch let e as StoreError where e.code == .subjectGone {
                        continue
                    }
                }
                let at = now
                let records = try await store.fields(subject: id)
                var outcomes: [ErasureReceipt.Outcome] = []
                var ops: [WriteOp] = [
                    .expectSubject(id, in: [.erasing]),
                    .expectFieldSet(subject: id, Dictionary(uniqueKeysWithValues: records.map { ($0.field, $0.generation) })),
                ]
                var erased: [String] = [], shred: [DataKeyID] = [], retained = 0
                for r in records {
                    // The longest retention among purposes that use this field keeps it.
                    let keeper = policy.purposes.values
                        .filter { $0.retentionDays != nil && $0.fields[r.field] != nil }
                        .max { ($0.retentionDays!, $1.name) < ($1.retentionDays!, $0.name) }
                    if let keeper, r.needsKey {
                        let until = at.addingTimeInterval(Double(keeper.retentionDays!) * 86400)
                        ops.append(.setFieldState(subject: id, field: r.field, status: .blocked, retainedFor: keeper.name, retainedUntil: until))
                        retained += 1
                        outcomes.append(.init(field: r.field, outcome: .retained, purpose: keeper.name,
                                              legalBasis: keeper.legalBasis.rawValue, until: until))
                    } else {
                        ops += [.setFieldState(subject: id, field: r.field, status: .erased, retainedFor: nil, retainedUntil: nil),
                                .deleteIndex(subject: id, field: r.field)]
                        if r.needsKey { shred.append(r.keyID) }
                        erased.append(r.field)
                        outcomes.append(.init(field: r.field, outcome: .erased, purpose: nil, legalBasis: nil, until: nil))
                    }
                }
                shred.append(DataKeyID(subject: id, group: Self.consentKeyGroup, generation: 1))
                let receipt = ErasureReceipt(subject: id, erasedAt: at, requestedBy: p.name, reason: reason, ticket: ticket, fields: outcomes)
                ops += [.setSubjectStatus(id, .erased), .releaseExternalRef(id), .clearEvidence(subject: id),
                        .insertErasureReceipt(subject: id, at: at, json: String(decoding: try ErasureReceipt.encoder.encode(receipt), as: UTF8.self)),
                        .queueKeyShred(shred),
                        // Every recipient erases or blocks its copies too (Art. 18 §6): all the subject's fields.
                        try notification(.subjectErased, subject: id, fields: records.map(\.field), purpose: nil, at: at)]
                do {
                    _ = try await store.commit(WriteBatch(ops, audit: [draft(p, action: .subjectErase, requestID: requestID, subject: id,
                                                                            fields: erased, decision: .allow)]))
                } catch let e as StoreError where e.code == .conflict || e.code == .subjectGone {
                    continue  // another erasure finished first, or the fields moved: read again
                }
                await shredErased(subject: id)
                logger.info("subject erased", metadata: ["subject": "\(id)", "erased": "\(erased.count)", "retained": "\(retained)"])
                return receipt
            }
            throw VaultError.concurrentUpdate
        } catch {
            throw mapStore(error)
        }
    }

    /// After an erasure committed: destroys every key of the subject in the key store but those that
    /// retained (blocked) fields need, then empties the subject's shred queue. Failures are left to the sweeper.
    func shredErased(subject: String) async {
        do {
            let keep = Set(try await store.fields(subject: subject).filter(\.needsKey).map(\.keyID))
            let doomed = try await dataKeys.store.ids(subject: subject).filter { !keep.contains($0) }
            try await dataKeys.destroy(doomed)
            let queued = try await store.queuedKeyShreds(limit: 1_000_000).filter { $0.subject == subject }
            if !queued.isEmpty { _ = try await store.commit(WriteBatch([.dequeueKeyShred(queued)])) }
        } catch {
            VaultMetrics.keyShredDeferred(1)
            logger.warning("an erased subject's keys are left queued for the key sweeper",
                           metadata: ["subject": "\(subject)", "error.type": "\(type(of: error))"])
        }
    }

    /// Shreds every blocked field whose retention has ended, one transaction per subject. Run by the
    /// periodic sweeper; returns how many fields were shredded.
    @discardableResult
    public func sweepRetention() async throws -> Int {
        let at = now
        let due = try await store.expiredRetentions(now: at, limit: 10_000)
        guard !due.isEmpty else { return 0 }
        var shredded = 0
        for (subject, fields) in Dictionary(grouping: due, by: \.subject).sorted(by: { $0.key < $1.key }) {
            var ops: [WriteOp] = []
            for f in fields {
                ops += [.expectField(subject: subject, field: f.field, generation: f.generation, statuses: [.blocked]),
                        .setFieldState(subject: subject, field: f.field, status: .erased, retainedFor: nil, retainedUntil: nil),
                        .deleteIndex(subject: subject, field: f.field)]
            }
            ops.append(.queueKeyShred(fields.map(\.keyID)))
            var a = draft(nil, action: .retentionShred, requestID: nil, subject: subject, fields: fields.map(\.field).sorted(), decision: .allow)
            a.service = "retention-sweeper"
            a.role = "system"
            do {
                _ = try await store.commit(WriteBatch(ops, audit: [a]))
            } catch let e as StoreError where e.code == .conflict {
                continue  // another instance shredded it first
            }
            await shredSuperseded(fields.map(\.keyID))
            shredded += fields.count
        }
        logger.info("retention sweep shredded expired fields", metadata: ["fields": "\(shredded)"])
        return shredded
    }
}
