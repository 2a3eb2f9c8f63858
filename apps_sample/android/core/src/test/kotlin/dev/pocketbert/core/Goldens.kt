package dev.pocketbert.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import java.io.File

/**
 * Golden files written by `pocketbert goldens` (never committed): the directory comes from the system property
 * `pocketbert.goldens` or the environment variable `POCKETBERT_GOLDENS`. Missing goldens fail the tests.
 */
object Goldens {
    val dir: File by lazy {
        val path = System.getProperty("pocketbert.goldens") ?: System.getenv("POCKETBERT_GOLDENS")
            ?: error("no goldens: run 'pocketbert goldens --cased-test-vocab -o DIR' and pass -Dpocketbert.goldens=DIR")
        File(path).also { check(it.isDirectory) { "goldens directory $it does not exist; run 'pocketbert goldens'" } }
    }

    fun json(name: String): JsonObject = JsonParser.parseString(File(dir, name).readText()).asJsonObject

    fun tokenizerFiles(): List<File> =
        dir.listFiles { f -> f.name.startsWith("tokenizer-") && f.name.endsWith(".json") }!!.sortedBy { it.name }

    /** The tokenizer a golden file describes, built the way the apps build it from a manifest. */
    fun tokenizer(golden: JsonObject): WordPieceTokenizer {
        val s = golden.getAsJsonObject("tokenizer")
        val config = TokenizerConfig(
            lowercase = s["lowercase"].asBoolean,
            stripAccents = s["strip_accents"].takeUnless { it.isJsonNull }?.asBoolean,
            tokenizeChineseChars = s["tokenize_chinese_chars"].asBoolean,
            cleanText = s["clean_text"].asBoolean,
            continuingSubwordPrefix = s["continuing_subword_prefix"].asString,
            maxInputCharsPerWord = s["max_input_chars_per_word"].asInt,
            clsTokenId = s["cls_token_id"].asInt,
            sepTokenId = s["sep_token_id"].asInt,
            padTokenId = s["pad_token_id"].asInt,
            unkTokenId = s["unk_token_id"].asInt,
        )
        return WordPieceTokenizer(readVocab(File(dir, golden["vocab"].asString).readText()), config)
    }
}

fun JsonObject.floats(key: String): FloatArray = getAsJsonArray(key).map { it.asFloat }.toFloatArray()
fun JsonObject.ints(key: String): IntArray = getAsJsonArray(key).map { it.asInt }.toIntArray()
