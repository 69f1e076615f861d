import CofreAPI
import CofreCore
import CofreCrypto
import Foundation
public import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTPTypes
import Yams

/// One route the vault serves, as docs/openapi.yaml names it (`/v1/subjects/{subject}/fields`).
public struct RouteEntry: Sendable, Hashable, CustomStringConvertible {
    public let method: HTTPRequest.Method
    public let path: String
    public var description: String { "\(method.rawValue) \(path)" }
}

/// Registers handlers and remembers them, so that the route table can be compared with the OpenAPI
/// document, and a known path called with another method answers 405 with `Allow`.
final class RouteRecorder {
    let router: Router<CofreRequestContext>
    private(set) var entries: [RouteEntry] = []

    init(_ router: Router<CofreRequestContext>) { self.router = router }

    typealias Handler = @Sendable (Request, CofreRequestContext) async throws -> Response

    func on(_ path: String, method: HTTPRequest.Method, _ handler: @escaping Handler) {
        router.on(RouterPath(path), method: method, use: handler)
        // Hummingbird's `:name` is OpenAPI's `{name}`.
        let documented = path.split(separator: "/", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
        entries.append(RouteEntry(method: method, path: documented))
    }
    func get(_ path: String, _ handler: @escaping Handler) { on(path, method: .get, handler) }
    func post(_ path: String, _ handler: @escaping Handler) { on(path, method: .post, handler) }
    func put(_ path: String, _ handler: @escaping Handler) { on(path, method: .put, handler) }

    /// The methods each path accepts: read by `ErrorMiddleware` to answer 405 instead of 404 when a
    /// known path is called with any other method (HTTP's own or an extension such as QUERY).
    func freeze() {
        table.set(entries)
    }

    let table = RouteTable()
}

/// The served paths and their methods, filled once when the router is built, read on every 404.
final class RouteTable: @unchecked Sendable {
    private var patterns: [(segments: [Substring], allow: String)] = []
    private let lock = NSLock()

    func set(_ entries: [RouteEntry]) {
        let order: [HTTPRequest.Method] = [.get, .head, .post, .put, .delete, .patch, .options]
        let grouped = Dictionary(grouping: entries, by: \.path)
        lock.withLock {
            patterns = grouped.map { path, routes in
                let methods = Set(routes.map(\.method))
                return (path.split(separator: "/"), order.filter(methods.contains).map(\.rawValue).joined(separator: ", "))
            }
        }
    }

    /// The `Allow` value for a concrete path that a route matches, or nil.
    func allow(for path: String) -> String? {
        let segments = path.split(separator: "/")
        return lock.withLock {
            patterns.first { p in
                p.segments.count == segments.count
                    && zip(p.segments, segments).allSatisfy { pattern, actual in pattern.hasPrefix("{") || pattern == actual }
            }?.allow
        }
    }
}

/// The OpenAPI document (docs/openapi.yaml, compiled into the binary), served as JSON.
enum OpenAPIDocument {
    static let yaml = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)

    /// Converted once; the YAML core schema (no timestamps) so every scalar stays what JSON has.
    static let json: Data = {
        do {
            guard let tree = try Yams.load(yaml: yaml, Resolver.default.removing(.timestamp)) else { return Data("{}".utf8) }
            return try JSONSerialization.data(withJSONObject: tree, options: [.sortedKeys, .withoutEscapingSlashes])
        } catch {
            preconditionFailure("docs/openapi.yaml does not convert to JSON: \(error)")
        }
    }()
}

/// HTTP parse failures (an oversized request line or header block, a broken request) are answered by
/// Hummingbird before any middleware with a bare `400` and an empty body. This handler gives that
/// answer the contract's shape: a JSON error body and an `X-Request-Id`.
final class ParseErrorBodyHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .head(var head) = unwrapOutboundIn(data), head.status == .badRequest,
              head.headerFields[.contentLength] == "0", head.headerFields[.connection] == "close",
              head.headerFields[.contentType] == nil
        else {
            context.write(data, promise: promise)
            return
        }
        let requestID = "req_" + Identifiers.base32((try? Random.bytes(10)) ?? [])
        let body = ErrorResponse(error: .init(code: .malformedRequest, message: "the request line or headers are malformed or too large",
                                              requestID: requestID))
        let bytes = (try? WireJSON.encoder.encode(body)) ?? Data()
        head.headerFields[.contentType] = "application/json; charset=utf-8"
        head.headerFields[.contentLength] = String(bytes.count)
        head.headerFields[HTTPField.Name("X-Request-Id")!] = requestID
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(bytes: bytes))), promise: promise)
    }
}
