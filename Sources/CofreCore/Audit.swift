public import CofreCrypto
public import Foundation

/// One decision or action to record, before the store gives it a sequence number and chains it.
///
/// It holds identifiers, names and codes only: never a personal value, a key or a credential.
/// Tokens and looked-up values appear only as `ref`, a keyed hash.
public struct AuditDraft: Sendable, Equatable {
    public enum Decision: String, Sendable, Codable { case allow, deny }

    public var time: Date
    public var service: String
    public var role: String
    public var action: String
    public var subject: String?
    public var fields: [String]
    public var purpose: String?
    public var legalBasis: String?
    public var decision: Decision
    public var code: String?
    public var requestID: String?
    public var ref: String?
    /// The object of an operator action (e.g. the service whose key was issued); not personal data.
    public var target: String?

    public init(time: Date, service: String, role: String, action: String, subject: String? = nil, fields: [String] = [],
                purpose: String? = nil, legalBasis: String? = nil, decision: Decision, code: String? = nil,
                requestID: String? = nil, ref: String? = nil, target: String? = nil) {
        self.time = time
        self.service = service
        self.role = role
        self.action = action
        self.subject = subject
        self.fields = fields
        self.purpose = purpose
        self.legalBasis = legalBasis
        self.decision = decision
        self.code = code
        self.requestID = requestID
        self.ref = ref
        self.target = target
    }
}

/// A chained audit event as stored.
public struct AuditEvent: Sendable, Equatable {
    public let seq: Int64
    public let draft: AuditDraft
    public let prevHash: String
    public let hash: String

    public init(seq: Int64, draft: AuditDraft, prevHash: String, hash: String) {
        self.seq = seq
        self.draft = draft
        self.prevHash = prevHash
        self.hash = hash
    }
}

/// Computes the keyed hash chain: `hash_n = HMAC-SHA-256(audit key, hash_{n-1} ‖ canonical(event_n))`.
public struct AuditChain: Sendable {
    let key: SymmetricKey
    public static let genesis = String(repeating: "0", count: 64)

    public init(key: SymmetricKey) { self.key = key }

    /// Milliseconds since the Unix epoch: the time as chained and stored, so no rounding can break the chain.
    public static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    /// The canonical encoding (documented in SECURITY.md): length-prefixed UTF-8 parts, absent values as "".
    public static func canonical(seq: Int64, _ d: AuditDraft) -> [UInt8] {
        AssociatedData([
            "cofre.audit.v1", String(seq), String(millis(d.time)), d.service, d.role, d.action, d.subject ?? "",
            d.fields.joined(separator: ","), d.purpose ?? "", d.legalBasis ?? "", d.decision.rawValue, d.code ?? "",
            d.requestID ?? "", d.ref ?? "", d.target ?? "",
        ]).bytes
    }

    public func seal(_ draft: AuditDraft, seq: Int64, prevHash: String) -> AuditEvent {
        var normalized = draft
        normalized.time = Date(timeIntervalSince1970: Double(Self.millis(draft.time)) / 1000)
        let mac = Digest.hmacSHA256(key: key, Array(prevHash.utf8) + Self.canonical(seq: seq, normalized))
        return AuditEvent(seq: seq, draft: normalized, prevHash: prevHash, hash: Identifiers.hex(mac))
    }

    /// A keyed reference to a token or a looked-up value, so auditors can find events without seeing it.
    public func ref(_ kind: String, _ secret: String) -> String {
        Identifiers.hex(Digest.hmacSHA256(key: key, Array("ref:\(kind):".utf8) + Array(secret.utf8)))
    }

    /// Where the chain first breaks, or nil when every event links and verifies.
    public func firstBreak(_ events: [AuditEvent], expectedFirstSeq: Int64 = 1, previous: String = genesis) -> (seq: Int64, reason: String)? {
        var prev = previous
        var expected = expectedFirstSeq
        for e in events {
            if e.seq != expected { return (expected, "sequence \(expected) is missing (found \(e.seq))") }
            if e.prevHash != prev { return (e.seq, "previous-hash link does not match") }
            let recomputed = seal(e.draft, seq: e.seq, prevHash: prev)
            guard Digest.constantTimeEquals(Array(recomputed.hash.utf8), Array(e.hash.utf8)) else {
                return (e.seq, "event content does not match its hash")
            }
            prev = e.hash
            expected += 1
        }
        return nil
    }
}
