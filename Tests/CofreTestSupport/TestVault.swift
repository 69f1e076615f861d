public import CofreCore
import CofreSQLite
public import Foundation
public import Logging

/// The repository root, found from this file's path, so tests read the real policy example.
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

public let examplePolicyPath = repositoryRoot + "/deploy/policy.example.yaml"

/// A fresh private temporary directory.
public func makeTempDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("cofre-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    return path
}

/// A clock tests can move.
public final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date
    public init(_ start: Date = Date(timeIntervalSince1970: 1_790_000_000)) { current = start }
    public var now: Date { lock.withLock { current } }
    public func advance(days: Double) { lock.withLock { current += days * 86400 } }
}

/// A real vault over SQLite files in a temporary directory, with the example policy.
public struct TestVault: Sendable {
    public let directory: String
    public let vault: Vault
    public let logs: LogCapture
    public let clock: TestClock

    public var dataPath: String { directory + "/data/cofre.sqlite" }
    public var keysPath: String { directory + "/keys" }
    public var keyStorePath: String { keysPath + "/datakeys.sqlite" }

    public static func make(policy: Policy? = nil, directory: String? = nil, clock: TestClock = TestClock(),
                            wrapStore: @Sendable (any VaultStore) -> any VaultStore = { $0 }) async throws -> TestVault {
        let dir = try directory ?? makeTempDirectory()
        let logs = LogCapture()
        let logger = logs.logger
        let policy = try policy ?? PolicyLoader.load(file: examplePolicyPath)
        let ring = try KeyRingProvider(source: .directory(dir + "/keys"), allowCreate: true, logger: logger)
        let keyStore = try SQLiteKeyStore(path: dir + "/keys/datakeys.sqlite")
        let vault = try await Vault.open(policy: policy, keyRing: ring, keyStore: keyStore, logger: logger, clock: { clock.now }) { chain in
            wrapStore(try SQLiteVaultStore(path: dir + "/data/cofre.sqlite", chain: chain))
        }
        return TestVault(directory: dir, vault: vault, logs: logs, clock: clock)
    }

    /// Opens the same files again, as a restarted server would.
    public func reopen() async throws -> TestVault {
        try await Self.make(policy: vault.policy, directory: directory, clock: clock)
    }

    /// Issues a key for `service` and resolves it, as a caller would.
    public func principal(_ service: String) async throws -> (key: String, principal: Principal) {
        let key = try await vault.issueServiceKey(service: service)
        return (key, try await vault.authenticate(bearer: key))
    }

    /// Every byte of the data and key stores (including WAL files), to search for leaked values.
    public func storeBytes() throws -> [UInt8] {
        var out: [UInt8] = []
        for base in [dataPath, keyStorePath] {
            for suffix in ["", "-wal", "-shm"] {
                if let d = FileManager.default.contents(atPath: base + suffix) { out += d }
            }
        }
        return out
    }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs anywhere in these bytes.
    public func contains(bytes needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        for i in 0...(count - needle.count) where self[i] == needle[0] {
            if Array(self[i..<i + needle.count]) == needle { return true }
        }
        return false
    }
}
