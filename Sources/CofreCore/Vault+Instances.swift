import CofreCrypto
public import Foundation

/// This process as a serving instance: what it reports in its heartbeat (CONTRACT §7 v2).
public final class ServingInstance: @unchecked Sendable {
    public let id: String
    public let host: String
    public let pid: Int
    public let startedAt: Date
    private let lock = NSLock()
    private var primary: UInt32?
    private var primarySince: Date

    public init(startedAt: Date) throws {
        id = "inst_" + Identifiers.base32(try Random.bytes(10))
        host = ProcessInfo.processInfo.hostName
        pid = Int(ProcessInfo.processInfo.processIdentifier)
        self.startedAt = startedAt
        primarySince = startedAt
    }

    /// The heartbeat for the ring as it is now; remembers when the primary version last changed here.
    func beat(_ ring: KeyRing, now: Date) -> InstanceHeartbeat {
        lock.withLock {
            if primary != ring.primaryVersion {
                primary = ring.primaryVersion
                primarySince = now
            }
            return InstanceHeartbeat(id: id, host: host, pid: pid, startedAt: startedAt, seenAt: now, versions: ring.versions,
                                     primary: ring.primaryVersion, primarySince: primarySince)
        }
    }
}

extension Vault {
    /// An instance whose last heartbeat is older than this is taken as gone.
    public static let instanceLiveWindow: TimeInterval = 60
    /// How long every live instance must have used the new primary before an older version may be
    /// retired: far longer than any write takes from wrapping a key to storing it (the key store's
    /// connections time out well before).
    public static let primarySettleTime: TimeInterval = 30

    /// Writes this instance's heartbeat (KEK versions loaded, primary) to the data store.
    public func heartbeat(_ me: ServingInstance) async throws {
        _ = try await store.commit(WriteBatch([.heartbeat(me.beat(dataKeys.ring, now: now))]))
    }

    /// Removes this instance's heartbeat at a clean shutdown.
    public func removeInstance(_ me: ServingInstance) async throws {
        _ = try await store.commit(WriteBatch([.removeInstance(me.id)]))
    }

    /// Instances seen within `instanceLiveWindow`.
    public func liveInstances() async throws -> [InstanceHeartbeat] {
        let cutoff = now.addingTimeInterval(-Self.instanceLiveWindow)
        return try await store.instances().filter { $0.seenAt >= cutoff }
    }
}
