import CofreCrypto
public import Foundation

/// What ties a data store to its key store and key ring (CONTRACT §7 v2). Recorded in the data store at
/// its first initialisation; every start and operator command checks it before changing anything.
public struct VaultBinding: Sendable, Equatable {
    /// A random id of the data store, also recorded in the key store it is bound to.
    public let dataStoreID: String
    /// The id of the key store that holds this data store's keys.
    public let keyStoreID: String
    /// Key-check value: HMAC under the audit-chain key over both ids and a check of the blind-index
    /// key; only the right key store opened with the right ring reproduces it.
    public let kcv: String
    public let createdAt: Date
    /// Whether the ring was a development ring created by `cofre serve` for this vault.
    public let developmentRing: Bool

    public init(dataStoreID: String, keyStoreID: String, kcv: String, createdAt: Date, developmentRing: Bool) {
        self.dataStoreID = dataStoreID
        self.keyStoreID = keyStoreID
        self.kcv = kcv
        self.createdAt = createdAt
        self.developmentRing = developmentRing
    }

    /// The key-check value for these ids under these keys.
    static func kcv(dataStoreID: String, keyStoreID: String, auditKey: SymmetricKey, indexKey: SymmetricKey) -> String {
        let indexCheck = Identifiers.hex(Digest.hmacSHA256(key: indexKey, Array("cofre.binding.index-check.v1".utf8)))
        let message = AssociatedData(["cofre.binding.v1", dataStoreID, keyStoreID, indexCheck]).bytes
        return Identifiers.hex(Digest.hmacSHA256(key: auditKey, message))
    }
}

/// The key store's own identity: its id, and the data store it is bound to once one is.
public struct KeyStoreIdentity: Sendable, Equatable {
    public let id: String
    public let boundDataStore: String?
    public init(id: String, boundDataStore: String?) {
        self.id = id
        self.boundDataStore = boundDataStore
    }

    /// A fresh key-store id (`ks_` and 80 random bits).
    public static func newID() throws -> String { "ks_" + Identifiers.base32(try Random.bytes(10)) }
}

/// A refusal to open a vault whose stores or ring do not belong together. It names which side does not
/// match and how to point at the right one; it never quotes key material.
public struct BindingError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One serving instance as it last reported itself (CONTRACT §7 v2): `keys retire` reads these.
public struct InstanceHeartbeat: Sendable, Equatable {
    public let id: String
    public let host: String
    public let pid: Int
    public let startedAt: Date
    public var seenAt: Date
    /// The KEK versions loaded, and the primary one with the time it became primary here.
    public var versions: [UInt32]
    public var primary: UInt32
    public var primarySince: Date

    public init(id: String, host: String, pid: Int, startedAt: Date, seenAt: Date, versions: [UInt32], primary: UInt32, primarySince: Date) {
        self.id = id
        self.host = host
        self.pid = pid
        self.startedAt = startedAt
        self.seenAt = seenAt
        self.versions = versions
        self.primary = primary
        self.primarySince = primarySince
    }

    public var label: String { "\(id) (host \(host), pid \(pid))" }
}
