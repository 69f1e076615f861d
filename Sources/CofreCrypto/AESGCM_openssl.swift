internal import COpenSSL

/// AES-256-GCM through the system OpenSSL, with a 96-bit random nonce that callers cannot choose.
public enum AESGCM {
    public static let nonceSize = 12
    public static let tagSize = 16

    /// The result of sealing: nonce, ciphertext and tag, kept apart.
    public struct SealedBox: Sendable, Equatable {
        public let nonce: [UInt8]
        public let ciphertext: [UInt8]
        public let tag: [UInt8]
        public init(nonce: [UInt8], ciphertext: [UInt8], tag: [UInt8]) {
            self.nonce = nonce
            self.ciphertext = ciphertext
            self.tag = tag
        }
    }

    /// Encrypts under a fresh nonce from `RAND_bytes`.
    public static func seal(_ plaintext: [UInt8], key: SymmetricKey, aad: [UInt8]) throws(CryptoError) -> SealedBox {
        try seal(plaintext, key: key, aad: aad, nonce: Random.bytes(nonceSize))
    }

    /// The fixed-nonce path, internal so that only known-answer tests reach it.
    static func seal(_ plaintext: [UInt8], key: SymmetricKey, aad: [UInt8], nonce: [UInt8]) throws(CryptoError) -> SealedBox {
        guard nonce.count == nonceSize else { throw CryptoError(.malformed) }
        let ctx = CipherContext()
        guard let raw = ctx.raw else { throw CryptoError(.internalFailure) }
        var out = [UInt8](repeating: 0, count: plaintext.count + 16)
        var tag = [UInt8](repeating: 0, count: tagSize)
        var written: Int32 = 0
        var total = 0
        let ok: Bool = key.withUnsafeBytes { keyBytes in
            guard EVP_EncryptInit_ex(raw, EVP_aes_256_gcm(), nil, nil, nil) == 1,
                  EVP_CIPHER_CTX_ctrl(raw, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceSize), nil) == 1,
                  EVP_EncryptInit_ex(raw, nil, nil, keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self), nonce) == 1
            else { return false }
            if !aad.isEmpty {
                guard EVP_EncryptUpdate(raw, nil, &written, aad, Int32(aad.count)) == 1 else { return false }
            }
            if !plaintext.isEmpty {
                let updated = out.withUnsafeMutableBufferPointer { o in
                    EVP_EncryptUpdate(raw, o.baseAddress, &written, plaintext, Int32(plaintext.count))
                }
                guard updated == 1 else { return false }
                total = Int(written)
            }
            let finished = out.withUnsafeMutableBufferPointer { o in
                EVP_EncryptFinal_ex(raw, o.baseAddress! + total, &written)
            }
            guard finished == 1 else { return false }
            total += Int(written)
            return tag.withUnsafeMutableBytes { t in
                EVP_CIPHER_CTX_ctrl(raw, EVP_CTRL_GCM_GET_TAG, Int32(tagSize), t.baseAddress) == 1
            }
        }
        guard ok else {
            ERR_clear_error()
            throw CryptoError(.internalFailure)
        }
        return SealedBox(nonce: nonce, ciphertext: Array(out[0..<total]), tag: tag)
    }

    /// Decrypts and verifies; any change to nonce, ciphertext, tag or `aad` throws `.integrity`.
    public static func open(_ box: SealedBox, key: SymmetricKey, aad: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard box.nonce.count == nonceSize, box.tag.count == tagSize else { throw CryptoError(.malformed) }
        let ctx = CipherContext()
        guard let raw = ctx.raw else { throw CryptoError(.internalFailure) }
        var out = [UInt8](repeating: 0, count: box.ciphertext.count + 16)
        var written: Int32 = 0
        var total = 0
        var tag = box.tag
        enum Step { case ok, setupFailed, tagMismatch }
        let step: Step = key.withUnsafeBytes { keyBytes in
            guard EVP_DecryptInit_ex(raw, EVP_aes_256_gcm(), nil, nil, nil) == 1,
                  EVP_CIPHER_CTX_ctrl(raw, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceSize), nil) == 1,
                  EVP_DecryptInit_ex(raw, nil, nil, keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self), box.nonce) == 1
            else { return .setupFailed }
            if !aad.isEmpty {
                guard EVP_DecryptUpdate(raw, nil, &written, aad, Int32(aad.count)) == 1 else { return .setupFailed }
            }
            if !box.ciphertext.isEmpty {
                let updated = out.withUnsafeMutableBufferPointer { o in
                    EVP_DecryptUpdate(raw, o.baseAddress, &written, box.ciphertext, Int32(box.ciphertext.count))
                }
                guard updated == 1 else { return .setupFailed }
                total = Int(written)
            }
            let tagSet = tag.withUnsafeMutableBytes { t in
                EVP_CIPHER_CTX_ctrl(raw, EVP_CTRL_GCM_SET_TAG, Int32(tagSize), t.baseAddress)
            }
            guard tagSet == 1 else { return .setupFailed }
            let finished = out.withUnsafeMutableBufferPointer { o in
                EVP_DecryptFinal_ex(raw, o.baseAddress! + total, &written)
            }
            guard finished == 1 else { return .tagMismatch }
            total += Int(written)
            return .ok
        }
        switch step {
        case .ok:
            return Array(out[0..<total])
        case .tagMismatch:
            // Wipe whatever was decrypted before the tag failed: unauthenticated plaintext never leaves.
            out.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
            ERR_clear_error()
            throw CryptoError(.integrity)
        case .setupFailed:
            out.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
            ERR_clear_error()
            throw CryptoError(.internalFailure)
        }
    }
}

/// Owns one `EVP_CIPHER_CTX` and frees it (which also wipes its key schedule).
private final class CipherContext {
    let raw: OpaquePointer?
    init() { raw = EVP_CIPHER_CTX_new() }
    deinit { EVP_CIPHER_CTX_free(raw) }
}
