import CofreCore
import CofreCrypto
import Foundation

extension TestVault {
    /// What must hold after any interleaving of writes, corrections and erasures (CONTRACT §4
    /// "Concurrency"), checked below the API: every field version the vault holds as active or blocked
    /// has its data key and decrypts; an erased subject has no active field, and the key store keeps
    /// none of its keys but its retained fields'. Returns one line per violation (ids only, no values).
    public func invariantViolations(subjects: [String]) async throws -> [String] {
        var out: [String] = []
        for s in subjects {
            let status = try await vault.store.subject(id: s)?.status
            let fields = try await vault.store.fields(subject: s)
            let live = fields.filter(\.needsKey)
            let keys = try await vault.dataKeys.load(live.map(\.keyID))
            for f in live {
                guard let key = keys[f.keyID] else {
                    out.append("\(s)/\(f.field): \(f.status.rawValue) without its data key")
                    continue
                }
                do {
                    _ = try Envelope.open(f.ciphertext, key: key, context: Vault.valueContext(subject: s, field: f.field))
                } catch {
                    out.append("\(s)/\(f.field): \(f.status.rawValue) but does not decrypt")
                }
            }
            if status == .erased {
                if let f = fields.first(where: { $0.status == .active }) { out.append("\(s)/\(f.field): active on an erased subject") }
                let needed = Set(live.map(\.keyID))
                let extra = try await vault.dataKeys.store.ids(subject: s).filter { !needed.contains($0) }
                if !extra.isEmpty { out.append("\(s): erased, yet \(extra.count) key(s) of erased groups remain") }
            }
        }
        return out
    }
}
