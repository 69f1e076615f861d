import CofreCore
import CofreCrypto
import Foundation

/// The console's server-side sessions (CONTRACT §11): a random id in an `HttpOnly`, `SameSite=Strict`
/// cookie, looked up by its SHA-256; 30 minutes idle; a CSRF token per session. Kept in this
/// instance's memory: behind several instances the console needs sticky sessions (README).
final class ConsoleSessions: @unchecked Sendable {
    struct Session: Sendable {
        let principal: Principal
        let csrf: String
        let opened: Date
        var lastSeen: Date
    }

    static let idle: TimeInterval = 30 * 60
    /// However active, a session ends this long after sign-in.
    static let lifetime: TimeInterval = 12 * 3600
    private var lastPrune = Date.distantPast
    private let lock = NSLock()
    private var sessions: [String: Session] = [:]
    private var attempts: [String: [Date]] = [:]
    private var auditedRefusals: (minute: Int64, count: Int, suppressed: Int) = (0, 0, 0)

    /// Refused sign-ins recorded in the audit log per minute and instance; past it they are counted,
    /// and the next one recorded says how many were left out (the log cannot be flooded by strangers).
    static let auditedRefusalsPerMinute = 60

    /// Login attempts allowed per client address per minute.
    static let loginsPerMinute = 10

    static func digest(_ id: String) -> String { Identifiers.hex(Digest.sha256(Array(id.utf8))) }

    /// A new session for `principal`; returns its id (the cookie's value).
    func open(_ principal: Principal, now: Date) throws -> (id: String, session: Session) {
        let id = Identifiers.base32(try Random.bytes(32))
        let session = Session(principal: principal, csrf: Identifiers.base32(try Random.bytes(32)), opened: now, lastSeen: now)
        lock.withLock {
            // Expired sessions go as new ones come.
            sessions = sessions.filter { now.timeIntervalSince($0.value.lastSeen) <= Self.idle }
            sessions[Self.digest(id)] = session
        }
        return (id, session)
    }

    /// The live session of this cookie value, touched; nil when unknown or idle for more than 30 minutes.
    func session(_ id: String?, now: Date) -> Session? {
        guard let id, !id.isEmpty, id.count <= 128 else { return nil }
        let key = Self.digest(id)
        return lock.withLock {
            guard var s = sessions[key] else { return nil }
            guard now.timeIntervalSince(s.lastSeen) <= Self.idle, now.timeIntervalSince(s.opened) <= Self.lifetime else {
                sessions[key] = nil
                return nil
            }
            s.lastSeen = now
            sessions[key] = s
            return s
        }
    }

    func close(_ id: String?) {
        guard let id else { return }
        _ = lock.withLock { sessions.removeValue(forKey: Self.digest(id)) }
    }

    /// Whether a refused sign-in goes to the audit log now, and how many were left out before it.
    func auditRefusal(now: Date) -> (record: Bool, suppressed: Int) {
        lock.withLock {
            let minute = Int64(now.timeIntervalSince1970 / 60)
            if auditedRefusals.minute != minute { auditedRefusals = (minute, 0, auditedRefusals.suppressed) }
            guard auditedRefusals.count < Self.auditedRefusalsPerMinute else {
                auditedRefusals.suppressed += 1
                return (false, 0)
            }
            auditedRefusals.count += 1
            let left = auditedRefusals.suppressed
            auditedRefusals.suppressed = 0
            return (true, left)
        }
    }

    /// Counts a login attempt from `client`; false when it is over the minute's allowance.
    func allowLogin(from client: String, now: Date) -> Bool {
        lock.withLock {
            let recent = (attempts[client] ?? []).filter { now.timeIntervalSince($0) < 60 }
            // Forgotten clients go every 10 seconds, not on every attempt (the map stays small and cheap).
            if now.timeIntervalSince(lastPrune) > 10 {
                attempts = attempts.filter { $0.value.contains { now.timeIntervalSince($0) < 60 } }
                lastPrune = now
            }
            guard recent.count < Self.loginsPerMinute else {
                attempts[client] = recent
                return false
            }
            attempts[client] = recent + [now]
            return true
        }
    }
}
