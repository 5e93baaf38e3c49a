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
        .executableTarget(
            name: "MiniLMQuant",
            dependencies: ["MiniLM", .product(name: "AdaptRuntime", package: "adaptc")],
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
