package dev.pocketbert.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** The tokenizer reproduces every golden vector of the Hugging Face fast tokenizer, uncased and cased. */
class TokenizerGoldenTest {
    private val files = Goldens.tokenizerFiles()

    @Test
    fun goldensCoverAnUncasedAndACasedVocabulary() {
        val lowercase = files.map { Goldens.json(it.name).getAsJsonObject("tokenizer")["lowercase"].asBoolean }
        assertTrue("need an uncased golden file, found ${files.map { it.name }}", true in lowercase)
        assertTrue("need a cased golden file, found ${files.map { it.name }}", false in lowercase)
    }

    @Test
    fun everyCaseMatchesInputIdsMaskOffsetsAndBucket() {
        var checked = 0
        val failures = ArrayList<String>()
        for (file in files) {
            val golden = Goldens.json(file.name)
            val tokenizer = Goldens.tokenizer(golden)
            val buckets = golden.getAsJsonArray("buckets").map { it.asInt }
            for (element in golden.getAsJsonArray("cases")) {
                val case = element.asJsonObject
                val text = case["text"].asString
                val maxLength = case["max_length"].asInt
                val raw = if (case.has("text_pair")) tokenizer.encodePair(text, case["text_pair"].asString, maxLength)
                else tokenizer.encode(text, maxLength)
                val bucket = chooseBucket(raw.length, buckets)
                val enc = raw.padTo(bucket, tokenizer.config.padTokenId)
                val expectedIds = case.ints("input_ids")
                val expectedOffsets = case.getAsJsonArray("offsets").map { o -> o.asJsonArray.map { it.asInt } }
                val gotOffsets = enc.offsets.map { it.toList() }
                when {
                    bucket != case["pad_to"].asInt -> failures += "${file.name} ${show(text)}: bucket $bucket, expected ${case["pad_to"]}"
                    !enc.inputIds.contentEquals(expectedIds) ->
                        failures += "${file.name} ${show(text)} (max $maxLength): ids ${enc.inputIds.toList()}, expected ${expectedIds.toList()}"
                    !enc.attentionMask.contentEquals(case.ints("attention_mask")) -> failures += "${file.name} ${show(text)}: attention mask differs"
                    gotOffsets != expectedOffsets -> failures += "${file.name} ${show(text)}: offsets $gotOffsets, expected $expectedOffsets"
                }
                checked++
            }
        }
        assertTrue("no golden cases found in ${Goldens.dir}", checked > 0)
        assertEquals("${failures.size} of $checked golden cases differ:\n" + failures.take(5).joinToString("\n"), 0, failures.size)
    }

    @Test
    fun truncationKeepsClsAndSep() {
        val golden = Goldens.json(files.first().name)
        val tokenizer = Goldens.tokenizer(golden)
        val enc = tokenizer.encode("one two three four five six", 4)
        assertEquals(4, enc.length)
        assertEquals(tokenizer.config.clsTokenId, enc.inputIds.first())
        assertEquals(tokenizer.config.sepTokenId, enc.inputIds.last())
    }

    @Test
    fun padToAddsPaddingWithZeroMask() {
        val tokenizer = Goldens.tokenizer(Goldens.json(files.first().name))
        val enc = tokenizer.encode("hello", 16).padTo(8, tokenizer.config.padTokenId)
        assertEquals(8, enc.inputIds.size)
        assertArrayEquals(IntArray(8 - enc.length) { tokenizer.config.padTokenId }, enc.inputIds.copyOfRange(enc.length, 8))
        assertEquals(enc.length, enc.attentionMask.sum())
    }

    @Test(expected = IllegalArgumentException::class)
    fun aQuestionThatFillsTheWindowIsRefused() {
        val tokenizer = Goldens.tokenizer(Goldens.json(files.first().name))
        tokenizer.encodePair("a b c d e f g h i j", "context", 8)
    }

    private fun show(text: String) = "'" + text.take(40).replace("\n", "\\n") + "'"
}
