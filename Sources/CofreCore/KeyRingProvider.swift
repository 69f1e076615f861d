import CofreCrypto
public import Foundation
public import Logging

/// Where the key-encryption keys come from.
public enum KeyRingSource: Sendable, Equatable {
    /// `kek-v<N>.key` files in a directory (development, or a mounted secret directory).
    case directory(String)
    /// `COFRE_KEK_FILE`: one `v<N>:<base64 of 32 bytes>` per line, mode 0600 or 0400.
    case file(String)
    /// `COFRE_KEK`: the same `v<N>:<base64>` entries, separated by commas or newlines. The value is
    /// parsed once, at start, and removed from the process environment; it is never kept as text.
    case environment

    public var description: String {
        switch self {
        case .directory(let d): "directory \(d)"
        case .file(let f): "file \(f)"
        case .environment: "environment variable COFRE_KEK"
        }
    }
}

/// Holds the current key ring and reloads it when its source changes, so a rotation done by the
/// operator (or by another instance) reaches a running server without a restart.
public final class KeyRingProvider: @unchecked Sendable {
    public let source: KeyRingSource
    private let lock = NSLock()
    private var ring: KeyRing
    private let logger: Logger
    /// Whether this provider created a development ring (in a directory) when it started.
    public let createdDevelopmentRing: Bool
    /// Since when reloading the ring fails (nil while it succeeds).
    private var failingSince: Date?
    /// How long reloads may fail before the instance reports itself not ready.
    public static let reloadFailureGrace: TimeInterval = 30

    /// Loads the ring. `allowCreate` lets a directory source create a development ring when it has none
    /// (only `cofre serve`, for a new vault, outside production); `refuseDevelopment` (production)
    /// refuses a ring marked as a development ring.
    public init(source: KeyRingSource, allowCreate: Bool, refuseDevelopment: Bool = false, logger: Logger) throws {
        guard source != .environment else {
            throw KeyRingError("use KeyRingProvider(environmentValue:) for COFRE_KEK")
        }
        self.source = source
        self.logger = logger
        let loaded = try Self.load(source, allowCreate: allowCreate, refuseDevelopment: refuseDevelopment, logger: logger)
        ring = loaded.ring
        createdDevelopmentRing = loaded.created
    }

    /// A ring given as the value of `COFRE_KEK`: parsed once; the caller removes the variable.
    public init(environmentValue: String, logger: Logger) throws {
        source = .environment
        self.logger = logger
        ring = try KeyRing(keys: Self.parseEntries(environmentValue, origin: "COFRE_KEK"))
        createdDevelopmentRing = false
    }

    public var current: KeyRing { lock.withLock { ring } }

    /// Reads the source again; returns whether the versions changed. A failure is remembered, so that
    /// `isHealthy` turns false once reloads have failed for longer than `reloadFailureGrace`.
    @discardableResult
    public func reload(now: Date = Date()) throws -> Bool {
        // COFRE_KEK was parsed once and removed: a new version there needs a restart.
        if source == .environment { return false }
        let fresh: KeyRing
        do {
            fresh = try Self.load(source, allowCreate: false, refuseDevelopment: false, logger: logger).ring
        } catch {
            lock.withLock { if failingSince == nil { failingSince = now } }
            VaultMetrics.keyRingReloadFailed()
            throw error
        }
        return lock.withLock {
            failingSince = nil
            let changed = fresh.versions != ring.versions
            ring = fresh
            if changed { logger.info("key ring reloaded", metadata: ["versions": "\(fresh.versions.map { "v\($0)" })", "primary": "v\(fresh.primaryVersion)"]) }
            return changed
        }
    }

    /// False once reloading has failed continuously for longer than `reloadFailureGrace`.
    public func isHealthy(now: Date) -> Bool {
        lock.withLock { failingSince.map { now.timeIntervalSince($0) <= Self.reloadFailureGrace } ?? true }
    }

    /// Adds version N+1, which every new wrap then uses. Refused for an environment-variable source.
    public func rotate() throws -> UInt32 {
        let next = current.primaryVersion + 1
        let key = try SymmetricKey.generate()
        switch source {
        case .directory(let dir):
            try KeyRingDirectory.write(key, version: next, directory: dir)
        case .file(let path):
            var entries = try Self.parseEntries(String(contentsOfFile: path, encoding: .utf8), origin: path)
            entries[next] = try SymmetricKey(bytes: key.withUnsafeBytes { Array($0) })
            try Self.writeFile(entries, path: path)
        case .environment:
            throw KeyRingError("the key ring comes from COFRE_KEK: add v\(next):<base64 of 32 random bytes> in your secret store and restart each instance")
        }
        try reload()
        return next
    }

    /// Moves a version out of the ring into the archive (`retired/` beside the ring, mode 0600), so a
    /// mistake can still be undone; `purge` deletes it later. The caller checks first that nothing needs it.
    /// Returns where the key was archived.
    @discardableResult
    public func retire(_ version: UInt32) throws -> String {
        let ring = current
        guard ring.key(version: version) != nil else { throw KeyRingError("there is no key-encryption key v\(version)") }
        guard version != ring.primaryVersion else {
            throw KeyRingError("v\(version) is the primary key-encryption key; rotate first, rewrap, then retire it")
        }
        let archive: String
        switch source {
        case .directory(let dir):
            archive = try Self.archiveDirectory(beside: dir, inside: true)
            let from = (dir as NSString).appendingPathComponent("kek-v\(version).key")
            let to = (archive as NSString).appendingPathComponent("kek-v\(version).key")
            guard rename(from, to) == 0 else { throw KeyRingError("cannot move kek-v\(version).key into '\(archive)'") }
        case .file(let path):
            archive = try Self.archiveDirectory(beside: path, inside: false)
            var entries = try Self.parseEntries(String(contentsOfFile: path, encoding: .utf8), origin: path)
            let key = entries[version]!
            try KeyRingDirectory.write(key, version: version, directory: archive)
            entries[version] = nil
            try Self.writeFile(entries, path: path)
        case .environment:
            throw KeyRingError("the key ring comes from COFRE_KEK: move v\(version) out of it in your secret store (keep it archived there "
                + "until backups older than the rotation are gone) and restart each instance")
        }
        try reload()
        return (archive as NSString).appendingPathComponent("kek-v\(version).key")
    }

    /// Deletes an archived (retired) version for good. Refused for a version still in the ring.
    public func purge(_ version: UInt32) throws -> String {
        guard current.key(version: version) == nil else { throw KeyRingError("v\(version) is still in the ring; retire it first") }
        let archive: String
        switch source {
        case .directory(let dir): archive = (dir as NSString).appendingPathComponent("retired")
        case .file(let path): archive = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("retired")
        case .environment: throw KeyRingError("the key ring comes from COFRE_KEK: delete v\(version) from your secret store's archive")
        }
        let file = (archive as NSString).appendingPathComponent("kek-v\(version).key")
        guard FileManager.default.fileExists(atPath: file) else { throw KeyRingError("there is no archived key v\(version) in '\(archive)'") }
        // Overwrite before unlinking, so the bytes do not linger in the file's blocks on simple filesystems.
        let fd = open(file, O_WRONLY | O_NOFOLLOW)
        if fd >= 0 {
            var st = stat()
            if fstat(fd, &st) == 0 {
                let zeros = [UInt8](repeating: 0, count: Int(st.st_size))
                _ = zeros.withUnsafeBufferPointer { Foundation.write(fd, $0.baseAddress, $0.count) }
                _ = fsync(fd)
            }
            close(fd)
        }
        guard unlink(file) == 0 else { throw KeyRingError("cannot delete '\(file)'") }
        return file
    }

    /// `retired/` inside the ring's directory (or beside a ring file), created private.
    static func archiveDirectory(beside path: String, inside: Bool) throws -> String {
        let base = inside ? path : (path as NSString).deletingLastPathComponent
        let dir = (base as NSString).appendingPathComponent("retired")
        if !FileManager.default.fileExists(atPath: dir) {
            guard mkdir(dir, 0o700) == 0 else { throw KeyRingError("cannot create the key archive '\(dir)'") }
        }
        try KeyRingDirectory.checkMode(dir, isDirectory: true)
        return dir
    }

    static func load(_ source: KeyRingSource, allowCreate: Bool, refuseDevelopment: Bool, logger: Logger) throws -> (ring: KeyRing, created: Bool) {
        switch source {
        case .directory(let dir):
            return try KeyRingDirectory.load(directory: dir, allowCreate: allowCreate, refuseDevelopment: refuseDevelopment, logger: logger)
        case .file(let path):
            try KeyRingDirectory.checkMode(path, isDirectory: false)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw KeyRingError("cannot read COFRE_KEK_FILE '\(path)'") }
            return (try KeyRing(keys: parseEntries(text, origin: path)), false)
        case .environment:
            throw KeyRingError("COFRE_KEK is read once at start")
        }
    }

    /// Parses `v<N>:<base64>` entries; errors name the entry's position, never its key.
    static func parseEntries(_ text: String, origin: String) throws -> [UInt32: SymmetricKey] {
        var out: [UInt32: SymmetricKey] = [:]
        let entries = text.split(whereSeparator: { $0 == "\n" || $0 == "," }).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for (i, entry) in entries.enumerated() where !entry.hasPrefix("#") {
            let parts = entry.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].hasPrefix("v"), let version = UInt32(parts[0].dropFirst()), version > 0,
                  let raw = Data(base64Encoded: String(parts[1])), raw.count == 32
            else { throw KeyRingError("\(origin): entry \(i + 1) must be v<N>:<base64 of exactly 32 bytes>") }
            guard out[version] == nil else { throw KeyRingError("\(origin): v\(version) appears twice") }
            out[version] = try SymmetricKey(bytes: raw)
        }
        guard !out.isEmpty else { throw KeyRingError("\(origin) holds no key-encryption key") }
        return out
    }

    static func writeFile(_ entries: [UInt32: SymmetricKey], path: String) throws {
        let text = entries.keys.sorted().map { v in "v\(v):" + entries[v]!.withUnsafeBytes { Data($0).base64EncodedString() } }.joined(separator: "\n") + "\n"
        let tmp = path + ".tmp"
        unlink(tmp)  // a stale temporary from an interrupted write; never followed if it is a link
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw KeyRingError("cannot write '\(tmp)'") }
        let ok = text.utf8CString.withUnsafeBufferPointer { Foundation.write(fd, $0.baseAddress, $0.count - 1) } == text.utf8.count && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else { unlink(tmp); throw KeyRingError("cannot write '\(path)'") }
    }
}
