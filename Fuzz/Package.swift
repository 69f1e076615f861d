// swift-tools-version:6.1
// The fuzz targets (libFuzzer), a package of their own so the main build is untouched:
//   cd Fuzz && swift build -c release --sanitize=fuzzer --sanitize=address
//   .build/release/fuzz-policy -max_total_time=60 Corpus/policy
// .ci/run runs each target for a short time (`Fuzz/run.sh 60`); the long form is `bash Fuzz/run.sh 3600`.
import PackageDescription

let settings: [SwiftSetting] = [.swiftLanguageMode(.v6), .unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "cofre-fuzz",
    dependencies: [.package(name: "cofre", path: "..")],
    targets: ["policy", "envelope", "fields", "audit", "requests"].map { name in
        .executableTarget(
            name: "fuzz-\(name)",
            dependencies: name == "requests"
                ? [.product(name: "CofreAPI", package: "cofre")]
                : [.product(name: "CofreCore", package: "cofre"), .product(name: "CofreCrypto", package: "cofre")],
            path: "Sources/fuzz-\(name)",
            swiftSettings: settings)
    }
)
