public import Foundation

/// One entry of the append-only consent and objection ledger (LGPD Art. 8, Art. 18 §2).
public struct ConsentRecord: Sendable, Equatable {
    /// Consent applies to purposes on the `consent` basis; objection to all others.
    public typealias Kind = ConsentKind
    public typealias Status = ConsentStatus

    public let id: String
    public let subject: String
    public let purpose: String
    public let kind: Kind
    public let status: Status
    public let channel: String?
    /// The evidence (a message id, a recording reference), encrypted under the subject's consent key.
    public let evidence: [UInt8]?
    public let noticeVersion: String?
    public let recordedBy: String
    public let recordedRole: String
    public let recordedAt: Date
    /// Assigned by the store: the ledger's order.
    public var seq: Int64

    public init(id: String, subject: String, purpose: String, kind: Kind, status: Status, channel: String?, evidence: [UInt8]?,
                noticeVersion: String?, recordedBy: String, recordedRole: String, recordedAt: Date, seq: Int64 = 0) {
        self.id = id
        self.subject = subject
        self.purpose = purpose
        self.kind = kind
        self.status = status
        self.channel = channel
        self.evidence = evidence
        self.noticeVersion = noticeVersion
        self.recordedBy = recordedBy
        self.recordedRole = recordedRole
        self.recordedAt = recordedAt
        self.seq = seq
    }
}

/// The current consent and objection state of one subject for one purpose, folded from the ledger.
public struct PurposeState: Sendable, Equatable {
    public var consent: ConsentState
    public var objection: Bool

    public init(consent: ConsentState = .none, objection: Bool = false) {
        self.consent = consent
        self.objection = objection
    }

    /// Folds ledger entries (in order) into the state the latest of each kind leaves.
    public static func fold(_ records: [ConsentRecord]) -> [String: PurposeState] {
        var out: [String: PurposeState] = [:]
        for r in records.sorted(by: { $0.seq < $1.seq }) {
            var s = out[r.purpose] ?? PurposeState()
            switch r.status {
            case .granted: s.consent = .granted
            case .revoked: s.consent = .revoked
            case .objected: s.objection = true
            case .withdrawn: s.objection = false
            }
            out[r.purpose] = s
        }
        return out
    }
}
