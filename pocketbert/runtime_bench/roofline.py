"""What this host can do: its fp32 and int8 GEMM throughput, and each runner's achieved fraction of it.

int8 buys speed only where the CPU has int8 dot-product instructions (x86 VNNI, aarch64 dotprod/i8mm): on AVX2
without VNNI, ONNX Runtime's int8 matmul is about as fast as its fp32 one. The bench measures both on the same
matrix shape with the same runtime and threads, interleaved, so a report says what int8 can buy on *this* host
instead of leaving the reader to guess from the latency table.

The shape is BERT's largest matmul at 128 tokens: ``(128 x 768) @ (768 x 3072)``. fp32 is one ``MatMul``; ``int8``
is the same graph after ONNX Runtime's dynamic quantization with int8 weights (the CPU's fastest int8 kernels, the
peak int8 artifacts are compared with) and ``int8_u8`` with uint8 weights, the kernels pocketbert's default ONNX
int8 artifacts run (:mod:`pocketbert.formats.onnx.quantize`; on x86 they give up VNNI). Throughput is in GMAC/s
(10^9 multiply-adds per second).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

GEMM_SHAPE = (128, 768, 3072)  # M (tokens) x K (hidden) x N (FFN width)


def encoder_macs(layers: int, hidden: int, intermediate: int, seq: int, batch: int = 1) -> int:
    """Multiply-adds of a BERT-style encoder forward pass over ``batch`` x ``seq`` tokens.

    Per layer: Q, K, V and output projections ``4 S H^2``, the feed-forward ``2 S H I``, and attention's two
    matmuls ``2 S^2 H``; embeddings and heads are lookups or negligible.
    """
    per_layer = 4 * seq * hidden * hidden + 2 * seq * hidden * intermediate + 2 * seq * seq * hidden
    return batch * layers * per_layer


def encoder_shape(config: Any) -> dict[str, int]:
    """``{"layers", "hidden", "intermediate"}`` of a DistilBERT or BERT config."""
    return {
        "layers": int(getattr(config, "n_layers", None) or config.num_hidden_layers),
        "hidden": int(getattr(config, "dim", None) or config.hidden_size),
        "intermediate": int(getattr(config, "hidden_dim", None) or config.intermediate_size),
    }


GEMM_VARIANTS = ("fp32", "int8", "int8_u8")  # fp32; the CPU's int8 path (int8 weights); uint8 weights


def _gemm_models(directory: Path) -> list[Path]:
    """The fp32 GEMM and its dynamic int8 versions with int8 weights (``s8``: the fastest int8 kernels this CPU
    has) and with uint8 weights (``u8``: what pocketbert's default ONNX int8 artifacts run)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from pocketbert.formats.onnx.quantize import quantize_plain
    from pocketbert.formats.onnx.weight_recipes import WEIGHT_RECIPES

    m, k, n = GEMM_SHAPE
    weight = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32) * 0.05
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="gemm")],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    paths = [directory / f"gemm-{name}.onnx" for name in GEMM_VARIANTS]
    onnx.save(model, str(paths[0]))
    logging.disable(logging.WARNING)  # ORT's advice to pre-process does not apply to a single MatMul
    try:
        quantize_plain(paths[0], paths[1], WEIGHT_RECIPES["s8"])
        quantize_plain(paths[0], paths[2], WEIGHT_RECIPES["u8"])
    finally:
        logging.disable(logging.NOTSET)
    return paths


def measure_gemm(threads: int, rounds: int = 15, per_round: int = 4) -> dict[str, Any]:
    """fp32 and int8 GEMM throughput of ONNX Runtime on this host with ``threads`` threads.

    Both sessions are timed alternately, ``rounds`` x ``per_round`` runs each after warm-up; returns medians in ms,
    GMAC/s, their ratio and the kernel facts of this process. An error is returned as ``{"error": ...}``.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        return {"error": "onnxruntime is not installed: pip install 'pocketbert[onnx]'"}
    from pocketbert.core.facts import process_facts

    m, k, n = GEMM_SHAPE
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    with tempfile.TemporaryDirectory(prefix="pocketbert-gemm-") as tmp:
        paths = _gemm_models(Path(tmp))
        sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths]
    samples: list[list[float]] = [[] for _ in sessions]
    for session in sessions:
        for _ in range(3):
            session.run(None, {"x": x})
    for _ in range(rounds):
        for index, session in enumerate(sessions):
            session.run(None, {"x": x})  # settle: the other session's threads and cache
            for _ in range(per_round):
                begin = time.perf_counter()
                session.run(None, {"x": x})
                samples[index].append(time.perf_counter() - begin)
    result: dict[str, Any] = {"shape": list(GEMM_SHAPE), "threads": threads, "runs": rounds * per_round}
    for name, values in zip(GEMM_VARIANTS, samples):
        median = statistics.median(values)
        q = np.percentile(values, [25, 75])
        result[name] = {
            "median_ms": round(median * 1e3, 4),
            "iqr_ms": round(float(q[1] - q[0]) * 1e3, 4),
            "gmacs": round(m * k * n / median / 1e9, 1),
        }
    result["int8_speedup"] = round(result["int8"]["gmacs"] / result["fp32"]["gmacs"], 2)
    result["int8_u8_speedup"] = round(result["int8_u8"]["gmacs"] / result["fp32"]["gmacs"], 2)
    result["kernel_facts"] = process_facts("onnxruntime")
    return result


def peak_for(precision: str, gemm: dict[str, Any]) -> float | None:
    """The measured GMAC/s an artifact of ``precision`` is compared with: int8 for int8 precisions, else fp32."""
    if "error" in gemm:
        return None
    return gemm["int8" if precision.startswith("int8") else "fp32"]["gmacs"]


def add_roofline(report: dict[str, Any], gemm: dict[str, Any]) -> dict[str, Any]:
    """Put the host's GEMM throughput into a bench ``report`` and, per timed cell, the multiply-adds, the achieved
    GMAC/s and the fraction of the measured peak of the runner's precision.

    Artifacts are the student, so they take the student's encoder shape (from its PyTorch rows); a runner whose
    shape is unknown gets no fraction.
    """
    rows = {r["name"]: r for r in report["runners"]}
    student = next((r["encoder"] for r in report["runners"] if r["role"] == "student" and r.get("encoder")), None)
    batch = int(report["settings"]["batch"])
    for cell in report["cells"]:
        row = rows.get(cell["runner"], {})
        shape = row.get("encoder") or (student if row.get("role") == "student" else None)
        if cell["status"] != "ok" or not shape:
            continue
        macs = encoder_macs(shape["layers"], shape["hidden"], shape["intermediate"], int(cell["seq"]), batch)
        achieved = macs / (cell["median_ms"] / 1e3) / 1e9
        peak = peak_for(str(row.get("precision", "fp32")), gemm)
        cell["macs"] = macs
        cell["achieved_gmacs"] = round(achieved, 2)
        cell["fraction_of_peak"] = round(achieved / peak, 6) if peak else None
    report["host_gemm"] = gemm
    return report
