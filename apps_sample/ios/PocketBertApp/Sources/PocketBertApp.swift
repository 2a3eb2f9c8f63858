import CoreML
import PocketBertKit
import SwiftUI

@main
struct PocketBertApp: App {
    var body: some Scene { WindowGroup { ContentView() } }
}

/// One screen that adapts to the bundled manifest's task; all logic lives in PocketBertKit's `Engine`.
struct ContentView: View {
    @State private var bundle: AppBundle?
    @State private var engine: Engine?
    @State private var error: String?
    @State private var computeUnits = ComputeUnitsChoice.all
    @State private var first = ""
    @State private var second = ""
    @State private var result: InferenceResult?
    /// Core ML's compute plan for the loaded model and units (iOS 17.4+), or why there is none.
    @State private var plan: String?

    var body: some View {
        NavigationStack {
            Form {
                if let bundle {
                    Section("Model") {
                        Text(bundle.manifest.model.origin).font(.footnote)
                        Text("\(bundle.artifact.name) · \(bundle.manifest.task.rawValue)").font(.footnote)
                        Picker("Compute units", selection: $computeUnits) {
                            ForEach(ComputeUnitsChoice.allCases) { Text($0.label).tag($0) }
                        }
                        Text(inputsLine(bundle.artifact)).font(.footnote)
                        if let plan { Text(plan).font(.footnote) }
                    }
                    inputSection(bundle.manifest.task)
                }
                if let result { resultSection(result) }
                if let error { Text(error).foregroundStyle(.red) }
            }
            .navigationTitle("PocketBert")
        }
        .task(id: computeUnits) { await load() }  // again whenever the user picks other compute units
    }

    @MainActor private func load() async {
        do {
            let b = try bundle ?? AppBundle()
            bundle = b
            if first.isEmpty { (first, second) = Self.defaults(b.manifest.task) }
            engine = try b.load(computeUnits: computeUnits)
            result = nil  // a result always belongs to the compute units shown with it
            error = nil
            plan = await Self.planLine(b, computeUnits)
        } catch {
            self.error = "\(error)"
        }
    }

    /// What the model is fed: one input padded with the pad id (pocketbert's Core ML default) or ids and mask.
    private func inputsLine(_ artifact: ArtifactInfo) -> String {
        let names = artifact.inputs.map(\.name).joined(separator: ", ")
        let layout = artifact.metadata?.layout.map { " · layout \($0)" } ?? ""
        guard let pad = artifact.metadata?.padTokenId, artifact.inputs.map(\.name) == ["input_ids"] else {
            return "inputs: \(names)\(layout)"
        }
        return "inputs: \(names), padded with id \(pad) to \(artifact.sequenceBuckets ?? [])\(layout)"
    }

    /// Core ML's per-op plan for the chosen units on iOS 17.4+; before that only the chosen units can be shown.
    private static func planLine(_ bundle: AppBundle, _ units: ComputeUnitsChoice) async -> String {
        guard #available(iOS 17.4, *) else {
            return "ran with compute units \(units.label); Core ML's per-op plan needs iOS 17.4"
        }
        do {
            let summary = try await ComputePlanReader.summary(compiledModel: bundle.compiledModel(), computeUnits: units)
            let elsewhere = summary.offNeuralEngine.isEmpty ? "" : "; not on the Neural Engine: \(summary.offNeuralEngine.joined(separator: ", "))"
            return "ran with compute units \(units.label); Core ML's plan: \(summary.description)\(elsewhere)"
        } catch {
            return "ran with compute units \(units.label); no compute plan: \(error)"
        }
    }

    @ViewBuilder private func inputSection(_ task: Task) -> some View {
        Section("Input") {
            TextField(task == .questionAnswering ? "Question" : task == .featureExtraction ? "First text" : "Text", text: $first, axis: .vertical)
            if task == .questionAnswering || task == .featureExtraction {
                TextField(task == .questionAnswering ? "Context" : "Second text", text: $second, axis: .vertical).lineLimit(3...8)
            }
            Button("Run") { run(task) }.disabled(engine == nil)
        }
    }

    private func run(_ task: Task) {
        guard let engine else { return }
        do {
            switch task {
            case .sequenceClassification: result = try engine.classify(first)
            case .featureExtraction: result = try engine.similarity(first, second)
            case .questionAnswering: result = try engine.answer(question: first, context: second)
            case .tokenClassification: result = try engine.tag(first)
            }
            error = nil
        } catch {
            self.error = "\(error)"
        }
    }

    @ViewBuilder private func resultSection(_ result: InferenceResult) -> some View {
        Section("Result") {
            switch result {
            case .classification(let scores, _):
                ForEach(scores, id: \.label) { Text("\($0.label): \($0.probability, specifier: "%.3f")") }
            case .similarity(let cosine, _):
                Text("cosine similarity: \(cosine, specifier: "%.4f")").font(.headline)
            case .answer(let answer, _):
                Text("answer: \(answer.text.isEmpty ? "(empty span)" : answer.text)").font(.headline)
            case .tagged(let words, _):
                ForEach(Array(words.enumerated()), id: \.offset) { Text("\($0.element.text)  →  \($0.element.label) (\($0.element.probability, specifier: "%.2f"))") }
            }
            let l = result.latency
            Text("compute units \(computeUnits.label) · tokenize \(l.tokenizeMs, specifier: "%.1f") ms · run \(l.runMs, specifier: "%.1f") ms · post-process \(l.postprocessMs, specifier: "%.2f") ms · total \(l.totalMs, specifier: "%.1f") ms")
                .font(.caption)
        }
    }

    private static func defaults(_ task: Task) -> (String, String) {
        switch task {
        case .featureExtraction: return ("A man is playing a guitar.", "Someone is playing an instrument on the street.")
        case .questionAnswering: return ("Where is the Eiffel Tower?", "The Eiffel Tower is located in Paris and was completed in 1889.")
        case .tokenClassification: return ("Barack Obama was born in Honolulu, Hawaii.", "")
        case .sequenceClassification: return ("I absolutely loved this movie!", "")
        }
    }
}
