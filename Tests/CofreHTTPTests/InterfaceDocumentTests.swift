import CofreAPI
import CofreCore
import CofreHTTP
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

/// The interface is written down once, in the repository: docs/openapi.yaml (served at
/// /v1/openapi.json), the prose reference and the README. These tests hold the documents and the
/// code to each other, so that neither can drift without a failing test.
@Suite("the interface documents match the code")
struct InterfaceDocumentTests {
    /// The parts of an OpenAPI document these tests read.
    struct OpenAPI: Decodable {
        /// An operation, or (for a path's `parameters` list and the like) nothing.
        struct Operation: Decodable {
            let operationId: String?
            let responses: [String: Ignored]?
            enum CodingKeys: String, CodingKey { case operationId, responses }
            init(from decoder: any Decoder) throws {
                let c = try? decoder.container(keyedBy: CodingKeys.self)
                operationId = try c?.decodeIfPresent(String.self, forKey: .operationId)
                responses = try c?.decodeIfPresent([String: Ignored].self, forKey: .responses)
            }
        }
        struct Info: Decodable { let version: String }
        let openapi: String
        let info: Info
        let paths: [String: [String: Operation]]

        /// `GET /v1/subjects/{subject}/export`-style entries; `parameters` and other non-method keys skipped.
        var operations: [String: Operation] {
            let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
            var out: [String: Operation] = [:]
            for (path, items) in paths {
                for (method, op) in items where methods.contains(method) { out["\(method.uppercased()) \(path)"] = op }
            }
            return out
        }
    }

    /// Any JSON value, skipped.
    struct Ignored: Decodable {
        init(from decoder: any Decoder) throws {}
    }

    static func text(_ relative: String) throws -> String {
        try String(contentsOfFile: repositoryRoot + "/" + relative, encoding: .utf8)
    }

    @Test("GET /v1/openapi.json serves docs/openapi.yaml, and its operations are exactly the routes the router serves")
    func routesMatchDocument() async throws {
        let tv = try await TestVault.make()
        // The console (/console/…) is HTML for people, not part of the JSON API the document describes.
        let served = Set(servedRoutes(vault: tv.vault).filter { !$0.path.hasPrefix("/console") }.map(\.description))
        #expect(served.count > 15)
        try await withAPI(tv) { api in
            let r = try await api.call(.get, "/v1/openapi.json")
            #expect(r.status == .ok)
            #expect(r.headers[.contentType]?.hasPrefix("application/json") == true)
            let doc = try JSONDecoder().decode(OpenAPI.self, from: r.body)
            #expect(doc.openapi.hasPrefix("3.1"))
            #expect(doc.info.version == CofreVersion.current, "docs/openapi.yaml's info.version is the release `cofre --version` prints")
            let documented = Set(doc.operations.keys)
            #expect(served.subtracting(documented).isEmpty, "served but not in docs/openapi.yaml: \(served.subtracting(documented).sorted())")
            #expect(documented.subtracting(served).isEmpty, "in docs/openapi.yaml but not served: \(documented.subtracting(served).sorted())")
            for (name, op) in doc.operations {
                #expect(op.operationId?.isEmpty == false, "\(name) has no operationId")
                #expect((op.responses?.count ?? 0) > 0, "\(name) lists no response")
            }
            // The served document is the repository's file, not a copy that could lag behind it.
            let yaml = try Self.text("docs/openapi.yaml")
            for path in doc.paths.keys { #expect(yaml.contains("\n  \(path):"), "\(path)") }
        }
    }

    @Test("every error code the vault can answer is declared once and listed in the README, docs/reference.md and docs/openapi.yaml")
    func errorCodesDocumented() throws {
        let readme = try Self.text("README.md")
        let start = try #require(readme.range(of: "### Errors"))
        let section = readme[start.upperBound...].prefix { _ in true }
        let table = section.components(separatedBy: "\n### ").first ?? ""
        // Codes are the backticked snake_case words of the table's rows.
        var listed = Set<String>()
        for row in table.split(separator: "\n") where row.hasPrefix("| ") {
            // Explanations in parentheses may quote keys and levels; only the codes count.
            let line = row.replacingOccurrences(of: #"\([^)]*\)"#, with: "", options: .regularExpression)
            let parts = line.split(separator: "`", omittingEmptySubsequences: false)
            for (i, part) in parts.enumerated() where i % 2 == 1 && part.allSatisfy({ $0.isLowercase || $0 == "_" || $0 == "<" || $0 == ">" }) {
                listed.insert(String(part))
            }
        }
        if listed.remove("invalid_<type>") != nil { for t in FieldType.allCases { listed.insert(ErrorCode.invalid(t).rawValue) } }
        let declared = Set(ErrorCode.all.map(\.rawValue))
        #expect(declared.subtracting(listed).isEmpty, "codes missing from the README's error table: \(declared.subtracting(listed).sorted())")
        #expect(listed.subtracting(declared).isEmpty, "README codes the vault never answers: \(listed.subtracting(declared).sorted())")
        let reference = try Self.text("docs/reference.md"), openapi = try Self.text("docs/openapi.yaml")
        for code in declared {
            #expect(reference.contains(code), "docs/reference.md does not mention \(code)")
            #expect(openapi.contains(code), "docs/openapi.yaml does not mention \(code)")
        }
        for code in DenialCode.allCases {
            #expect(reference.contains(code.rawValue) && openapi.contains(code.rawValue), "\(code.rawValue)")
        }
    }

    @Test("every audit action is declared once and described in docs/reference.md")
    func auditActionsDocumented() throws {
        let reference = try Self.text("docs/reference.md")
        #expect(Set(AuditAction.all).count == AuditAction.all.count)
        for action in AuditAction.all { #expect(reference.contains("`\(action.rawValue)`"), "\(action.rawValue)") }
    }

    @Test("the metric names in the README are the ones /metrics serves")
    func metricNames() async throws {
        let readme = try Self.text("README.md")
        let start = try #require(readme.range(of: "## Metrics"))
        let section = String(readme[start.upperBound...]).components(separatedBy: "\n## ").first ?? ""
        var documented = Set<String>()
        for line in section.split(separator: "\n") where line.hasPrefix("| `") {
            let firstCell = line.split(separator: "|").first ?? ""
            let parts = firstCell.split(separator: "`", omittingEmptySubsequences: false)
            for (i, part) in parts.enumerated() where i % 2 == 1 { documented.insert(String(part)) }
        }
        #expect(documented.count > 10)
        let names = documented
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "m-1", ["name": "Maria", "phone": "11987654321"])
            _ = try await api.detokenize(key: crm, purpose: "collection-call", [created.tokens["phone"] ?? "tok_x"])
            let metrics = try await api.call(.get, "/metrics")
            var served = Set<String>()
            for line in metrics.raw.split(separator: "\n") where line.hasPrefix("# TYPE ") {
                served.insert(String(line.split(separator: " ")[2]))
            }
            #expect(served.isSuperset(of: ["hb_requests", "http_server_request_duration", "http_server_active_requests", "cofre_reveal_decisions_total"]))
            // Everything served is documented; everything documented is served or registered by the code.
            #expect(served.subtracting(names).isEmpty, "served but undocumented: \(served.subtracting(names).sorted())")
            let sources = try FileManager.default.subpathsOfDirectory(atPath: repositoryRoot + "/Sources")
                .filter { $0.hasSuffix(".swift") }
                .map { try String(contentsOfFile: repositoryRoot + "/Sources/" + $0, encoding: .utf8) }.joined()
            for name in names.subtracting(served) {
                #expect(sources.contains("\"\(name)\""), "documented but neither served nor in the code: \(name)")
            }
        }
    }
}
