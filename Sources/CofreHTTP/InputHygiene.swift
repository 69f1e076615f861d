import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Refuses control characters at the edge, in every string the vault receives (CONTRACT §4 v2): the
/// request path and query (after percent-decoding) here, JSON bodies in `VaultAPI.parse`.
enum InputHygiene {
    /// Whether `text` holds a C0 or C1 control character or DEL.
    static func hasControlCharacter(_ text: Substring) -> Bool {
        text.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// Whether a JSON text holds a control character in a string: raw (DEL, or C1 as UTF-8) or escaped
    /// (`\u0000`–`\u001f`, `\u007f`–`\u009f`, `\b \f \n \r \t`). Raw C0 bytes are invalid JSON anyway.
    static func jsonHasControlCharacter(_ bytes: ByteBufferView) -> Bool {
        var it = bytes.makeIterator()
        var previous: UInt8 = 0
        while let b = it.next() {
            if b == 0x7F { return true }
            if previous == 0xC2, (0x80...0x9F).contains(b) { return true }
            if b == UInt8(ascii: "\\") {
                guard let e = it.next() else { return false }
                switch e {
                case UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    return true
                case UInt8(ascii: "u"):
                    var hex: [UInt8] = []
                    for _ in 0..<4 { if let h = it.next() { hex.append(h) } }
                    if let v = UInt32(String(decoding: hex, as: UTF8.self), radix: 16), v < 0x20 || (0x7F...0x9F).contains(v) { return true }
                    previous = 0
                    continue
                default:
                    previous = e
                    continue
                }
            }
            previous = b
        }
        return false
    }
}

/// Applies the path and query rule before routing, so no handler ever sees a control character there.
struct InputHygieneMiddleware: RouterMiddleware {
    typealias Context = CofreRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path.removingPercentEncoding.map { Substring($0) } ?? Substring(request.uri.path)
        if InputHygiene.hasControlCharacter(path)
            || request.uri.queryParameters.contains(where: { InputHygiene.hasControlCharacter($0.key) || InputHygiene.hasControlCharacter($0.value) }) {
            throw VaultError(.badRequest, .malformedRequest, "control characters (such as NUL) are not accepted in the path or query")
        }
        return try await next(request, context)
    }
}
