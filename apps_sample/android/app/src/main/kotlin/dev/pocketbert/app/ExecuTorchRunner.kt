package dev.pocketbert.app

import dev.pocketbert.core.ArtifactInfo
import dev.pocketbert.core.ManifestException
import dev.pocketbert.core.MethodPlan
import dev.pocketbert.core.ModelRunner
import dev.pocketbert.core.inputsInManifestOrder
import dev.pocketbert.core.outputsByName
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/**
 * ExecuTorch (`org.pytorch:executorch-android`). Loads one `.pte` program from a file path; `Module.load` cannot read
 * an APK asset, so `AssetBundle` passes a verified copy. The core's [MethodPlan], read from the manifest's
 * `metadata.methods`, names the method for each input length. A static program has one method per sequence
 * bucket, and the engine pads to that bucket. A dynamic program has one bounded method, fed at the input's own
 * length. Inputs go in the manifest's order as (1, n) tensors, and outputs come back in the order of the manifest's
 * `outputs`.
 */
class ExecuTorchRunner(modelPath: String, private val artifact: ArtifactInfo, threads: Int) : ModelRunner {
    private val plan: MethodPlan = artifact.methodPlan
        ?: throw ManifestException("artifact ${artifact.name} has no ExecuTorch method plan; run 'pocketbert bundle' again")
    private val module: Module = Module.load(modelPath, Module.LOAD_MODE_MMAP, threads)

    override fun run(inputIds: IntArray, attentionMask: IntArray): Map<String, FloatArray> {
        val method = plan.methodFor(inputIds.size)
        val shape = longArrayOf(1, inputIds.size.toLong())
        val inputs = inputsInManifestOrder(artifact, inputIds, attentionMask).map { (info, values) ->
            val tensor = when (info.dtype) {
                "int64" -> Tensor.fromBlob(LongArray(values.size) { values[it].toLong() }, shape)
                "int32" -> Tensor.fromBlob(values, shape)
                else -> throw ManifestException("input '${info.name}' of ${artifact.name} is ${info.dtype}; re-export it with pocketbert")
            }
            EValue.from(tensor)
        }
        val outputs = module.execute(method, *inputs.toTypedArray())
        return outputsByName(artifact, outputs.map { it.toTensor().dataAsFloatArray })
    }

    override fun close() = module.destroy()
}
