"""Layer-by-layer error localisation: where does an artifact start to differ from its float reference?

Both models are run on the same feeds with their block outputs exposed (the embeddings' LayerNorm, then each
layer's attention and FFN LayerNorm), and each block's error is measured on valid tokens. The block where the
error grows the most is named as the culprit. ONNX artifacts are probed by exposing the LayerNormalization
outputs, whose value names survive quantization.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.errors import PocketbertError
from pocketbert.parity.runner import Feed

_LAYER = re.compile(r"layer\.(\d+)\.(\w+)")


@dataclass
class BlockError:
    """Error of one block output: ``cosine_min`` (worst sequence), ``rel_max_abs``, and growth over the last."""

    block: str
    value: str
    cosine_min: float
    rel_max_abs: float
    growth: float  # (1 - cosine_min) minus the previous block's, the error this block added


def block_label(module: str) -> str:
    """``encoder.layer.3.output.LayerNorm`` -> ``layer 3 ffn``; ``...attention.output.LayerNorm`` -> ``layer 3
    attention``; DistilBERT's ``sa_layer_norm`` / ``output_layer_norm`` likewise; embeddings -> ``embeddings``."""
    if "embeddings" in module:
        return "embeddings"
    match = _LAYER.search(module)
    if not match:
        return module
    part = "attention" if ("attention" in module or "sa_layer_norm" in module) else "ffn"
    return f"layer {match.group(1)} {part}"


def onnx_probes(model_path: Path) -> list[tuple[str, str]]:
    """``(block label, value name)`` of every LayerNormalization output, in graph order (from an fp32 export)."""
    import onnx

    from pocketbert.export.onnx_export import node_module

    model = onnx.load(str(model_path), load_external_data=False)
    return [(block_label(node_module(n)), n.output[0]) for n in model.graph.node if n.op_type == "LayerNormalization"]


def with_outputs(model_path: Path, names: list[str], dst: Path) -> Path:
    """A copy of an ONNX model that also outputs the values ``names`` (float32, shape left to the runtime)."""
    import onnx

    model = onnx.load(str(model_path))
    produced = {o for n in model.graph.node for o in n.output}
    missing = [n for n in names if n not in produced]
    if missing:
        raise PocketbertError(f"{model_path} has no value {missing[0]}; was it exported by pocketbert?")
    model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(dst), save_as_external_data=model.ByteSize() > 1_800_000_000)
    return dst


def _block_metrics(ref: list[np.ndarray], got: list[np.ndarray], feeds: list[Feed]) -> tuple[float, float]:
    cosines, max_abs, scale = [], 0.0, 0.0
    for r, g, feed in zip(ref, got, feeds):
        for b, n in enumerate(feed["attention_mask"].sum(axis=1)):
            rv = r[b, : int(n)].astype(np.float64).ravel()
            gv = g[b, : int(n)].astype(np.float64).ravel()
            denom = np.linalg.norm(rv) * np.linalg.norm(gv)
            cosines.append(float(rv @ gv / denom) if denom else 1.0)
            max_abs = max(max_abs, float(np.abs(rv - gv).max()))
            scale = max(scale, float(np.abs(rv).max()))
    return min(cosines), max_abs / (scale or 1.0)


def localize_onnx(reference: Path, candidate: Path, feeds: list[Feed], scratch: Path) -> list[BlockError]:
    """Per-block error of ``candidate`` against ``reference`` (both ONNX, the reference an fp32 export)."""
    from pocketbert.parity.onnx_runner import OnnxRunner

    probes = onnx_probes(reference)
    if not probes:
        raise PocketbertError(f"{reference} has no LayerNormalization blocks to probe")
    names = [value for _, value in probes]
    outputs = {}
    for tag, path in (("reference", reference), ("candidate", candidate)):
        probed = with_outputs(path, names, scratch / tag / "model.onnx")
        with OnnxRunner(probed) as runner:
            outputs[tag] = [runner.infer(feed) for feed in feeds]
    rows, previous = [], 0.0
    for label, value in probes:
        cosine, rel = _block_metrics(
            [o[value] for o in outputs["reference"]], [o[value] for o in outputs["candidate"]], feeds
        )
        rows.append(BlockError(label, value, cosine, rel, (1.0 - cosine) - previous))
        previous = 1.0 - cosine
    return rows


def culprit(rows: list[BlockError]) -> BlockError:
    """The block that added the most error."""
    return max(rows, key=lambda r: r.growth)


def plot(rows: list[BlockError], title: str, path: Path) -> Path:
    """PNG of ``1 - cosine_min`` per block (log scale), the culprit marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worst = culprit(rows)
    errors = [max(1.0 - r.cosine_min, 1e-9) for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows)), 3.6), dpi=110)
    ax.plot(range(len(rows)), errors, marker="o")
    ax.scatter([rows.index(worst)], [errors[rows.index(worst)]], color="red", zorder=3, label=f"culprit: {worst.block}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [r.block for r in rows], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("1 - worst cosine vs float")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def rows_to_dicts(rows: list[BlockError]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
