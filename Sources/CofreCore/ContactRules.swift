public import Foundation

/// When a debtor may be contacted (CDC Art. 42 and 71, and state laws that fix collection hours):
/// per-state windows for weekdays, Saturday, Sunday and holidays, in the debtor's own time zone.
/// Pure: the vault decides with these and the injected clock; nothing here reads a store.
public struct ContactRules: Sendable, Equatable {
    /// How the debtor's state is found, in order; when none answers, the default rule applies in
    /// `America/Sao_Paulo`.
    public enum Source: String, Sendable, CaseIterable {
        case stateField = "state_field"
        case phoneDDD = "phone_ddd"
    }

    /// `HH:MM-HH:MM` local time: start included, end excluded (`08:00-20:00` allows 19:59, not 20:00).
    public struct Window: Sendable, Equatable {
        public let start: Int  // minutes after midnight
        public let end: Int
        public init?(_ text: String) {
            let parts = text.split(separator: "-")
            guard parts.count == 2, let s = Self.minutes(parts[0]), let e = Self.minutes(parts[1]), s < e else { return nil }
            start = s
            end = e
        }
        static func minutes(_ hhmm: Substring) -> Int? {
            let p = hhmm.trimmingCharacters(in: .whitespaces).split(separator: ":")
            guard p.count == 2, p[0].count == 2, p[1].count == 2, let h = Int(p[0]), let m = Int(p[1]),
                  (0...24).contains(h), (0...59).contains(m), h * 60 + m <= 24 * 60 else { return nil }
            return h * 60 + m
        }
        public func contains(minute: Int) -> Bool { minute >= start && minute < end }
    }

    /// The windows of one rule; nil is `closed`.
    public struct Days: Sendable, Equatable {
        public var weekdays: Window?
        public var saturday: Window?
        public var sunday: Window?
        public var holidays: Window?
        public init(weekdays: Window?, saturday: Window?, sunday: Window?, holidays: Window?) {
            self.weekdays = weekdays
            self.saturday = saturday
            self.sunday = sunday
            self.holidays = holidays
        }
    }

    public var timezoneBy: [Source]
    public var defaultDays: Days
    public var states: [String: Days]
    /// `YYYY-MM-DD`, the debtor's local date.
    public var nationalHolidays: Set<String>
    public var stateHolidays: [String: Set<String>]

    public init(timezoneBy: [Source] = [.stateField, .phoneDDD], defaultDays: Days = Self.commonDays, states: [String: Days] = [:],
                nationalHolidays: Set<String> = [], stateHolidays: [String: Set<String>] = [:]) {
        self.timezoneBy = timezoneBy
        self.defaultDays = defaultDays
        self.states = states
        self.nationalHolidays = nationalHolidays
        self.stateHolidays = stateHolidays
    }

    /// Weekdays 08:00–20:00, Saturdays 08:00–14:00, closed on Sundays and holidays: the rule of most
    /// state laws, and the default when a policy has no `contact_rules`.
    public static let commonDays = Days(weekdays: Window("08:00-20:00"), saturday: Window("08:00-14:00"), sunday: nil, holidays: nil)

    /// Where a debtor is, for the rules: the state (nil: unknown, the default rule) and its zone.
    public struct Place: Sendable, Equatable {
        public let state: String?
        public let zone: TimeZone
    }

    /// The debtor's state from the subject's `uf` value, else the phone's area code, in the policy's order.
    public func place(uf: String?, phone: String?) -> Place {
        for source in timezoneBy {
            switch source {
            case .stateField:
                if let uf, let state = BrazilianStates.normalize(uf) { return Self.place(state) }
            case .phoneDDD:
                if let phone, let state = BrazilianStates.state(ofPhone: phone) { return Self.place(state) }
            }
        }
        return Place(state: nil, zone: BrazilianStates.defaultZone)
    }

    static func place(_ state: String) -> Place {
        Place(state: state, zone: BrazilianStates.zone(of: state) ?? BrazilianStates.defaultZone)
    }

    /// The window that applies on the local day of `date`, or nil when that day is closed.
    public func window(on date: Date, at place: Place) -> Window? {
        let calendar = Self.calendar(place.zone)
        let days = place.state.flatMap { states[$0] } ?? defaultDays
        let c = calendar.dateComponents([.year, .month, .day, .weekday], from: date)
        let day = String(format: "%04d-%02d-%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
        if nationalHolidays.contains(day) || (place.state.flatMap { stateHolidays[$0]?.contains(day) } ?? false) {
            return days.holidays
        }
        switch c.weekday {
        case 1: return days.sunday
        case 7: return days.saturday
        default: return days.weekdays
        }
    }

    /// Whether a contact at `date` falls inside the debtor's window.
    public func isOpen(at date: Date, place: Place) -> Bool {
        guard let w = window(on: date, at: place) else { return false }
        return w.contains(minute: Self.minuteOfDay(date, place.zone))
    }

    /// The first instant at or after `date` when a contact is allowed (within 60 days), or nil.
    public func nextOpening(atOrAfter date: Date, place: Place) -> Date? {
        if isOpen(at: date, place: place) { return date }
        let calendar = Self.calendar(place.zone)
        var dayStart = calendar.startOfDay(for: date)
        for _ in 0..<60 {
            if let w = window(on: dayStart, at: place), let opening = calendar.date(byAdding: .minute, value: w.start, to: dayStart) {
                let closing = calendar.date(byAdding: .minute, value: w.end, to: dayStart) ?? opening
                if opening >= date { return opening }
                if date < closing { return date }
            }
            guard let next = calendar.date(byAdding: .day, value: 1, to: dayStart) else { return nil }
            dayStart = calendar.startOfDay(for: next)
        }
        return nil
    }

    /// The start of the debtor's local day holding `date` (the daily cap's calendar day).
    public func startOfDay(_ date: Date, place: Place) -> Date { Self.calendar(place.zone).startOfDay(for: date) }

    /// When the caps next allow a contact, given the attempts already counted (any order), or nil when
    /// they allow one now. The daily cap frees at the next local midnight, the weekly one (rolling 7 days)
    /// when enough of the oldest attempts have aged out.
    public static func capsFree(at now: Date, attempts: [Date], limit: ContactLimit, dayStart: Date, nextDayStart: Date) -> Date? {
        var free: Date?
        if let perDay = limit.maxPerDay, attempts.filter({ $0 >= dayStart }).count >= perDay { free = nextDayStart }
        if let perWeek = limit.maxPerWeek {
            let week = attempts.filter { $0 >= now.addingTimeInterval(-7 * 86400) }.sorted()  // as the store counts: at or after
            if week.count >= perWeek {
                let freesAt = week[week.count - perWeek].addingTimeInterval(7 * 86400)
                free = max(free ?? freesAt, freesAt)
            }
        }
        return free
    }

    static func calendar(_ zone: TimeZone) -> Calendar {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = zone
        return c
    }

    static func minuteOfDay(_ date: Date, _ zone: TimeZone) -> Int {
        let c = calendar(zone).dateComponents([.hour, .minute], from: date)
        return (c.hour ?? 0) * 60 + (c.minute ?? 0)
    }
}

/// A purpose's contact: the field it dials or messages, and its caps per subject.
public struct ContactLimit: Sendable, Equatable {
    public var field: String
    public var maxPerDay: Int?
    public var maxPerWeek: Int?
    public init(field: String, maxPerDay: Int? = nil, maxPerWeek: Int? = nil) {
        self.field = field
        self.maxPerDay = maxPerDay
        self.maxPerWeek = maxPerWeek
    }
}

/// The 27 federative units, their IANA time zones (from the system's tz database), and the area
/// codes (DDD) that belong to each.
public enum BrazilianStates {
    public static let defaultZone = TimeZone(identifier: "America/Sao_Paulo") ?? TimeZone(secondsFromGMT: -3 * 3600)!

    /// State → IANA zone: AC UTC−5; AM, MT, MS, RO, RR UTC−4; the others UTC−3 (none observes DST).
    public static let zones: [String: String] = [
        "AC": "America/Rio_Branco", "AL": "America/Maceio", "AP": "America/Belem", "AM": "America/Manaus",
        "BA": "America/Bahia", "CE": "America/Fortaleza", "DF": "America/Sao_Paulo", "ES": "America/Sao_Paulo",
        "GO": "America/Sao_Paulo", "MA": "America/Fortaleza", "MT": "America/Cuiaba", "MS": "America/Campo_Grande",
        "MG": "America/Sao_Paulo", "PA": "America/Belem", "PB": "America/Fortaleza", "PR": "America/Sao_Paulo",
        "PE": "America/Recife", "PI": "America/Fortaleza", "RJ": "America/Sao_Paulo", "RN": "America/Fortaleza",
        "RS": "America/Sao_Paulo", "RO": "America/Porto_Velho", "RR": "America/Boa_Vista", "SC": "America/Sao_Paulo",
        "SP": "America/Sao_Paulo", "SE": "America/Maceio", "TO": "America/Araguaina",
    ]

    public static var all: [String] { zones.keys.sorted() }

    /// Area code → state (Anatel's numbering plan: every valid two-digit DDD).
    public static let ddd: [Int: String] = {
        var m: [Int: String] = [:]
        let plan: [(String, [Int])] = [
            ("SP", Array(11...19)), ("RJ", [21, 22, 24]), ("ES", [27, 28]), ("MG", [31, 32, 33, 34, 35, 37, 38]),
            ("PR", [41, 42, 43, 44, 45, 46]), ("SC", [47, 48, 49]), ("RS", [51, 53, 54, 55]), ("DF", [61]),
            ("GO", [62, 64]), ("TO", [63]), ("MT", [65, 66]), ("MS", [67]), ("AC", [68]), ("RO", [69]),
            ("BA", [71, 73, 74, 75, 77]), ("SE", [79]), ("PE", [81, 87]), ("AL", [82]), ("PB", [83]), ("RN", [84]),
            ("CE", [85, 88]), ("PI", [86, 89]), ("PA", [91, 93, 94]), ("AM", [92, 97]), ("RR", [95]), ("AP", [96]),
            ("MA", [98, 99]),
        ]
        for (state, codes) in plan { for code in codes { m[code] = state } }
        return m
    }()

    /// The state code in upper case, or nil when `text` is not one of the 27.
    public static func normalize(_ text: String) -> String? {
        let code = text.trimmingCharacters(in: .whitespaces).uppercased()
        return zones[code] == nil ? nil : code
    }

    public static func zone(of state: String) -> TimeZone? { zones[state].flatMap(TimeZone.init(identifier:)) }

    /// The state of a Brazilian number in E.164 (`+55` + DDD + number), or nil.
    public static func state(ofPhone phone: String) -> String? {
        let digits = phone.filter(\.isNumber)
        guard phone.hasPrefix("+55"), digits.count >= 12 else { return nil }
        let ddd = digits.dropFirst(2).prefix(2)
        return Int(ddd).flatMap { self.ddd[$0] }
    }
}
