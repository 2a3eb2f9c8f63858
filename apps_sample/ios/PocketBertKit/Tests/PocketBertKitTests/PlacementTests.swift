import XCTest
@testable import PocketBertKit

/// The compute-unit choices and the summary of Core ML's compute plan the screen shows (Core ML only: no Kotlin twin).
final class PlacementTests: XCTestCase {
    func testEveryComputeUnitsChoiceHasALabel() {
        XCTAssertEqual(ComputeUnitsChoice.allCases.map(\.label), ["All", "CPU + Neural Engine", "CPU + GPU", "CPU only"])
        XCTAssertEqual(Set(ComputeUnitsChoice.allCases.map(\.id)).count, 4)
    }

    func testThePlanSummaryCountsOpsAndCostPerDeviceWithoutConstants() {
        let ops = [
            PlannedOp(operatorName: "const", device: .cpu, cost: nil),
            PlannedOp(operatorName: "gather", device: .cpu, cost: 0.02),
            PlannedOp(operatorName: "conv", device: .neuralEngine, cost: 0.5),
            PlannedOp(operatorName: "einsum", device: .neuralEngine, cost: 0.3),
            PlannedOp(operatorName: "softmax", device: .neuralEngine, cost: 0.1),
            PlannedOp(operatorName: "cast", device: .cpu, cost: 0.08),
        ]
        let summary = PlacementSummary(ops)
        XCTAssertEqual(summary.total, 5)
        XCTAssertEqual(summary.opsByDevice[.neuralEngine], 3)
        XCTAssertEqual(summary.opsByDevice[.cpu], 2)
        XCTAssertEqual(summary.costByDevice[.neuralEngine] ?? 0, 0.9, accuracy: 1e-9)
        XCTAssertEqual(summary.offNeuralEngine, ["cast", "gather"])
        XCTAssertEqual(summary.description, "Neural Engine 3 of 5 ops (90% of the estimated cost) · CPU 2 ops (10%)")
        XCTAssertEqual(PlacementSummary([]).description, "the compute plan lists no ops")
    }
}
