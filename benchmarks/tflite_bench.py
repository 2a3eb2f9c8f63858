"""TFLite latency and parity benchmark (not a test): pocketbert's fp32 / int8 dynamic / int8 static against peers.

Usage::

    HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/tflite_bench.py [--model random:distilbert-base-uncased]
        [--seq 128] [--threads 2] [--runs 30] [--out out/bench-tflite] [--pt2e]

Rows (batch 1, one ``seq_<S>`` signature, XNNPACK with ``--threads`` threads):

* ``pocketbert fp32`` / ``int8-dynamic`` / ``int8-static``: ``pocketbert export --format tflite`` with one bucket
  ``S``, gated by ``pocketbert parity`` on the built-in texts;
* ``peer: litert-torch default``: ``litert_torch.convert(wrapper, sample_args)``, nothing else;
* ``peer: + ai-edge-quantizer dynamic_wi8_afp32``: that file through the stock dynamic recipe;
* ``litert-torch PT2E dynamic`` (``--pt2e``): litert-torch's own quantization config (PT2E, dynamic per-channel).

Latency is the median of ``--runs`` invocations after 5 warm-up runs, on one fixed text of ``S`` tokens, measured
round-robin across the models (see :func:`latencies_ms`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np


def _runner_and_feed(path: Path, signature: str | None, seq: int, threads: int) -> tuple[Any, dict[str, np.ndarray]]:
    """A signature runner of ``path`` (its only signature when ``None``) and a batch-1 feed of ``seq`` tokens."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    runner = interp.get_signature_runner(signature or next(iter(interp.get_signature_list())))
    names = sorted(runner.get_input_details())  # litert-torch default names: args_0 (ids), args_1 (mask)
    ids = np.full((1, seq), 2000, dtype=np.int32)
    ids[0, 0], ids[0, -1] = 101, 102
    mask = np.ones((1, seq), dtype=np.int32)
    if "input_ids" in names:
        return runner, {"input_ids": ids, "attention_mask": mask}
    return runner, {names[0]: ids, names[1]: mask}


def latencies_ms(models: dict[str, tuple[Path, str | None]], seq: int, threads: int, runs: int) -> dict[str, float]:
    """Median wall time (ms) of one batch-1 inference per model, measured round-robin.

    The machine is shared, so the models take turns (one run each per round, ``runs`` rounds after 5 warm-up
    rounds): a load spike slows every model alike instead of whichever happened to be measured during it. The
    order rotates every round, because a model run right after a large one pays for the evicted caches (two
    identical files measured 46 and 70 ms in a fixed order).
    """
    loaded = list({name: _runner_and_feed(path, sig, seq, threads) for name, (path, sig) in models.items()}.items())
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(5 + runs):
        shift = round_ % len(loaded)
        for name, (runner, feed) in loaded[shift:] + loaded[:shift]:
            start = time.perf_counter()
            runner(**feed)
            if round_ >= 5:
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def peer_default(loaded: Any, seq: int, path: Path) -> Path:
    """litert-torch's plain default conversion of the deployment wrapper (positional int32 args)."""
    import litert_torch
    import torch

    from pocketbert.wrapper import DeploymentModel

    wrapper = DeploymentModel(loaded.model, loaded.task).eval()
    args = (torch.full((1, seq), 2000, dtype=torch.int32), torch.ones((1, seq), dtype=torch.int32))
    litert_torch.convert(wrapper, args).export(str(path))
    return path


def peer_aeq_dynamic(src: Path, dst: Path) -> Path:
    """The peer file through ai-edge-quantizer's stock ``dynamic_wi8_afp32`` recipe."""
    from ai_edge_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(str(src), recipe.dynamic_wi8_afp32())
    qt.quantize().export_model(str(dst), overwrite=True)
    return dst


def pt2e_dynamic(loaded: Any, seq: int, path: Path) -> Path:
    """litert-torch's own quantization: PT2E dynamic per-channel int8 through ``quant_config``."""
    import litert_torch
    import torch
    from litert_torch.quantize import pt2e_quantizer, quant_config
    from torchao.quantization.pt2e import quantize_pt2e

    from pocketbert.wrapper import DeploymentModel

    wrapper = DeploymentModel(loaded.model, loaded.task).eval()
    args = (torch.full((1, seq), 2000, dtype=torch.int32), torch.ones((1, seq), dtype=torch.int32))
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    )
    module = torch.export.export(wrapper, args).module()
    module = quantize_pt2e.prepare_pt2e(module, quantizer)
    module(*args)
    module = quantize_pt2e.convert_pt2e(module, fold_quantize=False)
    litert_torch.convert(module, args, quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer)).export(
        str(path)
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random:distilbert-base-uncased")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", default="out/bench-tflite")
    parser.add_argument("--pt2e", action="store_true", help="also measure litert-torch's PT2E dynamic int8")
    args = parser.parse_args()
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")

    from pocketbert.core.artifact import ExportSettings
    from pocketbert.exporting.pipeline import export_model
    from pocketbert.loading import load_model
    from pocketbert.parity.check import check_parity

    out = Path(args.out)
    loaded = load_model(args.model)
    settings = ExportSettings(max_length=args.seq, sequence_buckets=[args.seq])
    start = time.perf_counter()
    manifest = export_model(loaded, ["tflite"], ["fp32", "int8-dynamic", "int8-static"], out, settings, force=True)
    export_s = time.perf_counter() - start
    report = check_parity(out, loaded=loaded, threads=args.threads)
    verdicts = {a.name: a for a in report.artifacts}

    peers = out / "peers"
    peers.mkdir(parents=True, exist_ok=True)
    default = peer_default(loaded, args.seq, peers / "litert_torch_default.tflite")
    aeq = peer_aeq_dynamic(default, peers / "aeq_dynamic_wi8_afp32.tflite")
    models: dict[str, tuple[Path, str | None]] = {
        f"pocketbert {a['precision']}": (out / a["path"], f"seq_{args.seq}") for a in manifest["artifacts"]
    }
    models["peer: litert-torch default"] = (default, None)
    models["peer: + ai-edge-quantizer dynamic_wi8_afp32"] = (aeq, None)
    rows: list[dict[str, Any]] = []
    if args.pt2e:
        try:
            pt2e = pt2e_dynamic(loaded, args.seq, peers / "pt2e_dynamic.tflite")
            _runner_and_feed(pt2e, None, args.seq, args.threads)[0](**_runner_and_feed(pt2e, None, args.seq, 1)[1])
            models["litert-torch PT2E dynamic"] = (pt2e, None)
        except Exception as exc:  # report, do not hide: the row says why it is missing
            rows.append({"name": "litert-torch PT2E dynamic", "error": str(exc).strip().splitlines()[0][:160]})
    timed = latencies_ms(models, args.seq, args.threads, args.runs)
    for artifact in manifest["artifacts"]:
        name = f"pocketbert {artifact['precision']}"
        verdict = verdicts[artifact["name"]]
        rows.append(
            {
                "name": name,
                "size_mb": artifact["size_bytes"] / 1e6,
                "ms": timed[name],
                "parity": "PASS" if verdict.passed else "FAIL",
                "metrics": {k: v for k, v in verdict.metrics.items() if "cosine" in k or "agreement" in k},
            }
        )
    for name, (path, _) in models.items():
        if not name.startswith("pocketbert"):
            rows.append({"name": name, "size_mb": path.stat().st_size / 1e6, "ms": timed[name], "parity": "n/a"})

    peer_ms = next(r["ms"] for r in rows if r["name"].startswith("peer: +"))
    print(f"model {loaded.origin}; seq {args.seq}; threads {args.threads}; median of {args.runs}")
    print(f"export of fp32 + int8 dynamic + int8 static: {export_s:.0f}s")
    print(f"{'artifact':48} {'MB':>8} {'ms':>9} {'vs peer':>8}  parity")
    for row in rows:
        if "error" in row:
            print(f"{row['name']:48} failed: {row['error']}")
            continue
        metrics = {k: round(v, 4) for k, v in row.get("metrics", {}).items()}
        print(
            f"{row['name']:48} {row['size_mb']:8.1f} {row['ms']:9.2f} {peer_ms / row['ms']:7.2f}x  {row['parity']}"
            + (f"  {json.dumps(metrics)}" if metrics else "")
        )
    (out / "bench.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
