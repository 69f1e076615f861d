internal import COpenSSL

/// HMAC-SHA-256, SHA-256 and constant-time comparison through the system OpenSSL.
public enum Digest {
    /// HMAC-SHA-256 of `data` under `key`.
    public static func hmacSHA256(key: SymmetricKey, _ data: [UInt8]) -> [UInt8] {
        var md = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 32
        let result = key.withUnsafeBytes { k in
            md.withUnsafeMutableBufferPointer { m in
                data.withUnsafeBufferPointer { d in
                    HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), d.baseAddress, d.count, m.baseAddress, &len)
                }
            }
        }
        // HMAC over SHA-256 with an in-memory key cannot fail short of memory exhaustion.
        precondition(result != nil && len == 32, "HMAC-SHA-256 failed")
        return md
    }

    /// HMAC-SHA-256 under a key of any length (known-answer tests; webhook secrets, which the
    /// receivers choose).
    public static func hmacSHA256(rawKey: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var md = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 32
        let result = md.withUnsafeMutableBufferPointer { m in
            HMAC(EVP_sha256(), rawKey, Int32(rawKey.count), data, data.count, m.baseAddress, &len)
        }
        precondition(result != nil && len == 32, "HMAC-SHA-256 failed")
        return md
    }

    /// SHA-256 of `data`.
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var md = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 32
        let ok = md.withUnsafeMutableBufferPointer { m in
            data.withUnsafeBufferPointer { d in
                EVP_Digest(d.baseAddress, d.count, m.baseAddress, &len, EVP_sha256(), nil)
            }
        }
        precondition(ok == 1 && len == 32, "SHA-256 failed")
        return md
    }

    /// Compares two byte strings in time that depends only on their lengths.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 }
        }
    }
}
