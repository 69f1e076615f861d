import CofreCrypto

let key = try! SymmetricKey(bytes: [UInt8](repeating: 7, count: 32))
let context = AssociatedData(["cofre.value.v1", "sub_fuzz", "phone"])

/// The envelope parser on arbitrary bytes: a wrong length, format, version or tag is an error, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    let version = try? Envelope.keyVersion(of: bytes)
    if let plain = try? Envelope.open(bytes, key: key, context: context), plain.count > Int.max - 1 { print("impossible") }
    if version == UInt32.max - 1 { print("rare") }
    // And a round trip of the input as a value.
    if let sealed = try? Envelope.seal(bytes, key: key, keyVersion: 1, context: context) {
        let back = try? Envelope.open(sealed, key: key, context: context)
        if back != bytes { fatalError("a sealed value did not open to itself") }
    }
    return 0
}
