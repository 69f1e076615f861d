import ArgumentParser
import Foundation

/// `cofre audit events|verify|checkpoint`: the auditor's commands, over HTTP with the auditor's key.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Read and verify the access log (auditor; COFRE_TOKEN, COFRE_ADDR).",
        subcommands: [Events.self, Verify.self, Checkpoint.self])

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List audit events, oldest first.")
        @OptionGroup var client: ClientOptions
        @Option var subject: String?
        @Option var service: String?
        @Option var purpose: String?
        @Option var action: String?
        @Option(help: "allow or deny") var decision: String?
        @Option(help: "ISO 8601 time, inclusive") var since: String?
        @Option(help: "ISO 8601 time, exclusive") var until: String?
        @Option(help: "A token: finds its events through its keyed reference.") var token: String?
        @Option(help: "Start after this sequence number (the previous page's 'next').") var after: String?
        @Option(help: "Stop at this sequence number (the first page's 'head').") var through: String?
        @Option(help: "Events per page, 1 to 1000.") var limit: Int = 100
        @Flag(help: "Follow the cursor to the end of the log.") var all = false

        func run() async throws {
            let vault = try VaultClient(client)
            var query: [(String, String)] = [("limit", String(limit))]
            for (k, v) in [("subject", subject), ("service", service), ("purpose", purpose), ("action", action), ("decision", decision),
                           ("since", since), ("until", until), ("token", token)] {
                if let v { query.append((k, v)) }
            }
            var cursor = after
            var through = self.through
            var events: [[String: Any]] = []
            var next: String?
            repeat {
                var q = query
                if let cursor { q.append(("after", cursor)) }
                if let through { q.append(("through", through)) }
                let page = try await vault.send(.get, "/v1/audit/events", query: q)
                let object = try JSONSerialization.jsonObject(with: page) as? [String: Any] ?? [:]
                events += object["events"] as? [[String: Any]] ?? []
                next = object["next"] as? String
                cursor = next
                // Pin the walk to the log as it was at the first page (each read appends an event).
                if through == nil, let head = object["head"] as? Int { through = String(head) }
            } while all && next != nil
            if client.json {
                let out: [String: Any] = ["events": events, "next": next ?? NSNull()]
                print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            print(pad("SEQ", 6) + pad("TIME", 25) + pad("SERVICE", 14) + pad("ACTION", 20) + pad("SUBJECT", 31) + pad("FIELDS", 14)
                  + pad("PURPOSE", 21) + "DECISION")
            for e in events {
                // Every text from the log is escaped before it reaches the terminal.
                func text(_ key: String, _ absent: String = "") -> String { Terminal.escape(e[key] as? String ?? absent) }
                let decision = text("decision") + ((e["code"] as? String).map { " (\(Terminal.escape($0)))" } ?? "")
                print(pad("\(e["seq"] ?? "")", 6) + pad(text("time"), 25) + pad(text("service"), 14)
                      + pad(text("action"), 20) + pad(text("subject", "-"), 31)
                      + pad(Terminal.escape((e["fields"] as? [String] ?? []).joined(separator: ",")), 14) + pad(text("purpose", "-"), 21) + decision)
            }
            if let next { print("more: cofre audit events --after \(next)\(through.map { " --through \($0)" } ?? "") (or --all)") }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Verify the hash chain; exit 0 only when it is intact.")
        @OptionGroup var client: ClientOptions
        @Option(help: "A checkpoint file from `cofre audit checkpoint`: also detect a log cut back or rewritten before it.")
        var checkpoint: String?

        func run() async throws {
            let vault = try VaultClient(client)
            var query: [(String, String)] = []
            if let path = checkpoint {
                guard let data = FileManager.default.contents(atPath: path),
                      let c = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let seq = c["seq"] as? Int, let head = c["head"] as? String, let time = c["time"] as? String, let mac = c["mac"] as? String
                else { throw CLIError("'\(path)' is not a checkpoint written by `cofre audit checkpoint`") }
                query = [("checkpoint_seq", String(seq)), ("checkpoint_head", head), ("checkpoint_time", time), ("checkpoint_mac", mac)]
            }
            let data = try await vault.send(.get, "/v1/audit/verify", query: query)
            let r = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
            let ok = r["ok"] as? Bool ?? false
            if client.json {
                print(String(decoding: data, as: UTF8.self))
            } else if ok {
                print("OK: the audit chain is intact (\(r["events"] ?? 0) events, head \(r["head"] ?? ""))"
                      + (checkpoint == nil ? "" : ", and it still holds the checkpoint"))
            } else {
                let ranges = r["broken"] as? [[String: Any]] ?? []
                print("BROKEN: \(ranges.count) bad range(s) among \(r["events"] ?? 0) events checked")
                for range in ranges {
                    let from = range["from"] as? Int ?? 0, to = range["to"] as? Int ?? 0
                    print("  " + (from == to ? "sequence \(from)" : "sequences \(from)…\(to)") + ": " + Terminal.escape("\(range["reason"] ?? "")"))
                }
            }
            if !ok { throw ExitCode(2) }
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the log's current head as a MAC'd checkpoint; keep it outside the vault.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Also write it to this file (mode 0600; refused if it exists unless --force).") var out: String?
        @Flag(help: "Replace --out if it exists.") var force = false

        func run() async throws {
            let vault = try VaultClient(client)
            let data = try await vault.send(.get, "/v1/audit/checkpoint")
            let line = String(decoding: data, as: UTF8.self)
            if let out { try await PrivateFile.write(to: out, force: force, contents: Data((line + "\n").utf8)) }
            print(line)
        }
    }
}
