import CofreTestSupport
import Foundation
import Testing

/// deploy/grafana/cofre-dashboard.json: that Grafana can import it as is, that its panels do not
/// overlap, and that every metric its queries use is a series `/metrics` really serves.
@Suite("Grafana dashboard")
struct GrafanaDashboardTests {
    static let path = repositoryRoot + "/deploy/grafana/cofre-dashboard.json"
    static let datasourceUID = "${DS_PROMETHEUS}"

    static func dashboard() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "the dashboard is not a JSON object")
    }

    /// Every panel, with those nested in collapsed rows.
    static func allPanels(_ dashboard: [String: Any]) -> [[String: Any]] {
        let top = dashboard["panels"] as? [[String: Any]] ?? []
        return top.flatMap { [$0] + ($0["panels"] as? [[String: Any]] ?? []) }
    }

    static func isRow(_ panel: [String: Any]) -> Bool { panel["type"] as? String == "row" }

    static func exprs(_ panel: [String: Any]) -> [String] {
        (panel["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String }
    }

    /// The PromQL of every panel and of every query variable.
    static func allQueries(_ dashboard: [String: Any]) -> [String] {
        let variables = ((dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? [])
            .filter { $0["type"] as? String == "query" }
            .compactMap { v -> String? in
                if let q = v["query"] as? String { return q }
                return (v["query"] as? [String: Any])?["query"] as? String ?? v["definition"] as? String
            }
        return allPanels(dashboard).flatMap(exprs) + variables
    }

    static func title(_ panel: [String: Any]) -> String { panel["title"] as? String ?? "panel \(panel["id"] ?? "?")" }

    // MARK: metric names

    /// The series names the code emits, and which of them are histograms (whose Prometheus series
    /// are `_bucket`, `_sum` and `_count`, never the bare name).
    struct Emitted {
        var names: Set<String> = []
        var histograms: Set<String> = []
    }

    /// `cofre_` names: string literals in Sources/ (a literal passed to `Timer(label:` or
    /// `Recorder(label:` is a histogram: swift-prometheus exports both as histograms).
    /// `hb_` and `http_server_` names (Hummingbird's own): the README's metrics table, the one a
    /// test compares with a live scrape; a name followed by "(histogram" there is a histogram.
    static func emitted() throws -> Emitted {
        var out = Emitted()
        let sources = repositoryRoot + "/Sources"
        for file in try FileManager.default.subpathsOfDirectory(atPath: sources) where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: sources + "/" + file, encoding: .utf8)
            for match in text.matches(of: #/"(cofre_[a-z0-9_]*)"/#) { out.names.insert(String(match.output.1)) }
            for line in text.split(separator: "\n") where !line.contains("aggregate: false") {
                for match in line.matches(of: #/\b(?:Timer|Recorder)\(\s*label:\s*"(cofre_[a-z0-9_]*)"/#) {
                    out.histograms.insert(String(match.output.1))
                }
            }
        }
        let readme = try String(contentsOfFile: repositoryRoot + "/README.md", encoding: .utf8)
        let start = try #require(readme.range(of: "## Metrics"), "the README has no Metrics section")
        let section = String(readme[start.upperBound...]).components(separatedBy: "\n## ").first ?? ""
        for line in section.split(separator: "\n") where line.hasPrefix("| `") {
            let firstCell = line.split(separator: "|").first ?? ""
            let parts = firstCell.split(separator: "`", omittingEmptySubsequences: false)
            for (i, part) in parts.enumerated() where i % 2 == 1 {
                let name = String(part)
                guard name.hasPrefix("hb_") || name.hasPrefix("http_server_") else { continue }
                out.names.insert(name)
                if i + 1 < parts.count, parts[i + 1].trimmingCharacters(in: .whitespaces).hasPrefix("(histogram") {
                    out.histograms.insert(name)
                }
            }
        }
        return out
    }

    static let prefixes = ["cofre_", "hb_", "http_server_"]
    static let histogramSuffixes = ["_bucket", "_sum", "_count"]

    /// The identifiers of a PromQL expression that look like the vault's metrics.
    static func metricIdentifiers(_ expr: String) -> [String] {
        expr.matches(of: #/[A-Za-z_:][A-Za-z0-9_:]*/#).map { String($0.output) }
            .filter { id in prefixes.contains { id.hasPrefix($0) } }
    }

    /// Each identifier that is not a series the code emits, with why.
    static func problems(in queries: [String], _ emitted: Emitted) -> [String] {
        var out: [String] = []
        for query in queries {
            for id in metricIdentifiers(query) {
                if emitted.names.contains(id) {
                    if emitted.histograms.contains(id) {
                        out.append("\(id) is a histogram: query \(id)_bucket, _sum or _count")
                    }
                    continue
                }
                let base = histogramSuffixes.first { id.hasSuffix($0) }.map { String(id.dropLast($0.count)) }
                if let base, emitted.histograms.contains(base) { continue }
                if let base, emitted.names.contains(base) {
                    out.append("\(id): \(base) is not a histogram")
                } else {
                    out.append("\(id) is not emitted by the code")
                }
            }
        }
        return out
    }

    // MARK: tests

    @Test("the dashboard parses and is importable: title, uid, a Prometheus data source input, a data source variable")
    func importable() throws {
        let d = try Self.dashboard()
        #expect(d["title"] as? String == "Cofre")
        #expect(!(d["uid"] as? String ?? "").isEmpty)
        #expect((d["schemaVersion"] as? Int ?? 0) >= 36)
        let inputs = try #require(d["__inputs"] as? [[String: Any]])
        #expect(inputs.contains { $0["name"] as? String == "DS_PROMETHEUS" && $0["type"] as? String == "datasource" && $0["pluginId"] as? String == "prometheus" })
        let requires = try #require(d["__requires"] as? [[String: Any]])
        #expect(requires.contains { $0["type"] as? String == "datasource" && $0["id"] as? String == "prometheus" })
        let variables = try #require((d["templating"] as? [String: Any])?["list"] as? [[String: Any]])
        #expect(variables.contains { $0["type"] as? String == "datasource" && $0["query"] as? String == "prometheus" })
        for v in variables where v["type"] as? String == "query" {
            let ds = v["datasource"] as? [String: Any]
            #expect(ds?["uid"] as? String == Self.datasourceUID, "variable \(v["name"] ?? "?")")
        }
        #expect((d["time"] as? [String: Any])?["from"] as? String == "now-6h")
        #expect(d["refresh"] as? String == "30s")
        let panels = Self.allPanels(d)
        #expect(panels.filter { !Self.isRow($0) }.count >= 15)
        let ids = panels.compactMap { $0["id"] as? Int }
        #expect(ids.count == panels.count && Set(ids).count == ids.count, "every panel has a distinct id")
    }

    @Test("every panel has a grid position, a query and the Prometheus data source input")
    func panelsAreComplete() throws {
        for panel in Self.allPanels(try Self.dashboard()) {
            let name = Self.title(panel)
            let grid = panel["gridPos"] as? [String: Any]
            let x = grid?["x"] as? Int, y = grid?["y"] as? Int, w = grid?["w"] as? Int, h = grid?["h"] as? Int
            #expect(x != nil && y != nil && w != nil && h != nil, "\(name): gridPos needs x, y, w and h")
            if let x, let y, let w, let h { #expect(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24, "\(name): gridPos out of the 24-column grid") }
            if Self.isRow(panel) { continue }
            #expect(!(panel["title"] as? String ?? "").isEmpty, "a panel has no title")
            let ds = panel["datasource"] as? [String: Any]
            #expect(ds?["type"] as? String == "prometheus" && ds?["uid"] as? String == Self.datasourceUID, "\(name): data source")
            let targets = panel["targets"] as? [[String: Any]] ?? []
            #expect(!targets.isEmpty, "\(name): no target")
            for t in targets {
                #expect(!(t["expr"] as? String ?? "").trimmingCharacters(in: .whitespaces).isEmpty, "\(name): empty expr")
                if let tds = t["datasource"] as? [String: Any] { #expect(tds["uid"] as? String == Self.datasourceUID, "\(name): target data source") }
            }
        }
    }

    @Test("no two panels overlap")
    func noOverlap() throws {
        let boxes = Self.allPanels(try Self.dashboard()).compactMap { p -> (String, Int, Int, Int, Int)? in
            guard let g = p["gridPos"] as? [String: Any], let x = g["x"] as? Int, let y = g["y"] as? Int,
                  let w = g["w"] as? Int, let h = g["h"] as? Int else { return nil }
            return (Self.title(p), x, y, w, h)
        }
        for i in boxes.indices {
            for j in boxes.indices where j > i {
                let a = boxes[i], b = boxes[j]
                let overlap = a.1 < b.1 + b.3 && b.1 < a.1 + a.3 && a.2 < b.2 + b.4 && b.2 < a.2 + a.4
                #expect(!overlap, "\(a.0) overlaps \(b.0)")
            }
        }
    }

    @Test("every metric a query uses is one the code emits, histograms through _bucket/_sum/_count")
    func metricNamesAreEmitted() throws {
        let emitted = try Self.emitted()
        // The scan itself works: it finds the vault's and Hummingbird's series and the histograms among them.
        #expect(emitted.names.isSuperset(of: ["cofre_reveal_decisions_total", "cofre_store_commit_seconds", "hb_requests", "http_server_request_duration"]))
        #expect(emitted.histograms.isSuperset(of: ["cofre_store_commit_seconds", "cofre_store_commit_batch_size", "http_server_request_duration"]))
        #expect(!emitted.histograms.contains("cofre_reveal_decisions_total"))
        let queries = Self.allQueries(try Self.dashboard())
        #expect(!queries.flatMap(Self.metricIdentifiers).isEmpty)
        let problems = Self.problems(in: queries, emitted)
        #expect(problems.isEmpty, "\(Set(problems).sorted())")
    }

    @Test("the name check catches a typo, a bare histogram and a suffix on a counter")
    func nameCheckCanFail() throws {
        let emitted = try Self.emitted()
        let problems = Self.problems(in: [
            "sum(rate(cofre_reveal_decision_total[$__rate_interval]))",
            "rate(http_server_request_duration[$__rate_interval])",
            "rate(hb_requests_count[$__rate_interval])",
        ], emitted)
        #expect(problems.count == 3, "\(problems)")
        #expect(Self.problems(in: [
            "histogram_quantile(0.99, sum by (le) (rate(cofre_store_commit_seconds_bucket{job=~\"$job\"}[$__rate_interval])))",
            "rate(cofre_reveal_decisions_total{code=\"none\"}[$__rate_interval])",
        ], emitted).isEmpty)
    }

    @Test("ranges are Grafana's ($__rate_interval, or $__range in stat panels), never hard-coded")
    func ranges() throws {
        for query in Self.allPanels(try Self.dashboard()).flatMap(Self.exprs) {
            for match in query.matches(of: #/\[([^\]]*)\]/#) {
                #expect(["$__rate_interval", "$__range"].contains(String(match.output.1)), "\(query)")
            }
        }
    }

    @Test("the core panels are there")
    func corePanels() throws {
        let panelExprs = Self.allPanels(try Self.dashboard()).map { Self.exprs($0).joined(separator: "\n") }
        for metric in ["cofre_reveal_decisions_total", "cofre_store_commit_seconds", "cofre_contact_denials_total",
                       "cofre_quota_refusals_total", "cofre_webhook_attempts_total", "http_server_request_duration_bucket",
                       "hb_requests", "http_server_active_requests"] {
            #expect(panelExprs.contains { $0.contains(metric) }, "no panel queries \(metric)")
        }
        let titles = Self.allPanels(try Self.dashboard()).compactMap { $0["title"] as? String }
        #expect(titles.contains("Audit write (store commit) latency"))
    }
}
