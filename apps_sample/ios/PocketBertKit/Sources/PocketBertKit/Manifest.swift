import CryptoKit
import Foundation

/// The tasks pocketbert exports (`pocketbert.tasks.Task`).
public enum Task: String, Codable {
    case featureExtraction = "feature-extraction"
    case sequenceClassification = "sequence-classification"
    case questionAnswering = "question-answering"
    case tokenClassification = "token-classification"
}

/// A manifest or bundle that cannot be used; the message says what to do.
public struct ManifestError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct TensorInfo: Codable, Equatable {
    public let name: String
    public let dtype: String
}

/// What an artifact's manifest `metadata` says about feeding it (keys pocketbert's Core ML export writes; any other
/// format leaves them out). Unknown keys and keys of another type read as `nil`, so every format's metadata decodes.
public struct ArtifactMetadata: Codable, Equatable {
    /// The id a single-input model reads as padding: its graph computes the attention mask as `input_ids != padTokenId`.
    public let padTokenId: Int?
    /// Where the attention mask comes from: `"input"`, or `"derived in the graph: input_ids != pad_token_id"`.
    public let attentionMask: String?
    /// The Core ML graph layout: `standard`, or `ane` (the Neural Engine layout).
    public let layout: String?

    enum CodingKeys: String, CodingKey { case padTokenId = "pad_token_id", attentionMask = "attention_mask", layout }

    public init(padTokenId: Int? = nil, attentionMask: String? = nil, layout: String? = nil) {
        self.padTokenId = padTokenId; self.attentionMask = attentionMask; self.layout = layout
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        padTokenId = try? c.decodeIfPresent(Int.self, forKey: .padTokenId)
        attentionMask = try? c.decodeIfPresent(String.self, forKey: .attentionMask)
        layout = try? c.decodeIfPresent(String.self, forKey: .layout)
    }
}

/// One bundled model: `files` are relative to the bundle directory and hashed in this order into `sha256`.
public struct ArtifactInfo: Codable, Equatable {
    public let name: String
    public let format: String
    public let precision: String
    public let path: String
    public let files: [String]
    public let sha256: String
    public let inputs: [TensorInfo]
    public let outputs: [TensorInfo]
    public let sequenceBuckets: [Int]?
    public let metadata: ArtifactMetadata?

    enum CodingKeys: String, CodingKey {
        case name, format, precision, path, files, sha256, inputs, outputs, sequenceBuckets = "sequence_buckets", metadata
    }
}

public struct ModelInfo: Codable, Equatable {
    public let task: Task
    public let labels: [String]?
    public let origin: String
    public let architecture: String
}

public struct TokenizerSection: Codable, Equatable {
    public let vocab: String
    /// Hex sha256 of every tokenizer file in the bundle, keyed by bundle-relative path (the vocabulary included).
    public let sha256: [String: String]
    public let config: TokenizerConfig

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        vocab = try c.decode(String.self, forKey: .vocab)
        sha256 = try c.decode([String: String].self, forKey: .sha256)
        config = try TokenizerConfig(from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        try config.encode(to: encoder)
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(vocab, forKey: .vocab)
        try c.encode(sha256, forKey: .sha256)
    }

    enum Key: String, CodingKey { case vocab, sha256 }
}

/// What an app needs from `manifest.json` (written by `pocketbert bundle`; paths relative to the bundle dir).
public struct Manifest: Codable, Equatable {
    public static let schemaVersion = 2

    public let schemaVersion: Int
    public let model: ModelInfo
    public let maxLength: Int
    public let sequenceBuckets: [Int]
    public let tokenizer: TokenizerSection
    public let artifacts: [ArtifactInfo]

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", model, maxLength = "max_length", sequenceBuckets = "sequence_buckets"
        case tokenizer, artifacts
    }

    public var task: Task { model.task }
    public var labels: [String] { model.labels ?? [] }

    public static func parse(_ data: Data) throws -> Manifest {
        struct Version: Decodable { let schema_version: Int? }
        guard let version = try? JSONDecoder().decode(Version.self, from: data) else {
            throw ManifestError("manifest.json is not a JSON object; run 'pocketbert bundle' again")
        }
        guard version.schema_version == schemaVersion else {
            throw ManifestError("manifest schema_version \(version.schema_version.map(String.init) ?? "missing"), this app reads \(schemaVersion); update the app or pocketbert")
        }
        do {
            return try JSONDecoder().decode(Manifest.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ManifestError("manifest.json has no '\(key.stringValue)'; run 'pocketbert bundle' again")
        } catch {
            throw ManifestError("manifest.json is malformed (\(error)); run 'pocketbert bundle' again")
        }
    }

    /// The artifact to load: the one named, or the first (the bundler lists the preferred one first).
    public func artifact(named name: String? = nil) throws -> ArtifactInfo {
        guard let name else {
            guard let first = artifacts.first else { throw ManifestError("the manifest lists no artifact; run 'pocketbert bundle'") }
            return first
        }
        guard let found = artifacts.first(where: { $0.name == name }) else {
            throw ManifestError("artifact '\(name)' is not in the bundle (has \(artifacts.map(\.name).joined(separator: ", "))); run 'pocketbert bundle --artifact \(name)'")
        }
        return found
    }

    /// Buckets of `artifact` (static-shape formats) or of the manifest.
    public func buckets(for artifact: ArtifactInfo) -> [Int] { artifact.sequenceBuckets ?? sequenceBuckets }
}

/// SHA-256 of an artifact: its files' bytes concatenated in manifest order (`pocketbert.export.artifact.sha256_of`).
public enum ArtifactVerifier {
    /// Hex SHA-256 of the files under `root`, read in order in 1 MiB chunks.
    public static func sha256(files: [String], root: URL) throws -> String {
        var hasher = SHA256()
        for file in files {
            let handle = try FileHandle(forReadingFrom: root.appendingPathComponent(file))
            defer { try? handle.close() }
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Throws unless the vocabulary under `root` hashes to the manifest's `tokenizer.sha256` entry.
    public static func verifyVocab(_ manifest: Manifest, root: URL) throws {
        let path = manifest.tokenizer.vocab
        guard let expected = manifest.tokenizer.sha256[path] else {
            throw ManifestError("manifest.json has no sha256 for \(path); run 'pocketbert bundle' again")
        }
        let actual = try sha256(files: [path], root: root)
        guard actual.lowercased() == expected.lowercased() else {
            throw ManifestError("\(path) does not match the manifest (sha256 \(actual), expected \(expected)); the bundle is stale or corrupt: run 'pocketbert bundle' again")
        }
    }

    /// Throws unless the artifact's files under `root` hash to the manifest's sha256.
    public static func verify(_ artifact: ArtifactInfo, root: URL) throws {
        let actual = try sha256(files: artifact.files, root: root)
        guard actual.lowercased() == artifact.sha256.lowercased() else {
            throw ManifestError("artifact \(artifact.name) does not match the manifest (sha256 \(actual), expected \(artifact.sha256)); the bundle is stale or corrupt: run 'pocketbert bundle' again")
        }
    }
}
