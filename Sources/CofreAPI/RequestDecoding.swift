public import Foundation

/// Why a request body was refused; the message names the JSON path, never a value.
public struct RequestDecodingError: Error, Sendable, Equatable {
    public let message: String
}

/// How the server reads every JSON body: control characters refused in every string (CONTRACT §4
/// v2: a NUL or an escape sequence has no business in a purpose, a field name, a value or an
/// evidence, and would only serve to cut or forge what is logged), then strict decoding.
public enum RequestDecoding {
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws(RequestDecodingError) -> T {
        if jsonHasControlCharacter(data) {
            throw RequestDecodingError(message: "control characters (such as NUL) are not accepted in any string")
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw RequestDecodingError(message: "missing key '\(path(ctx.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw RequestDecodingError(message: "wrong type at '\(path(ctx.codingPath))'")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw RequestDecodingError(message: "null at '\(path(ctx.codingPath))'")
        } catch {
            throw RequestDecodingError(message: "the body is not valid JSON")
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    /// Whether `text` holds a C0 or C1 control character or DEL.
    public static func hasControlCharacter(_ text: some StringProtocol) -> Bool {
        text.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// Whether a JSON text holds a control character in a string: raw (DEL, or C1 as UTF-8) or escaped
    /// (`\u0000`–`\u001f`, `\u007f`–`\u009f`, `\b \f \n \r \t`). Raw C0 bytes are invalid JSON anyway.
    public static func jsonHasControlCharacter(_ bytes: Data) -> Bool {
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
