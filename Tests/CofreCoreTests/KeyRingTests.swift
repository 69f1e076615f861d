import CofreCore
import CofreCrypto
import CofreTestSupport
import Foundation
import Testing

@Suite("Key ring on disk")
struct KeyRingTests {
    @Test("development start creates kek-v1.key with mode 0600 in a 0700 directory, and warns")
    func createsInDevelopment() throws {
        let dir = try makeTempDirectory() + "/keys"
        let logs = LogCapture()
        let ring = try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: logs.logger).ring
        #expect(ring.versions == [1])
        let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/kek-v1.key")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        #expect((try FileManager.default.attributesOfItem(atPath: dir)[.posixPermissions] as? Int) == 0o700)
        #expect(logs.text.contains("DEVELOPMENT KEY RING CREATED"))
        // Loading again reads the same key rather than making another.
        let again = try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: logs.logger).ring
        #expect(again.versions == [1])
        let sealed = try Envelope.seal([1, 2, 3], key: ring.key(version: 1)!, keyVersion: 1, context: AssociatedData(["t"]))
        #expect(try Envelope.open(sealed, key: again.key(version: 1)!, context: AssociatedData(["t"])) == [1, 2, 3])
    }

    @Test("a development start in a fresh checkout's open keys/ (README only) makes it private, then creates the ring")
    func tightensFreshCheckout() throws {
        let dir = try makeTempDirectory() + "/keys"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        _ = FileManager.default.createFile(atPath: dir + "/README.md", contents: Data("x".utf8))
        #expect(throws: KeyRingError.self) { try KeyRingDirectory.load(directory: dir, allowCreate: false, logger: LogCapture().logger) }
        let ring = try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: LogCapture().logger).ring
        #expect(ring.versions == [1])
        #expect((try FileManager.default.attributesOfItem(atPath: dir)[.posixPermissions] as? Int) == 0o700)
    }

    @Test("without permission to create (production), a missing key ring is refused")
    func refusesInProduction() throws {
        let dir = try makeTempDirectory()
        let error = #expect(throws: KeyRingError.self) {
            try KeyRingDirectory.load(directory: dir + "/keys", allowCreate: false, logger: LogCapture().logger).ring
        }
        #expect(error?.description.contains("production") == true)
        let empty = dir + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let error2 = #expect(throws: KeyRingError.self) {
            try KeyRingDirectory.load(directory: empty, allowCreate: false, logger: LogCapture().logger).ring
        }
        #expect(error2?.description.contains("COFRE_KEK or COFRE_KEK_FILE") == true)
    }

    @Test("a key file or directory readable by group or others is refused with the chmod that fixes it")
    func refusesOpenModes() throws {
        let dir = try makeTempDirectory() + "/keys"
        _ = try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: LogCapture().logger).ring
        chmod(dir + "/kek-v1.key", 0o644)
        let error = #expect(throws: KeyRingError.self) {
            try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: LogCapture().logger).ring
        }
        #expect(error?.description.contains("chmod 600") == true)
        chmod(dir + "/kek-v1.key", 0o600)
        chmod(dir, 0o755)
        let error2 = #expect(throws: KeyRingError.self) {
            try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: LogCapture().logger).ring
        }
        #expect(error2?.description.contains("chmod 700") == true)
    }

    @Test("a key file that is not base64 of 32 bytes is refused")
    func refusesBadKeyFile() throws {
        let dir = try makeTempDirectory() + "/keys"
        _ = try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: LogCapture().logger).ring
        let bad = dir + "/kek-v2.key"
        _ = FileManager.default.createFile(atPath: bad, contents: Data("c2hvcnQ=\n".utf8), attributes: [.posixPermissions: 0o600])
        let error = #expect(throws: KeyRingError.self) {
            try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: LogCapture().logger).ring
        }
        #expect(error?.description.contains("exactly 32 bytes") == true)
    }

    @Test("two key files for one version (kek-v01.key and kek-v1.key) are refused, not one silently chosen")
    func refusesDuplicateVersions() throws {
        let dir = try makeTempDirectory() + "/keys"
        _ = try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: LogCapture().logger).ring
        let other = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() + "\n"
        _ = FileManager.default.createFile(atPath: dir + "/kek-v01.key", contents: Data(other.utf8), attributes: [.posixPermissions: 0o600])
        let error = #expect(throws: KeyRingError.self) {
            try KeyRingDirectory.load(directory: dir, allowCreate: false, logger: LogCapture().logger).ring
        }
        #expect(error?.description.contains("hold v1") == true, "\(error?.description ?? "")")
    }

    @Test("a created development ring is marked, and a marked ring is refused in production")
    func developmentMarker() throws {
        let dir = try makeTempDirectory() + "/keys"
        let created = try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: LogCapture().logger)
        #expect(created.created)
        #expect(FileManager.default.fileExists(atPath: dir + "/" + KeyRingDirectory.developmentMarker))
        #expect(try KeyRingDirectory.load(directory: dir, allowCreate: true, logger: LogCapture().logger).created == false)
        let error = #expect(throws: KeyRingError.self) {
            try KeyRingDirectory.load(directory: dir, allowCreate: false, refuseDevelopment: true, logger: LogCapture().logger)
        }
        #expect(error?.description.contains("COFRE_KEK or COFRE_KEK_FILE") == true)
    }

    @Test("a data key wrapped for one subject and field does not unwrap as another's")
    func wrappedKeysAreBound() async throws {
        let tv = try await TestVault.make()
        let id = DataKeyID(subject: "sub_a", group: "cpf", generation: 1)
        let (_, wrapped) = try tv.vault.dataKeys.generate(id, now: Date())
        _ = try tv.vault.dataKeys.unwrap(wrapped)
        let moved = WrappedDataKey(id: DataKeyID(subject: "sub_b", group: "cpf", generation: 1), kekVersion: 1,
                                   wrapped: wrapped.wrapped, createdAt: wrapped.createdAt)
        #expect(throws: CryptoError(.integrity)) { try tv.vault.dataKeys.unwrap(moved) }
        let regenerated = WrappedDataKey(id: DataKeyID(subject: "sub_a", group: "cpf", generation: 2), kekVersion: 1,
                                         wrapped: wrapped.wrapped, createdAt: wrapped.createdAt)
        #expect(throws: CryptoError(.integrity)) { try tv.vault.dataKeys.unwrap(regenerated) }
    }
}
