import Foundation
import XCTest
@testable import PocketBertKit

/// Golden files written by `pocketbert goldens` (never committed), read from `$POCKETBERT_GOLDENS` or from
/// `Tests/PocketBertKitTests/Goldens/`. Missing goldens fail the tests. Mirrors the Kotlin tests' `Goldens`.
enum Goldens {
    static let testsDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    /// The manifest fixture shared with the Kotlin tests (`apps_sample/android/core/src/test/resources/bundle`).
    static let bundleFixture = testsDir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("android/core/src/test/resources/bundle")

    static var dir: URL {
        if let path = ProcessInfo.processInfo.environment["POCKETBERT_GOLDENS"] { return URL(fileURLWithPath: path) }
        return testsDir.appendingPathComponent("Goldens")
    }

    static func json(_ name: String) throws -> [String: Any] {
        let url = dir.appendingPathComponent(name)
        guard let data = try? Data(contentsOf: url) else {
            XCTFail("no goldens at \(url.path): run 'pocketbert goldens --cased-test-vocab -o \(dir.path)'")
            throw CocoaError(.fileNoSuchFile)
        }
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    static func tokenizerFiles() throws -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasPrefix("tokenizer-") && $0.hasSuffix(".json") }.sorted()
    }

    /// The tokenizer a golden file describes, built the way the app builds it from a manifest.
    static func tokenizer(_ golden: [String: Any]) throws -> WordPieceTokenizer {
        let settings = try JSONSerialization.data(withJSONObject: golden["tokenizer"]!)
        let config = try JSONDecoder().decode(TokenizerConfig.self, from: settings)
        let vocab = try Data(contentsOf: dir.appendingPathComponent(golden["vocab"] as! String))
        return try WordPieceTokenizer(vocab: readVocab(vocab), config: config)
    }
}

func floats(_ value: Any?) -> [Float] { (value as! [NSNumber]).map { Float(truncating: $0) } }
func ints(_ value: Any?) -> [Int] { (value as! [NSNumber]).map { $0.intValue } }
