import XCTest
@testable import PocketBertKit

/// Post-processing equals the Python functions parity uses (values computed by numpy/torch in `postprocess.json`).
final class PostProcessingTests: XCTestCase {
    func testSoftmaxMatchesNumpy() throws {
        let cases = try Goldens.json("postprocess.json")["softmax"] as! [[String: Any]]
        XCTAssertFalse(cases.isEmpty)
        for c in cases {
            let expected = (c["probabilities"] as! [NSNumber]).map(\.doubleValue)
            let got = softmax(floats(c["logits"]))
            XCTAssertEqual(got.count, expected.count)
            for i in expected.indices { XCTAssertEqual(got[i], expected[i], accuracy: 1e-9) }
        }
    }

    func testMeanPoolingMatchesTheWrapper() throws {
        for c in try Goldens.json("postprocess.json")["mean_pooling"] as! [[String: Any]] {
            let rows = (c["hidden"] as! [Any]).map(floats)
            let got = meanPoolNormalize(rows.flatMap { $0 }, mask: ints(c["mask"]), hiddenSize: rows[0].count)
            let expected = floats(c["embedding"])
            for i in expected.indices { XCTAssertEqual(got[i], expected[i], accuracy: 1e-6) }
        }
    }

    func testSpansMatchBestSpan() throws {
        let golden = try Goldens.json("postprocess.json")
        let maxLen = golden["max_answer_tokens"] as! Int
        XCTAssertEqual(maxLen, maxAnswerTokens)
        for c in golden["spans"] as! [[String: Any]] {
            let start = floats(c["start_logits"]), end = floats(c["end_logits"])
            let expected = ints(c["span"])
            let got = bestSpan(start: start, end: end, maxLen: maxLen)
            XCTAssertEqual([got.0, got.1], expected, "span of \(start.count) logits")
            if let window = c["window"] {
                let w = ints(window)
                let windowed = bestSpan(start: start, end: end, maxLen: maxLen, from: w[0], until: w[1])
                XCTAssertEqual([windowed.0, windowed.1], ints(c["window_span"]), "window span of \(start.count) logits")
            }
        }
    }

    func testBucketChoiceMatchesPython() throws {
        for c in try Goldens.json("postprocess.json")["buckets"] as! [[String: Any]] {
            let length = c["length"] as! Int, buckets = ints(c["buckets"])
            let expected = c["bucket"] as? Int
            XCTAssertEqual(try? chooseBucket(length, buckets), expected, "bucket of \(length) in \(buckets)")
        }
    }

    func testCosineOfAUnitVectorWithItselfIsOne() {
        let v: [Float] = [0.6, 0.8]
        XCTAssertEqual(cosine(v, v), 1.0, accuracy: 1e-7)
        XCTAssertEqual(cosine(v, [0, 0]), 0.0)
    }
}
