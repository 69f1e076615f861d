internal import COpenSSL

/// Non-secret random bytes (identifiers, tokens) from OpenSSL's CSPRNG.
public enum Random {
    public static func bytes(_ count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        guard ok == 1 else { throw CryptoError(.randomFailure) }
        return out
    }
}
