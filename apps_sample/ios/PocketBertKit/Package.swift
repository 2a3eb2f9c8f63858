// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "PocketBertKit",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "PocketBertKit", targets: ["PocketBertKit"]),
    ],
    targets: [
        .target(name: "PocketBertKit"),
        .testTarget(name: "PocketBertKitTests", dependencies: ["PocketBertKit"]),
    ]
)
