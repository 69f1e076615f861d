import CofreCore

/// Every field normaliser and mask on arbitrary text: a value is accepted (and then its normal form is
/// stable and masks without crashing) or refused with a `VaultError`, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    for type in FieldType.allCases {
        guard let normal = try? type.normalize(text, field: "f") else { continue }
        guard let again = try? type.normalize(normal, field: "f"), again == normal else {
            fatalError("\(type.rawValue): the normal form does not normalise to itself")
        }
        _ = Masking.mask(normal, type: type)
    }
    return 0
}
