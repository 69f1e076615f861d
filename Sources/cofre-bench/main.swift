// cofre-bench: figures for the vault's hot paths, to compare across changes and machines.
//   swift run -c release cofre-bench [--subjects N] [--concurrency C] [--postgres URL]
// Each line: what was measured, how many operations, the rate, and the median/p99 latency.
import CofreCore
import CofreCrypto
import CofrePostgres
import CofreSQLite
import Foundation
import Logging
import PostgresNIO

var subjects = 2000
var concurrency = 32
var postgresURL: String?
var httpRequests = 20_000
var inProcess = true
var instances = [1]
/// The HTTP lines to run (H and the import always run): all unless `--only` names some.
var only: Set<String>?
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--subjects": subjects = Int(args.next() ?? "") ?? subjects
    case "--concurrency": concurrency = Int(args.next() ?? "") ?? concurrency
    case "--postgres": postgresURL = args.next()
    case "--http-requests": httpRequests = Int(args.next() ?? "") ?? httpRequests
    case "--http-only": inProcess = false
    case "--instances": instances = (args.next() ?? "1").split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
    case "--only":
        let names = Set((args.next() ?? "").split(separator: ",").map(String.init))
        let known: Set = ["create", "tokenize", "detokenize", "detokenize100", "lookup"]
        guard !names.isEmpty, names.isSubset(of: known) else {
            FileHandle.standardError.write(Data("cofre-bench: --only takes a comma-separated list of \(known.sorted().joined(separator: ", "))\n".utf8))
            exit(2)
        }
        only = names
    default:
        FileHandle.standardError.write(Data("""
            usage: cofre-bench [--subjects N] [--concurrency C] [--http-requests R] [--http-only] [--instances 1,2,4 (PostgreSQL)]
                               [--only create,tokenize,detokenize,detokenize100,lookup (HTTP lines; for a profile)]
                               [--postgres postgres://… (admin, may CREATE DATABASE)]\n
            """.utf8))
        exit(2)
    }
}

let silent = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }

func report(_ name: String, _ latencies: [Duration], wall: Duration) {
    let ms = latencies.map { Double($0.components.seconds) * 1000 + Double($0.components.attoseconds) / 1e15 }.sorted()
    let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
    let p50 = ms.isEmpty ? 0 : ms[ms.count / 2], p99 = ms.isEmpty ? 0 : ms[min(ms.count - 1, ms.count * 99 / 100)]
    print(String(format: "%-58@ %8d ops %11.0f ops/s   p50 %7.3f ms   p99 %7.3f ms", name as NSString, latencies.count,
                 Double(latencies.count) / seconds, p50, p99))
}

/// Runs `count` operations, `parallel` at a time, timing each.
func measure(_ name: String, count: Int, parallel: Int, _ op: @escaping @Sendable (Int) async throws -> Void) async throws {
    let clock = ContinuousClock()
    let start = clock.now
    let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
        for worker in 0..<parallel {
            group.addTask {
                var out: [Duration] = []
                var i = worker
                while i < count {
                    let t = clock.now
                    try await op(i)
                    out.append(clock.now - t)
                    i += parallel
                }
                return out
            }
        }
        var all: [Duration] = []
        for try await part in group { all += part }
        return all
    }
    report(name, latencies, wall: clock.now - start)
}

// Crypto alone.
let key = try SymmetricKey.generate()
let plaintext = Array("+5511987654321".utf8)
let aad = AssociatedData(["cofre.value.v1", "sub_x", "phone"])
let sealed = try Envelope.seal(plaintext, key: key, keyVersion: 1, context: aad)
print("cofre-bench: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(subjects) subjects, concurrency \(concurrency)")
try await measure("AES-256-GCM seal (14-byte value)", count: 200_000, parallel: 1) { _ in _ = try Envelope.seal(plaintext, key: key, keyVersion: 1, context: aad) }
try await measure("AES-256-GCM open (14-byte value)", count: 200_000, parallel: 1) { _ in _ = try Envelope.open(sealed, key: key, context: aad) }

func run(engine: String, open: (String) async throws -> (Vault, [PostgresClient])) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofre-bench-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let (vault, clients) = try await open(dir)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for c in clients { group.addTask { await c.run() } }
        let key = try await vault.issueServiceKey(service: "crm")
        let crm = try await vault.authenticate(bearer: key)
        let fields = ["name": "Maria Souza", "cpf": "529.982.247-25", "phone": "11 98888-7777", "debt_amount": "1234.50"]
        let tokens = TokenBox()
        try await measure("[\(engine)] create subject (4 fields), 1 at a time", count: subjects / 4, parallel: 1) { i in
            let c = try await vault.createSubject(crm, externalRef: "seq-\(i)", fields: fields, requestID: nil)
            tokens.add(c.tokens["phone"]!)
        }
        try await measure("[\(engine)] create subject (4 fields), \(concurrency) at once", count: subjects, parallel: concurrency) { i in
            let c = try await vault.createSubject(crm, externalRef: "par-\(i)", fields: fields, requestID: nil)
            tokens.add(c.tokens["phone"]!)
        }
        let all = tokens.all
        try await measure("[\(engine)] detokenize 1 token, 1 at a time", count: min(2000, all.count), parallel: 1) { i in
            _ = try await vault.detokenize(crm, purpose: "collection-call", tokens: [all[i % all.count]], requestID: nil)
        }
        try await measure("[\(engine)] detokenize 1 token, \(concurrency) at once", count: min(8000, all.count * 4), parallel: concurrency) { i in
            _ = try await vault.detokenize(crm, purpose: "collection-call", tokens: [all[i % all.count]], requestID: nil)
        }
        try await measure("[\(engine)] detokenize batch of 100 tokens (per call)", count: 40, parallel: 1) { i in
            _ = try await vault.detokenize(crm, purpose: "collection-call", tokens: Array(all.prefix(100)), requestID: nil)
        }
        let clock = ContinuousClock()
        let t = clock.now
        let verified = try await vault.verifyAudit()
        report("[\(engine)] audit verify (\(verified.events) events)", [clock.now - t], wall: clock.now - t)
        group.cancelAll()
    }
}

final class TokenBox: @unchecked Sendable {
    private let lock = NSLock()
    private var tokens: [String] = []
    func add(_ t: String) { lock.withLock { tokens.append(t) } }
    var all: [String] { lock.withLock { tokens } }
}

let benchPolicy = try PolicyLoader.parse("""
    fields:
      name: { type: text }
      cpf: { type: cpf, searchable: true }
      phone: { type: phone, searchable: true }
      debt_amount: { type: decimal }
    purposes:
      collection-call: { legal_basis: credit_protection, fields: { phone: plain, name: plain, cpf: masked } }
    services:
      crm: { role: service, purposes: [collection-call], tokenize: true,
             quota: { reveals_per_minute: 10000000, lookups_per_minute: 10000000, writes_per_minute: 10000000 } }
    """)

func openSQLite(_ dir: String) async throws -> (Vault, [PostgresClient]) {
    let ring = try KeyRingProvider(source: .directory(dir + "/keys"), allowCreate: true, logger: silent)
    let vault = try await Vault.open(policy: benchPolicy, keyRing: ring, keyStore: SQLiteKeyStore(path: dir + "/keys/datakeys.sqlite"), logger: silent) { chain in
        try SQLiteVaultStore(path: dir + "/data/cofre.sqlite", chain: chain)
    }
    return (vault, [])
}

/// Two fresh databases (data, keys) on the admin's cluster, and a vault on them.
func openPostgresShared(admin: String, _ dir: String) async throws -> (Vault, (data: String, keys: String)) {
    let suffix = UUID().uuidString.prefix(8).lowercased()
    var adminConfig = try PostgresDatabase.configuration(admin)
    adminConfig.options.maximumConnections = 1
    let adminClient = PostgresClient(configuration: adminConfig, backgroundLogger: silent)
    try await withThrowingTaskGroup(of: Void.self) { g in
        g.addTask { await adminClient.run() }
        try await adminClient.query(PostgresQuery(unsafeSQL: "CREATE DATABASE bench_data_\(suffix)"), logger: silent)
        try await adminClient.query(PostgresQuery(unsafeSQL: "CREATE DATABASE bench_keys_\(suffix)"), logger: silent)
        g.cancelAll()
    }
    func url(_ db: String) -> String { var c = URLComponents(string: admin)!; c.path = "/" + db; return c.string! }
    let urls = (data: url("bench_data_\(suffix)"), keys: url("bench_keys_\(suffix)"))
    return (try await openPostgres(urls: urls, dir), urls)
}

/// A vault (one instance) on existing data and key databases, with its own connection pools.
func openPostgres(urls: (data: String, keys: String), _ dir: String) async throws -> Vault {
    let data = PostgresClient(configuration: try PostgresDatabase.configuration(urls.data), backgroundLogger: silent)
    let keys = PostgresClient(configuration: try PostgresDatabase.configuration(urls.keys), backgroundLogger: silent)
    // The clients must run before the vault opens (it migrates); they stop when the process ends.
    Task { await withDiscardingTaskGroup { g in g.addTask { await data.run() }; g.addTask { await keys.run() } } }
    let ring = try KeyRingProvider(source: .directory(dir + "/keys"), allowCreate: true, logger: silent)
    return try await Vault.open(policy: benchPolicy, keyRing: ring, keyStore: PostgresKeyStore(client: keys), logger: silent) { chain in
        PostgresVaultStore(client: data, chain: chain)
    }
}

func openPostgres(admin: String, _ dir: String) async throws -> (Vault, [PostgresClient]) {
    (try await openPostgresShared(admin: admin, dir).0, [])
}

func freshDirectory() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cofre-bench-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    return dir
}

if inProcess {
    try await run(engine: "sqlite", open: openSQLite)
    if let admin = postgresURL {
        try await run(engine: "postgres") { try await openPostgres(admin: admin, $0) }
    }
}
print("cofre-bench over HTTP: \(concurrency) connections, \(httpRequests) requests per line, \(subjects) subjects imported first")
printHTTP(try await runHTTP(engine: "sqlite", vaults: [try await openSQLite(try freshDirectory()).0], subjects: subjects,
                            connections: concurrency, requests: httpRequests, only: only))
if let admin = postgresURL {
    for n in instances {
        // N vault instances on the same two databases (one audit chain, one advisory lock), as N hosts would run.
        let dir = try freshDirectory()
        let (first, urls) = try await openPostgresShared(admin: admin, dir)
        var vaults = [first]
        for _ in 1..<max(n, 1) { vaults.append(try await openPostgres(urls: urls, dir)) }
        printHTTP(try await runHTTP(engine: "postgres", vaults: vaults, subjects: subjects, connections: concurrency, requests: httpRequests,
                                    only: only))
    }
}
