import Logging
import CofreCrypto
public import Foundation

extension Vault {
    /// A service key's stored form: SHA-256 of a 256-bit random key (no slow hash needed at that entropy).
    static func credentialHash(_ key: String) -> String { Identifiers.hex(Digest.sha256(Array(key.utf8))) }

    /// Resolves `Authorization: Bearer …` to a principal. Every failure is the same 401.
    public func authenticate(bearer: String?) async throws(VaultError) -> Principal {
        let unauthenticated = VaultError(.unauthenticated, .unauthenticated, "a valid service key is required")
        guard let bearer, Identifiers.looksLike(bearer, prefix: "cofre_sk_", length: 52) else { throw unauthenticated }
        let hash = Self.credentialHash(bearer)
        let found: CredentialRecord?
        do {
            found = try await store.credential(keyHash: hash)
        } catch {
            throw mapStore(error)
        }
        guard let found, Digest.constantTimeEquals(Array(found.keyHash.utf8), Array(hash.utf8)), found.revokedAt == nil,
              let service = policy.services[found.service]
        else { throw unauthenticated }
        return Principal(policy: service, credentialID: found.id)
    }

    /// Issues a new key for a service named in the policy. The key is returned once and never stored.
    public func issueServiceKey(service: String) async throws -> String {
        guard policy.services[service] != nil else {
            throw VaultError(.notFound, .serviceUnknown, "'\(service)' is not a service in the policy")
        }
        let key = try Identifiers.newServiceKey()
        let record = CredentialRecord(
            id: "cred_" + Identifiers.base32(try Random.bytes(10)), service: service, keyHash: Self.credentialHash(key),
            createdAt: now)
        var a = draft(nil, action: .serviceIssue, requestID: nil, decision: .allow, ref: record.id)
        a.target = service
        do {
            _ = try await store.commit(WriteBatch([.insertCredential(record)], audit: [a]))
        } catch {
            throw mapStore(error)
        }
        return key
    }

    /// Revokes every live key of a service; returns how many were revoked.
    public func revokeServiceKeys(service: String) async throws -> Int {
        guard policy.services[service] != nil else {
            throw VaultError(.notFound, .serviceUnknown, "'\(service)' is not a service in the policy")
        }
        do {
            let live = try await store.credentials().filter { $0.service == service && $0.revokedAt == nil }.map(\.id)
            var audit = draft(nil, action: .serviceRevoke, requestID: nil, decision: .allow, code: "revoked_\(live.count)")
            audit.target = service
            _ = try await store.commit(WriteBatch([.revokeCredentials(ids: live, at: now)], audit: [audit]))
            return live.count
        } catch {
            throw mapStore(error)
        }
    }

    /// One line per service of the policy, with its live and revoked key counts.
    public struct ServiceStatus: Sendable, Codable, Equatable {
        public let service: String
        public let role: String
        public let activeKeys: Int
        public let revokedKeys: Int
        public let lastIssued: Date?
    }

    public func serviceStatuses() async throws -> [ServiceStatus] {
        let all: [CredentialRecord]
        do { all = try await store.credentials() } catch { throw mapStore(error) }
        return policy.services.values.sorted { $0.name < $1.name }.map { svc in
            let mine = all.filter { $0.service == svc.name }
            return ServiceStatus(
                service: svc.name, role: svc.role.rawValue, activeKeys: mine.filter { $0.revokedAt == nil }.count,
                revokedKeys: mine.filter { $0.revokedAt != nil }.count, lastIssued: mine.map(\.createdAt).max())
        }
    }
}
