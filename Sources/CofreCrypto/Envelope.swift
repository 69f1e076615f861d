/// The versioned ciphertext format every stored secret uses.
///
/// Layout: `format (1 byte, 0x01) ‖ key version (4 bytes, big-endian) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
/// The associated data is the 5-byte header followed by the caller's context (subject, field, …),
/// so a ciphertext moved to another row, or relabelled with another key version, fails to open.
public enum Envelope {
    public static let formatVersion: UInt8 = 1
    static let headerSize = 5
    static let minimumSize = headerSize + AESGCM.nonceSize + AESGCM.tagSize

    /// Encrypts `plaintext` under `key`, labelled with `keyVersion` and bound to `context`.
    public static func seal(_ plaintext: [UInt8], key: SymmetricKey, keyVersion: UInt32, context: AssociatedData) throws(CryptoError) -> [UInt8] {
        let header = header(keyVersion)
        let box = try AESGCM.seal(plaintext, key: key, aad: header + context.bytes)
        return header + box.nonce + box.ciphertext + box.tag
    }

    /// The key version written in an envelope's header, to pick the key that opens it.
    public static func keyVersion(of envelope: [UInt8]) throws(CryptoError) -> UInt32 {
        guard envelope.count >= minimumSize, envelope[0] == formatVersion else { throw CryptoError(.malformed) }
        return envelope[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    /// Verifies and decrypts; a wrong key, context, header or any flipped byte throws `.integrity`.
    public static func open(_ envelope: [UInt8], key: SymmetricKey, context: AssociatedData) throws(CryptoError) -> [UInt8] {
        _ = try keyVersion(of: envelope)
        let n = envelope.count
        let header = Array(envelope[0..<headerSize])
        let box = AESGCM.SealedBox(
            nonce: Array(envelope[headerSize..<headerSize + AESGCM.nonceSize]),
            ciphertext: Array(envelope[headerSize + AESGCM.nonceSize..<n - AESGCM.tagSize]),
            tag: Array(envelope[n - AESGCM.tagSize..<n])
        )
        return try AESGCM.open(box, key: key, aad: header + context.bytes)
    }

    /// Seals UTF-8 text, wiping the temporary plaintext buffer afterwards.
    public static func sealText(_ text: String, key: SymmetricKey, keyVersion: UInt32, context: AssociatedData) throws(CryptoError) -> [UInt8] {
        var plain = Array(text.utf8)
        defer { wipe(&plain) }
        return try seal(plain, key: key, keyVersion: keyVersion, context: context)
    }

    /// Opens an envelope whose plaintext is UTF-8 text, and wipes the decrypted buffer once the string
    /// is made (the string itself is the caller's to drop as soon as it can).
    public static func openText(_ envelope: [UInt8], key: SymmetricKey, context: AssociatedData) throws(CryptoError) -> String {
        var plain = try open(envelope, key: key, context: context)
        defer { wipe(&plain) }
        return String(decoding: plain, as: UTF8.self)
    }

    /// Overwrites a buffer that held a secret (OPENSSL_cleanse cannot be optimised away).
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { SecureBytes.cleanse($0) }
    }

    static func header(_ keyVersion: UInt32) -> [UInt8] {
        [formatVersion, UInt8(keyVersion >> 24), UInt8(keyVersion >> 16 & 0xff), UInt8(keyVersion >> 8 & 0xff), UInt8(keyVersion & 0xff)]
    }
}

/// Unambiguous associated data: each part is written as a 4-byte big-endian length and its UTF-8 bytes.
public struct AssociatedData: Sendable, Equatable {
    public let bytes: [UInt8]

    public init(_ parts: [String]) {
        var out: [UInt8] = []
        for part in parts {
            let utf8 = Array(part.utf8)
            let n = UInt32(utf8.count)
            out += [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
            out += utf8
        }
        bytes = out
    }
}
