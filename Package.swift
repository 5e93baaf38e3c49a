// swift-tools-version:6.0
// adaptc — a tensorized cross-layer adapter compiler. Layout and targets: DESIGN.md §7.
import PackageDescription

let package = Package(
    name: "adaptc",
    products: [
        // What generated code imports and apps link.
        .library(name: "AdaptRuntime", targets: ["AdaptRuntime"]),
        .executable(name: "adaptc", targets: ["adaptc"]),
        // Build-time compilation of a target's *.adapt.yaml, and in-place regeneration for checked-in code.
        .plugin(name: "AdaptcPlugin", targets: ["AdaptcPlugin"]),
        .plugin(name: "GenerateAdapters", targets: ["GenerateAdapters"]),
        // The compiler as a library, for the fuzz targets of Tools/Fuzz (a separate package).
        .library(name: "AdaptcCore", targets: ["AdaptcCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", exact: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        // Documentation only: `swift package generate-documentation --target AdaptRuntime` (Tools/docs).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", exact: "1.5.0"),
    ],
    targets: [
        // OpenBLAS (CBLAS) + LAPACKE. Debian's OpenBLAS lacks LAPACKE, so the map links both.
        .systemLibrary(
            name: "CBLAS",
            path: "Sources/CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        // oneTBB behind a plain C header: no Swift C++ interop reaches users' apps.
        .target(
            name: "CTBB",
            path: "Sources/CTBB",
            linkerSettings: [.linkedLibrary("tbb")]
        ),
        // Thin products of low-rank adapters (small rank or few columns), vectorised
        // with per-function target attributes and chosen at run time: no global ISA flags.
        .target(name: "CKernels", path: "Sources/CKernels"),
        .target(name: "AdaptRuntime", dependencies: ["CBLAS", "CTBB", "CKernels"]),
        // The compiler: Parse → Check → Plan → Emit, plus the command implementations (Driver).
        .target(
            name: "AdaptcCore",
            dependencies: ["AdaptRuntime", .product(name: "Yams", package: "Yams")]
        ),
        .executableTarget(
            name: "adaptc",
            dependencies: ["AdaptcCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Checked-in output of `Tools/regenerate`: compiled and tested like user code.
        .target(name: "GeneratedAdapters", dependencies: ["AdaptRuntime"], path: "Generated"),
        .plugin(name: "AdaptcPlugin", capability: .buildTool(), dependencies: ["adaptc"], path: "Tools/Plugins/AdaptcPlugin"),
        .plugin(
            name: "GenerateAdapters",
            capability: .command(
                intent: .custom(verb: "generate-adapters", description: "Regenerate the Swift files of *.adapt.yaml specs in place"),
                permissions: [.writeToPackageDirectory(reason: "writes the generated <Name>Adapter.swift files")]
            ),
            dependencies: ["adaptc"],
            path: "Tools/Plugins/GenerateAdapters"
        ),
        .executableTarget(name: "adaptc-bench", dependencies: ["AdaptRuntime", "GeneratedAdapters"]),
        // Seeded test data and tolerance checks shared by the test targets.
        .target(name: "AdaptTestSupport", path: "Tests/AdaptTestSupport"),
        .testTarget(name: "AdaptRuntimeTests", dependencies: ["AdaptRuntime", "AdaptTestSupport"]),
        .testTarget(name: "AdaptcCoreTests", dependencies: ["AdaptcCore", "AdaptTestSupport"]),
        .testTarget(name: "GeneratedTests", dependencies: ["GeneratedAdapters", "AdaptcCore", "AdaptRuntime", "AdaptTestSupport"]),
        .testTarget(name: "adaptcTests", dependencies: ["AdaptcCore", "adaptc", "AdaptTestSupport"]),
    ],
    cxxLanguageStandard: .cxx17
)
