import ArgumentParser
import CofreCore
import Foundation
import Logging

/// `cofre service issue|revoke|list`: the operator manages service keys on the vault's host.
struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Issue, revoke and list service keys (operator, on the vault's host).",
        subcommands: [Issue.self, Revoke.self, List.self])

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a key for a service of the policy; prints it once.")
        @OptionGroup var options: RuntimeOptions
        @Argument(help: "A name under 'services' in the policy.") var name: String
        @Flag(help: "Print {\"service\":…,\"key\":…}.") var json = false

        func run() async throws {
            let name = self.name
            let key = try await Bootstrap.withVault(options.resolve(), logger: Logging.make("cofre", level: "warning")) { vault in
                try await vault.issueServiceKey(service: name)
            }
            if json {
                struct Issued: Encodable { let service: String; let key: String }
                print(try jsonLine(Issued(service: name, key: key)))
            } else {
                print("Issued a key for service '\(name)'. It is shown only this once; only its hash is stored:")
                print(key)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke every key of a service.")
        @OptionGroup var options: RuntimeOptions
        @Argument(help: "A name under 'services' in the policy.") var name: String
        @Flag(help: "Print {\"service\":…,\"revoked\":N}.") var json = false

        func run() async throws {
            let name = self.name
            let n = try await Bootstrap.withVault(options.resolve(), logger: Logging.make("cofre", level: "warning")) { vault in
                guard vault.policy.services[name] != nil else { throw CLIError("'\(name)' is not a service in the policy") }
                return try await vault.revokeServiceKeys(service: name)
            }
            if json {
                struct Revoked: Encodable { let service: String; let revoked: Int }
                print(try jsonLine(Revoked(service: name, revoked: n)))
            } else {
                print("Revoked \(n) key(s) of service '\(name)'.")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the policy's services and their keys.")
        @OptionGroup var options: RuntimeOptions
        @Flag(help: "Print the list as JSON.") var json = false

        func run() async throws {
            let rows = try await Bootstrap.withVault(options.resolve(), logger: Logging.make("cofre", level: "warning")) { vault in
                try await vault.serviceStatuses()
            }
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.sortedKeys]
                enc.dateEncodingStrategy = .iso8601
                enc.keyEncodingStrategy = .convertToSnakeCase
                print(String(decoding: try enc.encode(rows), as: UTF8.self))
                return
            }
            let fmt = ISO8601DateFormatter()
            print(pad("SERVICE", 16) + pad("ROLE", 10) + pad("ACTIVE", 8) + pad("REVOKED", 9) + "LAST ISSUED")
            for r in rows {
                print(pad(r.service, 16) + pad(r.role, 10) + pad("\(r.activeKeys)", 8) + pad("\(r.revokedKeys)", 9)
                      + (r.lastIssued.map(fmt.string(from:)) ?? "-"))
            }
        }
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }

/// An operator command's `--json` output: one line, sorted snake_case keys.
func jsonLine(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
