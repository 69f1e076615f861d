import CofreCore
import CofreTestSupport
import Foundation
import Testing

/// The contact rules as pure functions: states, area codes, time zones, windows, holidays, caps.
@Suite("Contact rules: states, area codes, time zones and windows")
struct ContactRulesTests {
    static let policy = try! PolicyLoader.load(file: examplePolicyPath)
    static var rules: ContactRules { policy.contactRules }

    /// An instant given as a local wall-clock time in `zone`.
    static func local(_ text: String, _ zone: String) -> Date {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: zone)
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.date(from: text)!
    }

    @Test("every valid DDD maps to its state, and nothing else does")
    func everyDDD() {
        let expected: [String: [Int]] = [
            "SP": Array(11...19), "RJ": [21, 22, 24], "ES": [27, 28], "MG": [31, 32, 33, 34, 35, 37, 38], "PR": [41, 42, 43, 44, 45, 46],
            "SC": [47, 48, 49], "RS": [51, 53, 54, 55], "DF": [61], "GO": [62, 64], "TO": [63], "MT": [65, 66], "MS": [67], "AC": [68],
            "RO": [69], "BA": [71, 73, 74, 75, 77], "SE": [79], "PE": [81, 87], "AL": [82], "PB": [83], "RN": [84], "CE": [85, 88],
            "PI": [86, 89], "PA": [91, 93, 94], "AM": [92, 97], "RR": [95], "AP": [96], "MA": [98, 99],
        ]
        #expect(Set(expected.keys) == Set(BrazilianStates.all))
        #expect(expected.values.map(\.count).reduce(0, +) == 67)
        for ddd in 0...100 {
            let state = expected.first { $0.value.contains(ddd) }?.key
            #expect(BrazilianStates.ddd[ddd] == state, "DDD \(ddd)")
            if let state { #expect(BrazilianStates.state(ofPhone: "+55\(ddd)987654321") == state) }
        }
        #expect(BrazilianStates.state(ofPhone: "+1 212 555 0100") == nil, "a foreign number has no state")
    }

    @Test("every state has a time zone from the system tz database, at its legal offset, without DST")
    func everyZone() throws {
        let offsets: [String: Int] = ["AC": -5, "AM": -4, "MT": -4, "MS": -4, "RO": -4, "RR": -4]
        for state in BrazilianStates.all {
            let zone = try #require(BrazilianStates.zone(of: state), "\(state)")
            for month in ["2026-01-15 12:00", "2026-07-15 12:00"] {
                let at = Self.local(month, "UTC")
                #expect(zone.secondsFromGMT(for: at) == (offsets[state] ?? -3) * 3600, "\(state) \(month)")
            }
            #expect(BrazilianStates.normalize(state.lowercased()) == state)
        }
        #expect(BrazilianStates.normalize("XX") == nil)
        #expect(BrazilianStates.all.count == 27)
    }

    @Test("each law's window edges, in the state's own time (a Monday)")
    func windowEdges() {
        let cases: [(state: String, zone: String, open: [String], closed: [String])] = [
            ("SP", "America/Sao_Paulo", ["2026-11-30 08:00", "2026-11-30 19:59"], ["2026-11-30 07:59", "2026-11-30 20:00"]),
            ("AL", "America/Maceio", ["2026-11-30 08:00", "2026-11-30 19:59"], ["2026-11-30 07:59", "2026-11-30 20:00"]),
            ("RJ", "America/Sao_Paulo", ["2026-11-30 09:00", "2026-11-30 18:59"], ["2026-11-30 08:59", "2026-11-30 19:00"]),
            ("ES", "America/Sao_Paulo", ["2026-11-30 08:00", "2026-11-30 18:59"], ["2026-11-30 07:59", "2026-11-30 19:00"]),
            ("AM", "America/Manaus", ["2026-11-30 08:00", "2026-11-30 17:59"], ["2026-11-30 07:59", "2026-11-30 18:00"]),
            ("BA", "America/Bahia", ["2026-11-30 08:00", "2026-11-30 19:59"], ["2026-11-30 07:59", "2026-11-30 20:00"]),  // the default
        ]
        for c in cases {
            let place = Self.rules.place(uf: c.state, phone: nil)
            for t in c.open { #expect(Self.rules.isOpen(at: Self.local(t, c.zone), place: place), "\(c.state) \(t) should be open") }
            for t in c.closed { #expect(!Self.rules.isOpen(at: Self.local(t, c.zone), place: place), "\(c.state) \(t) should be closed") }
        }
    }

    @Test("Saturday, Sunday, a national holiday and a state holiday")
    func daysAndHolidays() {
        let sp = Self.rules.place(uf: "SP", phone: nil), rj = Self.rules.place(uf: "RJ", phone: nil)
        let zone = "America/Sao_Paulo"
        #expect(Self.rules.isOpen(at: Self.local("2026-11-28 13:59", zone), place: sp), "SP Saturday until 14:00")
        #expect(!Self.rules.isOpen(at: Self.local("2026-11-28 14:00", zone), place: sp))
        #expect(!Self.rules.isOpen(at: Self.local("2026-11-28 10:00", zone), place: rj), "RJ closed on Saturdays")
        #expect(!Self.rules.isOpen(at: Self.local("2026-11-29 10:00", zone), place: sp), "Sunday")
        #expect(!Self.rules.isOpen(at: Self.local("2026-12-25 10:00", zone), place: sp), "Christmas, a Friday")
        #expect(!Self.rules.isOpen(at: Self.local("2026-07-09 10:00", zone), place: sp), "SP's own holiday")
        #expect(Self.rules.isOpen(at: Self.local("2026-07-09 10:00", zone), place: rj), "not RJ's")
        // Next openings: Friday 20:01 in São Paulo → Saturday 08:00; Saturday 14:00 → Monday 08:00;
        // Thursday 24 Dec 20:30 → Christmas closed → Saturday 26 Dec 08:00.
        #expect(Self.rules.nextOpening(atOrAfter: Self.local("2026-11-27 20:01", zone), place: sp) == Self.local("2026-11-28 08:00", zone))
        #expect(Self.rules.nextOpening(atOrAfter: Self.local("2026-11-28 14:00", zone), place: sp) == Self.local("2026-11-30 08:00", zone))
        #expect(Self.rules.nextOpening(atOrAfter: Self.local("2026-12-24 20:30", zone), place: sp) == Self.local("2026-12-26 08:00", zone))
        #expect(Self.rules.nextOpening(atOrAfter: Self.local("2026-11-30 10:00", zone), place: sp) == Self.local("2026-11-30 10:00", zone))
    }

    @Test("Manaus and São Paulo at the same instant are judged by their own clocks")
    func twoZones() {
        // 19:30 in São Paulo is 18:30 in Manaus: SP open (until 20:00), AM closed (until 18:00).
        let instant = Self.local("2026-11-30 19:30", "America/Sao_Paulo")
        #expect(Self.rules.isOpen(at: instant, place: Self.rules.place(uf: nil, phone: "+5511987654321")))
        #expect(!Self.rules.isOpen(at: instant, place: Self.rules.place(uf: nil, phone: "+5592987654321")))
        // 07:30 in Manaus is 08:30 in São Paulo: SP open, AM not yet.
        let morning = Self.local("2026-11-30 07:30", "America/Manaus")
        #expect(Self.rules.isOpen(at: morning, place: Self.rules.place(uf: "SP", phone: nil)))
        #expect(!Self.rules.isOpen(at: morning, place: Self.rules.place(uf: "AM", phone: nil)))
        #expect(Self.rules.nextOpening(atOrAfter: morning, place: Self.rules.place(uf: "AM", phone: nil)) == Self.local("2026-11-30 08:00", "America/Manaus"))
    }

    @Test("the state field wins over the phone's area code; unknown falls back to the default in São Paulo time")
    func placeOrder() {
        #expect(Self.rules.place(uf: "am", phone: "+5511987654321").state == "AM")
        #expect(Self.rules.place(uf: nil, phone: "+5521987654321").state == "RJ")
        let unknown = Self.rules.place(uf: nil, phone: "+12125550100")
        #expect(unknown.state == nil && unknown.zone.identifier == "America/Sao_Paulo")
        var phoneFirst = Self.rules
        phoneFirst.timezoneBy = [.phoneDDD, .stateField]
        #expect(phoneFirst.place(uf: "AM", phone: "+5511987654321").state == "SP")
    }

    @Test("caps: the day frees at local midnight, the rolling week when the oldest attempt ages out")
    func caps() {
        let limit = ContactLimit(field: "phone", maxPerDay: 1, maxPerWeek: 3)
        let zone = "America/Sao_Paulo"
        let now = Self.local("2026-11-30 15:00", zone)
        let dayStart = Self.local("2026-11-30 00:00", zone), nextDay = Self.local("2026-12-01 00:00", zone)
        #expect(ContactRules.capsFree(at: now, attempts: [], limit: limit, dayStart: dayStart, nextDayStart: nextDay) == nil)
        #expect(ContactRules.capsFree(at: now, attempts: [Self.local("2026-11-30 09:00", zone)], limit: limit, dayStart: dayStart,
                                      nextDayStart: nextDay) == nextDay)
        let week = [Self.local("2026-11-25 10:00", zone), Self.local("2026-11-26 10:00", zone), Self.local("2026-11-27 10:00", zone)]
        #expect(ContactRules.capsFree(at: now, attempts: week, limit: limit, dayStart: dayStart, nextDayStart: nextDay)
                == Self.local("2026-12-02 10:00", zone))
        let old = [Self.local("2026-11-20 10:00", zone)]
        #expect(ContactRules.capsFree(at: now, attempts: old, limit: limit, dayStart: dayStart, nextDayStart: nextDay) == nil)
    }

    @Test("field type uf: the 27 codes in any case, stored upper-case, masked as itself")
    func ufType() throws {
        #expect(try FieldType.uf.normalize(" sp ", field: "state") == "SP")
        #expect(try FieldType.uf.normalize("Am", field: "state") == "AM")
        #expect(throws: VaultError.self) { try FieldType.uf.normalize("XX", field: "state") }
        #expect(throws: VaultError.self) { try FieldType.uf.normalize("São Paulo", field: "state") }
        #expect(Masking.mask("RJ", type: .uf) == "RJ")
    }
}
