import CofreCore
import CofreTestSupport
import Foundation
import Testing
import Yams

/// What can be checked of deploy/ on a machine without Docker or Kubernetes.
@Suite("deploy/ files")
struct DeployFilesTests {
    static let deploy = repositoryRoot + "/deploy"
    static let files = ["cofre.service", "Dockerfile", "compose.yaml", "nginx.conf", "policy.example.yaml",
                        "kubernetes/deployment.yaml", "kubernetes/secret.yaml", "kubernetes/networkpolicy.yaml", "kubernetes/configmap.yaml"]

    @Test("every file starts with a comment saying how to use it", arguments: files)
    func header(_ file: String) throws {
        let text = try String(contentsOfFile: Self.deploy + "/" + file, encoding: .utf8)
        let first = text.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("#") || first.hasPrefix("--"), "\(file) has no header comment")
    }

    @Test("every YAML document parses", arguments: files.filter { $0.hasSuffix(".yaml") })
    func yamlParses(_ file: String) throws {
        let text = try String(contentsOfFile: Self.deploy + "/" + file, encoding: .utf8)
        let docs = try Array(Yams.load_all(yaml: text))
        #expect(!docs.isEmpty)
        #expect(docs.allSatisfy { $0 is [AnyHashable: Any] || $0 is [String: Any] })
    }

    @Test("compose runs two PostgreSQL clusters (data, keys) with separate volumes, two vault instances and a proxy")
    func compose() throws {
        let text = try String(contentsOfFile: Self.deploy + "/compose.yaml", encoding: .utf8)
        let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
        let services = try #require(doc["services"] as? [String: Any])
        #expect(Set(services.keys) == ["postgres", "postgres-keys", "vault-a", "vault-b", "proxy"])
        let env = try #require((services["vault-b"] as? [String: Any])?["environment"] as? [String: Any])
        let data = try #require(env["COFRE_DATABASE"] as? String), keys = try #require(env["COFRE_KEY_STORE"] as? String)
        #expect(URLComponents(string: data)?.host == "postgres" && URLComponents(string: keys)?.host == "postgres-keys")
        func volumes(_ name: String) -> [String] { (services[name] as? [String: Any])?["volumes"] as? [String] ?? [] }
        #expect(Set(volumes("postgres")).isDisjoint(with: volumes("postgres-keys")))
        #expect(env["COFRE_ALLOW_SHARED_CLUSTER"] == nil)
        #expect(env["COFRE_ENV"] as? String == "production")
    }

    @Test("the Kubernetes Deployment is ready only on /readyz, runs unprivileged, and reads the KEK from a Secret")
    func kubernetes() throws {
        let text = try String(contentsOfFile: Self.deploy + "/kubernetes/deployment.yaml", encoding: .utf8)
        let docs = try Array(Yams.load_all(yaml: text)).compactMap { $0 as? [String: Any] }
        let deployment = try #require(docs.first { $0["kind"] as? String == "Deployment" })
        let spec = ((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any]
        let container = try #require((spec?["containers"] as? [[String: Any]])?.first)
        #expect(((container["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any])?["path"] as? String == "/readyz")
        #expect((container["securityContext"] as? [String: Any])?["readOnlyRootFilesystem"] as? Bool == true)
        let env = container["env"] as? [[String: Any]] ?? []
        #expect(env.contains { $0["name"] as? String == "COFRE_KEK" && $0["valueFrom"] != nil })
        #expect((spec?["securityContext"] as? [String: Any])?["runAsNonRoot"] as? Bool == true)
        let netpol = try String(contentsOfFile: Self.deploy + "/kubernetes/networkpolicy.yaml", encoding: .utf8)
        #expect((try Yams.load(yaml: netpol) as? [String: Any])?["kind"] as? String == "NetworkPolicy")
        #expect(netpol.contains("app: postgres-keys"))
        let secret = try String(contentsOfFile: Self.deploy + "/kubernetes/secret.yaml", encoding: .utf8)
        #expect(secret.contains("@postgres.cofre.svc") && secret.contains("@postgres-keys.cofre.svc"), "data and keys in two clusters")
    }

    @Test("the ConfigMap's policy is the example policy")
    func configMapPolicy() throws {
        let text = try String(contentsOfFile: Self.deploy + "/kubernetes/configmap.yaml", encoding: .utf8)
        let doc = try #require(try Yams.load(yaml: text) as? [String: Any])
        let embedded = try #require((doc["data"] as? [String: Any])?["policy.yaml"] as? String)
        let a = try PolicyLoader.parse(embedded, file: "configmap")
        let b = try PolicyLoader.load(file: examplePolicyPath)
        #expect(a.fields == b.fields)
        #expect(a.purposes == b.purposes)
        #expect(a.services == b.services)
        #expect(a.contactRules == b.contactRules)
    }

    @Test("the systemd unit is hardened and passes systemd-analyze verify where available")
    func systemd() throws {
        let unit = try String(contentsOfFile: Self.deploy + "/cofre.service", encoding: .utf8)
        for directive in ["NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ReadWritePaths=/var/lib/cofre", "MemoryDenyWriteExecute=yes"] {
            #expect(unit.contains(directive), "\(directive)")
        }
        let analyze = "/usr/bin/systemd-analyze"
        guard FileManager.default.isExecutableFile(atPath: analyze) else { return }
        // Verify a copy whose ExecStart points at a binary that exists here.
        let dir = try makeTempDirectory()
        try unit.replacingOccurrences(of: "/usr/local/bin/cofre", with: "/bin/true").write(toFile: dir + "/cofre.service", atomically: true, encoding: .utf8)
        let p = try ChildProcess(analyze, ["verify", dir + "/cofre.service"], stderr: .pipe)
        let message = String(decoding: try p.communicate().stderr, as: UTF8.self)
        #expect(p.terminationStatus == 0, "\(message)")
    }
}
