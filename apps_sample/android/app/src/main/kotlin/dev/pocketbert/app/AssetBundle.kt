package dev.pocketbert.app

import android.content.Context
import dev.pocketbert.core.ArtifactFiles
import dev.pocketbert.core.ArtifactInfo
import dev.pocketbert.core.ArtifactVerifier
import dev.pocketbert.core.Engine
import dev.pocketbert.core.InferenceRuntime
import dev.pocketbert.core.Manifest
import dev.pocketbert.core.ManifestException
import dev.pocketbert.core.ModelRunner
import dev.pocketbert.core.WordPieceTokenizer
import dev.pocketbert.core.readVocab
import java.io.File
import java.io.FileNotFoundException

/** What `pocketbert bundle` put into `assets/pocketbert/`: the manifest, the vocabulary and one verified artifact. */
class AssetBundle(private val context: Context) {
    val manifest: Manifest = try {
        Manifest.parse(read("manifest.json"))
    } catch (e: FileNotFoundException) {
        throw ManifestException("no model bundled: run 'pocketbert bundle OUT --android apps_sample/android' and rebuild")
    }
    val artifact: ArtifactInfo = manifest.artifact()

    /** The runtime for the artifact's format (core's [InferenceRuntime] decides; it refuses formats the app lacks). */
    val runtime: InferenceRuntime = InferenceRuntime.of(artifact)

    /** Verifies the artifact and the vocabulary against the manifest's sha256, then loads the tokenizer and the runtime. */
    fun load(threads: Int = 4): Engine {
        ArtifactVerifier.verifyVocab(manifest) { context.assets.open("$DIR/$it") }
        val tokenizer = WordPieceTokenizer(readVocab(read(manifest.vocabPath)), manifest.tokenizer)
        val runner: ModelRunner = when (runtime) {
            InferenceRuntime.LITERT -> {
                verifyAssets()
                LiteRtRunner.fromAssets(context, "$DIR/${artifact.path}", artifact, threads)
            }
            InferenceRuntime.ONNX_RUNTIME -> {
                verifyAssets()
                OnnxRunner(context.assets.open("$DIR/${artifact.path}").use { it.readBytes() }, artifact, threads)
            }
            // Module.load needs a file path: a copy of the assets in app storage, verified against the sha256
            // (what is loaded is what the manifest names), made once per bundle.
            InferenceRuntime.EXECUTORCH -> {
                val pte = ArtifactFiles.materialize(artifact, File(context.noBackupFilesDir, MODEL_COPIES)) { context.assets.open("$DIR/$it") }
                ExecuTorchRunner(pte.absolutePath, artifact, threads)
            }
        }
        return Engine(manifest, artifact, tokenizer, runner)
    }

    private fun verifyAssets() = ArtifactVerifier.verify(artifact) { context.assets.open("$DIR/$it") }

    private fun read(path: String): String = context.assets.open("$DIR/$path").bufferedReader().use { it.readText() }

    companion object {
        const val DIR = "pocketbert"

        /** Directory under `noBackupFilesDir` for artifact copies; [ArtifactFiles.materialize] owns it. */
        const val MODEL_COPIES = "pocketbert-models"
    }
}
