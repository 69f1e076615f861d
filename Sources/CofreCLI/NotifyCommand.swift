import ArgumentParser
import CofreAPI
import CofreClient
import Foundation

/// An ISO 8601 option, or a clear refusal naming it.
func isoTime(_ s: String, _ name: String) throws -> Date {
    guard let d = WireJSON.parseDate(s) else { throw CLIError("--\(name) must be an ISO 8601 time such as 2026-11-29T12:00:00Z") }
    return d
}

/// `cofre deliveries list|show|retry`: notifications to recipients (CONTRACT §9), for the DPO.
struct DeliveriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliveries", abstract: "Show and re-drive notifications to recipients (DPO; COFRE_TOKEN, COFRE_ADDR).",
        subcommands: [List.self, Show.self, Retry.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List deliveries, oldest first.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "pending, failed or delivered") var status: String?
        @Option(help: "A recipient service's name.") var service: String?
        @Option(help: "A subject id (sub_…).") var subject: String?
        @Option(help: "Start after this cursor (the previous page's 'next').") var after: String?
        @Option(help: "Deliveries per page, 1 to 1000.") var limit: Int = 100
        @Flag(help: "Follow the cursor to the end.") var all = false

        func run() async throws {
            var parsed: DeliveryStatus?
            if let status {
                guard let s = DeliveryStatus(rawValue: status) else { throw CLIError("--status must be pending, failed or delivered") }
                parsed = s
            }
            guard (1...1000).contains(limit) else { throw CLIError("--limit must be 1 to 1000") }
            if let subject { try checkSubject(subject) }
            var found: [DeliveryResponse] = []
            var next = after
            try await VaultConnection.with(client) { vault in
                repeat {
                    let page = try await vault.deliveries(status: parsed, service: service, subject: subject, after: next, limit: limit)
                    found += page.deliveries
                    next = page.next
                } while all && next != nil
            }
            if output.json {
                print(try VaultConnection.json(DeliveriesResponse(deliveries: found, next: next)))
                return
            }
            if found.isEmpty {
                print("No deliveries\(parsed.map { " \($0.rawValue)" } ?? "").")
                return
            }
            print(pad("ID", 32) + pad("TYPE", 20) + pad("SUBJECT", 31) + pad("SERVICE", 16) + pad("STATUS", 11) + pad("TRIES", 6) + "LAST / NEXT")
            for d in found {
                let when = d.status == .pending ? d.nextAttemptAt.map { "next " + WireJSON.formatDate($0) } : d.lastAttemptAt.map(WireJSON.formatDate)
                let last = d.lastOutcome.map { Terminal.escape($0) + " " } ?? ""
                print(pad(Terminal.escape(d.id), 32) + pad(d.type.rawValue, 20) + pad(Terminal.escape(d.subject), 31)
                      + pad(Terminal.escape(d.service), 16) + pad(d.status.rawValue, 11) + pad("\(d.attempts)", 6) + last + (when ?? ""))
            }
            if let next { print("more: cofre deliveries list --after \(Terminal.escape(next)) (or --all)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One delivery and its attempt log.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The delivery id (msg_…), as its webhook-id header carries it.") var id: String

        func run() async throws {
            let d = try await VaultConnection.with(client) { vault in try await vault.delivery(id: id) }
            if output.json {
                print(try VaultConnection.json(d))
                return
            }
            print("\(Terminal.escape(d.id)): \(d.type.rawValue) of \(Terminal.escape(d.subject)) to \(Terminal.escape(d.service)) — \(d.status.rawValue)")
            print("created \(WireJSON.formatDate(d.createdAt)), retried until \(WireJSON.formatDate(d.retryUntil))"
                  + (d.nextAttemptAt.map { ", next attempt \(WireJSON.formatDate($0))" } ?? ""))
            for a in d.attemptLog ?? [] {
                print("  #\(a.attempt) \(WireJSON.formatDate(a.at)) \(Terminal.escape(a.outcome)) (\(a.durationMs) ms)")
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Try a pending or failed delivery again now, for another full retry period.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The delivery id (msg_…).") var id: String

        func run() async throws {
            let d = try await VaultConnection.with(client) { vault in try await vault.retryDelivery(id: id) }
            if output.json {
                print(try VaultConnection.json(d))
                return
            }
            print("\(Terminal.escape(d.id)) is due now (retried until \(WireJSON.formatDate(d.retryUntil))); the vault's delivery worker sends it.")
        }
    }
}

/// `cofre incident scope`: which subjects and fields a service read in a window (CONTRACT §10).
struct IncidentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "incident", abstract: "Scope a security incident from the audit log (DPO; COFRE_TOKEN, COFRE_ADDR).",
        subcommands: [Scope.self])

    struct Scope: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The subjects and fields a service read in a window, with counts and the ANPD's notify-by date.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The service whose reads are scoped (e.g. one whose key leaked).") var service: String
        @Option(help: "ISO 8601 time, inclusive.") var since: String
        @Option(help: "ISO 8601 time, exclusive.") var until: String
        @Option(name: .customLong("detected-at"), help: "When the incident became known (ISO 8601): adds notify_by, 3 business days later.")
        var detectedAt: String?
        @Option(help: "json (default) or csv (one row per subject).") var format: String = "json"
        @Option(help: "Write to this file (created with mode 0600) instead of standard output.") var out: String?
        @Flag(help: "Replace --out if it exists.") var force = false

        func run() async throws {
            guard ["json", "csv"].contains(format) else { throw CLIError("--format must be json or csv") }
            let since = try isoTime(self.since, "since"), until = try isoTime(self.until, "until")
            guard since < until else { throw CLIError("--since must be before --until") }
            let detected = try detectedAt.map { try isoTime($0, "detected-at") }
            let csv = format == "csv"
            // Subject ids of an incident are sensitive: a file is readable by its owner only.
            let toFile = try await PrivateFile.stream(to: out, force: force, client: client, endLine: !csv) { vault, sink in
                try await vault.streamIncidentScope(service: service, since: since, until: until, detectedAt: detected, csv: csv, into: sink)
            }
            if toFile, let out { FileHandle.standardError.write(Data("Wrote the incident scope to \(out) (mode 0600).\n".utf8)) }
        }
    }
}
