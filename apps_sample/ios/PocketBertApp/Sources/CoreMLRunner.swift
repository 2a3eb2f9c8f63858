import CoreML
import PocketBertKit

extension ComputeUnitsChoice {
    /// The Core ML value of this choice.
    var mlComputeUnits: MLComputeUnits {
        switch self {
        case .all: return .all
        case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
        case .cpuAndGPU: return .cpuAndGPU
        case .cpuOnly: return .cpuOnly
        }
    }
}

/// Core ML runtime behind PocketBertKit's `ModelRunner`: feeds exactly the inputs the manifest lists, as `(1, S)`
/// int32 arrays (a pocketbert single-input package gets `input_ids` alone, already padded with the pad id by the
/// engine), and returns the manifest's outputs as flat Float arrays.
final class CoreMLRunner: ModelRunner {
    private let model: MLModel
    private let artifact: ArtifactInfo
    /// The compute units Core ML was allowed to use (Core ML picks among them per op; see `ComputePlanReader`).
    let computeUnits: ComputeUnitsChoice

    init(compiledModel url: URL, artifact: ArtifactInfo, computeUnits: ComputeUnitsChoice) throws {
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits.mlComputeUnits
        model = try MLModel(contentsOf: url, configuration: configuration)
        self.artifact = artifact
        self.computeUnits = computeUnits
    }

    func run(inputIds: [Int], attentionMask: [Int]) throws -> [String: [Float]] {
        let values = ["input_ids": inputIds, "attention_mask": attentionMask]
        var features: [String: MLFeatureValue] = [:]
        for input in artifact.inputs {
            guard let data = values[input.name] else { throw EngineError(description: "unknown model input \(input.name)") }
            let array = try MLMultiArray(shape: [1, NSNumber(value: data.count)], dataType: .int32)
            for (i, v) in data.enumerated() { array[i] = NSNumber(value: Int32(v)) }
            features[input.name] = MLFeatureValue(multiArray: array)
        }
        let result = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: features))
        var outputs: [String: [Float]] = [:]
        for output in artifact.outputs {
            guard let array = result.featureValue(for: output.name)?.multiArrayValue else { continue }
            outputs[output.name] = (0..<array.count).map { array[$0].floatValue }
        }
        return outputs
    }
}
