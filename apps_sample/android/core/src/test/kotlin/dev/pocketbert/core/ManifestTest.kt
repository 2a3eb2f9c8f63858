package dev.pocketbert.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.File

/** The bundle manifest (fixture written by `pocketbert bundle`) parses, and a changed artifact is refused. */
class ManifestTest {
    @get:Rule val tmp = TemporaryFolder()

    private val bundleDir = File(javaClass.getResource("/bundle/manifest.json")!!.toURI()).parentFile
    private val manifest = Manifest.parse(File(bundleDir, "manifest.json").readText())

    @Test
    fun parsesTaskLabelsTokenizerAndArtifact() {
        assertEquals(Task.TOKEN_CLASSIFICATION, manifest.task)
        assertEquals(listOf("O", "B-PER", "I-PER"), manifest.labels)
        assertEquals(listOf(32, 64, 128), manifest.sequenceBuckets)
        assertTrue(manifest.tokenizer.lowercase)
        assertNull(manifest.tokenizer.stripAccents)
        assertEquals(101, manifest.tokenizer.clsTokenId)
        assertEquals("tokenizer/vocab.txt", manifest.vocabPath)
        val artifact = manifest.artifact()
        assertEquals("onnx-fp32", artifact.name)
        assertEquals(listOf("input_ids", "attention_mask"), artifact.inputs.map { it.name })
        assertEquals("int64", artifact.inputs[0].dtype)
        assertEquals(listOf("onnx/fp32/model.onnx", "onnx/fp32/model.onnx.data"), artifact.files)
        assertNull(artifact.sequenceBuckets)
        assertEquals(manifest.sequenceBuckets, manifest.buckets(artifact))
    }

    @Test
    fun matchingFilesVerify() {
        ArtifactVerifier.verify(manifest.artifact()) { File(bundleDir, it).inputStream() }
    }

    @Test
    fun aChangedByteIsRefusedWithAClearMessage() {
        val copy = tmp.newFolder("bundle")
        bundleDir.copyRecursively(copy)
        val weights = File(copy, "onnx/fp32/model.onnx.data")
        val bytes = weights.readBytes()
        bytes[0] = (bytes[0] + 1).toByte()
        weights.writeBytes(bytes)
        try {
            ArtifactVerifier.verify(manifest.artifact()) { File(copy, it).inputStream() }
            fail("a modified artifact verified")
        } catch (e: ManifestException) {
            assertTrue(e.message!!, e.message!!.contains("run 'pocketbert bundle' again"))
        }
    }

    @Test
    fun theVocabularyVerifiesAndAChangedByteIsRefused() {
        ArtifactVerifier.verifyVocab(manifest) { File(bundleDir, it).inputStream() }
        val copy = tmp.newFolder("vocab")
        bundleDir.copyRecursively(copy)
        val vocab = File(copy, manifest.vocabPath)
        vocab.writeText(vocab.readText().replace("hello", "hellp"))
        try {
            ArtifactVerifier.verifyVocab(manifest) { File(copy, it).inputStream() }
            fail("a modified vocabulary verified")
        } catch (e: ManifestException) {
            assertTrue(e.message!!, e.message!!.contains("tokenizer/vocab.txt does not match the manifest"))
        }
    }

    @Test
    fun aManifestWithoutTheVocabularySha256IsRefused() {
        val text = File(bundleDir, "manifest.json").readText().replace("\"sha256\": {", "\"sha256_gone\": {")
        try {
            Manifest.parse(text)
            fail("parsed a manifest without the vocabulary sha256")
        } catch (e: ManifestException) {
            assertTrue(e.message!!, e.message!!.contains("run 'pocketbert bundle' again"))
        }
    }

    @Test
    fun filesHashInManifestOrder() {
        val files = manifest.artifact().files.reversed().map { path -> { File(bundleDir, path).inputStream() } }
        assertTrue(ArtifactVerifier.sha256(files) != manifest.artifact().sha256)
    }

    @Test(expected = ManifestException::class)
    fun anUnknownArtifactNameIsRefused() {
        manifest.artifact("tflite-int8")
    }

    @Test
    fun wrongSchemaVersionOrMissingFieldsAreRefused() {
        val text = File(bundleDir, "manifest.json").readText()
        for (bad in listOf(text.replace("\"schema_version\": 2", "\"schema_version\": 1"), text.replace("\"task\"", "\"tsk\""), "[]")) {
            try {
                Manifest.parse(bad)
                fail("parsed a bad manifest")
            } catch (e: ManifestException) {
                assertTrue(e.message!!, e.message!!.contains("pocketbert") || e.message!!.contains("app"))
            }
        }
    }
}
