import Foundation

/// How an encoded text becomes a model's inputs, read from the manifest (mirrors pocketbert's Core ML runner,
/// `pocketbert/formats/coreml/runner.py`): pad to the artifact's bucket with the pad id, and hand over
/// `attention_mask` only to a model that has that input.
///
/// pocketbert's Core ML packages take `input_ids` alone by default (enumerated `(1, bucket)` shapes on every iOS): the
/// graph derives the mask as `input_ids != pad_token_id`, so the padding *is* the mask, and a real token equal to the
/// pad id cannot be told from padding: it is refused rather than silently masked.
public struct InputPlan: Equatable {
    /// The model's inputs in manifest order (`["input_ids"]` for a single-input package).
    public let inputNames: [String]
    /// The id every padded position holds.
    public let padTokenId: Int
    /// Static sequence lengths (enumerated shapes); `nil` runs a text at its own length.
    public let buckets: [Int]?

    /// True when the model has no `attention_mask` input and reads padding from the pad id.
    public var derivesMask: Bool { inputNames == ["input_ids"] }

    /// The plan of `artifact`; throws when a single-input artifact records no pad id, or one that differs from the
    /// tokenizer's (the bundle and the export disagree).
    public init(manifest: Manifest, artifact: ArtifactInfo) throws {
        inputNames = artifact.inputs.map(\.name)
        let tokenizerPad = manifest.tokenizer.config.padTokenId
        let recorded = artifact.metadata?.padTokenId
        if inputNames == ["input_ids"], recorded == nil {
            throw ManifestError("artifact \(artifact.name) takes input_ids alone but records no pad_token_id; re-export it with pocketbert and run 'pocketbert bundle' again")
        }
        if let recorded, recorded != tokenizerPad {
            throw ManifestError("artifact \(artifact.name) masks pad id \(recorded) but the tokenizer pads with \(tokenizerPad); run 'pocketbert bundle' again")
        }
        padTokenId = recorded ?? tokenizerPad
        buckets = artifact.sequenceBuckets
    }

    /// `encoding` padded with the pad id to the smallest bucket that holds it (unchanged without buckets).
    public func fit(_ encoding: Encoding) throws -> Encoding {
        if derivesMask, let k = encoding.inputIds.indices.first(where: { encoding.attentionMask[$0] == 1 && encoding.inputIds[$0] == padTokenId }) {
            throw EngineError(description: "token \(k) of the text is the pad id \(padTokenId), which this model reads as padding; remove it from the text")
        }
        guard let buckets else { return encoding }
        return encoding.padded(to: try chooseBucket(encoding.length, buckets), padTokenId: padTokenId)
    }
}
