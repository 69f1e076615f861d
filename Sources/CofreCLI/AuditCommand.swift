import ArgumentParser
import CofreAPI
import CofreClient
import Foundation

/// `cofre audit events|verify|checkpoint`: the auditor's commands, over HTTP with the auditor's key.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Read and verify the access log (auditor; COFRE_TOKEN, COFRE_ADDR).",
        subcommands: [Events.self, Verify.self, Checkpoint.self])

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List audit events, oldest first.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "A subject id (sub_…).") var subject: String?
        @Option(help: "A service name from the policy.") var service: String?
        @Option(help: "A purpose name from the policy.") var purpose: String?
        @Option(help: "An action, e.g. detokenize, lookup, subject.erase (docs/reference.md lists them).") var action: String?
        @Option(help: "allow or deny") var decision: String?
        @Option(help: "ISO 8601 time, inclusive") var since: String?
        @Option(help: "ISO 8601 time, exclusive") var until: String?
        @Option(help: "A token: finds its events through its keyed reference.") var token: String?
        @Option(help: "Start after this sequence number (the previous page's 'next').") var after: String?
        @Option(help: "Stop at this sequence number (the first page's 'head').") var through: String?
        @Option(help: "Events per page, 1 to 1000.") var limit: Int = 100
        @Flag(help: "Follow the cursor to the end of the log.") var all = false

        func run() async throws {
            var decision: AuditDecision?
            if let d = self.decision {
                guard let parsed = AuditDecision(rawValue: d) else { throw CLIError("--decision must be allow or deny") }
                decision = parsed
            }
            guard (1...1000).contains(limit) else { throw CLIError("--limit must be 1 to 1000") }
            var query = AuditEventsQuery(subject: subject, service: service, purpose: purpose, action: action, decision: decision,
                                         since: try since.map { try isoTime($0, "since") }, until: try until.map { try isoTime($0, "until") }, token: token,
                                         after: after, through: through, limit: limit)
            var events: [AuditEventResponse] = []
            var next: String?
            try await VaultConnection.with(client) { vault in
                repeat {
                    let page = try await vault.auditEvents(query)
                    events += page.events
                    next = page.next
                    query.after = next
                    // Pin the walk to the log as it was at the first page (each read appends an event).
                    if query.through == nil { query.through = String(page.head) }
                } while all && next != nil
            }
            if output.json {
                print(try VaultConnection.json(AuditEventsResponse(events: events, next: next, head: Int64(query.through ?? "") ?? 0)))
                return
            }
            print(pad("SEQ", 6) + pad("TIME", 25) + pad("SERVICE", 14) + pad("ACTION", 20) + pad("SUBJECT", 31) + pad("FIELDS", 14)
                  + pad("PURPOSE", 21) + "DECISION")
            for e in events {
                // Every text from the log is escaped before it reaches the terminal.
                let decision = e.decision.rawValue + (e.code.map { " (\(Terminal.escape($0)))" } ?? "")
                print(pad("\(e.seq)", 6) + pad(WireJSON.formatDate(e.time), 25) + pad(Terminal.escape(e.service), 14)
                      + pad(Terminal.escape(e.action), 20) + pad(Terminal.escape(e.subject ?? "-"), 31)
                      + pad(Terminal.escape(e.fields.joined(separator: ",")), 14) + pad(Terminal.escape(e.purpose ?? "-"), 21) + decision)
            }
            if let next {
                print("more: cofre audit events --after \(Terminal.escape(next))\(query.through.map { " --through \(Terminal.escape($0))" } ?? "") (or --all)")
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Verify the hash chain; exit 0 only when it is intact (2 when broken).")
        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "A checkpoint file from `cofre audit checkpoint`: also detect a log cut back or rewritten before it.")
        var checkpoint: String?

        func run() async throws {
            var saved: AuditCheckpoint?
            if let path = checkpoint {
                guard let data = FileManager.default.contents(atPath: path),
                      let c = try? WireJSON.decoder.decode(AuditCheckpoint.self, from: data)
                else { throw CLIError("'\(path)' is not a checkpoint written by `cofre audit checkpoint`") }
                saved = c
            }
            let r = try await VaultConnection.with(client) { vault in try await vault.verifyAudit(checkpoint: saved) }
            if output.json {
                print(try VaultConnection.json(r))
            } else if r.ok {
                print("OK: the audit chain is intact (\(r.events) events, head \(Terminal.escape(r.head)))"
                      + (checkpoint == nil ? "" : ", and it still holds the checkpoint"))
            } else {
                print("BROKEN: \(r.broken.count) bad range(s) among \(r.events) events checked")
                for range in r.broken {
                    print("  " + (range.from == range.to ? "sequence \(range.from)" : "sequences \(range.from)…\(range.to)") + ": "
                          + Terminal.escape(range.reason))
                }
            }
            if !r.ok { throw ExitCode(2) }
        }
    }

    struct Checkpoint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the log's current head as a MAC'd checkpoint; keep it outside the vault.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Also write it to this file (mode 0600; refused if it exists unless --force).") var out: String?
        @Flag(help: "Replace --out if it exists.") var force = false

        func run() async throws {
            let checkpoint = try await VaultConnection.with(client) { vault in try await vault.checkpoint() }
            let line = try VaultConnection.json(checkpoint)
            if let out { try await PrivateFile.write(to: out, force: force, contents: Data((line + "\n").utf8)) }
            print(line)
        }
    }
}
