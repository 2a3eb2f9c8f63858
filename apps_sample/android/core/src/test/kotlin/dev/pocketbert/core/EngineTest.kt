package dev.pocketbert.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** The engine feeds the runner the right inputs and turns outputs into what the UI shows (a fake runner stands in). */
class EngineTest {
    private val vocab = listOf("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "paris", "is", "in", "france", "where", "?", "##is", "par", ".")
    private val config = TokenizerConfig(
        lowercase = true, stripAccents = null, clsTokenId = 2, sepTokenId = 3, padTokenId = 0, unkTokenId = 1,
    )
    private val tokenizer = WordPieceTokenizer(vocab, config)

    private fun manifest(task: Task, labels: List<String>, buckets: List<Int>?) = Manifest(
        task, labels, "test", "bert", 16, listOf(8, 16), config, "tokenizer/vocab.txt", "",
        listOf(ArtifactInfo("x-fp32", "x", "fp32", "m", listOf("m"), "", emptyList(), emptyList(), buckets)),
    )

    /** Returns [outputs] computed from the feed, and remembers the feed. */
    private class FakeRunner(val outputs: (IntArray, IntArray) -> Map<String, FloatArray>) : ModelRunner {
        var ids = IntArray(0)
        var mask = IntArray(0)
        override fun run(inputIds: IntArray, attentionMask: IntArray): Map<String, FloatArray> {
            ids = inputIds; mask = attentionMask
            return outputs(inputIds, attentionMask)
        }
        override fun close() {}
    }

    private fun engine(m: Manifest, runner: ModelRunner) = Engine(m, m.artifact(), tokenizer, runner)

    @Test
    fun staticArtifactsArePaddedToTheirBucketDynamicOnesAreNot() {
        val runner = FakeRunner { _, _ -> mapOf("logits" to floatArrayOf(0f, 1f)) }
        engine(manifest(Task.SEQUENCE_CLASSIFICATION, listOf("a", "b"), listOf(8, 16)), runner).classify("Paris is in France")
        assertEquals(8, runner.ids.size)
        assertEquals(listOf(2, 5, 6, 7, 8, 3, 0, 0), runner.ids.toList())
        assertEquals(listOf(1, 1, 1, 1, 1, 1, 0, 0), runner.mask.toList())
        engine(manifest(Task.SEQUENCE_CLASSIFICATION, listOf("a", "b"), null), runner).classify("Paris is in France")
        assertEquals(6, runner.ids.size)
    }

    @Test
    fun classificationSortsLabelsByProbability() {
        val runner = FakeRunner { _, _ -> mapOf("logits" to floatArrayOf(0f, 2f, 1f)) }
        val result = engine(manifest(Task.SEQUENCE_CLASSIFICATION, listOf("neg", "pos", "mixed"), null), runner).classify("x")
        assertEquals(listOf("pos", "mixed", "neg"), result.scores.map { it.label })
        assertEquals(1.0, result.scores.sumOf { it.probability }, 1e-9)
        assertTrue(result.latency.totalMs >= 0.0)
    }

    @Test
    fun answerIsTakenFromTheContextTokensOnly() {
        // [CLS] where is paris ? [SEP] paris is in france . [SEP]: the question's "paris" scores highest but is not context.
        val runner = FakeRunner { ids, _ ->
            val start = FloatArray(ids.size); val end = FloatArray(ids.size)
            start[3] = 9f; end[3] = 9f // "paris" in the question
            start[9] = 5f; end[9] = 5f // "france" in the context
            mapOf("start_logits" to start, "end_logits" to end)
        }
        val context = "Paris is in FRANCE."
        val result = engine(manifest(Task.QUESTION_ANSWERING, emptyList(), null), runner).answer("Where is Paris?", context)
        assertEquals("FRANCE", result.answer.text)
        assertEquals(9 to 9, result.answer.tokenStart to result.answer.tokenEnd)
    }

    @Test
    fun wordPiecesAreMergedIntoWordsWithTheFirstPieceLabel() {
        // label 1 (LOC) for the token at position 1, label 0 (O) everywhere else
        val runner = FakeRunner { ids, _ ->
            val logits = FloatArray(ids.size * 2)
            for (k in ids.indices) logits[k * 2 + (if (k == 1) 1 else 0)] = 3f
            mapOf("logits" to logits)
        }
        val result = engine(manifest(Task.TOKEN_CLASSIFICATION, listOf("O", "LOC"), null), runner).tag("Paris Paris.")
        assertEquals(listOf("Paris", "Paris", "."), result.words.map { it.text })
        assertEquals(listOf("LOC", "O", "O"), result.words.map { it.label })
        // "Parisis" is the pieces paris + ##is: one word, labelled by its first piece
        val split = engine(manifest(Task.TOKEN_CLASSIFICATION, listOf("O", "LOC"), null), runner).tag("Parisis in France")
        assertEquals(listOf("Parisis", "in", "France"), split.words.map { it.text })
        assertEquals(listOf("LOC", "O", "O"), split.words.map { it.label })
    }

    @Test
    fun embeddingFallsBackToMeanPoolingOfHiddenStates() {
        val runner = FakeRunner { ids, _ -> mapOf("last_hidden_state" to FloatArray(ids.size * 2) { if (it % 2 == 0) 3f else 4f }) }
        val (embedding, _) = engine(manifest(Task.FEATURE_EXTRACTION, emptyList(), null), runner).embed("paris")
        assertEquals(0.6f, embedding[0], 1e-6f)
        assertEquals(0.8f, embedding[1], 1e-6f)
        val same = engine(manifest(Task.FEATURE_EXTRACTION, emptyList(), null), runner).similarity("paris", "france")
        assertEquals(1.0, same.cosine, 1e-6)
    }
}
