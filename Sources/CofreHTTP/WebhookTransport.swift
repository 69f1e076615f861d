public import AsyncHTTPClient
public import CofreCore
import Foundation
public import NIOCore
import NIOHTTP1

/// Posts notifications to recipients' webhooks with AsyncHTTPClient: a connection is given up after
/// 5 s and a whole request after 10 s, a redirect is never followed (a 3xx is a failed attempt, so a
/// receiver cannot send the signed body to another host), and the answer's body is read and dropped.
public struct WebhookHTTPTransport: WebhookTransport {
    let client: HTTPClient
    let timeout: TimeAmount

    public static let sharedClient = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: .seconds(10))))

    public init(client: HTTPClient = WebhookHTTPTransport.sharedClient, timeout: TimeAmount = .seconds(10)) {
        self.client = client
        self.timeout = timeout
    }

    /// The whole attempt, answer included, ends by `timeout` (plus a second): AsyncHTTPClient's own
    /// deadline stops at the answer's headers, and a receiver that then drips its body must not hold
    /// the dispatcher (the attempt is cancelled and counted as a timeout).
    public func post(url: String, headers: [(String, String)], body: [UInt8]) async -> WebhookSendResult {
        let limit = Duration.nanoseconds(timeout.nanoseconds) + .seconds(1)
        let once = FirstResult()
        return await withCheckedContinuation { (c: CheckedContinuation<WebhookSendResult, Never>) in
            once.set(c)
            // Neither side is awaited by the other: a send that ignores its cancellation cannot hold the caller.
            let sending = Task { once.resume(await self.send(url: url, headers: headers, body: body)) }
            Task {
                try? await Task.sleep(for: limit)
                if once.resume(.timeout) { sending.cancel() }
            }
        }
    }

    func send(url: String, headers: [(String, String)], body: [UInt8]) async -> WebhookSendResult {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: timeout)
            // The answer's body is not used; a little of it is read so the connection can be reused.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            if Task.isCancelled { return .timeout }
            return .status(Int(response.status.code))
        } catch let error as HTTPClientError {
            switch error {
            case .connectTimeout, .deadlineExceeded, .readTimeout, .writeTimeout: return .timeout
            case .invalidURL, .emptyHost, .emptyScheme: return .urlRefused
            default: return .connectionFailed
            }
        } catch {
            return .connectionFailed
        }
    }
}

/// Resumes a continuation with whichever result comes first.
final class FirstResult: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<WebhookSendResult, Never>?
    private var done = false
    private var early: WebhookSendResult?

    func set(_ c: CheckedContinuation<WebhookSendResult, Never>) {
        lock.lock()
        if let early {
            lock.unlock()
            c.resume(returning: early)
            return
        }
        continuation = c
        lock.unlock()
    }

    /// True when this result was the first.
    @discardableResult
    func resume(_ result: WebhookSendResult) -> Bool {
        lock.lock()
        guard !done else {
            lock.unlock()
            return false
        }
        done = true
        guard let c = continuation else {
            early = result
            lock.unlock()
            return true
        }
        continuation = nil
        lock.unlock()
        c.resume(returning: result)
        return true
    }
}
