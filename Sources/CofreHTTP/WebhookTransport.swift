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

    public func post(url: String, headers: [(String, String)], body: [UInt8]) async -> WebhookSendResult {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: timeout)
            // The answer's body is not used; read a little of it so the connection can be reused.
            _ = try? await response.body.collect(upTo: 64 * 1024)
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
