import CofreAPI
import Foundation

/// The JSON decoding of every route's body (CofreAPI.RequestDecoding, exactly what the server runs):
/// arbitrary bytes are decoded as each request type. Never a crash; a body is accepted or refused
/// with a message. And a differential check of the hand-written control-character scanner against
/// Foundation's JSON parser: a body the scanner passes never yields a string (key or value) holding a
/// control character.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Data(UnsafeBufferPointer(start: data, count: count))
    check(CreateSubjectRequest.self, bytes) { [$0.externalRef] + strings($0.fields) }
    check(BatchCreateRequest.self, bytes) { $0.subjects.flatMap { [$0.externalRef] + strings($0.fields) } }
    check(PutFieldsRequest.self, bytes) { strings($0.fields) }
    check(TokenizeRequest.self, bytes) { [$0.subject, $0.field, $0.value] }
    check(DetokenizeRequest.self, bytes) { [$0.purpose] + $0.tokens }
    check(LookupRequest.self, bytes) { [$0.purpose, $0.field, $0.value] }
    check(ConsentRequest.self, bytes) { [$0.status, $0.channel, $0.evidence, $0.noticeVersion].compactMap { $0 } }
    check(EraseRequest.self, bytes) { [$0.reason, $0.ticket] }
    return 0
}

func strings(_ d: [String: String]) -> [String] { Array(d.keys) + Array(d.values) }

func check<T: Decodable>(_ type: T.Type, _ bytes: Data, _ texts: (T) -> [String]) {
    guard let value = try? RequestDecoding.decode(type, from: bytes) else { return }
    for text in texts(value) where RequestDecoding.hasControlCharacter(text) {
        fatalError("\(type): a control character passed the scanner")
    }
}
