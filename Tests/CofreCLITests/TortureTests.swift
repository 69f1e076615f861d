import CofreAPI
import CofreTestSupport
import Foundation
import Testing

/// What a client was told, and what it sent without being told: the ground truth a crash is judged by.
final class Ledger: @unchecked Sendable {
    struct Subject {
        var subject: String
        var name: (token: String, value: String)
        /// Every phone version a client was told was stored (the latest committed one is among them),
        /// by token: with concurrent corrections the order of the answers need not be the order of the commits.
        var phones: [String: String]
        /// Corrections sent whose answer never came (the crash may or may not have kept them).
        var pending = 0
    }
    private let lock = NSLock()
    private var subjects: [String: Subject] = [:]
    private var reveals: [String] = []
    private var counter = 0

    func next() -> Int { lock.withLock { counter += 1; return counter } }
    func created(_ ref: String, _ s: Subject) { lock.withLock { subjects[ref] = s } }
    func anyRef() -> String? { lock.withLock { subjects.keys.randomElement() } }
    func phoneToken(_ ref: String) -> String? { lock.withLock { subjects[ref]?.phones.keys.randomElement() } }
    func subjectID(_ ref: String) -> String? { lock.withLock { subjects[ref]?.subject } }
    func sending(_ ref: String) { lock.withLock { subjects[ref]?.pending += 1 } }
    /// An answer came: the correction is no longer unknown (stored, or certainly refused).
    func answered(_ ref: String, token: String?, value: String) {
        lock.withLock {
            subjects[ref]?.pending -= 1
            if let token { subjects[ref]?.phones[token] = value }
        }
    }
    func revealed(_ token: String) { lock.withLock { reveals.append(token) } }
    var all: [String: Subject] { lock.withLock { subjects } }
    var acknowledgedReveals: [String] { lock.withLock { reveals } }
}

/// The reliability suite's crash torture (issue 14): a real `cofre serve` under four concurrent clients
/// is killed with SIGKILL at a random moment, restarted, and judged — every acknowledged write reads
/// back with its acknowledged value (or, for a write whose answer was lost, with the value before or
/// after it), every acknowledged reveal has its audit event, the chain verifies, and no field fails to
/// decrypt. `COFRE_TORTURE_RUNS` sets the number of crashes (default: 10 on SQLite, 5 on PostgreSQL).
@Suite("Crash torture: SIGKILL under load, restart, nothing acknowledged is lost", .serialized)
struct TortureTests {
    static var runs: Int {
        if let n = ProcessInfo.processInfo.environment["COFRE_TORTURE_RUNS"].flatMap(Int.init), n > 0 { return n }
        return TestEngine.current.isSQLite ? 10 : 5
    }

    /// The stores the servers use: the working directory's SQLite files, or two fresh PostgreSQL databases.
    func stores() async throws -> [String] {
        guard case .postgres(let admin) = TestEngine.current else { return [] }
        let dbs = try await TestVault.createDatabases(admin: admin)
        return ["--database", dbs.data, "--key-store", dbs.keys, "--allow-shared-cluster"]
    }

    @Test("SIGKILL at a random moment under concurrent creates, corrections, consents and reveals loses nothing")
    func killUnderLoad() async throws {
        let dir = try makeWorkdir()
        // The judge reads back every subject of every run; over a long form that is far past the crm's
        // default reveal quota, which is not what this test is about.
        let policy = dir + "/deploy/policy.example.yaml"
        let text = try String(contentsOfFile: policy, encoding: .utf8)
        let crmLine = "crm:          { role: service, purposes: [collection-call, payment, legal-defense], tokenize: true"
        try #require(text.contains(crmLine), "the example policy's crm line changed; update the torture test")
        try text.replacingOccurrences(of: crmLine, with: crmLine + ", quota: { reveals_per_minute: 10000000, writes_per_minute: 10000000 }")
            .write(toFile: policy, atomically: true, encoding: .utf8)
        let stores = try await stores()
        func issue(_ name: String) throws -> String { try issueKey(name, in: dir, arguments: stores) }
        let crm = try issue("crm"), bot = try issue("whatsapp-bot"), auditor = try issue("auditor"), dpo = try issue("dpo")
        let ledger = Ledger()
        for run in 0..<Self.runs {
            let server = try Server(directory: dir, arguments: stores)
            try await server.waitReady()
            let stop = LockedFlag()
            // Real threads, not tasks: each client blocks on curl, and four blocked tasks would starve
            // the two-thread cooperative pool the test itself runs on.
            let done = DispatchGroup()
            for worker in 0..<4 {
                done.enter()
                Thread.detachNewThread {
                    defer { done.leave() }
                    while !stop.value {
                        let n = ledger.next()
                        switch (n + worker) % 4 {
                        case 0, 1:
                            let ref = "t-\(run)-\(n)", name = "Pessoa \(n)", phone = "11 9\(String(format: "%08d", n))"
                            guard let r = try? server.curl("POST", "/v1/subjects", key: crm,
                                                           sending: CreateSubjectRequest(externalRef: ref, fields: ["name": name, "phone": phone])),
                                  r.status == 201,
                                  // A 201 whose body the kill cut off told the client nothing: not acknowledged.
                                  let o = try? decode(CreateSubjectResponse.self, r.body),
                                  let nameToken = o.tokens["name"], let phoneToken = o.tokens["phone"] else { continue }
                            ledger.created(ref, .init(subject: o.subject, name: (nameToken, name),
                                                      phones: [phoneToken: "+55" + phone.filter(\.isNumber)]))
                        case 2:
                            guard let ref = ledger.anyRef(), let s = ledger.subjectID(ref) else { continue }
                            let phone = "21 9\(String(format: "%08d", n))"
                            ledger.sending(ref)
                            guard let r = try? server.curl("POST", "/v1/tokenize", key: crm,
                                                           sending: TokenizeRequest(subject: s, field: "phone", value: phone)) else { continue }
                            // 200: stored; 409: certainly not; anything else (a 503, no answer) stays unknown.
                            if r.status == 200, let t = (try? decode(TokenizeResponse.self, r.body))?.token {
                                ledger.answered(ref, token: t, value: "+55" + phone.filter(\.isNumber))
                            } else if r.status == 409 {
                                ledger.answered(ref, token: nil, value: "")
                            }
                        default:
                            guard let ref = ledger.anyRef(), let s = ledger.subjectID(ref), let t = ledger.phoneToken(ref) else { continue }
                            _ = try? server.curl("PUT", "/v1/subjects/\(s)/consents/collection-whatsapp", key: bot,
                                                 sending: ConsentRequest(status: ConsentStatus.granted.rawValue, channel: "whatsapp",
                                                                         evidence: "wamid.\(n)", noticeVersion: "2026-01"))
                            if let r = try? server.curl("POST", "/v1/detokenize", key: crm, sending: DetokenizeRequest(purpose: "collection-call", tokens: [t])),
                               r.status == 200, r.body.contains("\"value\"") {
                                ledger.revealed(t)
                            }
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 300...1500)))
            server.kill9()
            stop.value = true
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in done.notify(queue: .global()) { c.resume() } }

            // Restart and judge.
            let again = try Server(directory: dir, arguments: stores)
            try await again.waitReady()
            let known = Array(ledger.all)
            for chunk in stride(from: 0, to: known.count, by: 100) {
                let part = Array(known[chunk..<min(chunk + 100, known.count)])
                let tokens = part.flatMap { [$0.value.name.token] + $0.value.phones.keys.sorted() }
                let r = try again.curl("POST", "/v1/detokenize", key: crm, sending: DetokenizeRequest(purpose: "collection-call", tokens: tokens))
                #expect(r.status == 200, "run \(run): \(r.status) \(r.body.prefix(300))")
                let results = (try? decode(DetokenizeResponse.self, r.body))?.results ?? []
                guard results.count == tokens.count else { continue }
                var i = 0
                for (ref, s) in part {
                    #expect(results[i].value == s.name.value, "run \(run), \(ref): an acknowledged name was lost")
                    i += 1
                    // Of the acknowledged phone versions, the one committed last still reads, with its value —
                    // unless a correction whose answer was lost committed after it.
                    var reading = 0
                    for token in s.phones.keys.sorted() {
                        if let value = results[i].value {
                            reading += 1
                            #expect(value == s.phones[token], "run \(run), \(ref): a token reads another value")
                        } else {
                            #expect(results[i].denied?.code == .tokenUnknown, "run \(run), \(ref): \(results[i])")
                        }
                        i += 1
                    }
                    #expect(reading <= 1, "run \(run), \(ref): two versions of one field read")
                    #expect(reading == 1 || s.pending > 0, "run \(run), \(ref): an acknowledged phone was lost")
                }
            }
            let verify = try again.curl("GET", "/v1/audit/verify", key: auditor)
            #expect((try? decode(VerifyResponse.self, verify.body))?.ok == true, "run \(run): \(verify.body)")
            for token in ledger.acknowledgedReveals.suffix(20) {
                let events = try again.curl("GET", "/v1/audit/events?token=\(token)&decision=allow", key: auditor)
                #expect((try? decode(AuditEventsResponse.self, events.body))?.events.isEmpty == false,
                        "run \(run): an acknowledged reveal has no audit event")
            }
            #expect(try await again.stop() == 0)
        }
        #expect(ledger.all.count > Self.runs, "the clients did work")

        // A rewrap killed half-way completes when run again.
        #expect(try runCofre(["keys", "rotate"] + stores, in: dir).status == 0)
        let rewrap = try ChildProcess(cofreBinary, ["keys", "rewrap", "--batch-size", "5"] + stores,
                                      environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("COFRE_") },
                                      directory: dir)
        try await Task.sleep(for: .milliseconds(300))
        rewrap.kill()
        rewrap.waitUntilExit()
        let rest = try runCofre(["keys", "rewrap"] + stores, in: dir)
        #expect(rest.status == 0 && rest.stdout.contains("0 remain"), "\(rest.stdout)\(rest.stderr)")

        // An erasure whose server is killed right after the request: re-running it completes it.
        let server = try Server(directory: dir, arguments: stores)
        try await server.waitReady()
        let victim = try #require(ledger.all.values.first { $0.pending == 0 && $0.phones.count == 1 })
        let erased = DispatchGroup()
        erased.enter()
        Thread.detachNewThread {
            _ = try? server.curl("POST", "/v1/subjects/\(victim.subject)/erase", key: dpo, sending: EraseRequest(reason: "r", ticket: "T-9"))
            erased.leave()
        }
        try await Task.sleep(for: .milliseconds(Int.random(in: 0...30)))
        server.kill9()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in erased.notify(queue: .global()) { c.resume() } }
        let after = try Server(directory: dir, arguments: stores)
        try await after.waitReady()
        let erase = try after.curl("POST", "/v1/subjects/\(victim.subject)/erase", key: dpo, sending: EraseRequest(reason: "r", ticket: "T-9"))
        #expect(erase.status == 200, "\(erase.body)")
        let r = try after.curl("POST", "/v1/detokenize", key: crm,
                               sending: DetokenizeRequest(purpose: "collection-call", tokens: [victim.phones.keys.first!]))
        #expect(r.body.contains("subject_erased") && !r.body.contains("\"value\""), "\(r.body)")
        let verify = try after.curl("GET", "/v1/audit/verify", key: auditor)
        #expect((try? decode(VerifyResponse.self, verify.body))?.ok == true, "\(verify.body)")
        #expect(try await after.stop() == 0)
    }
}
