import CofreCrypto
import Foundation

/// A bounded in-memory cache of unwrapped data keys, so a reveal need not fetch and unwrap its key on
/// every request. Keys live in wiped memory (`SymmetricKey`); an evicted, expired or dropped key is
/// released and wiped with its last reference. Sound because every key id is unique to one field
/// version: a cached key is used only when a fresh read of the field (every request reads it) still
/// names that version — a correction or erasure anywhere, on any instance, changes the version and the
/// cache is never asked. Keys this instance destroys are dropped at once, and a load that raced a drop
/// does not put its keys back. Entries expire after `ttl`, which bounds the one case the fresh read
/// cannot cover: a data store rolled back (a restored backup, a failover to a standby that missed an
/// erasure) while instances hold a key another instance destroyed.
final class KeyCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [DataKeyID: (key: SymmetricKey, tick: UInt64, expires: ContinuousClock.Instant)] = [:]
    private var tick: UInt64 = 0
    /// Bumped by every drop: a load that began before a drop must not cache what it fetched.
    private var epoch: UInt64 = 0
    let capacity: Int
    let ttl: Duration

    init(capacity: Int, ttl: Duration = .seconds(60)) {
        self.capacity = capacity
        self.ttl = ttl
    }

    /// The drop epoch, read before fetching from the store.
    var currentEpoch: UInt64 { lock.withLock { epoch } }

    func get(_ ids: [DataKeyID]) -> [DataKeyID: SymmetricKey] {
        let now = ContinuousClock.now
        return lock.withLock {
            var out: [DataKeyID: SymmetricKey] = [:]
            for id in ids {
                guard var e = entries[id] else { continue }
                guard e.expires > now else {
                    entries[id] = nil
                    continue
                }
                tick += 1
                e.tick = tick
                entries[id] = e
                out[id] = e.key
            }
            return out
        }
    }

    /// Caches keys fetched by a load that started at `epoch`, unless a drop happened since.
    func put(_ keys: [DataKeyID: SymmetricKey], loadedAt epoch: UInt64) {
        guard capacity > 0, !keys.isEmpty else { return }
        let expires = ContinuousClock.now + ttl
        lock.withLock {
            guard epoch == self.epoch else { return }
            for (id, key) in keys {
                tick += 1
                entries[id] = (key, tick, expires)
            }
            if entries.count > capacity {
                // Evict the least recently used eighth at once, so eviction stays rare.
                let excess = entries.count - capacity + capacity / 8
                for (id, _) in entries.sorted(by: { $0.value.tick < $1.value.tick }).prefix(excess) { entries[id] = nil }
            }
        }
    }

    func drop(_ ids: [DataKeyID]) {
        lock.withLock {
            epoch += 1
            for id in ids { entries[id] = nil }
        }
    }

    var count: Int { lock.withLock { entries.count } }
}
