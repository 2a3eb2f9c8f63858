package dev.pocketbert.core

import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import java.io.InputStream
import java.security.MessageDigest

/** The tasks pocketbert exports (`pocketbert.tasks.Task`). */
enum class Task(val id: String) {
    FEATURE_EXTRACTION("feature-extraction"),
    SEQUENCE_CLASSIFICATION("sequence-classification"),
    QUESTION_ANSWERING("question-answering"),
    TOKEN_CLASSIFICATION("token-classification");

    companion object {
        fun parse(id: String): Task = entries.firstOrNull { it.id == id }
            ?: throw ManifestException("unknown task '$id'; re-bundle with a current pocketbert")
    }
}

/** A manifest that cannot be used: the message says what to do. */
class ManifestException(message: String) : Exception(message)

data class TensorInfo(val name: String, val dtype: String, val shape: List<String>)

/**
 * One bundled model: [files] are relative to the bundle directory and hashed in this order into [sha256].
 * [methodPlan] is set for ExecuTorch artifacts only: which program method runs which input length.
 */
data class ArtifactInfo(
    val name: String,
    val format: String,
    val precision: String,
    val path: String,
    val files: List<String>,
    val sha256: String,
    val inputs: List<TensorInfo>,
    val outputs: List<TensorInfo>,
    val sequenceBuckets: List<Int>?,
    val methodPlan: MethodPlan? = null,
)

/** What an app needs from `manifest.json` (written by `pocketbert bundle`; paths relative to the bundle dir). */
data class Manifest(
    val task: Task,
    val labels: List<String>,
    val origin: String,
    val architecture: String,
    val maxLength: Int,
    val sequenceBuckets: List<Int>,
    val tokenizer: TokenizerConfig,
    val vocabPath: String,
    val vocabSha256: String,
    val artifacts: List<ArtifactInfo>,
) {
    /** The artifact to load: the one named, or the first (the bundler lists the preferred one first). */
    fun artifact(name: String? = null): ArtifactInfo =
        if (name == null) artifacts.firstOrNull() ?: throw ManifestException("the manifest lists no artifact; run 'pocketbert bundle'")
        else artifacts.firstOrNull { it.name == name }
            ?: throw ManifestException("artifact '$name' is not in the bundle (has ${artifacts.joinToString { it.name }}); run 'pocketbert bundle --artifact $name'")

    /** Buckets of [artifact] (static-shape formats) or of the manifest. */
    fun buckets(artifact: ArtifactInfo): List<Int> = artifact.sequenceBuckets ?: sequenceBuckets

    companion object {
        const val SCHEMA_VERSION = 2

        fun parse(json: String): Manifest {
            val root = try {
                JsonParser.parseString(json).asJsonObject
            } catch (e: Exception) {
                throw ManifestException("manifest.json is not a JSON object; run 'pocketbert bundle' again")
            }
            val version = root.get("schema_version")?.asInt
            if (version != SCHEMA_VERSION) {
                throw ManifestException("manifest schema_version $version, this app reads $SCHEMA_VERSION; update the app or pocketbert")
            }
            val model = root.obj("model")
            val tok = root.obj("tokenizer")
            return Manifest(
                task = Task.parse(model.str("task")),
                labels = model.get("labels")?.takeUnless { it.isJsonNull }?.asJsonArray?.map { it.asString } ?: emptyList(),
                origin = model.get("origin")?.asString ?: "",
                architecture = model.str("architecture"),
                maxLength = root.int("max_length"),
                sequenceBuckets = root.ints("sequence_buckets"),
                tokenizer = TokenizerConfig(
                    lowercase = tok.bool("lowercase"),
                    stripAccents = tok.get("strip_accents")?.takeUnless { it.isJsonNull }?.asBoolean,
                    tokenizeChineseChars = tok.bool("tokenize_chinese_chars"),
                    cleanText = tok.bool("clean_text"),
                    continuingSubwordPrefix = tok.str("continuing_subword_prefix"),
                    maxInputCharsPerWord = tok.int("max_input_chars_per_word"),
                    clsTokenId = tok.int("cls_token_id"),
                    sepTokenId = tok.int("sep_token_id"),
                    padTokenId = tok.int("pad_token_id"),
                    unkTokenId = tok.int("unk_token_id"),
                ),
                vocabPath = tok.str("vocab"),
                vocabSha256 = tok.obj("sha256").str(tok.str("vocab")),
                artifacts = root.get("artifacts")?.asJsonArray?.map { parseArtifact(it.asJsonObject) } ?: emptyList(),
            )
        }

        private fun parseArtifact(a: JsonObject): ArtifactInfo {
            val name = a.str("name")
            val format = a.str("format")
            val buckets = a.get("sequence_buckets")?.takeUnless { it.isJsonNull }?.let { a.ints("sequence_buckets") }
            val inputs = a.tensors("inputs")
            val plan = if (format == MethodPlan.FORMAT) {
                inputs.firstOrNull { it.dtype != "int64" && it.dtype != "int32" }?.let {
                    throw ManifestException("ExecuTorch artifact $name: input '${it.name}' is ${it.dtype}, the app feeds int64 or int32; re-export it with pocketbert")
                }
                MethodPlan.parse(name, buckets, a.get("metadata"))
            } else null
            return ArtifactInfo(
                name = name,
                format = format,
                precision = a.str("precision"),
                path = a.str("path"),
                files = a.field("files").asJsonArray.map { it.asString },
                sha256 = a.str("sha256"),
                inputs = inputs,
                outputs = a.tensors("outputs"),
                sequenceBuckets = buckets,
                methodPlan = plan,
            )
        }

        private fun JsonObject.field(key: String): JsonElement =
            get(key)?.takeUnless { it.isJsonNull } ?: throw ManifestException("manifest.json has no '$key'; run 'pocketbert bundle' again")
        private fun JsonObject.obj(key: String) = field(key).asJsonObject
        private fun JsonObject.str(key: String) = field(key).asString
        private fun JsonObject.int(key: String) = field(key).asInt
        private fun JsonObject.bool(key: String) = field(key).asBoolean
        private fun JsonObject.ints(key: String) = field(key).asJsonArray.map { it.asInt }
        private fun JsonObject.tensors(key: String): List<TensorInfo> = (get(key)?.asJsonArray?.toList() ?: emptyList()).map {
            val t = it.asJsonObject
            TensorInfo(t.str("name"), t.str("dtype"), t.get("shape").asJsonArray.map { d -> d.asString })
        }
    }
}

/** SHA-256 of an artifact: its files' bytes concatenated in manifest order (`pocketbert.export.artifact.sha256_of`). */
object ArtifactVerifier {
    /** Hex SHA-256 of the streams, read in order. */
    fun sha256(streams: List<() -> InputStream>): String {
        val digest = MessageDigest.getInstance("SHA-256")
        val buffer = ByteArray(1 shl 16)
        for (open in streams) open().use { input ->
            while (true) {
                val n = input.read(buffer)
                if (n < 0) break
                digest.update(buffer, 0, n)
            }
        }
        return digest.digest().joinToString("") { "%02x".format(it) }
    }

    /** Throws [ManifestException] unless the vocabulary hashes to the manifest's `tokenizer.sha256` entry. */
    fun verifyVocab(manifest: Manifest, open: (String) -> InputStream) {
        val actual = sha256(listOf { open(manifest.vocabPath) })
        if (!actual.equals(manifest.vocabSha256, ignoreCase = true)) {
            throw ManifestException(
                "${manifest.vocabPath} does not match the manifest (sha256 $actual, expected ${manifest.vocabSha256}); " +
                    "the bundle is stale or corrupt: run 'pocketbert bundle' again",
            )
        }
    }

    /** Throws [ManifestException] unless the files hash to the manifest's sha256 (`open` reads a bundle-relative path). */
    fun verify(artifact: ArtifactInfo, open: (String) -> InputStream) {
        val actual = sha256(artifact.files.map { path -> { open(path) } })
        if (!actual.equals(artifact.sha256, ignoreCase = true)) {
            throw ManifestException(
                "artifact ${artifact.name} does not match the manifest (sha256 $actual, expected ${artifact.sha256}); " +
                    "the bundle is stale or corrupt: run 'pocketbert bundle' again",
            )
        }
    }
}
