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
        // The scratch folder and libFuzzer's driver, shared by the targets.
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
        // Spec text → Parse → Check (every diagnostic path).
        .executableTarget(
            name: "fuzz-spec",
            dependencies: ["FuzzSupport", .product(name: "AdaptcCore", package: "adaptc")],
            path: "Sources/FuzzSpec"),
        // Safetensors bytes → reader (header and data, F16/BF16 widening) → writer round trip.
        .executableTarget(
            name: "fuzz-safetensors",
            dependencies: ["FuzzSupport", .product(name: "AdaptRuntime", package: "adaptc")],
            path: "Sources/FuzzSafetensors"),
        // adapter_config.json → import-peft's whole path (PEFT's rules, the spec it writes, its check and plan).
        .executableTarget(
            name: "fuzz-peft-config",
            dependencies: ["FuzzSupport", .product(name: "AdaptcCore", package: "adaptc")],
            path: "Sources/FuzzPEFTConfig"),
        // model.safetensors.index.json → a sharded base folder opened and checked against its shards.
        .executableTarget(
            name: "fuzz-index",
            dependencies: ["FuzzSupport", .product(name: "AdaptcCore", package: "adaptc")],
            path: "Sources/FuzzShardIndex"),
    ]
)
