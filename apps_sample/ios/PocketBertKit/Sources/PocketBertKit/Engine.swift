import Foundation

/// One loaded model behind a runtime (Core ML, a fake in tests). Batch 1: `inputIds` and `attentionMask` have the
/// same length (a bucket length for static-shape artifacts, padded with the pad id); the runner feeds the inputs the
/// artifact declares (a single-input model gets `inputIds` only) and returns every output flattened row-major by name.
public protocol ModelRunner {
    func run(inputIds: [Int], attentionMask: [Int]) throws -> [String: [Float]]
}

/// Milliseconds spent in each stage of one inference.
public struct Latency: Equatable {
    public var tokenizeMs: Double
    public var runMs: Double
    public var postprocessMs: Double
    public var totalMs: Double { tokenizeMs + runMs + postprocessMs }
    public static func + (a: Latency, b: Latency) -> Latency {
        Latency(tokenizeMs: a.tokenizeMs + b.tokenizeMs, runMs: a.runMs + b.runMs, postprocessMs: a.postprocessMs + b.postprocessMs)
    }
}

public struct LabelScore: Equatable { public let label: String; public let probability: Double }
/// A word (sub-word pieces merged, labelled by its first piece) with the label the model gave it.
public struct TaggedWord: Equatable { public let text: String; public let start: Int; public let end: Int; public let label: String; public let probability: Double }
/// An answer span in the context: UTF-16 offsets, its text and its token span.
public struct Answer: Equatable { public let text: String; public let start: Int; public let end: Int; public let tokenStart: Int; public let tokenEnd: Int; public let score: Float }

/// What the UI shows, per task, with the latency of producing it.
public enum InferenceResult {
    case classification([LabelScore], Latency)
    case similarity(Double, Latency)
    case answer(Answer, Latency)
    case tagged([TaggedWord], Latency)

    public var latency: Latency {
        switch self {
        case .classification(_, let l), .similarity(_, let l), .answer(_, let l), .tagged(_, let l): return l
        }
    }
}

public struct EngineError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// Tokenize, run and post-process one request for the manifest's task (mirrors the Kotlin core's `Engine`).
public final class Engine {
    private let manifest: Manifest
    private let artifact: ArtifactInfo
    private let tokenizer: WordPieceTokenizer
    private let runner: ModelRunner
    private let buckets: [Int]
    /// How texts are padded and which inputs the model reads (see `InputPlan`).
    public let plan: InputPlan

    /// Throws when the artifact's inputs and the manifest disagree (see `InputPlan.init`).
    public init(manifest: Manifest, artifact: ArtifactInfo, tokenizer: WordPieceTokenizer, runner: ModelRunner) throws {
        self.manifest = manifest; self.artifact = artifact; self.tokenizer = tokenizer; self.runner = runner
        buckets = manifest.buckets(for: artifact)
        plan = try InputPlan(manifest: manifest, artifact: artifact)
    }

    private struct Timer {
        var last = DispatchTime.now().uptimeNanoseconds
        mutating func lap() -> Double {
            let now = DispatchTime.now().uptimeNanoseconds
            defer { last = now }
            return Double(now - last) / 1e6
        }
    }

    private var maxTokens: Int { min(manifest.maxLength, buckets.last ?? manifest.maxLength) }

    private func fit(_ e: Encoding) throws -> Encoding { try plan.fit(e) }

    private func output(_ outputs: [String: [Float]], _ name: String) throws -> [Float] {
        guard let value = outputs[name] else {
            throw EngineError(description: "the model has no output '\(name)' (has \(outputs.keys.sorted().joined(separator: ", "))); re-export it with pocketbert")
        }
        return value
    }

    private func label(_ i: Int) -> String { i < manifest.labels.count ? manifest.labels[i] : "LABEL_\(i)" }

    /// Sequence classification: every label with its probability, most likely first.
    public func classify(_ text: String) throws -> InferenceResult {
        var timer = Timer()
        let enc = try fit(tokenizer.encode(text, maxLength: maxTokens))
        let t = timer.lap()
        let logits = try output(runner.run(inputIds: enc.inputIds, attentionMask: enc.attentionMask), "logits")
        let r = timer.lap()
        let probs = softmax(logits)
        let scores = probs.indices.map { LabelScore(label: label($0), probability: probs[$0]) }.sorted { $0.probability > $1.probability }
        return .classification(scores, Latency(tokenizeMs: t, runMs: r, postprocessMs: timer.lap()))
    }

    /// Sentence embedding (the model's `embedding` output, or mean pooling of `last_hidden_state`).
    public func embed(_ text: String) throws -> ([Float], Latency) {
        var timer = Timer()
        let enc = try fit(tokenizer.encode(text, maxLength: maxTokens))
        let t = timer.lap()
        let out = try runner.run(inputIds: enc.inputIds, attentionMask: enc.attentionMask)
        let r = timer.lap()
        let embedding: [Float]
        if let e = out["embedding"] {
            embedding = e
        } else {
            let hidden = try output(out, "last_hidden_state")
            embedding = meanPoolNormalize(hidden, mask: enc.attentionMask, hiddenSize: hidden.count / enc.inputIds.count)
        }
        return (embedding, Latency(tokenizeMs: t, runMs: r, postprocessMs: timer.lap()))
    }

    /// Cosine similarity of two texts' embeddings; the latency covers both.
    public func similarity(_ a: String, _ b: String) throws -> InferenceResult {
        let (ea, la) = try embed(a)
        let (eb, lb) = try embed(b)
        var timer = Timer()
        let cos = cosine(ea, eb)
        return .similarity(cos, la + lb + Latency(tokenizeMs: 0, runMs: 0, postprocessMs: timer.lap()))
    }

    /// Extractive QA: the best span of context tokens (at most `maxAnswerTokens`) as text of `context`.
    public func answer(question: String, context: String) throws -> InferenceResult {
        var timer = Timer()
        let enc = try fit(tokenizer.encodePair(question, context, maxLength: maxTokens))
        let t = timer.lap()
        let out = try runner.run(inputIds: enc.inputIds, attentionMask: enc.attentionMask)
        let r = timer.lap()
        let contextTokens = enc.sequenceIds.indices.filter { enc.sequenceIds[$0] == 1 }
        guard let first = contextTokens.first, let last = contextTokens.last else {
            throw EngineError(description: "the context is empty; type a context to search")
        }
        let start = try output(out, "start_logits"), end = try output(out, "end_logits")
        let (i, j) = bestSpan(start: start, end: end, from: first, until: last + 1)
        let from = enc.offsets[i][0], until = enc.offsets[j][1]
        let utf16 = Array(context.utf16)
        let text = String(decoding: utf16[from..<until], as: UTF16.self)
        let answer = Answer(text: text, start: from, end: until, tokenStart: i, tokenEnd: j, score: start[i] + end[j])
        return .answer(answer, Latency(tokenizeMs: t, runMs: r, postprocessMs: timer.lap()))
    }

    /// Token classification: each word of `text` with the label of its first piece.
    public func tag(_ text: String) throws -> InferenceResult {
        var timer = Timer()
        let enc = try fit(tokenizer.encode(text, maxLength: maxTokens))
        let t = timer.lap()
        let logits = try output(runner.run(inputIds: enc.inputIds, attentionMask: enc.attentionMask), "logits")
        let r = timer.lap()
        let numLabels = logits.count / enc.inputIds.count
        let utf16 = Array(text.utf16)
        func substring(_ s: Int, _ e: Int) -> String { String(decoding: utf16[s..<e], as: UTF16.self) }
        var words: [TaggedWord] = []
        for k in enc.inputIds.indices where enc.sequenceIds[k] == 0 {
            let s = enc.offsets[k][0], e = enc.offsets[k][1]
            if let last = words.last, tokenizer.isContinuation(enc.inputIds[k]) {
                words[words.count - 1] = TaggedWord(text: substring(last.start, e), start: last.start, end: e, label: last.label, probability: last.probability)
                continue
            }
            let row = Array(logits[(k * numLabels)..<((k + 1) * numLabels)])
            let best = argmax(row)
            words.append(TaggedWord(text: substring(s, e), start: s, end: e, label: label(best), probability: softmax(row)[best]))
        }
        return .tagged(words, Latency(tokenizeMs: t, runMs: r, postprocessMs: timer.lap()))
    }
}
