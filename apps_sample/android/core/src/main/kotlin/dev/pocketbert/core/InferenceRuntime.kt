package dev.pocketbert.core

import java.io.File
import java.io.IOException
import java.io.InputStream

/**
 * The runtimes the Android app can load an artifact with, keyed by the artifact's `format` in the manifest. This is
 * the only place that maps a format to a runtime. The app's `AssetBundle` does an exhaustive `when` over these
 * entries, so adding a runtime here does not compile until the app wires it.
 */
enum class InferenceRuntime(val format: String, val displayName: String) {
    LITERT("tflite", "LiteRT"),
    ONNX_RUNTIME("onnx", "ONNX Runtime"),
    EXECUTORCH(MethodPlan.FORMAT, "ExecuTorch");

    companion object {
        /** The runtime for [artifact]'s format. Throws [ManifestException] for a format the app cannot run. */
        fun of(artifact: ArtifactInfo): InferenceRuntime = entries.firstOrNull { it.format == artifact.format }
            ?: throw ManifestException(
                "the Android app cannot run ${artifact.format} artifacts (${artifact.name}); bundle a " +
                    "${entries.joinToString(", ") { it.format }} one with 'pocketbert bundle --artifact NAME'",
            )
    }
}

/**
 * Copies of artifacts as plain files, for runtimes that load from a file path and not from an APK asset (ExecuTorch's
 * `Module.load`).
 */
object ArtifactFiles {
    /**
     * Returns [artifact]'s main file (`path`), copied with its other `files` into `root/<sha256>/`. [open] reads a
     * bundle-relative path. Nothing is copied if that directory already holds a copy that verifies. The copy is
     * checked against the manifest's sha256 before it replaces anything, so what the runtime loads is what the
     * manifest names. [root] belongs to this function: copies of other bundles and unfinished copies there are
     * deleted. Throws [ManifestException] for a bad manifest or a copy that does not verify.
     */
    fun materialize(artifact: ArtifactInfo, root: File, open: (String) -> InputStream): File {
        if (!artifact.sha256.matches(Regex("[0-9a-fA-F]{64}"))) {
            throw ManifestException("artifact ${artifact.name} has sha256 '${artifact.sha256}', not 64 hex digits; run 'pocketbert bundle' again")
        }
        if (artifact.path !in artifact.files) {
            throw ManifestException("artifact ${artifact.name}: path ${artifact.path} is not among its files ${artifact.files}; run 'pocketbert bundle' again")
        }
        val name = artifact.sha256.lowercase()
        val dir = File(root, name)
        val model = child(dir, artifact.path, artifact)
        artifact.files.forEach { child(dir, it, artifact) }
        if (!root.isDirectory && !root.mkdirs()) throw IOException("cannot create $root")
        root.listFiles()?.filter { it.name != name }?.forEach { it.deleteRecursively() }
        if (dir.isDirectory && verifies(artifact, dir)) return model
        dir.deleteRecursively()
        val staging = File(root, "$name.partial")
        staging.deleteRecursively()
        for (rel in artifact.files) {
            val target = child(staging, rel, artifact)
            target.parentFile.mkdirs()
            open(rel).use { input -> target.outputStream().use { input.copyTo(it) } }
        }
        try {
            ArtifactVerifier.verify(artifact) { child(staging, it, artifact).inputStream() }
        } catch (e: ManifestException) {
            staging.deleteRecursively()
            throw e
        }
        if (!staging.renameTo(dir)) {
            staging.deleteRecursively()
            throw IOException("cannot move the copy of ${artifact.name} to $dir")
        }
        return model
    }

    private fun verifies(artifact: ArtifactInfo, dir: File): Boolean = try {
        ArtifactVerifier.verify(artifact) { child(dir, it, artifact).inputStream() }
        true
    } catch (e: ManifestException) {
        false
    } catch (e: IOException) {
        false
    }

    /** [rel] under [dir]. Throws if [rel] is absolute or climbs out with "..". */
    private fun child(dir: File, rel: String, artifact: ArtifactInfo): File {
        val base = dir.canonicalFile
        val file = File(base, rel).canonicalFile
        if (rel.isEmpty() || File(rel).isAbsolute || !file.path.startsWith(base.path + File.separator)) {
            throw ManifestException("artifact ${artifact.name} lists a file outside its bundle: '$rel'; run 'pocketbert bundle' again")
        }
        return file
    }
}
