@testable import CofreCrypto
import Testing

func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = s.makeIterator()
    while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}

/// Known answers from McGrew & Viega, "The Galois/Counter Mode of Operation", AES-256 test cases.
struct GCMVector: Sendable, CustomTestStringConvertible {
    let name: String, key: String, iv: String, plaintext: String, aad: String, ciphertext: String, tag: String
    var testDescription: String { name }
}

@Suite("AES-256-GCM over OpenSSL")
struct AESGCMTests {
    static let vectors = [
        GCMVector(name: "test case 13", key: String(repeating: "00", count: 32), iv: String(repeating: "00", count: 12),
                  plaintext: "", aad: "", ciphertext: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
        GCMVector(name: "test case 14", key: String(repeating: "00", count: 32), iv: String(repeating: "00", count: 12),
                  plaintext: String(repeating: "00", count: 16), aad: "", ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
                  tag: "d0d1c8a799996bf0265b98b5d48ab919"),
        GCMVector(name: "test case 15",
                  key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888",
                  plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
                  aad: "",
                  ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
                  tag: "b094dac5d93471bdec1a502270e3cc6c"),
        GCMVector(name: "test case 16",
                  key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: "cafebabefacedbaddecaf888",
                  plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
                  aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
                  ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                  tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    @Test("known answers seal and open", arguments: vectors)
    func knownAnswer(_ v: GCMVector) throws {
        let key = try SymmetricKey(bytes: hex(v.key))
        let box = try AESGCM.seal(hex(v.plaintext), key: key, aad: hex(v.aad), nonce: hex(v.iv))
        #expect(box.ciphertext == hex(v.ciphertext))
        #expect(box.tag == hex(v.tag))
        #expect(try AESGCM.open(box, key: key, aad: hex(v.aad)) == hex(v.plaintext))
    }

    @Test("a wrong tag, ciphertext or aad in a known answer fails with .integrity", arguments: vectors)
    func knownAnswerTampered(_ v: GCMVector) throws {
        let key = try SymmetricKey(bytes: hex(v.key))
        var tag = hex(v.tag)
        tag[0] ^= 1
        let box = AESGCM.SealedBox(nonce: hex(v.iv), ciphertext: hex(v.ciphertext), tag: tag)
        #expect(throws: CryptoError(.integrity)) { try AESGCM.open(box, key: key, aad: hex(v.aad)) }
        let good = AESGCM.SealedBox(nonce: hex(v.iv), ciphertext: hex(v.ciphertext), tag: hex(v.tag))
        #expect(throws: CryptoError(.integrity)) { try AESGCM.open(good, key: key, aad: hex(v.aad) + [0]) }
    }

    @Test("every seal draws a fresh 96-bit nonce")
    func freshNonces() throws {
        let key = try SymmetricKey.generate()
        var nonces = Set<[UInt8]>()
        for _ in 0..<1000 {
            let box = try AESGCM.seal(Array("same".utf8), key: key, aad: [])
            #expect(box.nonce.count == 12)
            nonces.insert(box.nonce)
        }
        #expect(nonces.count == 1000)
    }

    @Test("keys must be exactly 32 bytes")
    func keyLength() {
        #expect(throws: CryptoError(.invalidKey)) { try SymmetricKey(bytes: [UInt8](repeating: 1, count: 16)) }
        #expect(throws: CryptoError(.invalidKey)) { try SymmetricKey(bytes: [UInt8](repeating: 1, count: 33)) }
    }
}

@Suite("Envelope: versioned ciphertext bound to its context")
struct EnvelopeTests {
    let key: SymmetricKey
    let context = AssociatedData(["cofre.value.v1", "sub_a", "cpf"])
    let sealed: [UInt8]
    init() throws {
        key = try SymmetricKey.generate()
        sealed = try Envelope.seal(Array("12345678909".utf8), key: key, keyVersion: 7, context: context)
    }

    @Test("layout: format byte, key version, nonce, ciphertext, tag")
    func layout() throws {
        #expect(sealed[0] == 1)
        #expect(try Envelope.keyVersion(of: sealed) == 7)
        #expect(sealed.count == 1 + 4 + 12 + 11 + 16)
        #expect(try Envelope.open(sealed, key: key, context: context) == Array("12345678909".utf8))
    }

    @Test("flipping any single byte fails with an integrity or format error, never garbage")
    func flipEveryByte() throws {
        for i in sealed.indices {
            var t = sealed
            t[i] ^= 0x01
            do {
                _ = try Envelope.open(t, key: key, context: context)
                Issue.record("byte \(i) flipped still opened")
            } catch {
                // Byte 0 is the format version: it is refused as malformed before decryption.
                #expect(error.code == (i == 0 ? .malformed : .integrity), "byte \(i)")
            }
        }
    }

    @Test("truncating at any length fails")
    func truncate() throws {
        for n in 0..<sealed.count {
            #expect(throws: CryptoError.self) { try Envelope.open(Array(sealed.prefix(n)), key: key, context: context) }
        }
    }

    @Test("moving a ciphertext to another subject or field fails", arguments: [
        ["cofre.value.v1", "sub_b", "cpf"], ["cofre.value.v1", "sub_a", "phone"], ["cofre.value.v1", "sub_acpf", ""],
    ])
    func moved(_ parts: [String]) throws {
        #expect(throws: CryptoError(.integrity)) { try Envelope.open(sealed, key: key, context: AssociatedData(parts)) }
    }

    @Test("another key fails")
    func otherKey() throws {
        #expect(throws: CryptoError(.integrity)) { try Envelope.open(sealed, key: SymmetricKey.generate(), context: context) }
    }
}

@Suite("HMAC-SHA-256, SHA-256 and constant-time comparison")
struct DigestTests {
    @Test("RFC 4231 test cases 1 and 2")
    func rfc4231() {
        #expect(Digest.hmacSHA256(rawKey: [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8))
            == hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"))
        #expect(Digest.hmacSHA256(rawKey: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))
            == hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
    }

    @Test("SHA-256 of 'abc' (FIPS 180-2)")
    func sha256() {
        #expect(Digest.sha256(Array("abc".utf8)) == hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
    }

    @Test("constant-time equality")
    func equality() {
        #expect(Digest.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!Digest.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!Digest.constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(Digest.constantTimeEquals([], []))
    }
}
