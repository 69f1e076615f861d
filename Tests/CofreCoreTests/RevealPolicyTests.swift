import CofreCore
import Foundation
import Testing

/// The decision function over every legal basis × consent state × objection state × field state.
@Suite("Reveal decision")
struct RevealPolicyTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let fieldStates: [FieldState] = [
        .active, .erased, .blocked(purpose: "p", until: now + 86400), .blocked(purpose: "p", until: now - 1),
        .blocked(purpose: "other", until: now + 86400),
    ]

    struct Case: Sendable, CustomTestStringConvertible {
        let basis: LegalBasis, consent: ConsentState, objection: Bool, state: FieldState
        var testDescription: String { "\(basis.rawValue) consent=\(consent) objection=\(objection) \(state)" }
    }

    static let all: [Case] = LegalBasis.allCases.flatMap { b in
        ConsentState.allCases.flatMap { c in [false, true].flatMap { o in fieldStates.map { Case(basis: b, consent: c, objection: o, state: $0) } } }
    }

    /// The rule written out independently of the implementation's control flow.
    static func expected(_ c: Case) -> RevealDecision {
        if c.state == .erased { return .deny(.subjectErased) }
        if case .blocked(let purpose, let until) = c.state, purpose != "p" || until <= now { return .deny(.subjectBlocked) }
        if c.basis == .consent {
            return c.consent == .granted ? .allow(.masked) : .deny(c.consent == .none ? .consentMissing : .consentRevoked)
        }
        let objectable: Set<LegalBasis> = [.contract, .legitimateInterest, .creditProtection]
        return c.objection && objectable.contains(c.basis) ? .deny(.objection) : .allow(.masked)
    }

    func request(_ c: Case, service: ServicePolicy? = nil, field: String = "cpf", purposeName: String = "p") -> RevealRequest {
        let purpose = Purpose(name: "p", legalBasis: c.basis, fields: ["cpf": .masked])
        return RevealRequest(
            service: service ?? ServicePolicy(name: "s", role: .service, purposes: ["p"]), purposeName: purposeName,
            purpose: purposeName == "p" ? purpose : nil, field: field, fieldState: c.state, consent: c.consent,
            objection: c.objection, now: Self.now)
    }

    @Test("every combination matches the rule", arguments: all)
    func table(_ c: Case) {
        #expect(RevealPolicy.decide(request(c)) == Self.expected(c))
    }

    @Test("a field outside the purpose is field_not_allowed in every combination", arguments: all)
    func fieldOutside(_ c: Case) {
        #expect(RevealPolicy.decide(request(c, field: "phone")) == .deny(.fieldNotAllowed))
    }

    @Test("a purpose the service does not hold, an unknown purpose, or a non-service role is denied", arguments: all)
    func purposeNotHeld(_ c: Case) {
        #expect(RevealPolicy.decide(request(c, service: ServicePolicy(name: "s", role: .service, purposes: ["q"]))) == .deny(.purposeNotAllowed))
        #expect(RevealPolicy.decide(request(c, purposeName: "nope")) == .deny(.purposeNotAllowed))
        #expect(RevealPolicy.decide(request(c, service: ServicePolicy(name: "d", role: .dpo))) == .deny(.purposeNotAllowed))
    }
}
