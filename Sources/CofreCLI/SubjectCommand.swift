import ArgumentParser
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
            let vault = try VaultClient(client)
            let query = format == "simple" ? [("format", "simple")] : []
            let path = "/v1/subjects/\(subject)/export"
            guard let out else {
                try await vault.download(path, query: query, to: FileHandle.standardOutput)
                print("")
                return
            }
            // The file holds personal data in clear: only its owner may read it, and nothing planted redirects it.
            try await PrivateFile.write(to: out, force: force) { handle in try await vault.download(path, query: query, to: handle) }
            FileHandle.standardError.write(Data("Exported \(subject) to \(out) (mode 0600: it contains personal data).\n".utf8))
        }
    }

    struct Erase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase a subject by crypto-shredding; fields a legal duty retains are blocked instead (Art. 16, 18 VI).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The subject id (sub_…).") var subject: String
        @Option(help: "Why (kept in the receipt; write no personal data here).") var reason: String
        @Option(help: "The request's ticket id.") var ticket: String
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            try checkSubject(subject)
            let vault = try VaultClient(client)
            if !yes {
                guard isatty(STDIN_FILENO) == 1 else {
                    throw CLIError("refusing to erase without confirmation: standard input is not a terminal; pass --yes")
                }
                print("Erasing \(subject) destroys the keys of every field no legal retention covers; it cannot be undone.")
                print("Type the subject id to confirm: ", terminator: "")
                guard readLine()?.trimmingCharacters(in: .whitespaces) == subject else { throw CLIError("not confirmed; nothing was erased") }
            }
            struct Body: Encodable { let reason: String; let ticket: String }
            let data = try await vault.send(.post, "/v1/subjects/\(subject)/erase", body: Body(reason: reason, ticket: ticket))
            if client.json {
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let r = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
            print("Erasure receipt for \(r["subject"] ?? subject) — ticket \(r["ticket"] ?? ""), at \(r["erased_at"] ?? ""), by \(r["requested_by"] ?? "")")
            print(pad("FIELD", 14) + pad("OUTCOME", 10) + pad("KEPT FOR", 16) + pad("LEGAL BASIS", 20) + "UNTIL")
            for f in r["fields"] as? [[String: Any]] ?? [] {
                print(pad(f["field"] as? String ?? "", 14) + pad(f["outcome"] as? String ?? "", 10) + pad(f["purpose"] as? String ?? "-", 16)
                      + pad(f["legal_basis"] as? String ?? "-", 20) + (f["until"] as? String ?? "-"))
            }
        }
    }
}

/// `cofre consent show|grant|revoke`: the DPO records consent on a subject's behalf.
struct ConsentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consent", abstract: "Show, grant or revoke a subject's consent (DPO; COFRE_TOKEN, COFRE_ADDR).",
        subcommands: [Show.self, Grant.self, Revoke.self])

    struct Body: Encodable {
        let status: String
        let channel: String?
        let evidence: String?
        let notice_version: String?
    }

    /// Records one ledger event and reports it.
    static func record(_ client: ClientOptions, subject: String, purpose: String, _ body: Body, done: String) async throws {
        try checkSubject(subject)
        try checkPurpose(purpose)
        let data = try await VaultClient(client).send(.put, "/v1/subjects/\(subject)/consents/\(purpose)", body: body)
        if client.json { print(String(decoding: data, as: UTF8.self)); return }
        let seq = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["seq"] ?? "?"
        print("Consent \(done) for \(purpose) (event #\(seq)).")
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Current state and full history per purpose.")
        @OptionGroup var client: ClientOptions
        @Argument var subject: String

        func run() async throws {
            try checkSubject(subject)
            let data = try await VaultClient(client).send(.get, "/v1/subjects/\(subject)/consents")
            if client.json { print(String(decoding: data, as: UTF8.self)); return }
            let r = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
            let purposes = r["purposes"] as? [String: [String: Any]] ?? [:]
            print(pad("PURPOSE", 22) + pad("LEGAL BASIS", 22) + pad("CONSENT", 10) + "OBJECTION")
            for name in purposes.keys.sorted() {
                let p = purposes[name]!
                print(pad(name, 22) + pad(p["legal_basis"] as? String ?? "", 22) + pad(p["consent"] as? String ?? "", 10)
                      + ((p["objection"] as? Bool ?? false) ? "yes" : "no"))
                for e in p["history"] as? [[String: Any]] ?? [] {
                    print("    #\(e["seq"] ?? "") \(e["recorded_at"] ?? "") \(e["status"] ?? "") by \(e["recorded_by"] ?? "")"
                          + ((e["channel"] as? String).map { " via \($0)" } ?? "") + ((e["notice_version"] as? String).map { ", notice \($0)" } ?? ""))
                }
            }
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a granted consent with its evidence.")
        @OptionGroup var client: ClientOptions
        @Argument var subject: String
        @Argument var purpose: String
        @Option(help: "Proof of the opt-in (message id, recording reference).") var evidence: String
        @Option(name: .customLong("notice-version"), help: "The privacy notice version the subject saw.") var noticeVersion: String
        @Option var channel: String?

        func run() async throws {
            try await ConsentCommand.record(client, subject: subject, purpose: purpose,
                                            Body(status: "granted", channel: channel, evidence: evidence, notice_version: noticeVersion),
                                            done: "granted")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a revocation; it takes effect on the next request.")
        @OptionGroup var client: ClientOptions
        @Argument var subject: String
        @Argument var purpose: String
        @Option var evidence: String?
        @Option var channel: String?

        func run() async throws {
            try await ConsentCommand.record(client, subject: subject, purpose: purpose,
                                            Body(status: "revoked", channel: channel, evidence: evidence, notice_version: nil), done: "revoked")
        }
    }
}
