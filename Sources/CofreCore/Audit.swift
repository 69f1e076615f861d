public import CofreCrypto
public import Foundation

/// One decision or action to record, before the store gives it a sequence number and chains it.
///
/// It holds identifiers, names and codes only: never a personal value, a key or a credential.
/// Tokens and looked-up values appear only as `ref`, a keyed hash.
public struct AuditDraft: Sendable, Equatable {
    public typealias Decision = AuditDecision

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
    /// The columns whose stored form the typed draft cannot carry exactly (a decision that is not
    /// `allow` or `deny`, a field list with empty entries, the stored millisecond): `verify` MACs these
    /// bytes as stored, so an edit of the stored text is never normalised away before the check.
    public struct Stored: Sendable, Equatable {
        public let timeMillis: Int64
        public let fields: String
        public let decision: String
        public init(timeMillis: Int64, fields: String, decision: String) {
            self.timeMillis = timeMillis
            self.fields = fields
            self.decision = decision
        }
    }

    public let seq: Int64
    public let draft: AuditDraft
    public let prevHash: String
    public let hash: String
    public let stored: Stored?

    public init(seq: Int64, draft: AuditDraft, prevHash: String, hash: String, stored: Stored? = nil) {
        self.seq = seq
        self.draft = draft
        self.prevHash = prevHash
        self.hash = hash
        self.stored = stored
    }
}

/// A stretch of the log that does not verify, from one sequence number to another (inclusive).
public struct AuditBreak: Sendable, Equatable {
    public var from: Int64
    public var to: Int64
    public let reason: String
    public init(from: Int64, to: Int64, reason: String) {
        self.from = from
        self.to = to
        self.reason = reason
    }
}

/// Computes the keyed hash chain: `hash_n = HMAC-SHA-256(audit key, hash_{n-1} ‖ canonical(event_n))`.
public struct AuditChain: Sendable {
    let key: SymmetricKey
    public static let genesis = String(repeating: "0", count: 64)

    public init(key: SymmetricKey) { self.key = key }

    /// Milliseconds since the Unix epoch: the time as chained and stored, so no rounding can break the chain.
    public static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    /// The canonical encoding (documented in SECURITY.md): length-prefixed UTF-8 parts, absent values as
    /// "". Version 2 writes the field list as its count followed by one part per field, so no field
    /// name can pass for several; version 1 (events written before 0.9) joined them with commas and is
    /// still accepted when verifying those events.
    public static func canonical(seq: Int64, _ d: AuditDraft) -> [UInt8] {
        canonical(seq: seq, d, timeMillis: millis(d.time), fields: d.fields, decision: d.decision.rawValue, version: 2)
    }

    static func canonical(seq: Int64, _ d: AuditDraft, timeMillis: Int64, fields: [String], decision: String, version: Int) -> [UInt8] {
        let list = version >= 2 ? [String(fields.count)] + fields : [fields.joined(separator: ",")]
        return AssociatedData(
            ["cofre.audit.v\(version)", String(seq), String(timeMillis), d.service, d.role, d.action, d.subject ?? ""] + list
                + [d.purpose ?? "", d.legalBasis ?? "", decision, d.code ?? "", d.requestID ?? "", d.ref ?? "", d.target ?? ""]
        ).bytes
    }

    /// Whether an event's stored hash is the MAC of its stored bytes after its stored previous hash.
    public func verifies(_ e: AuditEvent) -> Bool {
        let millis = e.stored?.timeMillis ?? AuditChain.millis(e.draft.time)
        let decision = e.stored?.decision ?? e.draft.decision.rawValue
        // The stored list, split exactly (an empty entry or a trailing comma is kept, and fails the MAC).
        let fields = e.stored.map { $0.fields.isEmpty ? [] : $0.fields.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            ?? e.draft.fields
        for version in [2, 1] {
            let bytes = AuditChain.canonical(seq: e.seq, e.draft, timeMillis: millis, fields: fields, decision: decision, version: version)
            let mac = Identifiers.hex(Digest.hmacSHA256(key: key, Array(e.prevHash.utf8) + bytes))
            if Digest.constantTimeEquals(Array(mac.utf8), Array(e.hash.utf8)) { return true }
        }
        return false
    }

    /// What may be stored of a draft: every text attribute without control characters (replaced by
    /// U+FFFD, so a NUL can never cut what was MAC'd) and at most `maxAttribute` Unicode scalars; at most
    /// `maxFields` field names. The chain MACs exactly this, and the store writes exactly this.
    public static let maxAttribute = 200
    public static let maxFields = 64

    static func storable(_ d: AuditDraft) -> AuditDraft {
        func clean(_ s: String, listItem: Bool = false) -> String {
            var out = String.UnicodeScalarView()
            for scalar in s.unicodeScalars.prefix(maxAttribute) {
                // A field name is stored in a comma-separated column: a comma in one would read back as two.
                out.append(scalar.properties.generalCategory == .control || (listItem && scalar == ",") ? "\u{FFFD}" : scalar)
            }
            return String(out)
        }
        var d = d
        d.service = clean(d.service)
        d.role = clean(d.role)
        d.action = clean(d.action)
        d.subject = d.subject.map { clean($0) }
        d.fields = d.fields.prefix(maxFields).map { clean($0, listItem: true) }
        d.purpose = d.purpose.map { clean($0) }
        d.legalBasis = d.legalBasis.map { clean($0) }
        d.code = d.code.map { clean($0) }
        d.requestID = d.requestID.map { clean($0) }
        d.ref = d.ref.map { clean($0) }
        d.target = d.target.map { clean($0) }
        return d
    }

    public func seal(_ draft: AuditDraft, seq: Int64, prevHash: String) -> AuditEvent {
        var normalized = Self.storable(draft)
        normalized.time = Date(timeIntervalSince1970: Double(Self.millis(draft.time)) / 1000)
        let mac = Digest.hmacSHA256(key: key, Array(prevHash.utf8) + Self.canonical(seq: seq, normalized))
        return AuditEvent(seq: seq, draft: normalized, prevHash: prevHash, hash: Identifiers.hex(mac))
    }

    /// A keyed reference to a token or a looked-up value, so auditors can find events without seeing it.
    public func ref(_ kind: String, _ secret: String) -> String {
        Identifiers.hex(Digest.hmacSHA256(key: key, Array("ref:\(kind):".utf8) + Array(secret.utf8)))
    }

    /// Checks a page of stored events in order, continuing after every break (re-anchoring on each
    /// event's stored hash), and returns every bad stretch; `state` carries the expected next sequence
    /// number and the previous stored hash from page to page.
    public func breaks(_ events: [AuditEvent], state: inout (expected: Int64, previous: String)) -> [AuditBreak] {
        var out: [AuditBreak] = []
        func mark(_ from: Int64, _ to: Int64, _ reason: String) {
            if let last = out.last, last.to + 1 >= from {
                out[out.count - 1].to = max(last.to, to)
            } else {
                out.append(AuditBreak(from: from, to: to, reason: reason))
            }
        }
        for e in events {
            if e.seq != state.expected {
                if e.seq > state.expected {
                    mark(state.expected, e.seq - 1, "events \(state.expected)…\(e.seq - 1) are missing")
                } else {
                    mark(e.seq, e.seq, "sequence \(e.seq) is out of order or repeated")
                }
            }
            if e.prevHash != state.previous {
                mark(e.seq, e.seq, "the previous-hash link does not match")
            } else if !verifies(e) {
                mark(e.seq, e.seq, "event content does not match its hash")
            }
            // Re-anchor: the next event is judged against this one as stored.
            state.previous = e.hash
            state.expected = max(state.expected, e.seq + 1)
        }
        return out
    }
}
