import CoreML
import Foundation
import PocketBertKit

/// What `pocketbert bundle` put into `Resources/pocketbert/`: the manifest, the vocabulary and one Core ML package.
struct AppBundle {
    let root: URL
    let manifest: Manifest
    let artifact: ArtifactInfo

    init() throws {
        guard let root = Bundle.main.url(forResource: "pocketbert", withExtension: nil),
              let data = try? Data(contentsOf: root.appendingPathComponent("manifest.json")) else {
            throw ManifestError("no model bundled: run 'pocketbert bundle OUT --ios apps_sample/ios' and rebuild")
        }
        self.root = root
        manifest = try Manifest.parse(data)
        artifact = try manifest.artifact()
        guard artifact.format == "coreml" else {
            throw ManifestError("the iOS app runs Core ML artifacts, the bundle has \(artifact.name); run 'pocketbert bundle --ios'")
        }
    }

    /// Verifies the artifact and vocabulary sha256, compiles the `.mlpackage` once (cached by sha256) and loads tokenizer + model.
    func load(computeUnits: ComputeUnitsChoice) throws -> Engine {
        try ArtifactVerifier.verify(artifact, root: root)
        try ArtifactVerifier.verifyVocab(manifest, root: root)
        let tokenizer = try WordPieceTokenizer(
            vocab: readVocab(Data(contentsOf: root.appendingPathComponent(manifest.tokenizer.vocab))),
            config: manifest.tokenizer.config)
        let runner = try CoreMLRunner(compiledModel: compiledModel(), artifact: artifact, computeUnits: computeUnits)
        return try Engine(manifest: manifest, artifact: artifact, tokenizer: tokenizer, runner: runner)
    }

    /// The compiled model (`.mlmodelc`) in Application Support, compiled on first use.
    func compiledModel() throws -> URL {
        let cache = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("pocketbert-\(artifact.sha256.prefix(16)).mlmodelc")
        if FileManager.default.fileExists(atPath: cache.path) { return cache }
        let compiled = try MLModel.compileModel(at: root.appendingPathComponent(artifact.path))
        try FileManager.default.moveItem(at: compiled, to: cache)
        return cache
    }
}
