public import Foundation

/// One contact attempt (CONTRACT §8): a reveal of a contact purpose's field, counted against its caps.
/// Holds no value: who, when, for which purpose and through which channel.
public struct ContactAttempt: Sendable, Equatable {
    public let subject: String
    public let purpose: String
    public let service: String
    public let channel: String?
    public let at: Date
    public init(subject: String, purpose: String, service: String, channel: String?, at: Date) {
        self.subject = subject
        self.purpose = purpose
        self.service = service
        self.channel = channel
        self.at = at
    }
}

/// A data subject (the debtor). Holds no personal value: the external reference is kept only as a keyed hash.
public struct SubjectRecord: Sendable, Equatable {
    /// `erasing`: an erasure has begun; no write is accepted any more, reads still see the fields.
    public typealias Status = SubjectStatus
    public let id: String
    public let externalRefHash: String
    public let createdAt: Date
    public let createdBy: String
    public var status: Status

    public init(id: String, externalRefHash: String, createdAt: Date, createdBy: String, status: Status = .active) {
        self.id = id
        self.externalRefHash = externalRefHash
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.status = status
    }
}

/// One encrypted field of a subject. `generation` counts its versions: a correction bumps it.
/// `keyGroup` names the data key's group in the key store: unique to the write attempt that stored
/// this version (`field:NAME:ATTEMPT`), so racing writers never share a key; nil on fields stored
/// before 0.7, whose key group is the field's name.
public struct FieldRecord: Sendable, Equatable {
    public typealias Status = FieldStatus
    public let subject: String
    public let field: String
    public let type: FieldType
    public let generation: Int
    public let keyGroup: String?
    public let ciphertext: [UInt8]
    public let storedAt: Date
    public let storedBy: String
    public var status: Status
    public var retainedFor: String?
    public var retainedUntil: Date?

    public init(subject: String, field: String, type: FieldType, generation: Int, keyGroup: String?, ciphertext: [UInt8], storedAt: Date,
                storedBy: String, status: Status = .active, retainedFor: String? = nil, retainedUntil: Date? = nil) {
        self.subject = subject
        self.field = field
        self.type = type
        self.generation = generation
        self.keyGroup = keyGroup
        self.ciphertext = ciphertext
        self.storedAt = storedAt
        self.storedBy = storedBy
        self.status = status
        self.retainedFor = retainedFor
        self.retainedUntil = retainedUntil
    }

    public var keyID: DataKeyID { DataKeyID(subject: subject, group: keyGroup ?? field, generation: generation) }

    /// Whether this version still needs its data key (an erased field's key is to be destroyed).
    public var needsKey: Bool { status != .erased }

    /// The state the reveal decision sees.
    public var state: FieldState {
        switch status {
        case .active: .active
        case .erased: .erased
        case .blocked: .blocked(purpose: retainedFor ?? "", until: retainedUntil ?? .distantPast)
        }
    }
}

/// A token as stored: only its keyed hash, so a copy of the database yields no usable token.
public struct TokenRecord: Sendable, Equatable {
    public let tokenHash: String
    public let subject: String
    public let field: String
    public let generation: Int
    public let createdAt: Date
    public let createdBy: String

    public init(tokenHash: String, subject: String, field: String, generation: Int, createdAt: Date, createdBy: String) {
        self.tokenHash = tokenHash
        self.subject = subject
        self.field = field
        self.generation = generation
        self.createdAt = createdAt
        self.createdBy = createdBy
    }
}

/// A blind-index entry: keyed hash of a normalised searchable value, pointing at its subject.
public struct BlindIndexEntry: Sendable, Equatable {
    public let field: String
    public let hash: String
    public let subject: String
    public init(field: String, hash: String, subject: String) {
        self.field = field
        self.hash = hash
        self.subject = subject
    }
}

/// A service credential: only the SHA-256 of the key is kept.
public struct CredentialRecord: Sendable, Equatable {
    public let id: String
    public let service: String
    public let keyHash: String
    public let createdAt: Date
    public var revokedAt: Date?

    public init(id: String, service: String, keyHash: String, createdAt: Date, revokedAt: Date? = nil) {
        self.id = id
        self.service = service
        self.keyHash = keyHash
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}
