import CofreCrypto
public import Foundation
import Logging

extension Vault {
    /// What a caller sends to record consent or an objection.
    public struct ConsentInput: Sendable {
        public var status: String?
        public var channel: String?
        public var evidence: String?
        public var noticeVersion: String?
        public init(status: String? = nil, channel: String? = nil, evidence: String? = nil, noticeVersion: String? = nil) {
            self.status = status
            self.channel = channel
            self.evidence = evidence
            self.noticeVersion = noticeVersion
        }
    }

    /// A ledger entry as shown to callers, evidence decrypted.
    public struct ConsentView: Sendable, Equatable {
        public let seq: Int64
        public let subject: String
        public let purpose: String
        public let kind: ConsentRecord.Kind
        public let status: ConsentRecord.Status
        public let channel: String?
        public let evidence: String?
        public let noticeVersion: String?
        public let recordedBy: String
        public let recordedRole: String
        public let recordedAt: Date
    }

    /// The state and history of one purpose for one subject.
    public struct PurposeConsents: Sendable, Equatable {
        public let purpose: String
        public let legalBasis: LegalBasis
        public let consent: ConsentState
        public let objection: Bool
        /// Whether an objection stops this purpose (it cannot stop legal obligation or exercise of rights).
        public let objectionBlocks: Bool
        public let history: [ConsentView]
    }

    static let consentKeyGroup = "consent"

    func evidenceContext(subject: String, id: String) -> AssociatedData {
        AssociatedData(["cofre.evidence.v1", subject, id])
    }

    /// A caller's free text (evidence, reason, ticket, channel, notice version): trimmed, at most `max`
    /// characters counted as Unicode scalars and at most 4×`max` bytes of UTF-8, no control characters.
    static func checkedText(_ value: String?, key: String, max: Int) throws(VaultError) -> String? {
        guard let value else { return nil }
        let t = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { return nil }
        guard t.unicodeScalars.count <= max, t.utf8.count <= 4 * max,
              !t.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw VaultError.badRequest("'\(key)' must be at most \(max) characters (\(4 * max) bytes of UTF-8) without control characters")
        }
        return t
    }

    /// `PUT /v1/subjects/{subject}/consents/{purpose}`: appends a grant or a revocation (LGPD Art. 8).
    public func recordConsent(_ p: Principal, subject: String, purpose name: String, _ input: ConsentInput, requestID: String?) async throws(VaultError) -> ConsentView {
        let action: AuditAction = input.status == "revoked" ? .consentRevoke : .consentGrant
        guard p.role == .dpo || p.role == .service else {
            throw await refuse(VaultError(.forbidden, .forbidden, "only the DPO or a service that holds the purpose may record its consent"),
                               audit: draft(p, action: action, requestID: requestID, subject: subject, purpose: policy.purposes[name],
                                            purposeName: name, decision: .deny, code: ErrorCode.forbidden.rawValue))
        }
        let purpose = try await purpose(name, for: p, mustHold: true, action: action, subject: subject, requestID: requestID)
        if p.role == .service { try await enforceQuota(p, .writes, count: 1, action: action, subject: subject, requestID: requestID) }
        guard purpose.legalBasis == .consent else {
            throw VaultError(.unprocessable, .consentNotApplicable,
                             "this purpose rests on \(purpose.legalBasis.rawValue), not consent; record an objection instead")
        }
        let status: ConsentRecord.Status
        switch input.status {
        case "granted": status = .granted
        case "revoked": status = .revoked
        default: throw VaultError.badRequest("'status' must be \"granted\" or \"revoked\"")
        }
        let evidence = try Self.checkedText(input.evidence, key: "evidence", max: 1024)
        let notice = try Self.checkedText(input.noticeVersion, key: "notice_version", max: 64)
        let channel = try Self.checkedText(input.channel, key: "channel", max: 64)
        // Consent must be provable (Art. 8 §2); revoking must stay free and easy (§5), so it needs neither.
        if status == .granted {
            guard evidence != nil else { throw VaultError(.unprocessable, .evidenceRequired, "a granted consent needs its evidence") }
            guard notice != nil else {
                throw VaultError(.unprocessable, .noticeVersionRequired, "a granted consent needs the privacy notice version shown")
            }
        }
        return try await appendLedger(p, subject: subject, purpose: purpose, kind: .consent, status: status, channel: channel,
                                      evidence: evidence, notice: notice, action: action, requestID: requestID)
    }

    /// `PUT` and `DELETE /v1/subjects/{subject}/objections/{purpose}`: the subject objects (Art. 18 §2), or withdraws it.
    public func recordObjection(_ p: Principal, subject: String, purpose name: String, objected: Bool, _ input: ConsentInput,
                                requestID: String?) async throws(VaultError) -> ConsentView {
        let action: AuditAction = objected ? .objectionRecord : .objectionWithdraw
        // Objecting must be easy: any service that hears it, or the DPO, may record it. Withdrawing it
        // takes the DPO or a service that holds the purpose, with evidence.
        guard p.role == .dpo || p.role == .service else {
            throw await refuse(VaultError(.forbidden, .forbidden, objected ? "only the DPO or a service may record an objection"
                                          : "only the DPO or a service that holds the purpose may withdraw an objection"),
                               audit: draft(p, action: action, requestID: requestID, subject: subject, purposeName: name,
                                            decision: .deny, code: ErrorCode.forbidden.rawValue))
        }
        let purpose = try await purpose(name, for: p, mustHold: !objected, action: action, subject: subject, requestID: requestID)
        if p.role == .service { try await enforceQuota(p, .writes, count: 1, action: action, subject: subject, requestID: requestID) }
        guard purpose.legalBasis != .consent else {
            throw VaultError(.unprocessable, .objectionNotApplicable,
                             "this purpose rests on consent; revoke the consent instead")
        }
        let evidence = try Self.checkedText(input.evidence, key: "evidence", max: 1024)
        let channel = try Self.checkedText(input.channel, key: "channel", max: 64)
        if !objected, evidence == nil {
            throw VaultError(.unprocessable, .evidenceRequired, "withdrawing an objection needs its evidence (what the subject said, and where)")
        }
        return try await appendLedger(p, subject: subject, purpose: purpose, kind: .objection, status: objected ? .objected : .withdrawn,
                                      channel: channel, evidence: evidence, notice: nil, action: action, requestID: requestID)
    }

    func appendLedger(_ p: Principal, subject: String, purpose: Purpose, kind: ConsentRecord.Kind, status: ConsentRecord.Status,
                      channel: String?, evidence: String?, notice: String?, action: AuditAction, requestID: String?) async throws(VaultError) -> ConsentView {
        guard Identifiers.isSubject(subject) else { throw VaultError.subjectNotFound }
        let at = now
        do {
            guard let s = try await store.subject(id: subject) else { throw VaultError.subjectNotFound }
            guard s.status == .active else { throw VaultError(.conflict, .subjectErased, "the subject was erased") }
            let id = "cev_" + Identifiers.base32(try Random.bytes(10))
            var sealed: [UInt8]?
            if let evidence {
                let keyID = DataKeyID(subject: subject, group: Self.consentKeyGroup, generation: 1)
                let key = try await dataKeys.getOrCreate(keyID, now: at)
                // This key is shared by all of the subject's evidence: count its uses against the GCM limit.
                guard try await dataKeys.store.reserveUses(keyID, count: 1, limit: DataKeys.maxUsesPerSharedKey) else {
                    throw VaultError(.unavailable, .keyExhausted, "the subject's evidence key reached its usage limit")
                }
                sealed = try Envelope.sealText(evidence, key: key, keyVersion: 1, context: evidenceContext(subject: subject, id: id))
            }
            let record = ConsentRecord(id: id, subject: subject, purpose: purpose.name, kind: kind, status: status, channel: channel,
                                       evidence: sealed, noticeVersion: notice, recordedBy: p.name, recordedRole: p.role.rawValue,
                                       recordedAt: at)
            var audit = draft(p, action: action, requestID: requestID, subject: subject, purpose: purpose, decision: .allow)
            audit.target = id
            let state: WriteOp = switch status {
            case .granted: .setConsentState(subject: subject, purpose: purpose.name, .granted)
            case .revoked: .setConsentState(subject: subject, purpose: purpose.name, .revoked)
            case .objected: .setObjectionState(subject: subject, purpose: purpose.name, true)
            case .withdrawn: .setObjectionState(subject: subject, purpose: purpose.name, false)
            }
            // The folded state is kept in the same transaction, so reads never replay the ledger.
            var ops: [WriteOp] = [.expectSubject(subject, in: [.active]), .insertConsent(record), state]
            // Processing for the purpose must stop at the recipients too (Art. 18 §6).
            switch status {
            case .revoked:
                ops.append(try notification(.consentRevoked, subject: subject, fields: Array(purpose.fields.keys), purpose: purpose.name, at: at))
            case .objected:
                ops.append(try notification(.objectionRecorded, subject: subject, fields: Array(purpose.fields.keys), purpose: purpose.name, at: at))
            case .granted, .withdrawn:
                break
            }
            let result = try await store.commit(WriteBatch(ops, audit: [audit]))
            let seq = result.consentSeqs.first ?? 0
            VaultMetrics.consent(purpose: purpose.name, policy: policy, status: status)
            return ConsentView(seq: seq, subject: subject, purpose: purpose.name, kind: kind, status: status, channel: channel,
                               evidence: evidence, noticeVersion: notice, recordedBy: p.name, recordedRole: p.role.rawValue, recordedAt: at)
        } catch {
            throw mapStore(error)
        }
    }

    /// `GET /v1/subjects/{subject}/consents`: every purpose's state and full history. A service sees
    /// only the purposes it holds; the DPO sees all.
    public func consents(_ p: Principal, subject: String, requestID: String?) async throws(VaultError) -> [PurposeConsents] {
        guard p.role == .dpo || p.role == .service else {
            throw await refuse(VaultError(.forbidden, .forbidden, "only the DPO or a service may read consents"),
                               audit: draft(p, action: .consentRead, requestID: requestID, subject: subject, decision: .deny, code: ErrorCode.forbidden.rawValue))
        }
        guard Identifiers.isSubject(subject) else { throw VaultError.subjectNotFound }
        do {
            guard try await store.subject(id: subject) != nil else { throw VaultError.subjectNotFound }
            let visible = policy.purposes.values.filter { p.role == .dpo || p.policy.purposes.contains($0.name) }.sorted { $0.name < $1.name }
            let history = try await store.consentHistory(subject: subject).filter { r in visible.contains { $0.name == r.purpose } }
            let views = try await decryptLedger(history, subject: subject)
            let states = PurposeState.fold(history)
            try await store.appendAudit([draft(p, action: .consentRead, requestID: requestID, subject: subject, decision: .allow)])
            return visible.map { purpose in
                let s = states[purpose.name] ?? PurposeState()
                return PurposeConsents(purpose: purpose.name, legalBasis: purpose.legalBasis, consent: s.consent, objection: s.objection,
                                       objectionBlocks: purpose.legalBasis.objectionBlocks,
                                       history: views.filter { $0.purpose == purpose.name })
            }
        } catch {
            throw mapStore(error)
        }
    }

    func decryptLedger(_ records: [ConsentRecord], subject: String) async throws -> [ConsentView] {
        let keyID = DataKeyID(subject: subject, group: Self.consentKeyGroup, generation: 1)
        let key = records.contains { $0.evidence != nil } ? try await dataKeys.load([keyID])[keyID] : nil
        return records.map { r in
            var evidence: String?
            if let sealed = r.evidence, let key,
               let text = try? Envelope.openText(sealed, key: key, context: evidenceContext(subject: subject, id: r.id)) {
                evidence = text
            }
            return ConsentView(seq: r.seq, subject: r.subject, purpose: r.purpose, kind: r.kind, status: r.status, channel: r.channel,
                               evidence: evidence, noticeVersion: r.noticeVersion, recordedBy: r.recordedBy,
                               recordedRole: r.recordedRole, recordedAt: r.recordedAt)
        }
    }
}
