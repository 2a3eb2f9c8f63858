package dev.pocketbert.app

import android.content.Context
import dev.pocketbert.core.ArtifactInfo
import dev.pocketbert.core.ArtifactVerifier
import dev.pocketbert.core.Engine
import dev.pocketbert.core.Manifest
import dev.pocketbert.core.ManifestException
import dev.pocketbert.core.ModelRunner
import dev.pocketbert.core.WordPieceTokenizer
import dev.pocketbert.core.readVocab
import java.io.FileNotFoundException

/** What `pocketbert bundle` put into `assets/pocketbert/`: the manifest, the vocabulary and one verified artifact. */
class AssetBundle(private val context: Context) {
    val manifest: Manifest = try {
        Manifest.parse(read("manifest.json"))
    } catch (e: FileNotFoundException) {
        throw ManifestException("no model bundled: run 'pocketbert bundle OUT --android apps_sample/android' and rebuild")
    }
    val artifact: ArtifactInfo = manifest.artifact()

    /** Verifies the artifact and the vocabulary against the manifest's sha256, then loads the tokenizer and the runtime. */
    fun load(threads: Int = 4): Engine {
        ArtifactVerifier.verify(artifact) { context.assets.open("$DIR/$it") }
        ArtifactVerifier.verifyVocab(manifest) { context.assets.open("$DIR/$it") }
        val tokenizer = WordPieceTokenizer(readVocab(read(manifest.vocabPath)), manifest.tokenizer)
        val runner: ModelRunner = when (artifact.format) {
            "tflite" -> LiteRtRunner.fromAssets(context, "$DIR/${artifact.path}", artifact, threads)
            "onnx" -> OnnxRunner(context.assets.open("$DIR/${artifact.path}").use { it.readBytes() }, artifact, threads)
            else -> throw ManifestException("the Android app cannot run ${artifact.format} artifacts; bundle a tflite or onnx one")
        }
        return Engine(manifest, artifact, tokenizer, runner)
    }

    private fun read(path: String): String = context.assets.open("$DIR/$path").bufferedReader().use { it.readText() }

    companion object {
        const val DIR = "pocketbert"
    }
}
