import XCTest
@testable import PocketBertKit

/// The bundle manifest (fixture written by `pocketbert bundle`, shared with the Kotlin tests) parses, and a changed
/// artifact is refused.
final class ManifestTests: XCTestCase {
    private let bundleDir = Goldens.bundleFixture
    private func manifestData() throws -> Data { try Data(contentsOf: bundleDir.appendingPathComponent("manifest.json")) }

    func testParsesTaskLabelsTokenizerAndArtifact() throws {
        let manifest = try Manifest.parse(manifestData())
        XCTAssertEqual(manifest.task, .tokenClassification)
        XCTAssertEqual(manifest.labels, ["O", "B-PER", "I-PER"])
        XCTAssertEqual(manifest.sequenceBuckets, [32, 64, 128])
        XCTAssertTrue(manifest.tokenizer.config.lowercase)
        XCTAssertNil(manifest.tokenizer.config.stripAccents)
        XCTAssertEqual(manifest.tokenizer.config.clsTokenId, 101)
        XCTAssertEqual(manifest.tokenizer.vocab, "tokenizer/vocab.txt")
        let artifact = try manifest.artifact()
        XCTAssertEqual(artifact.name, "onnx-fp32")
        XCTAssertEqual(artifact.inputs.map(\.name), ["input_ids", "attention_mask"])
        XCTAssertEqual(artifact.inputs[0].dtype, "int64")
        XCTAssertEqual(artifact.files, ["onnx/fp32/model.onnx", "onnx/fp32/model.onnx.data"])
        XCTAssertNil(artifact.sequenceBuckets)
        XCTAssertEqual(manifest.buckets(for: artifact), manifest.sequenceBuckets)
    }

    func testMatchingFilesVerify() throws {
        XCTAssertNoThrow(try ArtifactVerifier.verify(Manifest.parse(manifestData()).artifact(), root: bundleDir))
    }

    func testAChangedByteIsRefusedWithAClearMessage() throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.copyItem(at: bundleDir, to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        let weights = copy.appendingPathComponent("onnx/fp32/model.onnx.data")
        var bytes = try Data(contentsOf: weights)
        bytes[0] = bytes[0] &+ 1
        try bytes.write(to: weights)
        XCTAssertThrowsError(try ArtifactVerifier.verify(Manifest.parse(manifestData()).artifact(), root: copy)) { error in
            XCTAssertTrue("\(error)".contains("run 'pocketbert bundle' again"), "\(error)")
        }
    }

    func testTheVocabularyVerifiesAndAChangedByteIsRefused() throws {
        let manifest = try Manifest.parse(manifestData())
        XCTAssertNoThrow(try ArtifactVerifier.verifyVocab(manifest, root: bundleDir))
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.copyItem(at: bundleDir, to: copy)
        let vocab = copy.appendingPathComponent(manifest.tokenizer.vocab)
        let text = try String(contentsOf: vocab, encoding: .utf8).replacingOccurrences(of: "hello", with: "hellp")
        try text.write(to: vocab, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ArtifactVerifier.verifyVocab(manifest, root: copy)) { error in
            XCTAssertTrue("\(error)".contains("tokenizer/vocab.txt does not match the manifest"))
        }
    }

    func testFilesHashInManifestOrder() throws {
        let artifact = try Manifest.parse(manifestData()).artifact()
        XCTAssertNotEqual(try ArtifactVerifier.sha256(files: artifact.files.reversed(), root: bundleDir), artifact.sha256)
    }

    func testAnUnknownArtifactNameIsRefused() throws {
        XCTAssertThrowsError(try Manifest.parse(manifestData()).artifact(named: "tflite-int8"))
    }

    func testWrongSchemaVersionOrMissingFieldsAreRefused() throws {
        let text = String(decoding: try manifestData(), as: UTF8.self)
        let bad = [text.replacingOccurrences(of: "\"schema_version\": 2", with: "\"schema_version\": 1"),
                   text.replacingOccurrences(of: "\"task\"", with: "\"tsk\""), "[]"]
        for b in bad {
            XCTAssertThrowsError(try Manifest.parse(Data(b.utf8))) { error in
                XCTAssertTrue("\(error)".contains("pocketbert") || "\(error)".contains("app"), "\(error)")
            }
        }
    }
}
