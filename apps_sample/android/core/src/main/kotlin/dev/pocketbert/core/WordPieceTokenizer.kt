package dev.pocketbert.core

import java.text.Normalizer
import java.util.Locale

/** Settings of a BERT WordPiece tokenizer, as written in the manifest's `tokenizer` section. */
data class TokenizerConfig(
    val lowercase: Boolean,
    /** `null` means "same as [lowercase]" (Hugging Face's default). */
    val stripAccents: Boolean?,
    val tokenizeChineseChars: Boolean = true,
    val cleanText: Boolean = true,
    val continuingSubwordPrefix: String = "##",
    val maxInputCharsPerWord: Int = 100,
    val clsTokenId: Int,
    val sepTokenId: Int,
    val padTokenId: Int,
    val unkTokenId: Int,
)

/**
 * One encoded input: token ids, attention mask and, per token, the `[start, end)` UTF-16 offsets into the text it
 * came from (`[0, 0]` for special tokens and padding). [sequenceIds] is 0 for the first text, 1 for the second text
 * of a pair and -1 for special tokens and padding.
 */
class Encoding(
    val inputIds: IntArray,
    val attentionMask: IntArray,
    val offsets: Array<IntArray>,
    val sequenceIds: IntArray,
) {
    /** Number of real tokens (special tokens included, padding excluded). */
    val length: Int get() = attentionMask.count { it == 1 }

    /** This encoding padded with `[PAD]` to [size] tokens (size must be at least [length]). */
    fun padTo(size: Int, padTokenId: Int): Encoding {
        require(size >= inputIds.size) { "cannot pad ${inputIds.size} tokens to $size" }
        val extra = size - inputIds.size
        return Encoding(
            inputIds + IntArray(extra) { padTokenId },
            attentionMask + IntArray(extra),
            offsets + Array(extra) { intArrayOf(0, 0) },
            sequenceIds + IntArray(extra) { -1 },
        )
    }
}

/**
 * BERT WordPiece tokenizer equal to Hugging Face's fast `BertTokenizer`: clean-up, CJK splitting, NFD accent
 * stripping, lowercasing, whitespace and punctuation splitting, greedy longest-match WordPiece with
 * `max_input_chars_per_word`, `[CLS] A [SEP] (B [SEP])`, truncation.
 *
 * @param vocab tokens in id order (line n of `vocab.txt` is id n).
 */
class WordPieceTokenizer(vocab: List<String>, val config: TokenizerConfig) {
    private val ids: Map<String, Int> = vocab.withIndex().associate { (i, token) -> token to i }
    private val continuation = BooleanArray(vocab.size) { vocab[it].startsWith(config.continuingSubwordPrefix) }

    init {
        val maxId = vocab.size - 1
        for (id in listOf(config.clsTokenId, config.sepTokenId, config.padTokenId, config.unkTokenId)) {
            require(id in 0..maxId) { "special token id $id is outside the vocabulary (size ${vocab.size})" }
        }
    }

    /** A piece of text: code points with, for each, the UTF-16 range of the original character it came from. */
    private class Chars(val cps: IntArray, val starts: IntArray, val ends: IntArray)

    private class Token(val id: Int, val start: Int, val end: Int)

    /** `[CLS] text [SEP]`, the text truncated so that at most [maxLength] tokens remain; not padded. */
    fun encode(text: String, maxLength: Int): Encoding {
        require(maxLength >= 2) { "maxLength must leave room for [CLS] and [SEP], got $maxLength" }
        val tokens = tokenize(text).take(maxLength - 2)
        return assemble(listOf(tokens))
    }

    /**
     * `[CLS] first [SEP] second [SEP]` (question, context); only [second] is truncated, as Hugging Face's
     * `truncation="only_second"`. Throws when [first] alone leaves no room for [second].
     */
    fun encodePair(first: String, second: String, maxLength: Int): Encoding {
        val a = tokenize(first)
        val room = maxLength - 3 - a.size
        require(room > 0) { "the question takes ${a.size} tokens, too many for max length $maxLength; shorten it" }
        return assemble(listOf(a, tokenize(second).take(room)))
    }

    /** True when token [id] continues a word (starts with the continuing-subword prefix, e.g. `##ing`). */
    fun isContinuation(id: Int): Boolean = continuation.getOrElse(id) { false }

    /** WordPiece ids of [text] without special tokens. */
    fun tokenIds(text: String): IntArray = tokenize(text).map { it.id }.toIntArray()

    private fun assemble(sequences: List<List<Token>>): Encoding {
        val ids = ArrayList<Int>()
        val offsets = ArrayList<IntArray>()
        val seqIds = ArrayList<Int>()
        fun special(id: Int) { ids += id; offsets += intArrayOf(0, 0); seqIds += -1 }
        special(config.clsTokenId)
        sequences.forEachIndexed { index, tokens ->
            for (t in tokens) { ids += t.id; offsets += intArrayOf(t.start, t.end); seqIds += index }
            special(config.sepTokenId)
        }
        return Encoding(ids.toIntArray(), IntArray(ids.size) { 1 }, offsets.toTypedArray(), seqIds.toIntArray())
    }

    private fun tokenize(text: String): List<Token> {
        val normalized = normalize(text)
        val tokens = ArrayList<Token>()
        for (word in preTokenize(normalized)) wordPiece(word, tokens)
        return tokens
    }

    private fun normalize(text: String): Chars {
        val cps = ArrayList<Int>()
        val starts = ArrayList<Int>()
        val ends = ArrayList<Int>()
        val strip = config.stripAccents ?: config.lowercase
        var i = 0
        while (i < text.length) {
            val cp = text.codePointAt(i)
            val end = i + Character.charCount(cp)
            fun emit(c: Int) { cps += c; starts += i; ends += end }
            var out = listOf(cp)
            if (config.cleanText) {
                out = if (Unicode.isControl(cp)) emptyList()
                else if (Unicode.isWhitespace(cp)) listOf(' '.code) else out
            }
            if (config.tokenizeChineseChars && out.size == 1 && Unicode.isChinese(out[0])) {
                out = listOf(' '.code, out[0], ' '.code)
            }
            if (strip) out = out.flatMap { c -> decompose(c).filterNot(Unicode::isMark) }
            if (config.lowercase) out = out.flatMap { c -> String(Character.toChars(c)).lowercase(Locale.ROOT).codePoints().toArray().asList() }
            out.forEach(::emit)
            i = end
        }
        return Chars(cps.toIntArray(), starts.toIntArray(), ends.toIntArray())
    }

    private fun decompose(cp: Int): List<Int> =
        Normalizer.normalize(String(Character.toChars(cp)), Normalizer.Form.NFD).codePoints().toArray().asList()

    /** Words: runs of non-space, non-punctuation characters; each punctuation character is a word of its own. */
    private fun preTokenize(chars: Chars): List<Chars> {
        val words = ArrayList<Chars>()
        var start = -1
        fun flush(until: Int) {
            if (start >= 0) words += slice(chars, start, until)
            start = -1
        }
        for (k in chars.cps.indices) {
            val cp = chars.cps[k]
            when {
                Unicode.isWhitespace(cp) -> flush(k)
                Unicode.isPunctuation(cp) -> { flush(k); words += slice(chars, k, k + 1) }
                start < 0 -> start = k
            }
        }
        flush(chars.cps.size)
        return words
    }

    private fun slice(c: Chars, from: Int, until: Int) =
        Chars(c.cps.copyOfRange(from, until), c.starts.copyOfRange(from, until), c.ends.copyOfRange(from, until))

    private fun wordPiece(word: Chars, into: MutableList<Token>) {
        val n = word.cps.size
        val wordStart = word.starts[0]
        val wordEnd = word.ends[n - 1]
        if (n > config.maxInputCharsPerWord) {
            into += Token(config.unkTokenId, wordStart, wordEnd)
            return
        }
        val pieces = ArrayList<Token>()
        var start = 0
        while (start < n) {
            var end = n
            var found: Token? = null
            while (start < end) {
                val piece = String(word.cps, start, end - start)
                val id = ids[if (start > 0) config.continuingSubwordPrefix + piece else piece]
                if (id != null) {
                    found = Token(id, word.starts[start], word.ends[end - 1])
                    break
                }
                end -= 1
            }
            if (found == null) {
                into += Token(config.unkTokenId, wordStart, wordEnd)
                return
            }
            pieces += found
            start = end
        }
        into += pieces
    }
}

/**
 * Character classes exactly as Hugging Face `tokenizers` defines them for BERT, from the generated
 * [BertCharTables] rather than the platform's Unicode tables (which differ between JDKs and Android releases).
 */
internal object Unicode {
    /** Is [cp] inside one of the inclusive ranges `[first, last, first, last, …]` (sorted)? Binary search. */
    fun inRanges(ranges: IntArray, cp: Int): Boolean {
        var lo = 0
        var hi = ranges.size / 2 - 1
        while (lo <= hi) {
            val mid = (lo + hi) ushr 1
            when {
                cp < ranges[2 * mid] -> hi = mid - 1
                cp > ranges[2 * mid + 1] -> lo = mid + 1
                else -> return true
            }
        }
        return false
    }

    /** Whitespace the pre-tokenizer splits on (Rust `char::is_whitespace`). */
    fun isWhitespace(cp: Int): Boolean = inRanges(BertCharTables.WHITESPACE, cp)

    /** Removed by clean-up: control, format and private-use characters, U+0000, U+FFFD. */
    fun isControl(cp: Int): Boolean = inRanges(BertCharTables.CONTROL, cp)

    /** Isolated as a word of its own by the pre-tokenizer. */
    fun isPunctuation(cp: Int): Boolean = inRanges(BertCharTables.PUNCTUATION, cp)

    /** Non-spacing marks, removed by accent stripping after NFD. */
    fun isMark(cp: Int): Boolean = inRanges(BertCharTables.MARK, cp)

    /** CJK ideographs that BERT splits into single-character words. */
    fun isChinese(cp: Int): Boolean = inRanges(BertCharTables.CHINESE, cp)
}

/** Reads `vocab.txt` (one token per line; line n is id n). */
fun readVocab(text: String): List<String> = text.split("\n").let { lines ->
    if (lines.isNotEmpty() && lines.last().isEmpty()) lines.dropLast(1) else lines
}.map { it.removeSuffix("\r") }
