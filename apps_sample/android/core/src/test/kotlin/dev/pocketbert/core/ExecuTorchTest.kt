package dev.pocketbert.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.File

/**
 * ExecuTorch artifacts: the manifest contract parses into a method plan, the plan picks the right method and length,
 * bad manifests fail with one line, the runtime follows the format, and the engine feeds what the plan says.
 */
class ExecuTorchTest {
    @get:Rule val tmp = TemporaryFolder()

    private val bundleDir = File(javaClass.getResource("/bundle/manifest.json")!!.toURI()).parentFile
    private val fixture = File(bundleDir, "manifest.json").readText()

    /** The artifact of the contract, static: one method per bucket. */
    private val staticArtifact = """
        {"name": "executorch-int8", "format": "executorch", "precision": "int8", "path": "executorch/int8/model.pte",
         "scheme": "dynamic-per-channel",
         "inputs": [{"name": "input_ids", "dtype": "int64", "shape": [1, "bucket"]}, {"name": "attention_mask", "dtype": "int64", "shape": [1, "bucket"]}],
         "outputs": [{"name": "embedding", "dtype": "float32", "shape": [1, 384]}],
         "sequence_buckets": [32, 64, 128],
         "metadata": {"methods": {"32": "seq_32", "64": "seq_64", "128": "seq_128"}, "dynamic": false, "delegate": "xnnpack"},
         "files": ["executorch/int8/model.pte"], "sha256": "${"0".repeat(64)}", "size_bytes": 1}
    """

    /** The contract's dynamic program: one bounded method. */
    private val dynamicArtifact = """
        {"name": "executorch-fp32", "format": "executorch", "precision": "fp32", "path": "executorch/fp32/model.pte",
         "inputs": [{"name": "input_ids", "dtype": "int64", "shape": [1, "sequence"]}, {"name": "attention_mask", "dtype": "int64", "shape": [1, "sequence"]}],
         "outputs": [{"name": "embedding", "dtype": "float32", "shape": [1, 384]}],
         "sequence_buckets": null,
         "metadata": {"methods": {"dynamic": "forward"}, "dynamic": true, "max_length": 128},
         "files": ["executorch/fp32/model.pte"], "sha256": "${"0".repeat(64)}", "size_bytes": 1}
    """

    /** The fixture bundle manifest with its artifact replaced by [artifact], after [edit] on the artifact object. */
    private fun manifest(artifact: String, edit: (JsonObject) -> Unit = {}): Manifest {
        val root = JsonParser.parseString(fixture).asJsonObject
        val a = JsonParser.parseString(artifact).asJsonObject.also(edit)
        root.getAsJsonArray("artifacts").set(0, a)
        return Manifest.parse(root.toString())
    }

    private fun metadata(a: JsonObject) = a.getAsJsonObject("metadata")

    private fun refused(artifact: String, vararg expected: String, edit: (JsonObject) -> Unit) {
        try {
            manifest(artifact, edit)
            fail("parsed a bad ExecuTorch manifest")
        } catch (e: ManifestException) {
            val m = e.message!!
            assertFalse("not one line: $m", m.contains('\n'))
            for (part in expected) assertTrue("'$part' not in: $m", m.contains(part))
            assertTrue(m, m.contains("executorch-") && m.contains("pocketbert"))
        }
    }

    @Test
    fun theStaticContractParsesIntoOneMethodPerBucket() {
        val artifact = manifest(staticArtifact).artifact()
        assertEquals("executorch", artifact.format)
        assertEquals(listOf(32, 64, 128), artifact.sequenceBuckets)
        val plan = artifact.methodPlan as MethodPlan.Bucketed
        assertEquals(mapOf(32 to "seq_32", 64 to "seq_64", 128 to "seq_128"), plan.methods)
        assertEquals(128, plan.maxTokens)
        assertEquals(listOf("input_ids", "attention_mask"), artifact.inputs.map { it.name })
        assertEquals(listOf("embedding"), artifact.outputs.map { it.name })
    }

    @Test
    fun staticPlanPicksTheSmallestBucketThatHoldsTheInput() {
        val plan = manifest(staticArtifact).artifact().methodPlan!!
        val expected = mapOf(
            1 to MethodCall("seq_32", 32), 2 to MethodCall("seq_32", 32), 31 to MethodCall("seq_32", 32),
            32 to MethodCall("seq_32", 32), 33 to MethodCall("seq_64", 64), 64 to MethodCall("seq_64", 64),
            65 to MethodCall("seq_128", 128), 127 to MethodCall("seq_128", 128), 128 to MethodCall("seq_128", 128),
        )
        for ((tokens, call) in expected) assertEquals("$tokens tokens", call, plan.call(tokens))
        // what the engine picks for a static artifact is the same bucket
        for (tokens in 1..128) assertEquals(chooseBucket(tokens, listOf(32, 64, 128)), plan.call(tokens).length)
        assertEquals("seq_64", plan.methodFor(64))
    }

    @Test
    fun dynamicPlanFeedsTheInputAtItsOwnLength() {
        val artifact = manifest(dynamicArtifact).artifact()
        assertNull(artifact.sequenceBuckets)
        val plan = artifact.methodPlan as MethodPlan.Dynamic
        assertEquals("forward", plan.method)
        assertEquals(128, plan.maxTokens)
        for (tokens in listOf(1, 2, 7, 33, 127, 128)) assertEquals(MethodCall("forward", tokens), plan.call(tokens))
        assertEquals("forward", plan.methodFor(7))
    }

    @Test
    fun tooLongInputsFailInOneLineSayingTruncate() {
        val static = manifest(staticArtifact).artifact().methodPlan!!
        val dynamic = manifest(dynamicArtifact).artifact().methodPlan!!
        for ((plan, limit) in listOf(static to "largest bucket 128", dynamic to "max_length 128")) {
            try {
                plan.call(129)
                fail("129 tokens fit a plan of at most 128")
            } catch (e: IllegalArgumentException) {
                assertTrue(e.message!!, e.message!!.contains(limit) && e.message!!.contains("truncate") && !e.message!!.contains('\n'))
            }
        }
    }

    @Test
    fun aStaticMethodIsNeverCalledWithAnotherLength() {
        val plan = manifest(staticArtifact).artifact().methodPlan!!
        try {
            plan.methodFor(40)
            fail("40 tokens went to a static method")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message!!, e.message!!.contains("seq_64") && e.message!!.contains("64"))
        }
    }

    @Test
    fun methodsThatDoNotCoverTheBucketsAreRefused() {
        refused(staticArtifact, "128", "32, 64") { metadata(it).getAsJsonObject("methods").remove("128") }
        refused(staticArtifact, "buckets 64, 128") {
            metadata(it).add("methods", JsonParser.parseString("""{"32": "seq_32", "dynamic": "forward"}"""))
        }
        refused(staticArtifact, "'64'") { metadata(it).getAsJsonObject("methods").addProperty("64", "") }
        refused(staticArtifact, "methods") { metadata(it).remove("methods") }
        refused(staticArtifact, "metadata") { it.remove("metadata") }
    }

    @Test
    fun contradictoryDynamicMetadataIsRefused() {
        refused(staticArtifact, "sequence_buckets") { metadata(it).addProperty("dynamic", true) }
        refused(dynamicArtifact, "sequence_buckets") { metadata(it).addProperty("dynamic", false) }
        refused(dynamicArtifact, "'dynamic'", "seq_32") {
            metadata(it).add("methods", JsonParser.parseString("""{"seq_32": "x"}"""))
        }
        refused(dynamicArtifact, "max_length") { metadata(it).remove("max_length") }
        refused(dynamicArtifact, "max_length") { metadata(it).addProperty("max_length", 1) }
        refused(dynamicArtifact, "metadata.dynamic") { metadata(it).addProperty("dynamic", "yes") }
        refused(staticArtifact, "input_ids", "float32") {
            it.getAsJsonArray("inputs")[0].asJsonObject.addProperty("dtype", "float32")
        }
    }

    @Test
    fun aMissingDynamicFlagFollowsTheBuckets() {
        assertTrue(manifest(staticArtifact) { metadata(it).remove("dynamic") }.artifact().methodPlan is MethodPlan.Bucketed)
        assertTrue(manifest(dynamicArtifact) { metadata(it).remove("dynamic") }.artifact().methodPlan is MethodPlan.Dynamic)
    }

    @Test
    fun otherFormatsHaveNoMethodPlan() {
        val onnx = Manifest.parse(fixture).artifact()
        assertNull(onnx.methodPlan)
        val tflite = manifest(staticArtifact) { it.addProperty("format", "tflite"); it.remove("metadata") }.artifact()
        assertNull(tflite.methodPlan)
        assertEquals(listOf(32, 64, 128), tflite.sequenceBuckets)
    }

    @Test
    fun theRuntimeFollowsTheArtifactFormat() {
        val expected = mapOf(
            "tflite" to InferenceRuntime.LITERT,
            "onnx" to InferenceRuntime.ONNX_RUNTIME,
            "executorch" to InferenceRuntime.EXECUTORCH,
        )
        for ((format, runtime) in expected) {
            val artifact = ArtifactInfo("x", format, "fp32", "m", listOf("m"), "", emptyList(), emptyList(), null)
            assertEquals(format, runtime, InferenceRuntime.of(artifact))
        }
        assertEquals(expected.values.toSet(), InferenceRuntime.entries.toSet())
        assertEquals(InferenceRuntime.ONNX_RUNTIME, InferenceRuntime.of(Manifest.parse(fixture).artifact()))
        assertEquals(InferenceRuntime.EXECUTORCH, InferenceRuntime.of(manifest(staticArtifact).artifact()))
        assertEquals(InferenceRuntime.EXECUTORCH, InferenceRuntime.of(manifest(dynamicArtifact).artifact()))
        for (format in listOf("coreml", "ExecuTorch", "")) {
            try {
                InferenceRuntime.of(ArtifactInfo("coreml-fp16", format, "fp16", "m", listOf("m"), "", emptyList(), emptyList(), null))
                fail("the app picked a runtime for '$format'")
            } catch (e: ManifestException) {
                assertTrue(e.message!!, e.message!!.contains("tflite, onnx, executorch") && !e.message!!.contains('\n'))
            }
        }
    }

    @Test
    fun inputsGoInManifestOrderAndOutputsComeBackByPosition() {
        val ids = intArrayOf(2, 5, 3, 0)
        val mask = intArrayOf(1, 1, 1, 0)
        val artifact = manifest(staticArtifact) { a ->
            val inputs = a.getAsJsonArray("inputs")
            val first = inputs[0]; inputs[0] = inputs[1]; inputs[1] = first
            a.add("outputs", JsonParser.parseString("""[{"name": "start_logits", "dtype": "float32", "shape": [1, "bucket"]}, {"name": "end_logits", "dtype": "float32", "shape": [1, "bucket"]}]"""))
        }.artifact()
        val feed = inputsInManifestOrder(artifact, ids, mask)
        assertEquals(listOf("attention_mask", "input_ids"), feed.map { it.first.name })
        assertArrayEquals(mask, feed[0].second)
        assertArrayEquals(ids, feed[1].second)
        val out = outputsByName(artifact, listOf(floatArrayOf(1f), floatArrayOf(2f)))
        assertEquals(listOf("start_logits", "end_logits"), out.keys.toList())
        assertArrayEquals(floatArrayOf(2f), out.getValue("end_logits"), 0f)
        try {
            outputsByName(artifact, listOf(floatArrayOf(1f)))
            fail("one output named two")
        } catch (e: IllegalStateException) {
            assertTrue(e.message!!, e.message!!.contains("start_logits, end_logits"))
        }
        val typed = manifest(staticArtifact) { it.getAsJsonArray("inputs")[1].asJsonObject.addProperty("name", "token_type_ids") }.artifact()
        try {
            inputsInManifestOrder(typed, ids, mask)
            fail("fed an input the app does not have")
        } catch (e: ManifestException) {
            assertTrue(e.message!!, e.message!!.contains("token_type_ids"))
        }
    }

    // ---- the engine with an ExecuTorch plan (fake runner that resolves the method as ExecuTorchRunner does) ----

    private val vocab = listOf("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "paris", "is", "in", "france", "where", "?", "##is", "par", ".")
    private val config = TokenizerConfig(lowercase = true, stripAccents = null, clsTokenId = 2, sepTokenId = 3, padTokenId = 0, unkTokenId = 1)
    private val tokenizer = WordPieceTokenizer(vocab, config)

    private class PlanRunner(val plan: MethodPlan) : ModelRunner {
        val calls = ArrayList<Pair<String, List<Int>>>()
        var mask = IntArray(0)
        override fun run(inputIds: IntArray, attentionMask: IntArray): Map<String, FloatArray> {
            calls += plan.methodFor(inputIds.size) to inputIds.toList()
            mask = attentionMask
            return mapOf("logits" to floatArrayOf(0f, 1f))
        }
        override fun close() {}
    }

    /** Manifest max_length 16 (buckets 8, 16 for other formats) with an ExecuTorch artifact of [plan]. */
    private fun engine(plan: MethodPlan, buckets: List<Int>?): Pair<Engine, PlanRunner> {
        val artifact = ArtifactInfo("executorch-int8", "executorch", "int8", "m.pte", listOf("m.pte"), "", emptyList(), emptyList(), buckets, plan)
        val m = Manifest(Task.SEQUENCE_CLASSIFICATION, listOf("a", "b"), "test", "bert", 16, listOf(8, 16), config, "v", "", listOf(artifact))
        val runner = PlanRunner(plan)
        return Engine(m, artifact, tokenizer, runner) to runner
    }

    @Test
    fun theEnginePadsToThePlansBucketAndTruncatesToItsLargest() {
        val (engine, runner) = engine(MethodPlan.Bucketed(mapOf(4 to "s4", 6 to "s6", 12 to "s12")), listOf(4, 6, 12))
        engine.classify("Paris") // [CLS] paris [SEP]
        assertEquals("s4" to listOf(2, 5, 3, 0), runner.calls.last())
        assertEquals(listOf(1, 1, 1, 0), runner.mask.toList())
        engine.classify("Paris is in France") // 6 tokens: exactly a bucket
        assertEquals("s6" to listOf(2, 5, 6, 7, 8, 3), runner.calls.last())
        engine.classify("Paris is in France .") // 7 tokens
        assertEquals("s12", runner.calls.last().first)
        assertEquals(12, runner.calls.last().second.size)
        assertEquals(7, runner.mask.sum())
        engine.classify("Paris ".repeat(40)) // truncated to the largest bucket (12 < max_length 16), as for TFLite
        assertEquals("s12" to listOf(2) + List(10) { 5 } + listOf(3), runner.calls.last())
        assertEquals(12, runner.mask.sum())
    }

    @Test
    fun theEngineFeedsADynamicProgramUnpaddedUpToItsMaxLength() {
        val (engine, runner) = engine(MethodPlan.Dynamic("forward", 10), null)
        engine.classify("Paris is in France")
        assertEquals("forward" to listOf(2, 5, 6, 7, 8, 3), runner.calls.last())
        assertEquals(List(6) { 1 }, runner.mask.toList())
        engine.classify("Paris ".repeat(40)) // truncated to max_length 10 (< the manifest's 16)
        assertEquals("forward" to listOf(2) + List(8) { 5 } + listOf(3), runner.calls.last())
        val (wide, wideRunner) = engine(MethodPlan.Dynamic("forward", 512), null)
        wide.classify("Paris ".repeat(40)) // the manifest's max_length 16 still bounds it
        assertEquals(16, wideRunner.calls.last().second.size)
    }

    @Test
    fun theEnginePadsQuestionAnsweringPairsToTheBucketToo() {
        val plan = MethodPlan.Bucketed(mapOf(8 to "s8", 16 to "s16"))
        val artifact = ArtifactInfo("executorch-int8", "executorch", "int8", "m.pte", listOf("m.pte"), "", emptyList(), emptyList(), listOf(8, 16), plan)
        val m = Manifest(Task.QUESTION_ANSWERING, emptyList(), "test", "bert", 16, listOf(8, 16), config, "v", "", listOf(artifact))
        val seen = ArrayList<String>()
        val runner = object : ModelRunner {
            override fun run(inputIds: IntArray, attentionMask: IntArray): Map<String, FloatArray> {
                seen += plan.methodFor(inputIds.size)
                val start = FloatArray(inputIds.size); val end = FloatArray(inputIds.size)
                start[9] = 5f; end[9] = 5f // "france"
                return mapOf("start_logits" to start, "end_logits" to end)
            }
            override fun close() {}
        }
        // [CLS] where is paris ? [SEP] paris is in france . [SEP] = 12 tokens -> bucket 16
        val result = Engine(m, artifact, tokenizer, runner).answer("Where is Paris?", "Paris is in FRANCE.")
        assertEquals(listOf("s16"), seen)
        assertEquals("FRANCE", result.answer.text)
    }

    // ---- copies for Module.load, which needs a file path ----

    @Test
    fun artifactsAreCopiedOnceVerifiedAndOldCopiesRemoved() {
        val artifact = Manifest.parse(fixture).artifact() // onnx fixture: two files, a real sha256
        val root = tmp.newFolder("models")
        File(root, "f".repeat(64)).mkdirs() // a copy of an older bundle
        File(root, "${artifact.sha256}.partial").mkdirs() // an unfinished copy
        var opened = 0
        val open = { rel: String -> opened++; File(bundleDir, rel).inputStream() }
        val model = ArtifactFiles.materialize(artifact, root, open)
        assertEquals(File(File(root, artifact.sha256), artifact.path).canonicalFile, model)
        assertArrayEquals(File(bundleDir, artifact.path).readBytes(), model.readBytes())
        assertEquals(listOf(artifact.sha256), root.list()!!.toList())
        assertEquals(2, opened)
        assertEquals(model, ArtifactFiles.materialize(artifact, root, open))
        assertEquals("a verified copy is reused", 2, opened)
        File(model.parentFile, "model.onnx.data").writeText("changed")
        ArtifactFiles.materialize(artifact, root, open)
        assertEquals("a changed copy is replaced", 4, opened)
        ArtifactVerifier.verify(artifact) { File(File(root, artifact.sha256), it).inputStream() }
    }

    @Test
    fun aCopyThatDoesNotVerifyIsRefusedAndNotKept() {
        val artifact = Manifest.parse(fixture).artifact()
        val root = tmp.newFolder("bad")
        try {
            ArtifactFiles.materialize(artifact, root) { "not the model".byteInputStream() }
            fail("a wrong copy was loaded")
        } catch (e: ManifestException) {
            assertTrue(e.message!!, e.message!!.contains("run 'pocketbert bundle' again"))
        }
        assertEquals(emptyList<String>(), root.list()!!.toList())
    }

    @Test
    fun filesOutsideTheBundleAreRefused() {
        val good = Manifest.parse(fixture).artifact()
        val root = tmp.newFolder("escape")
        for (bad in listOf(good.copy(files = good.files + "../../x"), good.copy(path = "elsewhere.onnx"), good.copy(sha256 = "../x"))) {
            try {
                ArtifactFiles.materialize(bad, root) { File(bundleDir, it).inputStream() }
                fail("materialized $bad")
            } catch (e: ManifestException) {
                assertTrue(e.message!!, e.message!!.contains(good.name))
            }
        }
    }
}
