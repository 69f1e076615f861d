internal import COpenSSL

/// A secret held in one allocation that is wiped with `OPENSSL_cleanse` when released.
///
/// Keys never live in Swift arrays, which may be copied and freed without wiping.
public final class SecureBytes: @unchecked Sendable {
    // Immutable after init: the allocation is written once, then only read.
    private let storage: UnsafeMutableRawBufferPointer

    /// Copies `bytes` into wiped-on-release memory.
    public init<C: Collection>(copying bytes: C) where C.Element == UInt8 {
        storage = .allocate(byteCount: max(bytes.count, 1), alignment: 16)
        _ = storage.initializeMemory(as: UInt8.self, from: bytes)
        count = bytes.count
    }

    /// Fresh random bytes from OpenSSL's CSPRNG.
    public init(randomCount: Int) throws(CryptoError) {
        storage = .allocate(byteCount: max(randomCount, 1), alignment: 16)
        count = randomCount
        guard RAND_bytes(storage.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(randomCount)) == 1 else {
            OPENSSL_cleanse(storage.baseAddress, storage.count)
            storage.deallocate()
            throw CryptoError(.randomFailure)
        }
    }

    public let count: Int

    /// Read access for the duration of `body` only.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: storage.baseAddress, count: count))
    }

    /// Wipes any buffer that held a secret.
    static func cleanse(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        OPENSSL_cleanse(base, buffer.count)
    }

    deinit {
        OPENSSL_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }
}
