import CoreML
import PocketBertKit

/// Core ML's compute plan (iOS 17.4+): which device Core ML prefers for every op of the compiled model with the chosen
/// compute units, on this device. It is Core ML's plan, read before predicting, not a trace of a run.
@available(iOS 17.4, macOS 14.4, *)
enum ComputePlanReader {
    static func summary(compiledModel url: URL, computeUnits: ComputeUnitsChoice) async throws -> PlacementSummary {
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits.mlComputeUnits
        let plan = try await MLComputePlan.load(contentsOf: url, configuration: configuration)
        guard case let .program(program) = plan.modelStructure, let main = program.functions["main"] else {
            throw EngineError(description: "the compute plan holds no ML program 'main' function")
        }
        let ops = main.block.operations.map { operation -> PlannedOp in
            let device: PlanDevice
            switch plan.deviceUsage(for: operation)?.preferred {
            case .neuralEngine?: device = .neuralEngine
            case .gpu?: device = .gpu
            case .cpu?: device = .cpu
            default: device = .unknown
            }
            return PlannedOp(operatorName: operation.operatorName, device: device, cost: plan.estimatedCost(of: operation)?.weight)
        }
        return PlacementSummary(ops)
    }
}
