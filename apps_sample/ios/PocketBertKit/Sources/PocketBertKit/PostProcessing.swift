import Foundation

/// Maximum answer length in tokens (`pocketbert.parity.metrics.MAX_ANSWER_TOKENS`).
public let maxAnswerTokens = 30

public struct BucketError: Error, CustomStringConvertible {
    public let length: Int
    public let largest: Int
    public var description: String { "input of \(length) tokens is longer than the largest bucket \(largest); truncate it" }
}

/// The smallest bucket holding `length` tokens (buckets ascending), as `pocketbert.parity.buckets.choose_bucket`.
public func chooseBucket(_ length: Int, _ buckets: [Int]) throws -> Int {
    guard let bucket = buckets.first(where: { length <= $0 }) else { throw BucketError(length: length, largest: buckets.last ?? 0) }
    return bucket
}

/// Softmax in double precision, shifted by the maximum.
public func softmax(_ logits: [Float]) -> [Double] {
    guard let max = logits.max() else { return [] }
    let exps = logits.map { exp(Double($0) - Double(max)) }
    let sum = exps.reduce(0, +)
    return exps.map { $0 / sum }
}

/// Index of the largest value (the first one on ties, as numpy's argmax).
public func argmax(_ values: [Float]) -> Int {
    var best = 0
    for i in values.indices where values[i] > values[best] { best = i }
    return best
}

/// Mean of the token vectors whose mask is 1, L2-normalised (`pocketbert.wrapper.mean_pool_normalize`).
/// `hidden` is row-major `(seqLen, hiddenSize)`.
public func meanPoolNormalize(_ hidden: [Float], mask: [Int], hiddenSize: Int) -> [Float] {
    var pooled = [Float](repeating: 0, count: hiddenSize)
    var count: Float = 0
    for s in mask.indices where mask[s] != 0 {
        count += 1
        for h in 0..<hiddenSize { pooled[h] += hidden[s * hiddenSize + h] }
    }
    let divisor = Swift.max(count, 1)
    pooled = pooled.map { $0 / divisor }
    let norm = Swift.max(pooled.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot(), 1e-12)
    return pooled.map { $0 / norm }
}

/// Cosine similarity of two vectors (0 when either is all zeros).
public func cosine(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "vectors of different sizes")
    var dot = 0.0, na = 0.0, nb = 0.0
    for i in a.indices { dot += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i]) }
    return na == 0 || nb == 0 ? 0 : dot / (na.squareRoot() * nb.squareRoot())
}

/// The span `(i, j)` with `from <= i <= j < min(i + maxLen, until)` maximising `start[i] + end[j]` in float32, as
/// `pocketbert.parity.metrics.best_span` over `start[from..<until]` (the first maximum wins on ties).
public func bestSpan(start: [Float], end: [Float], maxLen: Int = maxAnswerTokens, from: Int = 0, until: Int? = nil) -> (Int, Int) {
    let until = until ?? start.count
    precondition(start.count == end.count && from < until && until <= start.count, "bad span window")
    var best = -Float.infinity
    var span = (from, from)
    for i in from..<until {
        for j in i..<Swift.min(i + maxLen, until) {
            let score = start[i] + end[j]
            if score > best { best = score; span = (i, j) }
        }
    }
    return span
}
