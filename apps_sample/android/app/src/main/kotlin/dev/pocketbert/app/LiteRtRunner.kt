package dev.pocketbert.app

import android.content.Context
import dev.pocketbert.core.ArtifactInfo
import dev.pocketbert.core.ModelRunner
import org.tensorflow.lite.Interpreter
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/**
 * LiteRT (`com.google.ai.edge.litert`): static shapes. The engine pads every input to one of the artifact's
 * sequence buckets; this runner uses the signature whose name carries that length (one signature per bucket) or,
 * for a single-signature model, resizes the inputs to it.
 */
class LiteRtRunner(model: MappedByteBuffer, private val artifact: ArtifactInfo, threads: Int) : ModelRunner {
    private val interpreter = Interpreter(model, Interpreter.Options().setNumThreads(threads))
    private val signatures: Map<Int, String> = interpreter.signatureKeys.mapNotNull { key ->
        Regex("\\d+").findAll(key).lastOrNull()?.value?.toInt()?.let { it to key }
    }.toMap()

    override fun run(inputIds: IntArray, attentionMask: IntArray): Map<String, FloatArray> {
        val seq = inputIds.size
        val values = mapOf("input_ids" to inputIds, "attention_mask" to attentionMask)
        val inputs = artifact.inputs.associate { it.name to buffer(values.getValue(it.name), it.dtype) }
        val signature = signatures[seq]
        if (signature != null) {
            // signature inputs named as in the manifest, else taken in the manifest's order
            val names = interpreter.getSignatureInputs(signature)
            val feed = if (names.toSet() == inputs.keys) inputs
            else names.zip(artifact.inputs.map { inputs.getValue(it.name) }).toMap()
            val outputs = interpreter.getSignatureOutputs(signature).associateWith { name ->
                val tensor = interpreter.getOutputTensorFromSignature(name, signature)
                ByteBuffer.allocateDirect(tensor.numBytes()).order(ByteOrder.nativeOrder())
            }
            interpreter.runSignature(feed, outputs, signature)
            return outputs.mapValues { (_, b) -> floats(b) }.filterKeys { key -> artifact.outputs.any { it.name == key } }
        }
        artifact.inputs.forEachIndexed { i, _ -> interpreter.resizeInput(i, intArrayOf(1, seq)) }
        interpreter.allocateTensors()
        val outputs = artifact.outputs.indices.associateWith { i ->
            ByteBuffer.allocateDirect(interpreter.getOutputTensor(i).numBytes()).order(ByteOrder.nativeOrder())
        }
        interpreter.runForMultipleInputsOutputs(artifact.inputs.map { inputs.getValue(it.name) }.toTypedArray(), outputs.mapValues { it.value as Any })
        return artifact.outputs.withIndex().associate { (i, o) -> o.name to floats(outputs.getValue(i)) }
    }

    private fun buffer(values: IntArray, dtype: String): ByteBuffer {
        val wide = dtype == "int64"
        val b = ByteBuffer.allocateDirect(values.size * if (wide) 8 else 4).order(ByteOrder.nativeOrder())
        values.forEach { if (wide) b.putLong(it.toLong()) else b.putInt(it) }
        return b.rewind() as ByteBuffer
    }

    private fun floats(b: ByteBuffer): FloatArray {
        b.rewind()
        val f = b.asFloatBuffer()
        return FloatArray(f.remaining()).also { f.get(it) }
    }

    override fun close() = interpreter.close()

    companion object {
        /** Memory-maps an uncompressed asset (app/build.gradle.kts marks .tflite as noCompress). */
        fun fromAssets(context: Context, path: String, artifact: ArtifactInfo, threads: Int): LiteRtRunner {
            val fd = context.assets.openFd(path)
            val mapped = FileInputStream(fd.fileDescriptor).channel.use {
                it.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
            }
            return LiteRtRunner(mapped, artifact, threads)
        }
    }
}
