/// The operator's rules: which personal-data fields exist, which purposes may use them and on what
/// legal basis, and which services hold which purposes (CONTRACT §2).
public struct Policy: Sendable {
    public var fields: [String: FieldSpec]
    public var purposes: [String: Purpose]
    public var services: [String: ServicePolicy]
    /// When debtors may be contacted through a purpose's `contact` field (CONTRACT §8).
    public var contactRules: ContactRules

    public init(fields: [String: FieldSpec], purposes: [String: Purpose], services: [String: ServicePolicy],
                contactRules: ContactRules = ContactRules()) {
        self.fields = fields
        self.purposes = purposes
        self.services = services
        self.contactRules = contactRules
    }

    /// Names the vault keys internally (the consent-evidence key group, the system key groups): a field
    /// may not be called like them (CONTRACT §2), on top of field keys living under their own prefix.
    public static let reservedFieldNames: Set<String> = ["consent", "blind-index", "audit-chain"]
}

/// One personal-data attribute and how its values are validated and indexed.
public struct FieldSpec: Sendable, Equatable {
    public var type: FieldType
    public var searchable: Bool
    public init(type: FieldType, searchable: Bool = false) {
        self.type = type
        self.searchable = searchable
    }
}

extension LegalBasis {
    /// Whether a subject's objection (Art. 18 §2) can stop processing on this basis.
    public var objectionBlocks: Bool {
        switch self {
        case .consent, .legalObligation, .exerciseOfRights: false
        case .contract, .legitimateInterest, .creditProtection: true
        }
    }
}

/// A specific, stated use of personal data (LGPD Art. 6 I).
public struct Purpose: Sendable, Equatable {
    public var name: String
    public var legalBasis: LegalBasis
    public var channel: String?
    public var fields: [String: RevealLevel]
    public var retentionDays: Int?
    /// A contact purpose: revealing this field is a contact attempt, bound by the contact rules and caps.
    public var contact: ContactLimit?

    public init(name: String, legalBasis: LegalBasis, channel: String? = nil, fields: [String: RevealLevel], retentionDays: Int? = nil,
                contact: ContactLimit? = nil) {
        self.name = name
        self.legalBasis = legalBasis
        self.channel = channel
        self.fields = fields
        self.retentionDays = retentionDays
        self.contact = contact
    }
}

/// What one named caller may do.
public struct ServicePolicy: Sendable, Equatable {
    public var name: String
    public var role: Role
    public var purposes: Set<String>
    public var tokenize: Bool
    public var quota: Quota
    /// Where this service is told of corrections, erasures, revocations and objections (CONTRACT §9).
    public var webhook: Webhook?

    public init(name: String, role: Role, purposes: Set<String> = [], tokenize: Bool = false, quota: Quota = Quota(), webhook: Webhook? = nil) {
        self.name = name
        self.role = role
        self.purposes = purposes
        self.tokenize = tokenize
        self.quota = quota
        self.webhook = webhook
    }
}

/// A service's per-minute limits (CONTRACT §4 v2 "Abuse limits"), enforced per instance, and how far
/// above its own trailing hourly average a minute of reveals must go to raise a `bulk_reveal` alert.
public struct Quota: Sendable, Equatable {
    /// Tokens revealed (each token of a detokenize counts).
    public var revealsPerMinute: Int
    public var lookupsPerMinute: Int
    /// Creates, corrections, tokenize calls, consent and objection records.
    public var writesPerMinute: Int
    public var bulkRevealFactor: Int

    public static let defaultReveals = 6000
    public static let defaultLookups = 120
    public static let defaultWrites = 3000
    public static let defaultBulkRevealFactor = 10

    public init(revealsPerMinute: Int = defaultReveals, lookupsPerMinute: Int = defaultLookups, writesPerMinute: Int = defaultWrites,
                bulkRevealFactor: Int = defaultBulkRevealFactor) {
        self.revealsPerMinute = revealsPerMinute
        self.lookupsPerMinute = lookupsPerMinute
        self.writesPerMinute = writesPerMinute
        self.bulkRevealFactor = bulkRevealFactor
    }
}
