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
    @State private var computeUnits = MLComputeUnits.all
    @State private var first = ""
    @State private var second = ""
    @State private var result: InferenceResult?

    private static let units: [(String, MLComputeUnits)] = [
        ("All", .all), ("CPU", .cpuOnly), ("CPU+GPU", .cpuAndGPU), ("CPU+ANE", .cpuAndNeuralEngine),
    ]

    var body: some View {
        NavigationStack {
            Form {
                if let bundle {
                    Section("Model") {
                        Text(bundle.manifest.model.origin).font(.footnote)
                        Text("\(bundle.artifact.name) · \(bundle.manifest.task.rawValue)").font(.footnote)
                        Picker("Compute units", selection: $computeUnits) {
                            ForEach(Self.units.indices, id: \.self) { i in Text(Self.units[i].0).tag(Self.units[i].1) }
                        }
                    }
                    inputSection(bundle.manifest.task)
                }
                if let result { resultSection(result) }
                if let error { Text(error).foregroundStyle(.red) }
            }
            .navigationTitle("PocketBert")
        }
        .task { load() }
        .onChange(of: computeUnits) { _ in load() }
    }

    private func load() {
        do {
            let b = try bundle ?? AppBundle()
            bundle = b
            if first.isEmpty { (first, second) = Self.defaults(b.manifest.task) }
            engine = try b.load(computeUnits: computeUnits)
            error = nil
        } catch {
            self.error = "\(error)"
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
            Text("tokenize \(l.tokenizeMs, specifier: "%.1f") ms · run \(l.runMs, specifier: "%.1f") ms · post-process \(l.postprocessMs, specifier: "%.2f") ms · total \(l.totalMs, specifier: "%.1f") ms")
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
