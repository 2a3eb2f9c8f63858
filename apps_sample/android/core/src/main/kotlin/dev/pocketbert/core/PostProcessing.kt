package dev.pocketbert.core

import kotlin.math.exp
import kotlin.math.sqrt

/** The smallest bucket holding [length] tokens (buckets ascending), as `pocketbert.parity.buckets.choose_bucket`. */
fun chooseBucket(length: Int, buckets: List<Int>): Int =
    buckets.firstOrNull { length <= it }
        ?: throw IllegalArgumentException("input of $length tokens is longer than the largest bucket ${buckets.last()}; truncate it")

/** Softmax in double precision (shifted by the maximum, so large logits do not overflow). */
fun softmax(logits: FloatArray): DoubleArray {
    val max = logits.maxOrNull()?.toDouble() ?: return DoubleArray(0)
    val exps = DoubleArray(logits.size) { exp(logits[it] - max) }
    val sum = exps.sum()
    return DoubleArray(exps.size) { exps[it] / sum }
}

/** Index of the largest value (the first one on ties, as numpy's argmax). */
fun argmax(values: FloatArray): Int {
    var best = 0
    for (i in 1 until values.size) if (values[i] > values[best]) best = i
    return best
}

/**
 * Mean of the token vectors whose mask is 1, L2-normalised (sentence-transformers' pooling, as
 * `pocketbert.wrapper.mean_pool_normalize`). [hidden] is row-major `(seqLen, hiddenSize)`.
 */
fun meanPoolNormalize(hidden: FloatArray, mask: IntArray, hiddenSize: Int): FloatArray {
    val pooled = FloatArray(hiddenSize)
    var count = 0f
    for (s in mask.indices) {
        if (mask[s] == 0) continue
        count += 1f
        for (h in 0 until hiddenSize) pooled[h] += hidden[s * hiddenSize + h]
    }
    val divisor = maxOf(count, 1f)
    for (h in 0 until hiddenSize) pooled[h] /= divisor
    val norm = maxOf(sqrt(pooled.fold(0f) { acc, v -> acc + v * v }), 1e-12f)
    return FloatArray(hiddenSize) { pooled[it] / norm }
}

/** Cosine similarity of two vectors (0 when either is all zeros). */
fun cosine(a: FloatArray, b: FloatArray): Double {
    require(a.size == b.size) { "vectors of different sizes ${a.size} and ${b.size}" }
    var dot = 0.0; var na = 0.0; var nb = 0.0
    for (i in a.indices) { dot += a[i] * b[i].toDouble(); na += a[i] * a[i].toDouble(); nb += b[i] * b[i].toDouble() }
    return if (na == 0.0 || nb == 0.0) 0.0 else dot / (sqrt(na) * sqrt(nb))
}

/** Maximum answer length in tokens (`pocketbert.parity.metrics.MAX_ANSWER_TOKENS`). */
const val MAX_ANSWER_TOKENS = 30

/**
 * The answer span `(i, j)` with `from <= i <= j < min(i + maxLen, until)` maximising `start[i] + end[j]`, as
 * `pocketbert.parity.metrics.best_span` over `start[from:until]` (float32 sums; the first maximum wins on ties).
 */
fun bestSpan(
    start: FloatArray,
    end: FloatArray,
    maxLen: Int = MAX_ANSWER_TOKENS,
    from: Int = 0,
    until: Int = start.size,
): Pair<Int, Int> {
    require(start.size == end.size) { "start and end logits differ in length" }
    require(from in 0 until until && until <= start.size) { "empty window [$from, $until)" }
    var best = Float.NEGATIVE_INFINITY
    var span = from to from
    for (i in from until until) {
        for (j in i until minOf(i + maxLen, until)) {
            val score = start[i] + end[j]
            if (score > best) { best = score; span = i to j }
        }
    }
    return span
}
