import ArgumentParser
import CofreAPI
import CofreClient
import CofreCore
import Foundation

/// Refuses anything that is not a subject id before it reaches a URL path.
func checkSubject(_ s: String) throws {
    guard Identifiers.isSubject(s) else { throw CLIError("'\(s)' is not a subject id (sub_ followed by 26 letters and digits)") }
}

/// Refuses anything that is not a policy name before it reaches a URL path.
func checkPurpose(_ s: String) throws {
    let ok = !s.isEmpty && s.count <= 64 && s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }
    guard ok else { throw CLIError("'\(s)' is not a purpose name") }
}

/// `cofre subject export|erase`: the DPO's commands for LGPD Art. 18 requests, over HTTP.
struct SubjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subject", abstract: "Export or erase a data subject (DPO), or import subjects (a service); COFRE_TOKEN, COFRE_ADDR.",
        subcommands: [Export.self, Erase.self, ImportCommand.self])

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Everything about a subject as JSON (Art. 18 II/V, Art. 19), or a simple confirmation.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The subject id (sub_…).") var subject: String
        @Option(help: "Write to this file (created with mode 0600) instead of standard output.") var out: String?
        @Option(help: "full (default) or simple: confirmation and field names only.") var format: String = "full"
        @Flag(help: "Replace --out if it exists (the file itself, never what a link points to).") var force = false

        func run() async throws {
            guard ["full", "simple"].contains(format) else { throw CLIError("--format must be full or simple") }
            try checkSubject(subject)
            let simple = format == "simple"
            // A file holds personal data in clear: only its owner may read it, and nothing planted redirects it.
            let toFile = try await PrivateFile.stream(to: out, force: force, client: client, endLine: true) { vault, sink in
                try await vault.streamExport(subject: subject, simple: simple, into: sink)
            }
            if toFile, let out { FileHandle.standardError.write(Data("Exported \(subject) to \(out) (mode 0600: it contains personal data).\n".utf8)) }
        }
    }

    struct Erase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase a subject by crypto-shredding; fields a legal duty retains are blocked instead (Art. 16, 18 VI).")
        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The subject id (sub_…).") var subject: String
        @Option(help: "Why (kept in the receipt; write no personal data here).") var reason: String
        @Option(help: "The request's ticket id.") var ticket: String
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            try checkSubject(subject)
            // The connection settings are checked before the DPO is asked anything.
            let r = try await VaultConnection.with(client) { vault in
                if !yes {
                    guard isatty(STDIN_FILENO) == 1 else {
                        throw CLIError("refusing to erase without confirmation: standard input is not a terminal; pass --yes")
                    }
                    print("Erasing \(subject) destroys the keys of every field no legal retention covers; it cannot be undone.")
                    print("Type the subject id to confirm: ", terminator: "")
                    guard readLine()?.trimmingCharacters(in: .whitespaces) == subject else { throw CLIError("not confirmed; nothing was erased") }
                }
                return try await vault.erase(subject: subject, reason: reason, ticket: ticket)
            }
            if output.json {
                print(try VaultConnection.json(r))
                return
            }
            print("Erasure receipt for \(Terminal.escape(r.subject)) — ticket \(Terminal.escape(r.ticket)), at \(WireJSON.formatDate(r.erasedAt)), by \(Terminal.escape(r.requestedBy))")
            print(pad("FIELD", 14) + pad("OUTCOME", 10) + pad("KEPT FOR", 16) + pad("LEGAL BASIS", 20) + "UNTIL")
            for f in r.fields {
                print(pad(Terminal.escape(f.field), 14) + pad(f.outcome.rawValue, 10) + pad(Terminal.escape(f.purpose ?? "-"), 16)
                      + pad(Terminal.escape(f.legalBasis ?? "-"), 20) + (f.until.map(WireJSON.formatDate) ?? "-"))
            }
        }
    }
}

/// `cofre consent show|grant|revoke`: the DPO records consent on a subject's behalf.
struct ConsentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consent", abstract: "Show, grant or revoke a subject's consent (DPO; COFRE_TOKEN, COFRE_ADDR).",
        subcommands: [Show.self, Grant.self, Revoke.self])

    /// Records one ledger event and reports it.
    static func record(_ client: ClientOptions, _ output: OutputOptions, subject: String, purpose: String, _ body: ConsentRequest,
                       done: String) async throws {
        try checkSubject(subject)
        try checkPurpose(purpose)
        let event = try await VaultConnection.with(client) { vault in try await vault.recordConsent(subject: subject, purpose: purpose, body) }
        if output.json { print(try VaultConnection.json(event)); return }
        print("Consent \(done) for \(purpose) (event #\(event.seq)).")
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Current state and full history per purpose.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The subject id (sub_…).") var subject: String

        func run() async throws {
            try checkSubject(subject)
            let r = try await VaultConnection.with(client) { vault in try await vault.consents(subject: subject) }
            if output.json { print(try VaultConnection.json(r)); return }
            print(pad("PURPOSE", 22) + pad("LEGAL BASIS", 22) + pad("CONSENT", 10) + "OBJECTION")
            for (name, p) in r.purposes.sorted(by: { $0.key < $1.key }) {
                print(pad(Terminal.escape(name), 22) + pad(p.legalBasis.rawValue, 22) + pad(p.consent.rawValue, 10) + (p.objection ? "yes" : "no"))
                for e in p.history {
                    print("    #\(e.seq) \(WireJSON.formatDate(e.recordedAt)) \(e.status.rawValue) by \(Terminal.escape(e.recordedBy))"
                          + (e.channel.map { " via \(Terminal.escape($0))" } ?? "") + (e.noticeVersion.map { ", notice \(Terminal.escape($0))" } ?? ""))
                }
            }
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a granted consent with its evidence.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The subject id (sub_…).") var subject: String
        @Argument(help: "A purpose of the policy whose legal basis is consent.") var purpose: String
        @Option(help: "Proof of the opt-in (message id, recording reference).") var evidence: String
        @Option(name: .customLong("notice-version"), help: "The privacy notice version the subject saw.") var noticeVersion: String
        @Option(help: "Where the subject gave it, e.g. whatsapp, phone, web.") var channel: String?

        func run() async throws {
            try await ConsentCommand.record(client, output, subject: subject, purpose: purpose,
                                            ConsentRequest(status: "granted", channel: channel, evidence: evidence, noticeVersion: noticeVersion),
                                            done: "granted")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a revocation; it takes effect on the next request.")
        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The subject id (sub_…).") var subject: String
        @Argument(help: "A purpose of the policy whose legal basis is consent.") var purpose: String
        @Option(help: "What the subject said, and where (optional: revoking must stay easy).") var evidence: String?
        @Option(help: "Where the subject said it, e.g. whatsapp, phone, web.") var channel: String?

        func run() async throws {
            try await ConsentCommand.record(client, output, subject: subject, purpose: purpose,
                                            ConsentRequest(status: "revoked", channel: channel, evidence: evidence), done: "revoked")
        }
    }
}
