public import CofreCrypto
public import Foundation
public import Logging

/// Where the key-encryption keys come from.
public enum KeyRingSource: Sendable, Equatable {
    /// `kek-v<N>.key` files in a directory (development, or a mounted secret directory).
    case directory(String)
    /// `COFRE_KEK_FILE`: one `v<N>:<base64 of 32 bytes>` per line, mode 0600 or 0400.
    case file(String)
    /// `COFRE_KEK`: the same `v<N>:<base64>` entries, separated by commas or newlines.
    case environment(String)

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

    public init(source: KeyRingSource, allowCreate: Bool, logger: Logger) throws {
        self.source = source
        self.logger = logger
        ring = try Self.load(source, allowCreate: allowCreate, logger: logger)
    }

    public var current: KeyRing { lock.withLock { ring } }

    /// Reads the source again; returns whether the versions changed.
    @discardableResult
    public func reload() throws -> Bool {
        let fresh = try Self.load(source, allowCreate: false, logger: logger)
        return lock.withLock {
            let changed = fresh.versions != ring.versions
            ring = fresh
            if changed { logger.info("key ring reloaded", metadata: ["versions": "\(fresh.versions.map { "v\($0)" })", "primary": "v\(fresh.primaryVersion)"]) }
            return changed
        }
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

    /// Removes a version. The caller checks first that no data key needs it.
    public func retire(_ version: UInt32) throws {
        let ring = current
        guard ring.key(version: version) != nil else { throw KeyRingError("there is no key-encryption key v\(version)") }
        guard version != ring.primaryVersion else {
            throw KeyRingError("v\(version) is the primary key-encryption key; rotate first, rewrap, then retire it")
        }
        switch source {
        case .directory(let dir):
            guard unlink((dir as NSString).appendingPathComponent("kek-v\(version).key")) == 0 else {
                throw KeyRingError("cannot remove kek-v\(version).key from '\(dir)'")
            }
        case .file(let path):
            var entries = try Self.parseEntries(String(contentsOfFile: path, encoding: .utf8), origin: path)
            entries[version] = nil
            try Self.writeFile(entries, path: path)
        case .environment:
            throw KeyRingError("the key ring comes from COFRE_KEK: remove v\(version) there and restart each instance")
        }
        try reload()
    }

    static func load(_ source: KeyRingSource, allowCreate: Bool, logger: Logger) throws -> KeyRing {
        switch source {
        case .directory(let dir):
            return try KeyRingDirectory.load(directory: dir, allowCreate: allowCreate, logger: logger)
        case .file(let path):
            try KeyRingDirectory.checkMode(path, isDirectory: false)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw KeyRingError("cannot read COFRE_KEK_FILE '\(path)'") }
            return try KeyRing(keys: parseEntries(text, origin: path))
        case .environment(let value):
            return try KeyRing(keys: parseEntries(value, origin: "COFRE_KEK"))
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
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw KeyRingError("cannot write '\(tmp)'") }
        let ok = text.utf8CString.withUnsafeBufferPointer { Foundation.write(fd, $0.baseAddress, $0.count - 1) } == text.utf8.count && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else { unlink(tmp); throw KeyRingError("cannot write '\(path)'") }
    }
}
