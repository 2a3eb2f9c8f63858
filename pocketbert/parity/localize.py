"""Layer-by-layer error localisation: where does an artifact start to differ from its float reference?

Every format exposes the same probes: the output of each LayerNorm, in graph order, as ``probe_<i>`` — the
embeddings' LayerNorm, then each layer's attention and FFN LayerNorms (BERT and DistilBERT are post-LN, so these
are the block outputs). Each format has a ``make_probe_runner``: ONNX adds the values as graph
outputs, LiteRT keeps intermediate tensors (``experimental_preserve_all_tensors``), and the MIL runner records
them as it executes the Core ML program, and ExecuTorch reads them from the ETDump debug buffer of the ``.pte``
run under the event tracer. Both artifacts run the same feeds, each block's error is measured on
valid tokens, and the block whose error grows the most is named as the culprit. Because the probes are named
alike everywhere, an artifact can also be diagnosed against a float artifact of another format.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pocketbert.core.artifact import Artifact
from pocketbert.core.runner import Feed, Runner
from pocketbert.errors import PocketbertError
from pocketbert.formats import format_of, runner_for
from pocketbert.tasks import Task

PROBE = "probe_"


@dataclass
class BlockError:
    """Error of one block output: ``cosine_min`` (worst sequence), ``rel_max_abs``, and growth over the last."""

    block: str
    value: str
    cosine_min: float
    rel_max_abs: float
    growth: float  # (1 - cosine_min) minus the previous block's, the error this block added


def block_labels(count: int) -> list[str]:
    """Names of ``count`` LayerNorm probes in order: ``embeddings``, ``layer 0 attention``, ``layer 0 ffn``, …
    (``norm <i>`` when the count does not fit that pattern)."""
    if count < 3 or count % 2 == 0:
        return [f"norm {i}" for i in range(count)]
    return ["embeddings"] + [f"layer {i // 2} {('attention', 'ffn')[i % 2]}" for i in range(count - 1)]


def probe_runner(artifact: Artifact, out_dir: Path, scratch: Path, task: Task) -> Runner:
    """A runner of ``artifact`` whose outputs include its ``probe_<i>`` values (probed copies, where a format needs
    one, go to a fresh directory below ``scratch``)."""
    fmt = format_of(artifact)
    if not (Path(out_dir) / artifact.path).exists():  # the one missing-file error
        runner_for(artifact, out_dir)
    Path(scratch).mkdir(parents=True, exist_ok=True)
    own = Path(tempfile.mkdtemp(prefix=f"{artifact.name}-", dir=scratch))
    return fmt.make_probe_runner(Path(out_dir) / artifact.path, own, task, artifact.sequence_buckets, artifact.name)


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


def _probes(outputs: dict[str, Any]) -> list[str]:
    return sorted((k for k in outputs if k.startswith(PROBE)), key=lambda k: int(k[len(PROBE) :]))


def localize(reference: Runner, candidate: Runner, feeds: list[Feed]) -> list[BlockError]:
    """Per-block error of ``candidate`` against ``reference``, both runners with ``probe_<i>`` outputs."""
    outputs = {}
    for tag, runner in (("reference", reference), ("candidate", candidate)):
        with runner:
            outputs[tag] = [runner.infer(feed) for feed in feeds]
    names, other = _probes(outputs["reference"][0]), _probes(outputs["candidate"][0])
    if not names:
        raise PocketbertError(f"{reference.name} has no LayerNorm blocks to probe")
    if len(names) != len(other):
        raise PocketbertError(
            f"{candidate.name} has {len(other)} LayerNorm blocks and {reference.name} {len(names)}; "
            "diagnose artifacts of the same model"
        )
    rows, previous = [], 0.0
    for label, value in zip(block_labels(len(names)), names):
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
