import ArgumentParser
import CofreCore
import Foundation
import Logging

/// `cofre keys status|rotate|rewrap|retire`: the key-encryption key lifecycle, on the vault's host.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Manage the key ring (operator, on the vault's host).",
        subcommands: [Status.self, Rotate.self, Rewrap.self, Retire.self, Purge.self])

    static func with<T: Sendable>(_ options: RuntimeOptions, _ body: @escaping @Sendable (Vault) async throws -> T) async throws -> T {
        try await Bootstrap.withVault(options.resolve(), logger: Logging.make("cofre", level: "warning"), body)
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "KEK versions, the primary, and data keys per version.")
        @OptionGroup var options: RuntimeOptions
        @Flag(help: "Print the status as JSON.") var json = false

        func run() async throws {
            let s = try await KeysCommand.with(options) { try await $0.keyStatus() }
            let fmt = ISO8601DateFormatter()
            if json {
                struct Version: Encodable { let version: Int; let primary: Bool; let dataKeys: Int; let createdAt: String }
                struct Instance: Encodable {
                    let id, host: String; let pid: Int; let seenAt: String; let versions: [Int]; let primary: Int; let primarySince: String
                }
                struct Output: Encodable {
                    let source: String; let primary: Int; let versions: [Version]; let systemKeys: [String: Int]
                    let orphanedDataKeys, unneededDataKeys, queuedForShred: Int; let instances: [Instance]
                }
                print(try jsonLine(Output(
                    source: s.source, primary: Int(s.versions.first { $0.primary }!.version),
                    versions: s.versions.map { .init(version: Int($0.version), primary: $0.primary, dataKeys: $0.dataKeys,
                                                     createdAt: $0.createdAt.map(fmt.string(from:)) ?? "") },
                    systemKeys: s.systemKeys.mapValues { Int($0) }, orphanedDataKeys: s.orphaned, unneededDataKeys: s.unneeded,
                    queuedForShred: s.queuedForShred,
                    instances: s.instances.map {
                        .init(id: $0.id, host: $0.host, pid: Int($0.pid), seenAt: fmt.string(from: $0.seenAt), versions: $0.versions.map { Int($0) },
                              primary: Int($0.primary), primarySince: fmt.string(from: $0.primarySince))
                    })))
                return
            }
            print("source: \(s.source)")
            print(pad("VERSION", 9) + pad("PRIMARY", 9) + pad("DATA KEYS", 11) + "CREATED")
            for v in s.versions {
                print(pad("v\(v.version)", 9) + pad(v.primary ? "yes" : "", 9) + pad("\(v.dataKeys)", 11) + (v.createdAt.map(fmt.string(from:)) ?? "-"))
            }
            print("system keys: " + s.systemKeys.keys.sorted().map { "\($0) under v\(s.systemKeys[$0]!)" }.joined(separator: ", "))
            print("instances seen in the last minute: " + (s.instances.isEmpty ? "none" : ""))
            for i in s.instances {
                print("  \(i.label): loaded \(i.versions.map { "v\($0)" }.joined(separator: ", ")), primary v\(i.primary), seen \(fmt.string(from: i.seenAt))")
            }
            print("unneeded data keys: \(s.unneeded) (\(s.queuedForShred) queued for destruction; the key sweeper in `cofre serve` destroys them)")
            if s.orphaned > 0 { print("WARNING: \(s.orphaned) data key(s) are wrapped by a version that is not loaded") }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a KEK version; every new wrap uses it.")
        @OptionGroup var options: RuntimeOptions

        func run() async throws {
            let v = try await KeysCommand.with(options) { try await $0.rotateKEK() }
            print("Added key-encryption key v\(v); it is now primary. Running servers use it after their next key-ring reload (COFRE_KEY_RELOAD_SECONDS, default 5).")
            print("Next: `cofre keys rewrap`, then `cofre keys retire` the old version once status shows 0 data keys on it.")
        }
    }

    struct Rewrap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-wrap every data key under the primary KEK (no value is decrypted); resumable, safe while serving.")
        @OptionGroup var options: RuntimeOptions
        @Option(help: "Keys per batch.") var batchSize: Int = 500
        @Option(help: "Stop after this many batches (run again to continue).") var maxBatches: Int?

        func run() async throws {
            guard batchSize > 0, (maxBatches ?? 1) > 0 else { throw CLIError("--batch-size and --max-batches must be positive") }
            let (batchSize, maxBatches) = (self.batchSize, self.maxBatches)
            let r = try await KeysCommand.with(options) { try await $0.rewrapDataKeys(batchSize: batchSize, maxBatches: maxBatches) }
            print("Re-wrapped \(r.rewrapped) data key(s); \(r.remaining) remain on older versions.")
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a KEK version; refused while anything still needs it.")
        @OptionGroup var options: RuntimeOptions
        @Argument(help: "The version, as 1 or v1.") var version: String

        func run() async throws {
            let digits = version.hasPrefix("v") ? String(version.dropFirst()) : version
            guard let v = UInt32(digits), v > 0 else { throw CLIError("VERSION must be a number such as 1 or v1") }
            let archived = try await KeysCommand.with(options) { try await $0.retireKEK(v) }
            print("Retired key-encryption key v\(v): archived at \(archived) (mode 0600). Keep it until no key-store backup from before "
                + "the rotation is kept, then run `cofre keys purge v\(v) --backups-gone`.")
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a retired (archived) KEK for good, once no key-store backup from before the rotation is kept.")
        @OptionGroup var options: RuntimeOptions
        @Argument(help: "The version, as 1 or v1.") var version: String
        @Flag(help: "Confirm that every key-store backup older than the rotation that retired this version is gone.")
        var backupsGone = false

        func run() async throws {
            let digits = version.hasPrefix("v") ? String(version.dropFirst()) : version
            guard let v = UInt32(digits), v > 0 else { throw CLIError("VERSION must be a number such as 1 or v1") }
            guard backupsGone else {
                throw CLIError("purging v\(v) makes every key-store backup that still needs it unreadable; once such backups are gone, "
                    + "run again with --backups-gone")
            }
            let path = try await KeysCommand.with(options) { try await $0.purgeKEK(v) }
            print("Purged the archived key-encryption key v\(v) (\(path)).")
        }
    }
}
