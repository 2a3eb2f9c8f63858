"""ONNX Runtime transformer fusions before int8: Attention, SkipLayerNormalization, BiasGelu.

Fused ops quantize better for speed (``Attention`` becomes ``QAttention``: one int8 QKV GEMM instead of three, and no
separate softmax/transposes). Two things stand between a dynamo export and ORT's fusion patterns:

* the score scale: transformers 5 multiplies the scores, and ORT tells the scale from the mask by op type; the
  deployment wrapper's attention divides instead (:func:`pocketbert.wrapper.deployment_attention`);
* the mask: the dynamo exporter folds ``mask[:, None, None, :]`` into one ``Unsqueeze`` with two axes, while ORT's
  mask pattern wants ``Unsqueeze -> Unsqueeze``; :func:`split_unsqueeze` rewrites every multi-axis Unsqueeze with
  constant axes into a chain of single-axis ones (the same tensor, a pattern ORT recognises).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.errors import PocketbertError


def split_unsqueeze(model: Any) -> int:
    """Rewrite each ``Unsqueeze`` with several constant axes as single-axis Unsqueezes, in place; returns the count."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    constants.update(
        {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"}
    )
    nodes, count = [], 0
    for node in graph.node:
        axes = constants.get(node.input[1]) if node.op_type == "Unsqueeze" and len(node.input) > 1 else None
        if axes is None or axes.size < 2:
            nodes.append(node)
            continue
        previous = node.input[0]
        for k, axis in enumerate(sorted(int(a) for a in axes.ravel())):
            axis_name = f"{node.name}_axis{k}"
            graph.initializer.append(numpy_helper.from_array(np.array([axis], dtype=np.int64), axis_name))
            output = node.output[0] if k == axes.size - 1 else f"{node.name}_step{k}"
            nodes.append(helper.make_node("Unsqueeze", [previous, axis_name], [output], name=f"{node.name}_{k}"))
            previous = output
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def fuse_transformer(src: Path, dst: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Write ``src`` with ORT's BERT fusions applied to ``dst``; returns the fused-op counts (zeros omitted).

    Raises a one-line error when no attention block fused: the int8 graph would then silently be the slow one.
    """
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    model = onnx.load(str(src))
    split_unsqueeze(model)
    external = model.ByteSize() > 1_800_000_000
    with tempfile.TemporaryDirectory(prefix="pocketbert-fuse-") as tmp:
        split = Path(tmp) / "split.onnx"
        onnx.save_model(model, str(split), save_as_external_data=external)
        optimized = optimize_model(
            str(split), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0
        )
    stats = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    if not stats.get("Attention"):
        raise PocketbertError(f"ONNX Runtime fused no attention block ({stats}); export with onnx_fusion off")
    dst.parent.mkdir(parents=True, exist_ok=True)
    optimized.save_model_to_file(str(dst), use_external_data_format=external)
    return stats
