package dev.pocketbert.app

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import dev.pocketbert.core.ArtifactInfo
import dev.pocketbert.core.ModelRunner
import java.nio.IntBuffer
import java.nio.LongBuffer

/** ONNX Runtime Android: dynamic sequence length, inputs cast to the manifest's dtypes (int64 from pocketbert). */
class OnnxRunner(model: ByteArray, private val artifact: ArtifactInfo, threads: Int) : ModelRunner {
    private val env = OrtEnvironment.getEnvironment()
    private val session: OrtSession = env.createSession(
        model,
        OrtSession.SessionOptions().apply { setIntraOpNumThreads(threads) },
    )

    override fun run(inputIds: IntArray, attentionMask: IntArray): Map<String, FloatArray> {
        val shape = longArrayOf(1, inputIds.size.toLong())
        val values = mapOf("input_ids" to inputIds, "attention_mask" to attentionMask)
        val feeds = artifact.inputs.associate { input ->
            val data = values.getValue(input.name)
            input.name to when (input.dtype) {
                "int64" -> OnnxTensor.createTensor(env, LongBuffer.wrap(LongArray(data.size) { data[it].toLong() }), shape)
                else -> OnnxTensor.createTensor(env, IntBuffer.wrap(data), shape)
            }
        }
        try {
            session.run(feeds).use { result ->
                return artifact.outputs.associate { output ->
                    val tensor = result.get(output.name).get() as OnnxTensor
                    val buffer = tensor.floatBuffer
                    output.name to FloatArray(buffer.remaining()).also { buffer.get(it) }
                }
            }
        } finally {
            feeds.values.forEach { it.close() }
        }
    }

    override fun close() = session.close()
}
