public import CofreCrypto
public import Foundation
public import Logging

/// The versioned key-encryption keys (KEKs). The highest version is primary and wraps every new data key.
public struct KeyRing: Sendable {
    public let keys: [UInt32: SymmetricKey]
    public let createdAt: [UInt32: Date]

    public init(keys: [UInt32: SymmetricKey], createdAt: [UInt32: Date] = [:]) throws(VaultError) {
        guard !keys.isEmpty else { throw VaultError(.unavailable, .unavailable, "the key ring holds no key-encryption key") }
        self.keys = keys
        self.createdAt = createdAt
    }

    public var primaryVersion: UInt32 { keys.keys.max()! }
    public var versions: [UInt32] { keys.keys.sorted() }
    public func key(version: UInt32) -> SymmetricKey? { keys[version] }
}

/// Why the key ring could not be loaded. Says what to fix, never what a key is.
public struct KeyRingError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Loads the key ring from a directory of `kek-v<N>.key` files (base64 of 32 bytes, mode 0600).
public enum KeyRingDirectory {
    static let prefix = "kek-v"
    static let suffix = ".key"

    /// Marks a ring that `cofre serve` created for development; production refuses such a ring.
    public static let developmentMarker = "DEVELOPMENT-RING"

    /// Loads the ring; when none exists and `allowCreate` is set (development), creates `kek-v1.key`
    /// and the development marker. With `refuseDevelopment` (production), a marked ring is refused.
    public static func load(directory: String, allowCreate: Bool, refuseDevelopment: Bool = false, logger: Logger) throws -> (ring: KeyRing, created: Bool) {
        let refusal = "in production the key-encryption key comes from the platform's secret store: set COFRE_KEK or COFRE_KEK_FILE"
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if !fm.fileExists(atPath: directory, isDirectory: &isDir) {
            guard allowCreate else {
                throw KeyRingError("key ring directory '\(directory)' does not exist; a development ring is created only by `cofre serve`, "
                    + "for a new vault, outside production; \(refusal)")
            }
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } else if !isDir.boolValue {
            throw KeyRingError("key ring path '\(directory)' is not a directory")
        }
        if !allowCreate, try !hasKeyFiles(directory) {
            throw KeyRingError("no key-encryption key (kek-v<N>.key) in '\(directory)'; a development ring is created only by "
                + "`cofre serve`, for a new vault, outside production; \(refusal)")
        }
        if refuseDevelopment, FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(developmentMarker)) {
            throw KeyRingError("'\(directory)' holds a development key ring, refused because COFRE_ENV=production; \(refusal)")
        }
        // A fresh checkout's keys/ (README only) comes with the umask's mode: a development start
        // that is about to create the ring makes the directory private first.
        if allowCreate, try !hasKeyFiles(directory), (try? checkMode(directory, isDirectory: true)) == nil {
            guard chmod(directory, 0o700) == 0 else { throw KeyRingError("cannot make '\(directory)' private (chmod 700)") }
            logger.warning("key ring directory was readable by others; set its mode to 0700", metadata: ["directory": "\(directory)"])
        }
        var ring = try read(directory: directory)
        var created = false
        if ring.isEmpty {
            guard allowCreate else {
                throw KeyRingError("no key-encryption key (kek-v<N>.key) in '\(directory)'; \(refusal)")
            }
            logger.warning(
                "DEVELOPMENT KEY RING CREATED: a new key-encryption key was written to the key directory. Never use it in production; set COFRE_ENV=production to forbid this.",
                metadata: ["directory": "\(directory)"])
            let marker = open((directory as NSString).appendingPathComponent(developmentMarker), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
            guard marker >= 0 else { throw KeyRingError("cannot mark '\(directory)' as a development ring") }
            close(marker)
            try write(SymmetricKey.generate(), version: 1, directory: directory)
            ring = try read(directory: directory)
            created = true
        }
        var keys: [UInt32: SymmetricKey] = [:]
        var dates: [UInt32: Date] = [:]
        for (version, entry) in ring { keys[version] = entry.key; dates[version] = entry.created }
        return (try KeyRing(keys: keys, createdAt: dates), created)
    }

    /// Removes a development ring that this start created, when the start was refused afterwards.
    public static func removeCreated(directory: String) {
        for name in ["kek-v1.key", developmentMarker] { unlink((directory as NSString).appendingPathComponent(name)) }
    }

    /// Writes a new KEK file with mode 0600, failing if the version exists.
    public static func write(_ key: SymmetricKey, version: UInt32, directory: String) throws {
        let path = (directory as NSString).appendingPathComponent("\(prefix)\(version)\(suffix)")
        let encoded = key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw KeyRingError("cannot create key file '\(path)' (errno \(errno))") }
        defer { close(fd) }
        let written = encoded.utf8CString.withUnsafeBufferPointer { Foundation.write(fd, $0.baseAddress, $0.count - 1) }
        guard written == encoded.utf8.count, fsync(fd) == 0 else { throw KeyRingError("cannot write key file '\(path)'") }
    }

    static func hasKeyFiles(_ directory: String) throws -> Bool {
        try FileManager.default.contentsOfDirectory(atPath: directory).contains { $0.hasPrefix(prefix) && $0.hasSuffix(suffix) }
    }

    static func read(directory: String) throws -> [UInt32: (key: SymmetricKey, created: Date)] {
        let fm = FileManager.default
        try checkMode(directory, isDirectory: true)
        var out: [UInt32: (SymmetricKey, Date)] = [:]
        for name in try fm.contentsOfDirectory(atPath: directory) where name.hasPrefix(prefix) && name.hasSuffix(suffix) {
            let path = (directory as NSString).appendingPathComponent(name)
            let versionText = name.dropFirst(prefix.count).dropLast(suffix.count)
            guard let version = UInt32(versionText), version > 0 else { throw KeyRingError("key file '\(path)' has no valid version number") }
            guard out[version] == nil else {
                throw KeyRingError("two key files in '\(directory)' hold v\(version) (e.g. kek-v01.key and kek-v1.key); keep one")
            }
            try checkMode(path, isDirectory: false)
            guard let text = fm.contents(atPath: path).flatMap({ String(data: $0, encoding: .utf8) }),
                  let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32
            else { throw KeyRingError("key file '\(path)' must hold base64 of exactly 32 bytes") }
            let created = (try? fm.attributesOfItem(atPath: path)[.creationDate] as? Date)
                ?? (try? fm.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date(timeIntervalSince1970: 0)
            out[version] = (try SymmetricKey(bytes: raw), created)
        }
        return out
    }

    /// Refuses key material that group or others could read.
    public static func checkMode(_ path: String, isDirectory: Bool) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { throw KeyRingError("cannot stat '\(path)'") }
        if st.st_mode & 0o077 != 0 {
            let fix = isDirectory ? "chmod 700" : "chmod 600"
            throw KeyRingError("'\(path)' is readable by group or others (mode \(String(st.st_mode & 0o777, radix: 8))); run: \(fix) '\(path)'")
        }
    }
}
