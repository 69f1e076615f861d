public import CofreCrypto
public import Foundation

/// A service's webhook (CONTRACT §9): where it is told, and the environment variable that holds the
/// signing secret. The secret itself never sits in the policy file.
public struct Webhook: Sendable, Equatable {
    public let url: String
    public let secretEnv: String
    public init(url: String, secretEnv: String) {
        self.url = url
        self.secretEnv = secretEnv
    }

    /// Why a URL cannot be a receiver, or nil: it must be `https://HOST…`, or plain `http://` to a
    /// loopback address (development and tests), without credentials or a fragment.
    public static func urlProblem(_ raw: String) -> String? {
        guard let c = URLComponents(string: raw), let scheme = c.scheme?.lowercased(), let host = c.host, !host.isEmpty else {
            return "an absolute https:// URL"
        }
        if c.user != nil || c.password != nil { return "a URL without credentials (the secret signs each request instead)" }
        if c.fragment != nil { return "a URL without a fragment" }
        switch scheme {
        case "https": return nil
        case "http": return isLoopback(host) ? nil : "an https:// URL (plain http:// only to a loopback address)"
        default: return "an https:// URL"
        }
    }

    /// `localhost`, `127.0.0.0/8` or `::1`.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if h == "localhost" || h == "::1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { p in UInt8(p).map { _ in p.allSatisfy(\.isNumber) } ?? false }
    }

    static func isEnvironmentName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 128 && s.first.map { !$0.isNumber } == true
            && s.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }
}

/// The signing secrets of the policy's webhooks, read from the environment at start.
public struct WebhookSecrets: Sendable {
    let byService: [String: [UInt8]]

    public struct Missing: Error, CustomStringConvertible {
        public let service: String
        public let variable: String
        public let problem: String
        public var description: String { "service '\(service)': webhook secret \(variable) \(problem)" }
    }

    /// Every webhook's secret from `environment`. A Standard Webhooks secret (`whsec_` and base64) is
    /// used as its decoded bytes; any other text as its UTF-8 bytes. At least 16 bytes.
    public static func resolve(_ policy: Policy, environment: [String: String]) throws -> WebhookSecrets {
        var out: [String: [UInt8]] = [:]
        for service in policy.services.values.sorted(by: { $0.name < $1.name }) {
            guard let hook = service.webhook else { continue }
            guard let raw = environment[hook.secretEnv], !raw.isEmpty else {
                throw Missing(service: service.name, variable: hook.secretEnv, problem: "is not set")
            }
            let bytes: [UInt8]
            if raw.hasPrefix("whsec_") {
                guard let decoded = Data(base64Encoded: String(raw.dropFirst(6))) else {
                    throw Missing(service: service.name, variable: hook.secretEnv, problem: "starts with whsec_ but the rest is not base64")
                }
                bytes = Array(decoded)
            } else {
                bytes = Array(raw.utf8)
            }
            guard bytes.count >= 16 else {
                throw Missing(service: service.name, variable: hook.secretEnv, problem: "is shorter than 16 bytes")
            }
            out[service.name] = bytes
        }
        return WebhookSecrets(out)
    }

    public init(_ byService: [String: [UInt8]]) { self.byService = byService }
    public subscript(service service: String) -> [UInt8]? { byService[service] }
}

/// The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA-256 of `id.timestamp.body`.
public enum WebhookSignature {
    public static func sign(id: String, timestamp: Int64, body: [UInt8], secret: [UInt8]) -> String {
        let signed = Array("\(id).\(timestamp).".utf8) + body
        return "v1," + Data(Digest.hmacSHA256(rawKey: secret, signed)).base64EncodedString()
    }
}

/// A notification written with the change it reports (the outbox), before it is fanned out to the
/// recipients that the audit log names.
public struct OutboxEvent: Sendable, Equatable {
    public let id: String
    public let type: NotificationType
    public let subject: String
    public let fields: [String]
    public let purpose: String?
    public let at: Date
    public init(id: String, type: NotificationType, subject: String, fields: [String], purpose: String?, at: Date) {
        self.id = id
        self.type = type
        self.subject = subject
        self.fields = fields
        self.purpose = purpose
        self.at = at
    }
}

/// One notification's delivery to one recipient, as stored. `body` is the exact JSON every attempt sends.
public struct DeliveryRecord: Sendable, Equatable {
    public typealias Status = DeliveryStatus
    /// Store order (the listing's cursor); 0 before insertion.
    public var seq: Int64
    public let id: String
    public let event: String
    public let service: String
    public let type: NotificationType
    public let subject: String
    public let body: String
    public var status: Status
    public var attempts: Int
    public let createdAt: Date
    public var nextAttemptAt: Date
    public var retryUntil: Date
    public var lastAttemptAt: Date?
    public var lastOutcome: String?
    public var deliveredAt: Date?

    public init(seq: Int64 = 0, id: String, event: String, service: String, type: NotificationType, subject: String, body: String,
                status: Status = .pending, attempts: Int = 0, createdAt: Date, nextAttemptAt: Date, retryUntil: Date,
                lastAttemptAt: Date? = nil, lastOutcome: String? = nil, deliveredAt: Date? = nil) {
        self.seq = seq
        self.id = id
        self.event = event
        self.service = service
        self.type = type
        self.subject = subject
        self.body = body
        self.status = status
        self.attempts = attempts
        self.createdAt = createdAt
        self.nextAttemptAt = nextAttemptAt
        self.retryUntil = retryUntil
        self.lastAttemptAt = lastAttemptAt
        self.lastOutcome = lastOutcome
        self.deliveredAt = deliveredAt
    }
}

/// One try of a delivery, for its attempt log.
public struct DeliveryAttemptRecord: Sendable, Equatable {
    public let delivery: String
    public let attempt: Int
    public let at: Date
    public let outcome: String
    public let httpStatus: Int?
    public let durationMs: Int
    public init(delivery: String, attempt: Int, at: Date, outcome: String, httpStatus: Int?, durationMs: Int) {
        self.delivery = delivery
        self.attempt = attempt
        self.at = at
        self.outcome = outcome
        self.httpStatus = httpStatus
        self.durationMs = durationMs
    }
}

/// Filters for reading deliveries, oldest first.
public struct DeliveryQuery: Sendable, Equatable {
    public var id: String?
    public var status: DeliveryStatus?
    public var service: String?
    public var subject: String?
    /// Only pending deliveries whose next attempt is due at this time.
    public var dueAt: Date?
    public var after: Int64?
    public var limit: Int
    public init(id: String? = nil, status: DeliveryStatus? = nil, service: String? = nil, subject: String? = nil, dueAt: Date? = nil,
                after: Int64? = nil, limit: Int = 100) {
        self.id = id
        self.status = status
        self.service = service
        self.subject = subject
        self.dueAt = dueAt
        self.after = after
        self.limit = limit
    }
}

/// What happened when a notification was posted.
public enum WebhookSendResult: Sendable, Equatable {
    /// The receiver answered with this status (a 3xx is never followed).
    case status(Int)
    case timeout
    case connectionFailed
    /// The URL was refused before any connection (not https, and not loopback).
    case urlRefused
}

/// Posts one signed notification. The HTTP layer supplies the real one; the domain knows no HTTP.
public protocol WebhookTransport: Sendable {
    func post(url: String, headers: [(String, String)], body: [UInt8]) async -> WebhookSendResult
}

/// How notifications are fanned out and retried.
public struct DeliveryConfig: Sendable {
    /// How long a change waits before its recipients are read from the audit log, so that reveals in
    /// flight when it committed have their events written.
    public var settle: TimeInterval = 2
    /// The first retry's delay; each further one doubles, up to `maxDelay`, with jitter (50–100 %).
    public var retryBase: TimeInterval = 30
    public var maxDelay: TimeInterval = 3600
    /// Failures are retried for this long after the delivery was created (at least 24 hours).
    public var retryFor: TimeInterval = 86400
    /// How long an instance holds a delivery it is trying; another instance may take it after that.
    public var lease: TimeInterval = 60
    /// Deliveries to one recipient tried at once by one instance, per round.
    public var concurrency = 4
    public init(settle: TimeInterval = 2, retryBase: TimeInterval = 30, maxDelay: TimeInterval = 3600, retryFor: TimeInterval = 86400,
                lease: TimeInterval = 60, concurrency: Int = 4) {
        self.settle = settle
        self.retryBase = retryBase
        self.maxDelay = maxDelay
        self.retryFor = retryFor
        self.lease = lease
        self.concurrency = concurrency
    }

    /// The delay before retry number `attempt` (1-based), with jitter drawn from `unit` in 0…1.
    public func backoff(after attempt: Int, unit: Double) -> TimeInterval {
        let exponential = retryBase * pow(2, Double(min(max(attempt - 1, 0), 30)))
        return min(exponential, maxDelay) * (0.5 + 0.5 * min(max(unit, 0), 1))
    }
}
