public import ArgumentParser

/// `cofre`: the vault server and its operators', DPO's and auditors' commands.
public struct CofreCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cofre",
        abstract: "Cofre, an LGPD privacy vault.",
        subcommands: [ServeCommand.self, ServiceCommand.self, KeysCommand.self, SubjectCommand.self, ConsentCommand.self, AuditCommand.self])

    public init() {}
}

/// The executable's whole body, so the `cofre` target stays a one-liner over this library.
public func cofreMain() async {
    await CofreCommand.main()
}
