import CofreCrypto
import Foundation

/// A bounded in-memory cache of unwrapped data keys, so a reveal need not fetch and unwrap its key on
/// every request. Keys live in wiped memory (`SymmetricKey`); an evicted or dropped key is released and
/// wiped with its last reference. Safe because every key id is unique to one field version: a cached
/// key is used only when a fresh read of the field (every request reads it) still names that version —
/// a correction or erasure anywhere, on any instance, changes the version and the cache is never asked.
/// Keys this instance destroys are dropped at once as well.
final class KeyCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [DataKeyID: (key: SymmetricKey, tick: UInt64)] = [:]
    private var tick: UInt64 = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func get(_ ids: [DataKeyID]) -> [DataKeyID: SymmetricKey] {
        lock.withLock {
            var out: [DataKeyID: SymmetricKey] = [:]
            for id in ids {
                guard var e = entries[id] else { continue }
                tick += 1
                e.tick = tick
                entries[id] = e
                out[id] = e.key
            }
            return out
        }
    }

    func put(_ keys: [DataKeyID: SymmetricKey]) {
        guard capacity > 0, !keys.isEmpty else { return }
        lock.withLock {
            for (id, key) in keys {
                tick += 1
                entries[id] = (key, tick)
            }
            if entries.count > capacity {
                // Evict the least recently used eighth at once, so eviction stays rare.
                let excess = entries.count - capacity + capacity / 8
                for (id, _) in entries.sorted(by: { $0.value.tick < $1.value.tick }).prefix(excess) { entries[id] = nil }
            }
        }
    }

    func drop(_ ids: [DataKeyID]) {
        lock.withLock { for id in ids { entries[id] = nil } }
    }

    func dropSubject(_ subject: String) {
        lock.withLock { entries = entries.filter { $0.key.subject != subject } }
    }

    var count: Int { lock.withLock { entries.count } }
}
