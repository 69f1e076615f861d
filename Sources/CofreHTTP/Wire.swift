import CofreAPI
import CofreCore
import Foundation

// From the domain's values to the wire types of CofreAPI: the only place they meet.

extension ConsentEvent {
    init(_ v: Vault.ConsentView) {
        self.init(seq: v.seq, subject: v.subject, purpose: v.purpose, kind: v.kind, status: v.status, channel: v.channel,
                  evidence: v.evidence, noticeVersion: v.noticeVersion, recordedBy: v.recordedBy, recordedRole: v.recordedRole,
                  recordedAt: v.recordedAt)
    }
}

extension AuditEventResponse {
    init(_ e: AuditEvent) {
        self.init(seq: e.seq, time: e.draft.time, service: e.draft.service, role: e.draft.role, action: e.draft.action,
                  subject: e.draft.subject, fields: e.draft.fields, purpose: e.draft.purpose, legalBasis: e.draft.legalBasis,
                  decision: e.draft.decision, code: e.draft.code, requestID: e.draft.requestID, ref: e.draft.ref,
                  target: e.draft.target, prevHash: e.prevHash, hash: e.hash)
    }
}

extension ExportResponse.Access {
    init(_ e: AuditEvent) {
        self.init(seq: e.seq, time: e.draft.time, service: e.draft.service, role: e.draft.role,
                  action: AuditAction(rawValue: e.draft.action), fields: e.draft.fields, purpose: e.draft.purpose,
                  legalBasis: e.draft.legalBasis, decision: e.draft.decision, code: e.draft.code)
    }
}

extension ExportResponse {
    static let note = "Exported under LGPD Art. 18 II and V and Art. 19. Values are shown in full."

    /// The export less its access history, which the server streams after it.
    init(head e: SubjectExport) {
        self.init(
            generatedAt: e.generatedAt, note: Self.note,
            subject: .init(id: e.subject.id, status: e.subject.status, createdAt: e.subject.createdAt, createdBy: e.subject.createdBy),
            fields: e.fields.map {
                .init(field: $0.field, type: $0.type, value: $0.value, status: $0.status, version: $0.version, corrected: $0.version > 1,
                      storedAt: $0.storedAt, storedBy: $0.storedBy, retainedFor: $0.retainedFor, retainedUntil: $0.retainedUntil)
            },
            consents: e.consents.map(ConsentEvent.init),
            purposes: e.purposes.map {
                .init(purpose: $0.purpose, legalBasis: $0.legalBasis, fields: $0.fields, retentionDays: $0.retentionDays,
                      consent: $0.consent, objection: $0.objection)
            },
            erasure: e.erasure,
            contactAttempts: e.contactAttempts.map { .init(at: $0.at, purpose: $0.purpose, channel: $0.channel, service: $0.service) },
            accessHistory: [])
    }
}
