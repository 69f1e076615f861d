/// Why a cryptographic operation failed. Carries no key, nonce or plaintext.
public struct CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, stable for callers to switch on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }
        /// The ciphertext, its tag or its associated data do not verify.
        public static let integrity = Code("integrity")
        /// The ciphertext is too short or of an unknown format version.
        public static let malformed = Code("malformed")
        /// A key has the wrong length.
        public static let invalidKey = Code("invalid_key")
        /// The CSPRNG did not deliver.
        public static let randomFailure = Code("random_failure")
        /// OpenSSL refused an operation that should not fail.
        public static let internalFailure = Code("internal_failure")
        public var description: String { raw }
    }

    public let code: Code
    public init(_ code: Code) { self.code = code }
    public var description: String { "crypto error: \(code)" }
}
