// swift-tools-version:6.0
// An app that embeds adaptc: its spec is compiled at build time by the
// AdaptcPlugin build-tool plugin (no generated file is checked in), and it
// trains, saves and checks an adapter with AdaptRuntime. `swift run` from here.
import PackageDescription

let package = Package(
    name: "TrainAdapter",
    dependencies: [
        .package(name: "adaptc", path: "../../.."),
    ],
    targets: [
        .executableTarget(
            name: "TrainAdapter",
            dependencies: [.product(name: "AdaptRuntime", package: "adaptc")],
            plugins: [.plugin(name: "AdaptcPlugin", package: "adaptc")]
        ),
    ]
)
