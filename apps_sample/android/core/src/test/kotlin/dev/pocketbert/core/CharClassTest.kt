package dev.pocketbert.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** The embedded character tables equal Hugging Face's classes for every code point (fresh `charclasses.json`). */
class CharClassTest {
    @Test
    fun everyCodePointIsClassifiedAsHuggingFaceDoes() {
        val golden = Goldens.json("charclasses.json")
        val checks = mapOf<String, (Int) -> Boolean>(
            "control" to Unicode::isControl,
            "whitespace" to Unicode::isWhitespace,
            "punctuation" to Unicode::isPunctuation,
            "mark" to Unicode::isMark,
            "chinese" to Unicode::isChinese,
        )
        for ((name, check) in checks) {
            val expected = golden.getAsJsonArray(name).map { r -> r.asJsonArray.let { it[0].asInt..it[1].asInt } }
            assertTrue("no $name ranges in charclasses.json", expected.isNotEmpty())
            val members = java.util.BitSet(0x110000)
            for (range in expected) members.set(range.first, range.last + 1)
            val wrong = (0 until 0x110000).filter { it !in 0xD800..0xDFFF && check(it) != members[it] }
            assertEquals("$name differs at ${wrong.take(10).map { "U+%04X".format(it) }}", 0, wrong.size)
        }
    }
}
