public import Foundation
import CofreTestSupport
import Hummingbird
import Logging
import NIOCore

/// A real HTTP receiver on a loopback port, as a recipient of the vault's notifications would run one.
/// It records every request and answers as scripted: a status, or hanging past the sender's timeout.
public final class WebhookReceiver: @unchecked Sendable {
    public struct Hit: Sendable {
        public let path: String
        /// Header names in lower case.
        public let headers: [String: String]
        public let body: Data
        public var text: String { String(decoding: body, as: UTF8.self) }

        /// Whether a receiver that follows the published algorithm (Standard Webhooks) accepts this
        /// request's signature under `secret`: checked by Python's hmac module, as the README's receiver
        /// code does, not by the vault's own code.
        public func verifies(secret: String) throws -> Bool {
            let script = """
                import base64, hashlib, hmac, json, sys
                d = json.load(sys.stdin)
                secret = d["secret"]
                key = base64.b64decode(secret[len("whsec_"):]) if secret.startswith("whsec_") else secret.encode()
                signed = (d["id"] + "." + d["timestamp"] + ".").encode() + base64.b64decode(d["body"])
                expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
                ok = any(hmac.compare_digest(expected, s.split(",", 1)[1]) for s in d["signature"].split() if s.startswith("v1,"))
                print("ok" if ok else "bad")
                """
            let input: [String: String] = ["secret": secret, "id": headers["webhook-id"] ?? "", "timestamp": headers["webhook-timestamp"] ?? "",
                                           "signature": headers["webhook-signature"] ?? "", "body": body.base64EncodedString()]
            let stdin = String(decoding: try JSONEncoder().encode(input), as: UTF8.self)
            let r = try ChildProcess.run("/usr/bin/python3", ["-c", script], stdin: stdin)
            guard r.status == 0 else { throw VerifierFailed(stderr: r.stderr) }
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "ok"
        }
    }

    public struct VerifierFailed: Error { public let stderr: String }

    public enum Reply: Sendable {
        case status(Int)
        /// Waits this long before answering 200 (longer than the sender's timeout: a timeout).
        case hang(seconds: Double)
        /// Waits this long, then answers `status` (an attempt that is still in flight for a while).
        case slow(seconds: Double, status: Int)
        /// Answers 200 at once, announcing a long body, then sends one byte every `every` seconds.
        case drip(every: Double)
    }

    private let lock = NSLock()
    private var recorded: [Hit] = []
    private var replies: [Reply] = []
    private var fallback: Reply = .status(200)
    private var task: Task<Void, any Error>?
    public private(set) var port = 0

    private init() {}

    /// Starts on `port` (0: any free port) and returns once it listens.
    public static func start(port: Int = 0) async throws -> WebhookReceiver {
        let r = WebhookReceiver()
        let router = Router()
        for path in ["/crm", "/bot", "/dialer", "/hook"] {
            router.post(RouterPath(path)) { request, context -> Response in
                var request = request
                let body = try await request.collectBody(upTo: 1 << 20)
                var headers: [String: String] = [:]
                for field in request.headers { headers[field.name.canonicalName] = field.value }
                let reply = r.record(Hit(path: path, headers: headers, body: Data(body.readableBytesView)))
                switch reply {
                case .status(let s):
                    return Response(status: .init(code: s))
                case .hang(let seconds):
                    try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                    return Response(status: .ok)
                case .slow(let seconds, let status):
                    try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                    return Response(status: .init(code: status))
                case .drip(let every):
                    return Response(status: .ok, headers: [.contentLength: "60000"], body: ResponseBody { writer in
                        for _ in 0..<60000 {
                            try await Task.sleep(for: .milliseconds(Int(every * 1000)))
                            try await writer.write(ByteBuffer(string: "x"))
                        }
                        try await writer.finish(nil)
                    })
                }
            }
        }
        let listening = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
                              onServerRunning: { channel in listening.continuation.yield(channel.localAddress?.port ?? 0) },
                              logger: Logger(label: "receiver") { _ in SwiftLogNoOpLogHandler() })
        r.task = Task { try await app.runService(gracefulShutdownSignals: []) }
        for await p in listening.stream {
            r.port = p
            break
        }
        return r
    }

    func record(_ hit: Hit) -> Reply {
        lock.withLock {
            recorded.append(hit)
            return replies.isEmpty ? fallback : replies.removeFirst()
        }
    }

    /// The next requests' answers, in order; after them, `then`.
    public func script(_ next: [Reply], then: Reply = .status(200)) {
        lock.withLock {
            replies = next
            fallback = then
        }
    }

    public var hits: [Hit] { lock.withLock { recorded } }

    public func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Waits (bounded) until at least `count` requests arrived.
    public func waitForHits(_ count: Int, seconds: Double = 30) async throws -> [Hit] {
        let deadline = Date().addingTimeInterval(seconds)
        while hits.count < count && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        return hits
    }

    public func stop() async {
        task?.cancel()
        _ = await task?.result
    }
}
