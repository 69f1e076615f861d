public import ArgumentParser
import CofreAPI

/// `cofre`: the vault server and its operators', DPO's and auditors' commands.
public struct CofreCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cofre",
        abstract: "Cofre, an LGPD privacy vault.",
        discussion: "Reference: docs/reference.md; the HTTP API: docs/openapi.yaml (served at /v1/openapi.json).",
        version: CofreVersion.current,
        subcommands: [ServeCommand.self, ServiceCommand.self, KeysCommand.self, SubjectCommand.self, ConsentCommand.self, AuditCommand.self,
                      DeliveriesCommand.self, IncidentCommand.self])

    public init() {}
}

/// The executable's whole body, so the `cofre` target stays a one-liner over this library.
public func cofreMain() async {
    await CofreCommand.main()
}
