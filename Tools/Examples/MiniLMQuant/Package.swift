// swift-tools-version:6.0
// all-MiniLM-L6-v2 in Swift on AdaptRuntime: the WordPiece tokenizer and the
// float encoder (library MiniLM, tested against transformers and PyTorch), and
// the app MiniLMQuant (`embed`, `bench`), whose adapter specs are compiled at
// build time by the AdaptcPlugin build-tool plugin. `swift run` from here;
// the checkpoint comes from Tools/fetch-minilm (the root's .build/minilm).
import PackageDescription

let package = Package(
    name: "MiniLMQuant",
    products: [
        .executable(name: "MiniLMQuant", targets: ["MiniLMQuant"]),
    ],
    dependencies: [
        .package(name: "adaptc", path: "../../.."),
    ],
    targets: [
        .target(name: "MiniLM", dependencies: [.product(name: "AdaptRuntime", package: "adaptc")]),
        // The specs `adaptc prune` wrote from the adapters `recover --save` trained,
        // committed as prune wrote them (Tools/minilm checks it still does) and
        // compiled like any spec: the pruned adapters run through generated code.
        // A target of their own, since a pruned spec keeps its source's name.
        .target(
            name: "MiniLMPruned",
            dependencies: [.product(name: "AdaptRuntime", package: "adaptc")],
            plugins: [.plugin(name: "AdaptcPlugin", package: "adaptc")]
        ),
        .executableTarget(
            name: "MiniLMQuant",
            dependencies: ["MiniLM", "MiniLMPruned", .product(name: "AdaptRuntime", package: "adaptc")],
            plugins: [.plugin(name: "AdaptcPlugin", package: "adaptc")]
        ),
        .testTarget(
            name: "MiniLMTests",
            dependencies: ["MiniLM", "MiniLMQuant", .product(name: "AdaptRuntime", package: "adaptc")],
            exclude: ["Fixtures"],
            plugins: [.plugin(name: "AdaptcPlugin", package: "adaptc")]
        ),
    ]
)
