/// A 256-bit key for AES-256-GCM or HMAC-SHA-256, held in wiped memory.
public struct SymmetricKey: Sendable {
    public static let byteCount = 32
    let bytes: SecureBytes

    /// A fresh random key from `RAND_bytes`.
    public static func generate() throws(CryptoError) -> SymmetricKey {
        SymmetricKey(unchecked: try SecureBytes(randomCount: byteCount))
    }

    /// A key from existing material (a key file, an unwrapped data key).
    public init<C: Collection>(bytes: C) throws(CryptoError) where C.Element == UInt8 {
        guard bytes.count == Self.byteCount else { throw CryptoError(.invalidKey) }
        self.bytes = SecureBytes(copying: bytes)
    }

    private init(unchecked: SecureBytes) { bytes = unchecked }

    /// Hands the raw key to `body`, for wrapping or writing a key file.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try bytes.withUnsafeBytes(body)
    }
}
