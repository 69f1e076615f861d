import CofreAPI
import CofreCore
import CofreSQLite
import CofreTestSupport
import Foundation
import GRDB
import HTTPTypes
import Testing

/// What the clients of a power-cut run were told, in the order they were told it.
final class AckLedger: @unchecked Sendable {
    struct Version { let token: String; let value: String; let seq: Int }
    struct Subject {
        let id: String
        let name: Version
        var phones: [Version]
        /// Corrections sent, whether or not an answer came.
        var attempts = 0
    }
    private let lock = NSLock()
    private var seq = 0
    private var subjects: [String: Subject] = [:]
    private var reveals: [(requestID: String, seq: Int)] = []

    /// The sequence number the next acknowledgement gets: every answer numbered below it was received.
    var mark: Int { lock.withLock { seq } }

    func created(ref: String, id: String, name: (String, String), phone: (String, String)) {
        lock.withLock {
            seq += 1
            subjects[ref] = Subject(id: id, name: .init(token: name.0, value: name.1, seq: seq),
                                    phones: [.init(token: phone.0, value: phone.1, seq: seq)])
        }
    }
    func sending(_ ref: String) { lock.withLock { subjects[ref]?.attempts += 1 } }
    func corrected(_ ref: String, token: String, value: String) {
        lock.withLock {
            seq += 1
            subjects[ref]?.phones.append(.init(token: token, value: value, seq: seq))
        }
    }
    func revealed(requestID: String) { lock.withLock { seq += 1; reveals.append((requestID, seq)) } }
    func all() -> [String: Subject] { lock.withLock { subjects } }
    func anyRef(_ worker: Int) -> String? { lock.withLock { subjects.keys.filter { $0.hasPrefix("pc-\(worker)-") }.randomElement() } }
    func subject(_ ref: String) -> Subject? { lock.withLock { subjects[ref] } }
    func revealsBefore(_ mark: Int) -> [String] { lock.withLock { reveals.filter { $0.seq <= mark }.map(\.requestID) } }
}

/// CONTRACT §3 (durability) under a simulated power cut, not just a process kill: a SQLite VFS keeps
/// the disk image of what was fsynced; the page cache (every unsynced write) is lost, or a random part
/// of it survives. The vault reopened on that image must still hold every acknowledged write and the
/// audit event of every acknowledged reveal. A control shows the method can fail: the same cut loses
/// acknowledged commits made with `synchronous=NORMAL`.
@Suite("Power cut: acknowledged writes survive the loss of the page cache", .serialized, .enabled(if: TestEngine.current.isSQLite))
struct PowerLossTests {
    /// The method itself: with `synchronous=NORMAL` (what a GRDB pool sets on its own) a WAL commit is
    /// acknowledged before it is synced, and the cut loses it; the vault's opener keeps every one.
    @Test("control: the image loses acknowledged commits of a plain GRDB pool (NORMAL), and none of the vault's opener (FULL)")
    func controlShowsTheMethodCanFail() async throws {
        for vaultOpener in [false, true] {
            let dir = try makeTempDirectory(), image = dir + ".image", cut = dir + ".cut"
            FaultVFS.watch(dir, image: image)
            defer { FaultVFS.unwatch(dir) }
            let path = dir + "/control.sqlite"
            let pool: DatabasePool
            if vaultOpener {
                pool = try SQLiteDatabase.open(path: path, label: "control")
            } else {
                var config = Configuration()
                config.journalMode = .wal
                pool = try DatabasePool(path: path, configuration: config)
            }
            try await pool.write { try $0.execute(sql: "CREATE TABLE acked (n INTEGER PRIMARY KEY)") }
            for n in 1...50 { try await pool.write { try $0.execute(sql: "INSERT INTO acked VALUES (?)", arguments: [n]) } }
            try FaultVFS.powerCut(dir, into: cut, keep: 0, seed: 1)
            try pool.close()
            let survivor = try DatabaseQueue(path: cut + "/control.sqlite")
            // A cut that lost even the table's creation lost all fifty.
            let count = try await survivor.read { db in
                try db.tableExists("acked") ? try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM acked") ?? 0 : 0
            }
            if vaultOpener {
                #expect(count == 50, "the vault's opener: \(50 - count) acknowledged commits lost")
            } else {
                #expect(count < 50, "a plain pool: the cut should have lost acknowledged commits; the method cannot see the difference")
            }
        }
    }

    /// How many cuts: `COFRE_POWERCUT_RUNS` (default 6; the long form runs 100+).
    static let runs: Int = ProcessInfo.processInfo.environment["COFRE_POWERCUT_RUNS"].flatMap(Int.init).map { max($0, 1) } ?? 6

    @Test("a cut under four concurrent clients creating, correcting and revealing loses nothing acknowledged", arguments: 0..<runs)
    func cutUnderLoad(run: Int) async throws {
        let dir = try makeTempDirectory(), image = dir + ".image", cut = dir + ".cut"
        FaultVFS.watch(dir, image: image)
        defer { FaultVFS.unwatch(dir) }
        let tv = try await TestVault.make(directory: dir, engine: .sqlite)
        let crm = try await tv.principal("crm").key
        let ledger = AckLedger()
        // Half the runs lose the whole page cache, the other half keep a random part of it.
        let keep = run.isMultiple(of: 2) ? 0 : Double.random(in: 0.2...0.9)
        let seed = UInt32.random(in: 1...UInt32.max)

        let mark = try await withAPI(tv) { api in
            let stop = LockedFlag()
            return try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var n = 0
                        while !stop.value {
                            n += 1
                            switch n % 3 {
                            case 0:
                                // Correct the phone of one of this worker's subjects (one writer per subject).
                                guard let ref = ledger.anyRef(worker), let s = ledger.subject(ref) else { continue }
                                let value = phone(worker * 100_000 + n)
                                ledger.sending(ref)
                                let a = try await api.putFields(key: crm, subject: s.id, ["phone": value])
                                if a.status == .ok, let t = a.tokens["phone"] { ledger.corrected(ref, token: t, value: "+55" + value.filter(\.isNumber)) }
                            case 1:
                                guard let ref = ledger.anyRef(worker), let s = ledger.subject(ref) else { continue }
                                let a = try await api.detokenize(key: crm, purpose: "collection-call", [s.name.token])
                                if a.status == .ok, a.results.first?.value == s.name.value,
                                   let id = a.headers[HTTPField.Name("X-Request-Id")!] {
                                    ledger.revealed(requestID: id)
                                }
                            default:
                                let ref = "pc-\(worker)-\(n)", name = "Pessoa \(worker) \(n)", value = phone(worker * 100_000 + n)
                                let a = try await api.createSubject(key: crm, ref: ref, ["name": name, "phone": value])
                                if a.status == .created, let s = try? a.subject, let tn = a.tokens["name"], let tp = a.tokens["phone"] {
                                    ledger.created(ref: ref, id: s, name: (tn, name), phone: (tp, "+55" + value.filter(\.isNumber)))
                                }
                            }
                        }
                    }
                }
                // Some acknowledged work first, however slow the machine is today; then a random moment.
                for _ in 0..<300 where ledger.mark < 12 { try await Task.sleep(for: .milliseconds(100)) }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...800)))
                // Everything acknowledged so far was answered before the cut.
                let mark = ledger.mark
                try FaultVFS.powerCut(dir, into: cut, keep: keep, seed: seed)
                stop.value = true
                try await group.waitForAll()
                return mark
            }
        }
        #expect(mark > 10, "run \(run): too little work before the cut to judge")
        // The key ring is written once, before any of this, by ordinary file writes.
        for file in try FileManager.default.contentsOfDirectory(atPath: dir + "/keys") where file.hasSuffix(".key") {
            try FileManager.default.copyItem(atPath: dir + "/keys/" + file, toPath: cut + "/keys/" + file)
        }

        // The machine comes back: a vault on what the disk held.
        let after = try await TestVault.make(policy: tv.vault.policy, directory: cut, clock: tv.clock, engine: .sqlite)
        let crmAfter = try await after.principal("crm").key
        let subjects = ledger.all()
        try await withAPI(after) { api in
            for (ref, s) in subjects where s.name.seq <= mark {
                let tokens = [s.name.token] + s.phones.map(\.token)
                let r = try await api.detokenize(key: crmAfter, purpose: "collection-call", tokens)
                try #require(r.status == .ok && r.results.count == tokens.count, "run \(run), \(ref): \(r.status) \(r.raw)")
                #expect(r.results[0].value == s.name.value, "run \(run), \(ref): an acknowledged subject was lost")
                // The last phone acknowledged before the cut, or a later write, reads; nothing earlier does.
                let lastBefore = s.phones.lastIndex { $0.seq <= mark }!
                var reading: [Int] = []
                for (i, version) in s.phones.enumerated() {
                    let result = r.results[i + 1]
                    if let value = result.value {
                        reading.append(i)
                        #expect(value == version.value, "run \(run), \(ref): a token reads another value")
                    } else {
                        #expect(deniedCode(result) == .tokenUnknown, "run \(run), \(ref): \(result)")
                    }
                }
                #expect(reading.count <= 1, "run \(run), \(ref): two versions of one field read")
                let unanswered = s.attempts > s.phones.count - 1
                if let i = reading.first {
                    #expect(i >= lastBefore, "run \(run), \(ref): an acknowledged correction was undone by the cut")
                } else {
                    #expect(unanswered || s.phones.count - 1 > lastBefore,
                            "run \(run), \(ref): the acknowledged phone was lost and no later write explains it")
                }
            }
        }
        // Every acknowledged reveal left its audit event on the disk; the chain verifies; every live field decrypts.
        let recorded = Set(try await after.vault.store.auditPage(after: 0, limit: 1_000_000).compactMap { $0.draft.requestID })
        let missing = ledger.revealsBefore(mark).filter { !recorded.contains($0) }
        #expect(missing.isEmpty, "run \(run): \(missing.count) acknowledged reveals have no audit event after the cut")
        #expect(try await after.vault.verifyAudit().ok, "run \(run): the audit chain does not verify after the cut")
        #expect(try await after.invariantViolations(subjects: subjects.values.map(\.id)) == [], "run \(run)")
        let stats = FaultVFS.stats(dir)
        #expect(stats.syncs > 0, "run \(run): no sync reached the image; the VFS was not in the path")
    }
}
