import CofreAPI
// The HTTP part of cofre-bench (CONTRACT §12): the vault's routes beside a plain Hummingbird endpoint
// of the same framework, measured in the same run with the same client, so the ratio to the plain
// endpoint (H) is what a reader compares across machines.
import AsyncHTTPClient
import CofreCore
import CofreHTTP
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// A result line: requests (or values) per second, latency percentiles, and the ratio to H.
struct HTTPFigure {
    let name: String
    let rate: Double
    let unit: String
    let p50: Double
    let p99: Double
}

/// Drives `requests` requests over `connections` concurrent connections; `make(i)` gives each request.
func load(_ client: HTTPClient, requests: Int, connections: Int, seconds: Double? = nil,
          _ make: @escaping @Sendable (Int) -> HTTPClientRequest, check: @escaping @Sendable (Int, ByteBuffer) -> Bool = { _, _ in true })
    async throws -> (rate: Double, p50: Double, p99: Double, failures: Int) {
    let clock = ContinuousClock()
    let start = clock.now
    let results = try await withThrowingTaskGroup(of: ([Double], Int).self) { group in
        for worker in 0..<connections {
            group.addTask {
                var latencies: [Double] = []
                var failures = 0
                var i = worker
                while i < requests {
                    let t = clock.now
                    let response = try await client.execute(make(i), timeout: .seconds(60))
                    let body = try await response.body.collect(upTo: 64 << 20)
                    if !(200..<300).contains(response.status.code) || !check(i, body) { failures += 1 }
                    let d = clock.now - t
                    latencies.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
                    i += connections
                }
                return (latencies, failures)
            }
        }
        var all: [Double] = []
        var failures = 0
        for try await (l, f) in group { all += l; failures += f }
        return (all.sorted(), failures)
    }
    let wall = clock.now - start
    let s = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
    let ms = results.0
    return (Double(ms.count) / s, ms.isEmpty ? 0 : ms[ms.count / 2], ms.isEmpty ? 0 : ms[min(ms.count - 1, ms.count * 99 / 100)], results.1)
}

func post(_ base: String, _ path: String, key: String?, _ body: String) -> HTTPClientRequest {
    var r = HTTPClientRequest(url: base + path)
    r.method = .POST
    r.headers.add(name: "Content-Type", value: "application/json")
    if let key { r.headers.add(name: "Authorization", value: "Bearer \(key)") }
    r.body = .bytes(ByteBuffer(string: body))
    return r
}

/// A JSON string literal (for the few fixed values the bench sends).
func quoted(_ s: String) -> String { "\"" + s + "\"" }

/// Starts the plain endpoint and one app per vault instance on loopback ports (requests go round-robin
/// over the instances, as a balancer would spread them), then measures.
func runHTTP(engine: String, vaults: [Vault], subjects: Int, connections: Int, requests: Int, only: Set<String>?) async throws -> [HTTPFigure] {
    /// Whether the line `name` runs (`--only`; H and the import always do).
    func selected(_ name: String) -> Bool { only?.contains(name) ?? true }
    let vault = vaults[0]
    let silentLogger = Logger(label: "bench.http") { _ in SwiftLogNoOpLogHandler() }
    let plainRouter = Router()
    plainRouter.post("/echo") { request, _ -> Response in
        var request = request
        let body = try await request.collectBody(upTo: 1 << 20)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }
    // Below the ephemeral port range, where the client's own connections could hold a port.
    let plainPort = Int.random(in: 20000...24999), firstPort = Int.random(in: 25000...31000)
    let plain = Application(router: plainRouter, configuration: .init(address: .hostname("127.0.0.1", port: plainPort)), logger: silentLogger)
    let apps = vaults.enumerated().map { i, v in
        buildApplication(vault: v, settings: HTTPSettings(host: "127.0.0.1", port: firstPort + i), logger: silentLogger)
    }
    var config = HTTPClient.Configuration(timeout: .init(connect: .seconds(5), read: .seconds(60)))
    config.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = connections
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    var figures: [HTTPFigure] = []
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await plain.runService() }
        for app in apps { group.addTask { try await app.runService() } }
        let p = "http://127.0.0.1:\(plainPort)", v = "http://127.0.0.1:\(firstPort)"
        let instances = (0..<vaults.count).map { "http://127.0.0.1:\(firstPort + $0)" }
        /// The instance for request `i`.
        @Sendable func at(_ i: Int) -> String { instances[i % instances.count] }
        // Wait until both listen.
        for _ in 0..<100 {
            let a = try? await client.execute(HTTPClientRequest(url: instances.last! + "/healthz"), timeout: .seconds(1))
            let b = try? await client.execute(post(p, "/echo", key: nil, "{}"), timeout: .seconds(1))
            if a?.status == .ok, b?.status == .ok { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let key = try await vault.issueServiceKey(service: "crm")
        func add(_ name: String, _ r: (rate: Double, p50: Double, p99: Double, failures: Int), unit: String = "req/s", scale: Double = 1) {
            if r.failures > 0 { FileHandle.standardError.write(Data("cofre-bench: \(name): \(r.failures) failed requests\n".utf8)) }
            figures.append(HTTPFigure(name: "[\(engine)\(vaults.count > 1 ? " ×\(vaults.count)" : "")] " + name, rate: r.rate * scale, unit: unit, p50: r.p50, p99: r.p99))
        }

        add("plain Hummingbird POST /echo = H", try await load(client, requests: requests, connections: connections) { _ in
            post(p, "/echo", key: nil, #"{"purpose":"collection-call","tokens":["tok_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]}"#)
        })

        // Fill the vault to the requested size through the batch API (this is the import figure too).
        let runID = UUID().uuidString.prefix(8)
        let batches = max(1, subjects / 1000)
        let phones = TokenStore()
        let importResult = try await load(client, requests: batches, connections: 2) { b in
            let items = (0..<1000).map { i -> String in
                let n = b * 1000 + i
                return #"{"external_ref":"imp-\#(runID)-\#(n)","fields":{"name":"Pessoa \#(n)","cpf":"529.982.247-25","phone":"11 9\#(String(format: "%08d", n % 100_000_000))"}}"#
            }
            return post(v, "/v1/subjects/batch", key: key, #"{"subjects":["# + items.joined(separator: ",") + "]}")
        } check: { _, body in
            let results = (try? WireJSON.decoder.decode(BatchCreateResponse.self, from: Data(body.readableBytesView)))?.results ?? []
            for r in results.prefix(200) {
                if let t = r.tokens?["phone"], let s = r.subject {
                    phones.add(t)
                    phones.addSubject(s)
                }
            }
            return results.count == 1000 && results.allSatisfy { $0.error == nil }
        }
        add("import via /v1/subjects/batch (1000 per call, 3 fields)", importResult, unit: "subjects/s", scale: 1000)
        let tokens = phones.all
        guard !tokens.isEmpty else { throw CancellationError() }

        if selected("create") { add("POST /v1/subjects (3 fields)", try await load(client, requests: requests / 2, connections: connections) { i in
            post(at(i), "/v1/subjects", key: key, #"{"external_ref":"c-\#(runID)-\#(i)","fields":{"name":"Ana","cpf":"529.982.247-25","phone":"11 98888-7777"}}"#)
        }) }
        if selected("tokenize") { add("POST /v1/tokenize (correct a field)", try await load(client, requests: requests / 4, connections: connections) { i in
            // A fresh subject per request would measure creation; correcting the name of existing subjects races
            // only when two requests hit one subject, which the spread over the first tokens' subjects avoids.
            post(at(i), "/v1/tokenize", key: key, #"{"subject":"\#(phones.subject(i % tokens.count) ?? "")","field":"name","value":"Nome \#(i)"}"#)
        }) }
        if selected("detokenize") { add("POST /v1/detokenize (1 token)", try await load(client, requests: requests, connections: connections) { i in
            post(at(i), "/v1/detokenize", key: key, #"{"purpose":"collection-call","tokens":["\#(tokens[i % tokens.count])"]}"#)
        } check: { _, body in body.readableBytesView.contains(UInt8(ascii: "+")) }) }
        let hundred = tokens.prefix(100).map(quoted).joined(separator: ",")
        if selected("detokenize100") { add("POST /v1/detokenize (100 tokens)", try await load(client, requests: requests / 50, connections: connections) { i in
            post(at(i), "/v1/detokenize", key: key, #"{"purpose":"collection-call","tokens":[\#(hundred)]}"#)
        }, unit: "values/s", scale: Double(min(100, tokens.count))) }
        if selected("lookup") { add("POST /v1/lookup (phone)", try await load(client, requests: requests / 4, connections: connections) { i in
            post(at(i), "/v1/lookup", key: key, #"{"purpose":"collection-call","field":"phone","value":"11 9\#(String(format: "%08d", (i * 7) % min(subjects, 200)))"}"#)
        }) }
        try await client.shutdown()
        group.cancelAll()
    }
    return figures
}

/// Tokens and their subjects, as the import answered them.
final class TokenStore: @unchecked Sendable {
    private let lock = NSLock()
    private var tokens: [String] = []
    private var subjects: [String] = []
    func add(_ t: String) { lock.withLock { tokens.append(t) } }
    func addSubject(_ s: String) { lock.withLock { subjects.append(s) } }
    var all: [String] { lock.withLock { tokens } }
    func subject(_ i: Int) -> String? { lock.withLock { subjects.isEmpty ? nil : subjects[i % subjects.count] } }
}

func printHTTP(_ figures: [HTTPFigure]) {
    guard let h = figures.first(where: { $0.name.hasSuffix("= H") })?.rate, h > 0 else { return }
    for f in figures {
        let ratio = f.unit == "req/s" ? String(format: "%5.2f·H", f.rate / h) : "      "
        let name = f.name.padding(toLength: 64, withPad: " ", startingAt: 0)
        let unit = f.unit.padding(toLength: 11, withPad: " ", startingAt: 0)
        print(name + String(format: " %10.0f ", f.rate) + unit + ratio + String(format: "   p50 %8.2f ms   p99 %8.2f ms", f.p50, f.p99))
    }
}
