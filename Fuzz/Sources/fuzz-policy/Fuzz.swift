import CofreCore

/// The policy loader on arbitrary bytes: it must refuse (with its error) or load, never crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    if let policy = try? PolicyLoader.parse(text, file: "fuzz.yaml") {
        // Use the result, or the optimiser may delete the call.
        if policy.fields.count + policy.purposes.count + policy.services.count == -1 { print("impossible") }
    }
    return 0
}
