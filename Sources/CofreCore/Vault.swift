public import CofreCrypto
public import Foundation
import Logging

/// An authenticated caller, as resolved from its bearer key.
public struct Principal: Sendable {
    public let policy: ServicePolicy
    public let credentialID: String
    public var name: String { policy.name }
    public var role: Role { policy.role }

    public init(policy: ServicePolicy, credentialID: String) {
        self.policy = policy
        self.credentialID = credentialID
    }
}

/// The vault's domain service: every use case of CONTRACT §4, over a data store and a key store.
/// It knows no HTTP and no SQL.
public final class Vault: Sendable {
    public let policy: Policy
    public let store: any VaultStore
    public let dataKeys: DataKeys
    public let chain: AuditChain
    let indexKey: SymmetricKey
    /// What ties this data store to its key store and ring, checked at open.
    public let binding: VaultBinding
    let clock: @Sendable () -> Date
    let logger: Logger
    /// This instance's quota buckets and reveal-volume watch.
    let limiter = RateLimiter()
    let revealMonitor = RevealMonitor()
    /// Set by any storage failure; readiness then proves both stores take writes before answering ready.
    let storageFault = StorageFault()
    /// How notifications to recipients are fanned out and retried.
    public let deliveryConfig: DeliveryConfig

    public static let maxTokensPerCall = 1000
    public static let indexKeyGroup = "blind-index"
    public static let auditKeyGroup = "audit-chain"

    init(policy: Policy, store: any VaultStore, dataKeys: DataKeys, chain: AuditChain, indexKey: SymmetricKey, binding: VaultBinding,
         clock: @escaping @Sendable () -> Date, logger: Logger, deliveryConfig: DeliveryConfig = DeliveryConfig()) {
        self.binding = binding
        self.deliveryConfig = deliveryConfig
        self.policy = policy
        self.store = store
        self.dataKeys = dataKeys
        self.chain = chain
        self.indexKey = indexKey
        // Every time the vault records is whole milliseconds, as the stores and the wire keep it, so a
        // record reads the same in the answer that created it, in the store and in an export.
        self.clock = { Date(timeIntervalSince1970: (clock().timeIntervalSince1970 * 1000).rounded(.down) / 1000) }
        self.logger = logger
    }

    public var now: Date { clock() }

    // MARK: keyed hashes

    func keyed(_ kind: String, _ value: String) -> String {
        Identifiers.hex(Digest.hmacSHA256(key: indexKey, Array("\(kind):".utf8) + Array(value.utf8)))
    }
    func tokenHash(_ token: String) -> String { keyed("tok", token) }
    func indexHash(field: String, normalized: String) -> String { keyed("idx:\(field)", normalized) }
    func externalRefHash(_ ref: String) -> String { keyed("ext", ref) }

    public static func valueContext(subject: String, field: String) -> AssociatedData {
        AssociatedData(["cofre.value.v1", subject, field])
    }

    // MARK: readiness

    /// Whether the data store (with the audit log), the key store and the key ring can all serve.
    public func isReady() async -> Bool {
        do {
            try await store.checkHealth()
            try await dataKeys.store.checkHealth()
            // The key store behind the connection must still be the one this data store is bound to.
            guard try await dataKeys.store.identity().id == binding.keyStoreID else {
                logger.error("readiness: the key store is not the one this data store is bound to")
                return false
            }
            guard dataKeys.provider.isHealthy(now: now) else {
                logger.error("readiness: the key ring has failed to reload for too long")
                return false
            }
            // A full disk or an I/O error shows on writes, not reads: after a storage failure, ready
            // again only once a durable write to each store succeeds (no restart needed).
            if let since = storageFault.since {
                _ = try await store.commit(WriteBatch([.probe(now)]))
                try await dataKeys.store.checkWritable()
                storageFault.clear(ifSince: since)
                logger.notice("readiness: both stores take writes again")
            }
            return !dataKeys.ring.keys.isEmpty
        } catch {
            logger.error("readiness check failed", metadata: ["error.type": "\(type(of: error))"])
            return false
        }
    }

    // MARK: audit helpers

    func draft(_ principal: Principal?, action: AuditAction, requestID: String?, subject: String? = nil, fields: [String] = [],
               purpose: Purpose? = nil, purposeName: String? = nil, decision: AuditDraft.Decision, code: String? = nil,
               ref: String? = nil) -> AuditDraft {
        sanitized(AuditDraft(
            time: clock(), service: principal?.name ?? "operator", role: principal?.role.rawValue ?? "operator",
            action: action.rawValue, subject: subject, fields: fields, purpose: purpose?.name ?? purposeName,
            legalBasis: purpose?.legalBasis.rawValue, decision: decision, code: code, requestID: requestID, ref: ref))
    }

    /// Records a refusal, then returns the error to throw. If even that record fails, the answer is 503.
    func refuse(_ error: VaultError, audit: AuditDraft) async -> VaultError {
        do {
            try await store.appendAudit([audit])
            return error
        } catch {
            return mapStore(error)
        }
    }

    /// Turns a storage failure into the contract's error without letting its text out.
    func mapStore(_ error: any Error) -> VaultError {
        if let v = error as? VaultError { return v }
        if let s = error as? StoreError {
            switch s.code {
            case .auditUnavailable:
                logger.error("audit write failed; request refused")
                storageFault.record(now)
                return .auditUnavailable
            case .conflict:
                return .concurrentUpdate
            case .notFound:
                return .subjectNotFound
            case .subjectGone:
                return .subjectErasedWrite
            case .exists:
                return VaultError(.conflict, .subjectExists, "a subject with this external reference already exists", existingSubject: s.subject)
            case .limitReached:
                return .concurrentUpdate
            case .unavailable:
                break
            }
        }
        logger.error("storage failure", metadata: ["error.type": "\(type(of: error))"])
        storageFault.record(now)
        return .storage(error)
    }
}

/// When storage last failed, until a readiness probe proves it writable again.
final class StorageFault: @unchecked Sendable {
    private let lock = NSLock()
    private var first: Date?
    private var generation = 0

    /// The failure being tracked (its generation), if any.
    var since: Int? { lock.withLock { first == nil ? nil : generation } }

    func record(_ at: Date) {
        lock.withLock {
            if first == nil { first = at }
            generation += 1
        }
    }

    /// Clears the fault unless another failure was recorded after the probe started.
    func clear(ifSince g: Int) {
        lock.withLock { if generation == g { first = nil } }
    }
}
