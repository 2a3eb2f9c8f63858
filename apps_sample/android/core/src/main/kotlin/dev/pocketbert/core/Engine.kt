package dev.pocketbert.core

/**
 * One loaded model behind a runtime (LiteRT, ONNX Runtime, ExecuTorch, a fake in tests). Batch 1: [inputIds] and
 * [attentionMask] have the same length (a bucket length for static-shape artifacts); the runner casts them to the
 * artifact's input dtypes and returns every output flattened row-major, keyed by the manifest's output names.
 */
interface ModelRunner : AutoCloseable {
    fun run(inputIds: IntArray, attentionMask: IntArray): Map<String, FloatArray>
}

/** Milliseconds spent in each stage of one inference. */
data class Latency(val tokenizeMs: Double, val runMs: Double, val postprocessMs: Double) {
    val totalMs: Double get() = tokenizeMs + runMs + postprocessMs
    operator fun plus(o: Latency) = Latency(tokenizeMs + o.tokenizeMs, runMs + o.runMs, postprocessMs + o.postprocessMs)
}

data class LabelScore(val label: String, val probability: Double)

/** A word (sub-word pieces merged, labelled by its first piece) with the label the model gave it. */
data class TaggedWord(val text: String, val start: Int, val end: Int, val label: String, val probability: Double)

/** An answer span in the context: UTF-16 offsets, its text and its token span. */
data class Answer(val text: String, val start: Int, val end: Int, val tokenStart: Int, val tokenEnd: Int, val score: Float)

/** What the UI shows, per task, with the latency of producing it. */
sealed class Result {
    abstract val latency: Latency
    data class Classification(val scores: List<LabelScore>, override val latency: Latency) : Result()
    data class Similarity(val cosine: Double, override val latency: Latency) : Result()
    data class QuestionAnswer(val answer: Answer, override val latency: Latency) : Result()
    data class Tagged(val words: List<TaggedWord>, override val latency: Latency) : Result()
}

/** Tokenize, run and post-process one request for the manifest's task; the platform code only draws the result. */
class Engine(
    private val manifest: Manifest,
    private val artifact: ArtifactInfo,
    private val tokenizer: WordPieceTokenizer,
    private val runner: ModelRunner,
    private val clock: () -> Long = System::nanoTime,
) {
    private val buckets = manifest.buckets(artifact)
    private val static = artifact.sequenceBuckets != null
    private val plan = artifact.methodPlan

    private inner class Timer {
        private var last = clock()
        fun lap(): Double { val now = clock(); val ms = (now - last) / 1e6; last = now; return ms }
    }

    /** Pads to the bucket: the ExecuTorch method plan's length, or the smallest bucket of a static artifact. */
    private fun fit(encoding: Encoding): Encoding = when {
        plan != null -> encoding.padTo(plan.call(encoding.length).length, manifest.tokenizer.padTokenId)
        static -> encoding.padTo(chooseBucket(encoding.length, buckets), manifest.tokenizer.padTokenId)
        else -> encoding
    }

    /** Inputs are truncated to this many tokens: the manifest's max_length, or less if the artifact takes less. */
    private fun maxTokens(): Int = minOf(manifest.maxLength, plan?.maxTokens ?: buckets.last())

    /** Sequence classification: every label with its probability, most likely first. */
    fun classify(text: String): Result.Classification {
        val timer = Timer()
        val enc = fit(tokenizer.encode(text, maxTokens()))
        val t = timer.lap()
        val logits = runner.run(enc.inputIds, enc.attentionMask).output("logits")
        val r = timer.lap()
        val probs = softmax(logits)
        val scores = probs.indices.map { LabelScore(labelName(it), probs[it]) }.sortedByDescending { it.probability }
        return Result.Classification(scores, Latency(t, r, timer.lap()))
    }

    /** Sentence embedding of one text (the model's `embedding` output, or mean pooling of `last_hidden_state`). */
    fun embed(text: String): Pair<FloatArray, Latency> {
        val timer = Timer()
        val enc = fit(tokenizer.encode(text, maxTokens()))
        val t = timer.lap()
        val out = runner.run(enc.inputIds, enc.attentionMask)
        val r = timer.lap()
        val embedding = out["embedding"] ?: run {
            val hidden = out.output("last_hidden_state")
            meanPoolNormalize(hidden, enc.attentionMask, hidden.size / enc.inputIds.size)
        }
        return embedding to Latency(t, r, timer.lap())
    }

    /** Cosine similarity of two texts' embeddings; the latency covers both. */
    fun similarity(a: String, b: String): Result.Similarity {
        val (ea, la) = embed(a)
        val (eb, lb) = embed(b)
        val timer = Timer()
        val cos = cosine(ea, eb)
        return Result.Similarity(cos, la + lb + Latency(0.0, 0.0, timer.lap()))
    }

    /** Extractive QA: the best span of context tokens (at most [MAX_ANSWER_TOKENS]) as text of [context]. */
    fun answer(question: String, context: String): Result.QuestionAnswer {
        val timer = Timer()
        val enc = fit(tokenizer.encodePair(question, context, maxTokens()))
        val t = timer.lap()
        val out = runner.run(enc.inputIds, enc.attentionMask)
        val r = timer.lap()
        val contextTokens = enc.sequenceIds.indices.filter { enc.sequenceIds[it] == 1 }
        if (contextTokens.isEmpty()) throw IllegalArgumentException("the context is empty; type a context to search")
        val start = out.output("start_logits")
        val end = out.output("end_logits")
        val (i, j) = bestSpan(start, end, from = contextTokens.first(), until = contextTokens.last() + 1)
        val from = enc.offsets[i][0]
        val until = enc.offsets[j][1]
        val answer = Answer(context.substring(from, until), from, until, i, j, start[i] + end[j])
        return Result.QuestionAnswer(answer, Latency(t, r, timer.lap()))
    }

    /** Token classification: each word of [text] with the label of its first piece. */
    fun tag(text: String): Result.Tagged {
        val timer = Timer()
        val enc = fit(tokenizer.encode(text, maxTokens()))
        val t = timer.lap()
        val logits = runner.run(enc.inputIds, enc.attentionMask).output("logits")
        val r = timer.lap()
        val numLabels = logits.size / enc.inputIds.size
        val words = ArrayList<TaggedWord>()
        for (k in enc.inputIds.indices) {
            if (enc.sequenceIds[k] != 0) continue
            val (s, e) = enc.offsets[k][0] to enc.offsets[k][1]
            val last = words.lastOrNull()
            if (last != null && tokenizer.isContinuation(enc.inputIds[k])) {
                words[words.size - 1] = last.copy(text = text.substring(last.start, e), end = e)
                continue
            }
            val row = logits.copyOfRange(k * numLabels, (k + 1) * numLabels)
            val best = argmax(row)
            words += TaggedWord(text.substring(s, e), s, e, labelName(best), softmax(row)[best])
        }
        return Result.Tagged(words, Latency(t, r, timer.lap()))
    }

    private fun labelName(i: Int) = manifest.labels.getOrElse(i) { "LABEL_$i" }

    private fun Map<String, FloatArray>.output(name: String): FloatArray =
        this[name] ?: throw IllegalStateException("the model has no output '$name' (has ${keys.joinToString()}); re-export it with pocketbert")
}
