// swift-tools-version:6.0
// libFuzzer targets for adaptc's readers. Built only by Tools/fuzz, which passes
// -sanitize=fuzzer,address on the command line (no unsafeFlags here), so the
// default build of the repository never sees them. `.root/adaptc` is a link to
// the repository that Tools/fuzz creates: the dependency's identity must be
// "adaptc" whatever the clone's folder is called.
import PackageDescription

let package = Package(
    name: "adaptc-fuzz",
    dependencies: [.package(path: ".root/adaptc")],
    targets: [
        // Spec text → Parse → Check (every diagnostic path).
        .executableTarget(
            name: "fuzz-spec",
            dependencies: [.product(name: "AdaptcCore", package: "adaptc")],
            path: "Sources/FuzzSpec"),
        // Safetensors bytes → reader (header and data, F16/BF16 widening) → writer round trip.
        .executableTarget(
            name: "fuzz-safetensors",
            dependencies: [.product(name: "AdaptRuntime", package: "adaptc")],
            path: "Sources/FuzzSafetensors"),
    ]
)
