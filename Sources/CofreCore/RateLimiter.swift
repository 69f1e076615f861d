import Foundation

/// Per-service, per-minute quotas as token buckets held by this instance (CONTRACT §4 v2): with N
/// instances behind a balancer a service may get up to N× its quota in all. A bucket holds one
/// minute's quota and refills continuously.
public final class RateLimiter: @unchecked Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case reveals, lookups, writes
    }

    struct Bucket {
        var tokens: Double
        var updated: Date
    }

    private let lock = NSLock()
    private var buckets: [String: Bucket] = [:]

    public init() {}

    /// Takes `count` units of `kind` for `service`: nil when allowed, else how many seconds until the
    /// call could pass (a call larger than a whole minute's quota never can: 60).
    func take(_ count: Int, _ kind: Kind, service: String, perMinute: Int, now: Date) -> TimeInterval? {
        let capacity = Double(perMinute), rate = capacity / 60
        return lock.withLock {
            let key = service + "/" + kind.rawValue
            var b = buckets[key] ?? Bucket(tokens: capacity, updated: now)
            b.tokens = min(capacity, b.tokens + max(0, now.timeIntervalSince(b.updated)) * rate)
            b.updated = now
            defer { buckets[key] = b }
            if Double(count) <= b.tokens {
                b.tokens -= Double(count)
                return nil
            }
            if Double(count) > capacity { return 60 }
            return (Double(count) - b.tokens) / rate
        }
    }
}

/// Watches each service's reveals per minute against its own trailing hourly average, so a stolen key
/// draining the vault shows up within a minute even under its quota.
public final class RevealMonitor: @unchecked Sendable {
    /// A minute below this many reveals never raises an alert (a quiet service's first busy minute is not an incident).
    public static let minimumAlertCount = 100

    struct Series {
        /// Reveals per minute, indexed by minute since the epoch modulo 61.
        var counts = [Int](repeating: 0, count: 61)
        var minutes = [Int64](repeating: -1, count: 61)
        var alerted: Int64 = -1
    }

    private let lock = NSLock()
    private var series: [String: Series] = [:]

    public init() {}

    /// Records `count` reveals; returns the minute's count and the trailing average when this minute
    /// just crossed `factor` × the average of the previous 60 minutes (once per minute and service).
    func record(_ count: Int, service: String, factor: Int, now: Date) -> (count: Int, average: Double)? {
        let minute = Int64((now.timeIntervalSince1970 / 60).rounded(.down))
        return lock.withLock {
            var s = series[service] ?? Series()
            defer { series[service] = s }
            let slot = Int(minute % 61)
            if s.minutes[slot] != minute {
                s.minutes[slot] = minute
                s.counts[slot] = 0
            }
            s.counts[slot] += count
            var previous = 0
            for i in 0..<61 where s.minutes[i] >= minute - 60 && s.minutes[i] < minute { previous += s.counts[i] }
            let average = Double(previous) / 60
            let current = s.counts[slot]
            guard s.alerted != minute, current >= Self.minimumAlertCount, Double(current) > Double(factor) * max(average, 1) else { return nil }
            s.alerted = minute
            return (current, average)
        }
    }
}
