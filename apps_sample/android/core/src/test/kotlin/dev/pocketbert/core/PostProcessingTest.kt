package dev.pocketbert.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** Post-processing equals the Python functions parity uses (values computed by numpy/torch in `postprocess.json`). */
class PostProcessingTest {
    private val golden = Goldens.json("postprocess.json")

    @Test
    fun softmaxMatchesNumpy() {
        val cases = golden.getAsJsonArray("softmax")
        assertTrue(cases.size() > 0)
        for (c in cases) {
            val case = c.asJsonObject
            val expected = case.getAsJsonArray("probabilities").map { it.asDouble }
            val got = softmax(case.floats("logits"))
            assertEquals(expected.size, got.size)
            expected.indices.forEach { assertEquals("softmax $expected", expected[it], got[it], 1e-9) }
        }
    }

    @Test
    fun meanPoolingMatchesTheWrapper() {
        for (c in golden.getAsJsonArray("mean_pooling")) {
            val case = c.asJsonObject
            val rows = case.getAsJsonArray("hidden").map { r -> r.asJsonArray.map { it.asFloat } }
            val hidden = rows.flatten().toFloatArray()
            val expected = case.floats("embedding")
            val got = meanPoolNormalize(hidden, case.ints("mask"), rows[0].size)
            expected.indices.forEach { assertEquals("pooling of ${case.ints("mask").toList()}", expected[it], got[it], 1e-6f) }
        }
    }

    @Test
    fun spansMatchBestSpan() {
        val maxLen = golden["max_answer_tokens"].asInt
        assertEquals(maxLen, MAX_ANSWER_TOKENS)
        for (c in golden.getAsJsonArray("spans")) {
            val case = c.asJsonObject
            val start = case.floats("start_logits")
            val end = case.floats("end_logits")
            val expected = case.ints("span").let { it[0] to it[1] }
            assertEquals("span of ${start.size} logits", expected, bestSpan(start, end, maxLen))
            if (case.has("window")) {
                val (from, until) = case.ints("window").let { it[0] to it[1] }
                val windowed = case.ints("window_span").let { it[0] to it[1] }
                assertEquals("window span of ${start.size} logits", windowed, bestSpan(start, end, maxLen, from, until))
            }
        }
    }

    @Test
    fun bucketChoiceMatchesPython() {
        for (c in golden.getAsJsonArray("buckets")) {
            val case = c.asJsonObject
            val buckets = case.getAsJsonArray("buckets").map { it.asInt }
            val length = case["length"].asInt
            val expected = case["bucket"].takeUnless { it.isJsonNull }?.asInt
            val got = try { chooseBucket(length, buckets) } catch (e: IllegalArgumentException) { null }
            assertEquals("bucket of $length in $buckets", expected, got)
        }
    }

    @Test
    fun cosineOfAUnitVectorWithItselfIsOne() {
        val v = floatArrayOf(0.6f, 0.8f)
        assertEquals(1.0, cosine(v, v), 1e-7)
        assertEquals(0.0, cosine(v, floatArrayOf(0f, 0f)), 0.0)
    }
}
