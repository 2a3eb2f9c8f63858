package dev.pocketbert.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject

/** One call of an ExecuTorch program: the method to execute and the sequence length its inputs must have. */
data class MethodCall(val method: String, val length: Int)

/**
 * Which method of an ExecuTorch program (`.pte`) runs an input, from the artifact's `metadata.methods`. A static
 * program has one method per sequence bucket, and each input is padded to the smallest bucket that holds it (the
 * same choice as for TFLite, [chooseBucket]). A dynamic program has one bounded method, and each input goes in at
 * its own length, unpadded.
 */
sealed class MethodPlan {
    /** The most tokens one call takes, special tokens included. The engine truncates inputs to this. */
    abstract val maxTokens: Int

    /** The call for an input of [tokens] tokens. Throws [IllegalArgumentException] if it does not fit (truncate first). */
    abstract fun call(tokens: Int): MethodCall

    /**
     * The method for inputs the engine has already fitted to [length] tokens. This is what the runner calls. It
     * throws unless the plan feeds exactly that length, so a wrong bucket never reaches a static method.
     */
    fun methodFor(length: Int): String {
        val c = call(length)
        require(c.length == length) { "ExecuTorch method '${c.method}' takes ${c.length} tokens, got $length; pad the input with the method plan" }
        return c.method
    }

    /** One static-shape method per bucket ([methods]: bucket length → method name). */
    class Bucketed(methods: Map<Int, String>) : MethodPlan() {
        val methods: Map<Int, String> = methods.toSortedMap()
        val buckets: List<Int> = this.methods.keys.toList()

        init {
            require(buckets.isNotEmpty() && buckets.first() > 0) { "an ExecuTorch plan needs at least one positive bucket, got $buckets" }
        }

        override val maxTokens: Int get() = buckets.last()

        override fun call(tokens: Int): MethodCall {
            require(tokens > 0) { "an input has at least one token, got $tokens" }
            val bucket = chooseBucket(tokens, buckets)
            return MethodCall(methods.getValue(bucket), bucket)
        }

        override fun toString() = "Bucketed($methods)"
    }

    /** One method that takes any length from 1 to [maxLength]. */
    class Dynamic(val method: String, val maxLength: Int) : MethodPlan() {
        override val maxTokens: Int get() = maxLength

        override fun call(tokens: Int): MethodCall {
            require(tokens > 0) { "an input has at least one token, got $tokens" }
            require(tokens <= maxLength) { "input of $tokens tokens is longer than max_length $maxLength of ExecuTorch method '$method'; truncate it" }
            return MethodCall(method, tokens)
        }

        override fun toString() = "Dynamic($method, maxLength=$maxLength)"
    }

    companion object {
        /** Format name of ExecuTorch artifacts in the manifest. */
        const val FORMAT = "executorch"

        /**
         * Reads the plan of ExecuTorch artifact [artifact] from its `sequence_buckets` and `metadata`:
         * `{"methods": {"32": "seq_32", ...}, "dynamic": false}` or
         * `{"methods": {"dynamic": "forward"}, "dynamic": true, "max_length": 128}`. A missing `dynamic` counts as
         * true exactly when `sequence_buckets` is null. Throws [ManifestException] with a one-line message when
         * the methods do not cover the buckets or the metadata contradicts itself.
         */
        fun parse(artifact: String, sequenceBuckets: List<Int>?, metadata: JsonElement?): MethodPlan {
            fun fail(what: String): Nothing = throw ManifestException("ExecuTorch artifact $artifact: $what; re-export it with a current pocketbert and run 'pocketbert bundle' again")
            val meta = metadata?.takeIf { it.isJsonObject }?.asJsonObject ?: fail("the manifest has no metadata object")
            val methods = meta.get("methods")?.takeIf { it.isJsonObject }?.asJsonObject
                ?: fail("metadata has no 'methods' object (method name per bucket)")
            val dynamicFlag = meta.get("dynamic")?.takeUnless { it.isJsonNull }
            val dynamic = when {
                dynamicFlag == null -> sequenceBuckets == null
                dynamicFlag.isJsonPrimitive && dynamicFlag.asJsonPrimitive.isBoolean -> dynamicFlag.asBoolean
                else -> fail("metadata.dynamic is $dynamicFlag, not true or false")
            }
            if (dynamic) {
                if (sequenceBuckets != null) fail("metadata.dynamic is true but sequence_buckets is $sequenceBuckets, not null")
                val method = methods.methodName("dynamic") { fail(it) }
                    ?: fail("metadata.methods has no 'dynamic' entry (has ${methods.keySet().joinToString().ifEmpty { "none" }})")
                val maxLength = meta.get("max_length")?.takeIf { it.isJsonPrimitive && it.asJsonPrimitive.isNumber }?.asDouble
                if (maxLength == null || maxLength != Math.floor(maxLength) || maxLength < 2 || maxLength > Int.MAX_VALUE) {
                    fail("dynamic method '$method' needs metadata.max_length, a whole number of at least 2 (got ${meta.get("max_length")})")
                }
                return Dynamic(method, maxLength.toInt())
            }
            if (sequenceBuckets.isNullOrEmpty()) fail("metadata.dynamic is false but the artifact lists no sequence_buckets")
            if (sequenceBuckets.any { it <= 0 }) fail("sequence_buckets $sequenceBuckets has a length below 1")
            val missing = sequenceBuckets.filter { methods.methodName(it.toString()) { m -> fail(m) } == null }
            if (missing.isNotEmpty()) {
                val has = methods.keySet().joinToString().ifEmpty { "none" }
                fail("metadata.methods has no method for sequence bucket${if (missing.size > 1) "s" else ""} ${missing.joinToString()} (has $has)")
            }
            return Bucketed(sequenceBuckets.associateWith { methods.get(it.toString()).asString })
        }

        /** The method name under [key], null if absent; [fail] if it is there but not a non-empty string. */
        private inline fun JsonObject.methodName(key: String, fail: (String) -> Nothing): String? {
            val v = get(key)?.takeUnless { it.isJsonNull } ?: return null
            if (!v.isJsonPrimitive || !v.asJsonPrimitive.isString || v.asString.isBlank()) fail("metadata.methods['$key'] is $v, not a method name")
            return v.asString
        }
    }
}

/** Token ids and attention mask in the order of the artifact's `inputs`, each with its manifest entry. */
fun inputsInManifestOrder(artifact: ArtifactInfo, inputIds: IntArray, attentionMask: IntArray): List<Pair<TensorInfo, IntArray>> {
    require(inputIds.size == attentionMask.size) { "input_ids has ${inputIds.size} tokens but attention_mask ${attentionMask.size}" }
    val values = mapOf("input_ids" to inputIds, "attention_mask" to attentionMask)
    return artifact.inputs.map { info ->
        info to (values[info.name] ?: throw ManifestException(
            "artifact ${artifact.name} takes input '${info.name}'; the app feeds only input_ids and attention_mask: re-export it with pocketbert",
        ))
    }
}

/** Outputs returned in the order of the artifact's `outputs` (as ExecuTorch returns them), keyed by their names. */
fun outputsByName(artifact: ArtifactInfo, outputs: List<FloatArray>): Map<String, FloatArray> {
    check(outputs.size >= artifact.outputs.size) {
        "the model returned ${outputs.size} outputs, the manifest lists ${artifact.outputs.size} (${artifact.outputs.joinToString { it.name }}); re-export it with pocketbert"
    }
    return artifact.outputs.withIndex().associate { (i, info) -> info.name to outputs[i] }
}
