import Foundation

/// The Core ML compute units the user can pick (`MLComputeUnits`), named for the screen; the app maps each to its
/// `MLComputeUnits` value (PocketBertKit does not import Core ML, so it builds and tests on any platform).
public enum ComputeUnitsChoice: String, CaseIterable, Identifiable {
    case all, cpuAndNeuralEngine, cpuAndGPU, cpuOnly

    public var id: String { rawValue }

    public var label: String {
        switch self {
        case .all: return "All"
        case .cpuAndNeuralEngine: return "CPU + Neural Engine"
        case .cpuAndGPU: return "CPU + GPU"
        case .cpuOnly: return "CPU only"
        }
    }
}

/// A compute device of Core ML's compute plan.
public enum PlanDevice: String, CaseIterable {
    case neuralEngine = "Neural Engine", gpu = "GPU", cpu = "CPU", unknown = "unknown"
}

/// One op of Core ML's compute plan (`MLComputePlan`, iOS 17.4+): its MIL type, the device Core ML prefers for it
/// and its estimated share of the model's work (0...1, `nil` when Core ML gives none).
public struct PlannedOp: Equatable {
    public let operatorName: String
    public let device: PlanDevice
    public let cost: Double?

    public init(operatorName: String, device: PlanDevice, cost: Double?) {
        self.operatorName = operatorName; self.device = device; self.cost = cost
    }
}

/// Per-device totals of a compute plan, for the screen: what Core ML plans to run where, on this device, for the
/// chosen compute units. Constants (`const`) are not ops that run and are left out.
public struct PlacementSummary: Equatable {
    public let total: Int
    public let opsByDevice: [PlanDevice: Int]
    /// Sum of the estimated cost shares per device (0...1 of the whole run).
    public let costByDevice: [PlanDevice: Double]
    /// Op types Core ML runs somewhere other than the Neural Engine, sorted.
    public let offNeuralEngine: [String]

    public init(_ ops: [PlannedOp]) {
        let running = ops.filter { $0.operatorName != "const" }
        total = running.count
        opsByDevice = Dictionary(grouping: running, by: \.device).mapValues(\.count)
        costByDevice = Dictionary(grouping: running, by: \.device).mapValues { $0.compactMap(\.cost).reduce(0, +) }
        offNeuralEngine = Array(Set(running.filter { $0.device != .neuralEngine }.map(\.operatorName))).sorted()
    }

    /// E.g. `"Neural Engine 120 of 126 ops (97% of the estimated cost) · CPU 6 ops (3%)"`.
    public var description: String {
        guard total > 0 else { return "the compute plan lists no ops" }
        var parts: [String] = []
        for device in PlanDevice.allCases {
            guard let n = opsByDevice[device] else { continue }
            let share = Int(((costByDevice[device] ?? 0) * 100).rounded())
            parts.append(parts.isEmpty ? "\(device.rawValue) \(n) of \(total) ops (\(share)% of the estimated cost)" : "\(device.rawValue) \(n) ops (\(share)%)")
        }
        return parts.joined(separator: " · ")
    }
}
