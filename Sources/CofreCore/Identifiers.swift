import CofreCrypto

/// Random, opaque identifiers: subject ids, tokens and service keys. None is ever derived from a value.
public enum Identifiers {
    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    /// RFC 4648 base32, lowercase, unpadded: safe in URLs, logs of ids, and shells.
    public static func base32(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer = 0, bits = 0
        for b in bytes {
            buffer = buffer << 8 | Int(b)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return String(decoding: out, as: UTF8.self)
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// `sub_` and 128 random bits.
    public static func newSubject() throws -> String { "sub_" + base32(try Random.bytes(16)) }
    /// `tok_` and 160 random bits.
    public static func newToken() throws -> String { "tok_" + base32(try Random.bytes(20)) }
    /// `cofre_sk_` and 256 random bits.
    public static func newServiceKey() throws -> String { "cofre_sk_" + base32(try Random.bytes(32)) }

    /// Whether `s` has the shape of an identifier with `prefix` (cheap check before any lookup).
    public static func looksLike(_ s: String, prefix: String, length: Int) -> Bool {
        guard s.hasPrefix(prefix), s.utf8.count == prefix.utf8.count + length else { return false }
        return s.utf8.dropFirst(prefix.utf8.count).allSatisfy { alphabet.contains($0) }
    }

    public static func isSubject(_ s: String) -> Bool { looksLike(s, prefix: "sub_", length: 26) }
    public static func isToken(_ s: String) -> Bool { looksLike(s, prefix: "tok_", length: 32) }
}
