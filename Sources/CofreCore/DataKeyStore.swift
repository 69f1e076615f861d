public import Foundation

/// Names one data key: per subject, per key group (a field, or a system key), per generation.
public struct DataKeyID: Hashable, Sendable, CustomStringConvertible {
    public let subject: String
    public let group: String
    public let generation: Int

    public init(subject: String, group: String, generation: Int) {
        self.subject = subject
        self.group = group
        self.generation = generation
    }

    public var description: String { "\(subject)/\(group)/\(generation)" }

    /// The subject id under which the vault's own keys (blind index, audit chain) are kept.
    public static let systemSubject = "_system"

    /// A field's key groups live under this prefix, so no policy name can collide with the vault's own
    /// groups (`consent`, `blind-index`, `audit-chain`), and each write attempt gets a group of its own.
    public static let fieldGroupPrefix = "field:"

    /// A fresh key group for one attempt at writing `field`: `field:NAME:RANDOM`.
    public static func attemptGroup(field: String, attempt: String) -> String { fieldGroupPrefix + field + ":" + attempt }
}

/// A data key as stored: only ever wrapped under a KEK version.
public struct WrappedDataKey: Sendable, Equatable {
    public let id: DataKeyID
    public let kekVersion: UInt32
    public let wrapped: [UInt8]
    public let createdAt: Date

    public init(id: DataKeyID, kekVersion: UInt32, wrapped: [UInt8], createdAt: Date) {
        self.id = id
        self.kekVersion = kekVersion
        self.wrapped = wrapped
        self.createdAt = createdAt
    }
}

/// The key store, kept apart from the data store so that destroying a key here makes every
/// copy of its ciphertexts, backups included, undecryptable (CONTRACT §7).
public protocol DataKeyStore: Sendable {
    func migrate() async throws
    func insert(_ keys: [WrappedDataKey]) async throws
    func fetch(_ ids: [DataKeyID]) async throws -> [DataKeyID: WrappedDataKey]
    /// Destroys keys for good; destroying a missing key is not an error. The engine also removes the
    /// destroyed bytes from its files (SQLite: a WAL checkpoint into secure-deleted pages; PostgreSQL:
    /// VACUUM of dead tuples) and throws if it cannot, so the caller keeps them queued.
    func destroy(_ ids: [DataKeyID]) async throws
    /// Reclaims the space of destroyed keys now (the key sweeper runs it every round).
    func compact() async throws
    /// How many data keys each KEK version still wraps.
    func countByKEKVersion() async throws -> [UInt32: Int]
    func checkHealth() async throws
    /// Makes a small durable write (readiness's proof that the store takes writes again).
    func checkWritable() async throws
    /// Up to `limit` keys wrapped by any KEK version other than `version`.
    func fetch(notWrappedBy version: UInt32, limit: Int) async throws -> [WrappedDataKey]
    /// Replaces each key's wrapping if it still holds the old one; returns how many were replaced.
    func replace(_ updates: [(old: WrappedDataKey, new: WrappedDataKey)]) async throws -> Int
    /// Counts `count` more encryptions under a shared key; false (nothing counted) past `limit`.
    func reserveUses(_ id: DataKeyID, count: Int64, limit: Int64) async throws -> Bool
    /// Every key id of one subject (to destroy all generations at erasure).
    func ids(subject: String) async throws -> [DataKeyID]
    /// Up to `limit` keys created at or before `through`, after `cursor`, in (created, id) order: the
    /// orphan sweeper's scan.
    func scan(after cursor: KeyScanCursor?, createdThrough: Date, limit: Int) async throws -> [(id: DataKeyID, createdAt: Date)]
    /// This key store's id (created with the store) and the data store it is bound to, if any.
    func identity() async throws -> KeyStoreIdentity
    /// Records the data store this key store serves; refused with `BindingError` when it serves another.
    func bind(dataStore: String) async throws
    /// The sweeper's persistent position in that scan, shared by every instance.
    func sweepCursor() async throws -> KeyScanCursor?
    func setSweepCursor(_ cursor: KeyScanCursor) async throws
}

/// A position in the key store's (created, subject, group, generation) order.
public struct KeyScanCursor: Sendable, Equatable, Codable {
    public let createdAtMillis: Int64
    public let subject: String
    public let group: String
    public let generation: Int
    public init(createdAtMillis: Int64, subject: String, group: String, generation: Int) {
        self.createdAtMillis = createdAtMillis
        self.subject = subject
        self.group = group
        self.generation = generation
    }
}
