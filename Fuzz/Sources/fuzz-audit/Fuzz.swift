import CofreCore
import CofreCrypto
import Foundation

let chain = AuditChain(key: try! SymmetricKey(bytes: [UInt8](repeating: 9, count: 32)))

/// The audit chain's reading side on arbitrary stored columns: splitting fields, decoding decisions,
/// verifying and finding breaks must never crash, and a sealed event must verify as stored.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    let parts = text.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
    func part(_ i: Int) -> String { i < parts.count ? parts[i] : "" }
    let draft = AuditDraft(time: Date(timeIntervalSince1970: Double(part(0).utf8.count)), service: part(1), role: part(2), action: part(3),
                           subject: part(4), fields: part(5).isEmpty ? [] : part(5).split(separator: ",").map(String.init),
                           purpose: part(6), legalBasis: part(7), decision: AuditDraft.Decision(rawValue: part(8)) ?? .deny,
                           code: part(9), requestID: part(10), ref: part(11), target: part(12))
    let sealed = chain.seal(draft, seq: 1, prevHash: AuditChain.genesis)
    let stored = AuditEvent(seq: 1, draft: sealed.draft, prevHash: sealed.prevHash, hash: sealed.hash,
                            stored: .init(timeMillis: AuditChain.millis(sealed.draft.time), fields: sealed.draft.fields.joined(separator: ","),
                                          decision: sealed.draft.decision.rawValue))
    guard chain.verifies(stored) else { fatalError("a sealed event does not verify as stored") }
    // The same columns as an attacker may have written them.
    let forged = AuditEvent(seq: Int64(part(13).utf8.count), draft: draft, prevHash: part(14), hash: part(15),
                            stored: .init(timeMillis: Int64(part(16).utf8.count), fields: part(5), decision: part(8)))
    var state: (expected: Int64, previous: String) = (1, AuditChain.genesis)
    _ = chain.breaks([stored, forged], state: &state)
    return 0
}
