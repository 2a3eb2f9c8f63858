import XCTest
@testable import PocketBertKit

/// The engine feeds the runner the right inputs and turns outputs into what the UI shows (mirrors `EngineTest.kt`).
final class EngineTests: XCTestCase {
    private let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "paris", "is", "in", "france", "where", "?", "##is", "par", "."]
    private let config = TokenizerConfig(lowercase: true, stripAccents: nil, clsTokenId: 2, sepTokenId: 3, padTokenId: 0, unkTokenId: 1)

    private final class FakeRunner: ModelRunner {
        let outputs: ([Int], [Int]) -> [String: [Float]]
        var ids: [Int] = []
        var mask: [Int] = []
        init(_ outputs: @escaping ([Int], [Int]) -> [String: [Float]]) { self.outputs = outputs }
        func run(inputIds: [Int], attentionMask: [Int]) throws -> [String: [Float]] {
            ids = inputIds; mask = attentionMask
            return outputs(inputIds, attentionMask)
        }
    }

    /// A manifest of one artifact; `inputs` and `metadata` as pocketbert writes them (`[]` and none by default).
    private func engine(_ task: Task, _ labels: [String], _ buckets: [Int]?, _ runner: ModelRunner,
                        inputs: [String] = [], metadata: [String: Any]? = nil, padTokenId: Int = 0) throws -> Engine {
        var json: [String: Any] = [
            "schema_version": 2, "max_length": 16, "sequence_buckets": [8, 16],
            "model": ["task": task.rawValue, "labels": labels, "origin": "test", "architecture": "bert"],
            "tokenizer": ["vocab": "tokenizer/vocab.txt", "sha256": ["tokenizer/vocab.txt": ""], "lowercase": true, "strip_accents": NSNull(), "tokenize_chinese_chars": true,
                          "clean_text": true, "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                          "cls_token_id": 2, "sep_token_id": 3, "pad_token_id": padTokenId, "unk_token_id": 1],
        ]
        var artifact: [String: Any] = ["name": "x-fp32", "format": "x", "precision": "fp32", "path": "m", "files": ["m"],
                                       "sha256": "", "inputs": inputs.map { ["name": $0, "dtype": "int32"] }, "outputs": []]
        artifact["sequence_buckets"] = buckets ?? NSNull()
        if let metadata { artifact["metadata"] = metadata }
        json["artifacts"] = [artifact]
        let manifest = try Manifest.parse(JSONSerialization.data(withJSONObject: json))
        return try Engine(manifest: manifest, artifact: try manifest.artifact(), tokenizer: try WordPieceTokenizer(vocab: vocab, config: config), runner: runner)
    }

    private let singleInput: [String: Any] = ["pad_token_id": 4, "attention_mask": "derived in the graph: input_ids != pad_token_id",
                                              "layout": "ane", "shapes": ["kind": "enumerated", "batch": [1, 1], "sequence": [8, 16]]]

    func testASingleInputModelGetsIdsPaddedWithThePadIdOfTheManifest() throws {
        // pocketbert's Core ML default: input_ids alone, the graph masks every position holding the pad id (4 here)
        let runner = FakeRunner { _, _ in ["logits": [0, 1]] }
        let e = try engine(.sequenceClassification, ["a", "b"], [8, 16], runner, inputs: ["input_ids"], metadata: singleInput, padTokenId: 4)
        XCTAssertTrue(e.plan.derivesMask)
        _ = try e.classify("Paris is in France")
        XCTAssertEqual(runner.ids, [2, 5, 6, 7, 8, 3, 4, 4])
        XCTAssertEqual(runner.mask, [1, 1, 1, 1, 1, 1, 0, 0], "the engine still knows the real tokens (mean pooling)")
    }

    func testTheNeighboursOfThePadIdAreTokensButThePadIdItselfIsRefused() throws {
        // pad id 6 ("is"): "paris" (5) and "in" (7) are its neighbours and stay tokens; "is" cannot be fed at all
        let runner = FakeRunner { _, _ in ["logits": [0, 1]] }
        let metadata = singleInput.merging(["pad_token_id": 6]) { $1 }
        let e = try engine(.sequenceClassification, ["a", "b"], [8, 16], runner, inputs: ["input_ids"], metadata: metadata, padTokenId: 6)
        _ = try e.classify("Paris in Paris in")
        XCTAssertEqual(runner.ids, [2, 5, 7, 5, 7, 3, 6, 6])
        XCTAssertThrowsError(try e.classify("Paris is in France")) { error in
            XCTAssertTrue("\(error)".contains("is the pad id 6"), "\(error)")
        }
    }

    func testASingleInputArtifactWithoutOrWithAnotherPadIdIsRefused() throws {
        let runner = FakeRunner { _, _ in ["logits": [0, 1]] }
        XCTAssertThrowsError(try engine(.sequenceClassification, ["a", "b"], [8, 16], runner, inputs: ["input_ids"])) { error in
            XCTAssertTrue("\(error)".contains("records no pad_token_id"), "\(error)")
        }
        XCTAssertThrowsError(try engine(.sequenceClassification, ["a", "b"], [8, 16], runner, inputs: ["input_ids"], metadata: singleInput, padTokenId: 0)) { error in
            XCTAssertTrue("\(error)".contains("masks pad id 4 but the tokenizer pads with 0"), "\(error)")
        }
        // two inputs (ranges): the mask is an input, so no pad id needs recording
        let ranged = try engine(.sequenceClassification, ["a", "b"], nil, runner, inputs: ["input_ids", "attention_mask"], metadata: ["attention_mask": "input"])
        XCTAssertFalse(ranged.plan.derivesMask)
    }

    func testStaticArtifactsArePaddedToTheirBucketDynamicOnesAreNot() throws {
        let runner = FakeRunner { _, _ in ["logits": [0, 1]] }
        _ = try engine(.sequenceClassification, ["a", "b"], [8, 16], runner).classify("Paris is in France")
        XCTAssertEqual(runner.ids, [2, 5, 6, 7, 8, 3, 0, 0])
        XCTAssertEqual(runner.mask, [1, 1, 1, 1, 1, 1, 0, 0])
        _ = try engine(.sequenceClassification, ["a", "b"], nil, runner).classify("Paris is in France")
        XCTAssertEqual(runner.ids.count, 6)
    }

    func testClassificationSortsLabelsByProbability() throws {
        let runner = FakeRunner { _, _ in ["logits": [0, 2, 1]] }
        guard case .classification(let scores, let latency) = try engine(.sequenceClassification, ["neg", "pos", "mixed"], nil, runner).classify("x") else {
            return XCTFail("not a classification")
        }
        XCTAssertEqual(scores.map(\.label), ["pos", "mixed", "neg"])
        XCTAssertEqual(scores.map(\.probability).reduce(0, +), 1.0, accuracy: 1e-9)
        XCTAssertGreaterThanOrEqual(latency.totalMs, 0)
    }

    func testAnswerIsTakenFromTheContextTokensOnly() throws {
        // [CLS] where is paris ? [SEP] paris is in france . [SEP]: the question's "paris" scores highest but is not context.
        let runner = FakeRunner { ids, _ in
            var start = [Float](repeating: 0, count: ids.count), end = start
            start[3] = 9; end[3] = 9
            start[9] = 5; end[9] = 5
            return ["start_logits": start, "end_logits": end]
        }
        guard case .answer(let answer, _) = try engine(.questionAnswering, [], nil, runner).answer(question: "Where is Paris?", context: "Paris is in FRANCE.") else {
            return XCTFail("not an answer")
        }
        XCTAssertEqual(answer.text, "FRANCE")
        XCTAssertEqual([answer.tokenStart, answer.tokenEnd], [9, 9])
    }

    func testWordPiecesAreMergedIntoWordsWithTheFirstPieceLabel() throws {
        // label 1 (LOC) for the token at position 1, label 0 (O) everywhere else
        let runner = FakeRunner { ids, _ in
            var logits = [Float](repeating: 0, count: ids.count * 2)
            for k in ids.indices { logits[k * 2 + (k == 1 ? 1 : 0)] = 3 }
            return ["logits": logits]
        }
        guard case .tagged(let words, _) = try engine(.tokenClassification, ["O", "LOC"], nil, runner).tag("Paris Paris.") else { return XCTFail() }
        XCTAssertEqual(words.map(\.text), ["Paris", "Paris", "."])
        XCTAssertEqual(words.map(\.label), ["LOC", "O", "O"])
        // "Parisis" is the pieces paris + ##is: one word, labelled by its first piece
        guard case .tagged(let split, _) = try engine(.tokenClassification, ["O", "LOC"], nil, runner).tag("Parisis in France") else { return XCTFail() }
        XCTAssertEqual(split.map(\.text), ["Parisis", "in", "France"])
        XCTAssertEqual(split.map(\.label), ["LOC", "O", "O"])
    }

    func testEmbeddingFallsBackToMeanPoolingOfHiddenStates() throws {
        let runner = FakeRunner { ids, _ in ["last_hidden_state": (0..<(ids.count * 2)).map { $0 % 2 == 0 ? Float(3) : Float(4) }] }
        let (embedding, _) = try engine(.featureExtraction, [], nil, runner).embed("paris")
        XCTAssertEqual(embedding[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(embedding[1], 0.8, accuracy: 1e-6)
        guard case .similarity(let cos, _) = try engine(.featureExtraction, [], nil, runner).similarity("paris", "france") else { return XCTFail() }
        XCTAssertEqual(cos, 1.0, accuracy: 1e-6)
    }
}
