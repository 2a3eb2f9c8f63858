"""ExecuTorch (.pte) lowering, int8, runner and layer probes on tiny DistilBERT and BERT models of every task.

Lowering is the cost here (ExecuTorch's passes are Python: about 5 s for a one-layer fp32 program, 8-14 s int8), so
every artifact is lowered at most once per session, only if a selected test uses it (:data:`NEEDS`), by two worker
processes side by side while the tests run; each is compared with the PyTorch deployment wrapper on a padded batch
of three texts of different lengths. What is lowered:

* fp32: every architecture x task (each task head lowers and matches PyTorch), as static bucket methods, the
  cheaper mode; two of them are the representatives of the other shapes: :data:`ROUTED` (two buckets: routing)
  and :data:`DYNAMIC` (one dynamic-length method, the default mode);
* int8: one representative per task, each architecture at least twice (:data:`INT8_CASES`), static buckets;
  the dynamic int8 path (the default) is lowered by :func:`et_out` through the CLI;
* two ``float_modules`` variants of the DistilBERT classifier.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("executorch")

from pocketbert.cli import main  # noqa: E402
from pocketbert.errors import PocketbertError  # noqa: E402
from pocketbert.tasks import Task, output_specs  # noqa: E402
from tests.tiny import ARCHS, TASKS  # noqa: E402

Key = tuple[str, str, str]  # (architecture, task, variant): variant fp32, int8 or all-float

BUCKETS = [16]
ROUTED = ("distilbert", "sequence-classification", "fp32")  # lowered with buckets 8 and 16: bucket routing
DYNAMIC = ("bert", "feature-extraction", "fp32")  # lowered with one dynamic-length method
ONE_FLOAT = ("distilbert", "sequence-classification", "int8")  # int8 with one linear kept float
ALL_FLOAT = ("distilbert", "sequence-classification", "all-float")  # int8 path with every unit kept float
PROBED_INT8 = ("distilbert", "feature-extraction", "int8")  # layer probes of an int8 program
KEPT_FLOAT = "transformer.layer.0.ffn.lin2"  # its public name
# int8 representatives: every task once (its head's linears quantized), both architectures' encoders and word
# embeddings, BERT's classifier for its pooler (reached through an alias, see quantize._weight_owners)
INT8_CASES = [
    ("distilbert", "feature-extraction"),
    ("distilbert", "sequence-classification"),  # ONE_FLOAT
    ("bert", "sequence-classification"),
    ("bert", "question-answering"),
    ("distilbert", "token-classification"),
]
LENGTHS = (16, 11, 5)  # real tokens per row of the test feed (S = 16)
FP32_ATOL = 1e-4
INT8_COSINE = 0.98


def _save_one_layer(path: Path, arch: str, task: str) -> Path:
    """The conftest's tiny model of ``arch`` and ``task`` with one transformer layer (lowering time is per op)."""
    import torch
    import transformers

    from pocketbert.loading import uncased_tokenizer
    from tests.tiny import tiny_config

    classes = {
        "feature-extraction": transformers.AutoModel,
        "sequence-classification": transformers.AutoModelForSequenceClassification,
        "question-answering": transformers.AutoModelForQuestionAnswering,
        "token-classification": transformers.AutoModelForTokenClassification,
    }
    config = tiny_config(arch, num_labels=2 if task == "question-answering" else 3)
    setattr(config, "n_layers" if arch == "distilbert" else "num_hidden_layers", 1)
    torch.manual_seed(0)
    model = classes[task].from_config(config)
    model.save_pretrained(path)
    uncased_tokenizer(model.config.max_position_embeddings).save_pretrained(path)
    return path


def _wrapper(checkpoint: str, task: str):
    from pocketbert.loading import load_model
    from pocketbert.wrapper import DeploymentModel

    loaded = load_model(checkpoint, task)
    return DeploymentModel(loaded.model, loaded.task).eval(), loaded.labels


def _build(job: dict) -> dict:
    """Lower one artifact (runs in a worker process)."""
    import os
    import warnings

    os.environ["HF_HUB_OFFLINE"] = "1"
    warnings.simplefilter("ignore")
    from pocketbert.formats.executorch.lower import lower
    from pocketbert.formats.executorch.quantize import weight_units
    from pocketbert.quiet import quiet_third_party

    quiet_third_party()
    wrapper, labels = _wrapper(job["checkpoint"], job["task"])
    float_modules = job.get("float_modules", ())
    if float_modules == "all":
        float_modules = [name for name, _ in weight_units(wrapper)]
    metadata = {"task": job["task"], "labels": labels, "precision": "int8" if job["int8"] else "fp32"}
    return lower(
        wrapper,
        job["buckets"],
        int8=job["int8"],
        float_modules=float_modules,
        metadata=metadata,
        path=job["path"],
        strategy=job.get("strategy", "buckets"),
    )


def _export_et_out(checkpoint: str, out: str) -> str:
    """Export ``checkpoint`` through the CLI to ``out`` (runs in a worker process or here); returns ``out``."""
    import os
    import warnings

    os.environ["HF_HUB_OFFLINE"] = "1"
    warnings.simplefilter("ignore")
    from pocketbert.cli import main as cli
    from pocketbert.quiet import quiet_third_party

    quiet_third_party()
    argv = ["export", checkpoint, "--format", "executorch,onnx", "--precision", "fp32,int8", "--buckets", "8,16"]
    if cli([*argv, "-o", out, "--budget", "agreement>=0.5"]) != 0:
        raise RuntimeError(f"the ExecuTorch export to {out} failed")
    return out


_SHARED: dict[str, Any] = {}  # "et_out" -> the OUT of shared_et_out, or the future that writes it


def shared_et_out(tmp_path_factory: pytest.TempPathFactory, pool: Any = None) -> Path:
    """One OUT per session, exported through the CLI: the one-layer DistilBERT classifier as ``executorch`` and
    ``onnx``, ``fp32`` and ``int8`` (ExecuTorch int8 in the default dynamic mode, both int8 with a parity budget),
    buckets 8 and 16. Used here (``diagnose``) and by ``tests/test_executorch_pipeline.py`` (export, parity, bench
    planning, the Android bundle), so its three lowerings happen once; copy it before writing into it.

    With ``pool`` (the :func:`built` fixture's workers) the export starts there and this returns without waiting;
    a later call waits for it."""
    if "et_out" not in _SHARED:
        base = tmp_path_factory.mktemp("et-out")
        model = str(_save_one_layer(base / "model", "distilbert", "sequence-classification"))
        out = str(base / "out")
        _SHARED["et_out"] = pool.submit(_export_et_out, model, out) if pool else _export_et_out(model, out)
        if pool:
            return Path(out)
    value = _SHARED["et_out"]
    return Path(value.result() if isinstance(value, concurrent.futures.Future) else value)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Callable[[str, str], str]:
    """``checkpoint(arch, task) -> path``: a one-layer tiny checkpoint, each saved once, when first asked for."""
    cache: dict[tuple[str, str], str] = {}

    def get(arch: str, task: str) -> str:
        if (arch, task) not in cache:
            cache[(arch, task)] = str(_save_one_layer(tmp_path_factory.mktemp(f"et-{arch}-{task}"), arch, task))
        return cache[(arch, task)]

    return get


# Which artifacts each test of this file lowers, from its parameters: the built fixture lowers the union for the
# selected tests only. A test reading a key it does not list here fails with a message saying so.
NEEDS: dict[str, Callable[[dict[str, Any]], list[Key]]] = {
    "test_fp32_matches_pytorch": lambda p: [(p["arch"], p["task"], "fp32")],
    "test_int8_close_to_pytorch_and_smaller": lambda p: [(p["arch"], p["task"], v) for v in ("int8", "fp32")],
    "test_padded_rows_run_in_the_smallest_bucket": lambda p: [ROUTED],
    "test_dynamic_method_runs_each_row_at_its_length": lambda p: [DYNAMIC],
    "test_metadata_reads_back_through_the_runtime": lambda p: [
        ("bert", "sequence-classification", "int8"),
        ("bert", "question-answering", "fp32"),
    ],
    "test_float_modules_keep_a_named_linear_float": lambda p: [ONE_FLOAT],
    "test_float_modules_all_float_matches_fp32": lambda p: [ALL_FLOAT, ONE_FLOAT],
    "test_runner_refuses_missing_method": lambda p: [("distilbert", "feature-extraction", "fp32")],
    "test_dynamic_method_refuses_longer_than_its_bound": lambda p: [DYNAMIC],
    "test_threads_are_process_wide": lambda p: [("bert", "token-classification", "fp32")],
    "test_probes_are_the_programs_layer_norms": lambda p: [
        ROUTED,
        DYNAMIC,
        ("distilbert", "feature-extraction", "int8"),
    ],
}


def _job(key: Key, checkpoint: Callable[[str, str], str], out: Path) -> dict[str, Any]:
    arch, task, variant = key
    job: dict[str, Any] = {
        "checkpoint": checkpoint(arch, task),
        "task": task,
        "int8": variant != "fp32",
        "buckets": [8, 16] if key == ROUTED else BUCKETS,
        "strategy": "dynamic" if key == DYNAMIC else "buckets",
        "path": str(out / f"{'-'.join(key)}.pte"),
    }
    if key == ONE_FLOAT:
        job["float_modules"] = [KEPT_FLOAT]
    elif key == ALL_FLOAT:
        job["float_modules"] = "all"
    return job


class Built:
    """``built[key] -> (path, what lower returned)``, waiting for that artifact's worker when it is not done yet."""

    def __init__(self, jobs: dict[Key, dict[str, Any]], futures: dict[Key, concurrent.futures.Future]) -> None:
        self.jobs, self.futures = jobs, futures

    def __getitem__(self, key: Key) -> tuple[Path, dict[str, Any]]:
        if key not in self.futures:
            raise KeyError(f"{key} was not lowered: list it in NEEDS for the test that reads it")
        return Path(self.jobs[key]["path"]), self.futures[key].result()


@pytest.fixture(scope="session")
def built(request, checkpoint, tmp_path_factory) -> Iterator[Built]:
    """The artifacts the selected tests of this file use (:data:`NEEDS`), lowered by two worker processes side by
    side, in file order, while the tests run; the shared CLI export (:func:`shared_et_out`) goes first when a
    selected test uses it."""
    keys: dict[Key, None] = {}
    shared = False
    for item in request.session.items:
        shared = shared or "et_out" in getattr(item, "fixturenames", ())
        if (
            getattr(item, "module", None) is not None
            and item.module.__name__ == __name__
            and item.originalname in NEEDS
        ):
            params = item.callspec.params if hasattr(item, "callspec") else {}
            keys.update(dict.fromkeys(NEEDS[item.originalname](params)))
    out = tmp_path_factory.mktemp("executorch")
    jobs = {key: _job(key, checkpoint, out) for key in keys}
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        if shared:
            shared_et_out(tmp_path_factory, pool)
        yield Built(jobs, {key: pool.submit(_build, job) for key, job in jobs.items()})


@pytest.fixture(scope="session")
def et_out(tmp_path_factory) -> Path:
    """The shared CLI export (:func:`shared_et_out`)."""
    return shared_et_out(tmp_path_factory)


@pytest.fixture(scope="session")
def feed() -> dict[str, np.ndarray]:
    """Three rows padded to 16 tokens, with 16, 11 and 5 real tokens."""
    rng = np.random.default_rng(0)
    ids = np.zeros((len(LENGTHS), 16), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(LENGTHS):
        ids[row, :n] = rng.integers(1000, 30000, n)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="session")
def reference(checkpoint, feed):
    """``reference(arch, task) -> {output: array}`` from the PyTorch deployment wrapper on :func:`feed`; with
    ``probes=True`` each LayerNorm's output ``(B, S, H)`` instead, in call order, as ``probe_<i>``."""
    import torch

    cache: dict[tuple[str, str], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}

    def get(arch: str, task: str, probes: bool = False) -> dict[str, np.ndarray]:
        if (arch, task) not in cache:
            wrapper, _ = _wrapper(checkpoint(arch, task), task)
            norms: list[np.ndarray] = []
            hooks = [
                m.register_forward_hook(lambda _m, _i, o: norms.append(o.detach().numpy().copy()))
                for m in wrapper.modules()
                if isinstance(m, torch.nn.LayerNorm)
            ]
            try:
                with torch.inference_mode():
                    out = wrapper(torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"]))
            finally:
                for hook in hooks:
                    hook.remove()
            outputs = {name: value.numpy() for name, value in zip(wrapper.output_names, out)}
            cache[(arch, task)] = outputs, {f"probe_{i}": value for i, value in enumerate(norms)}
        return cache[(arch, task)][1 if probes else 0]

    return get


def _run(path: Path, info: dict, task: str, feed: dict) -> tuple[dict[str, np.ndarray], list[int]]:
    from pocketbert.formats.executorch.runner import ExecuTorchRunner

    with ExecuTorchRunner(path, task=task, methods=info["methods"], threads=2) as runner:
        outputs = runner.infer(feed)
        return outputs, list(runner.used_lengths)


def _real_tokens(task: str, outputs: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Each output as per-row arrays, per-token outputs cut to the row's real tokens."""
    per_token = {spec.name: spec.per_token for spec in output_specs(Task(task))}
    return {
        name: [value[row, :n] if per_token[name] else value[row] for row, n in enumerate(LENGTHS)]
        for name, value in outputs.items()
    }


def _max_abs(task: str, got: dict, want: dict) -> float:
    a, b = _real_tokens(task, got), _real_tokens(task, want)
    return max(float(np.abs(x - y).max()) for name in b for x, y in zip(a[name], b[name]))


def _min_cosine(task: str, got: dict, want: dict) -> float:
    a, b = _real_tokens(task, got), _real_tokens(task, want)
    cosines = []
    for name in b:
        for x, y in zip(a[name], b[name]):
            x, y = x.ravel().astype(np.float64), y.ravel().astype(np.float64)
            cosines.append(float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y))))
    return min(cosines)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
def test_fp32_matches_pytorch(built, reference, feed, arch, task):
    path, info = built[(arch, task, "fp32")]
    outputs, _ = _run(path, info, task, feed)
    want = reference(arch, task)
    assert sorted(outputs) == sorted(want) == sorted(info["output_names"])
    for name in want:
        assert outputs[name].shape == want[name].shape and outputs[name].dtype == np.float32
    assert _max_abs(task, outputs, want) < FP32_ATOL
    assert "quantization" not in info
    assert all(ops["xnnpack_delegates"] >= 1 for ops in info["ops"].values())


@pytest.mark.parametrize("arch, task", INT8_CASES)
def test_int8_close_to_pytorch_and_smaller(built, reference, feed, arch, task):
    path, info = built[(arch, task, "int8")]
    fp32_path, _ = built[(arch, task, "fp32")]
    outputs, _ = _run(path, info, task, feed)
    want = reference(arch, task)
    assert _min_cosine(task, outputs, want) >= INT8_COSINE
    assert _max_abs(task, outputs, want) > FP32_ATOL  # really quantized
    quant = info["quantization"]
    assert quant["int8_linears"] > 0 and quant["float_linears"] == (1 if (arch, task, "int8") == ONE_FLOAT else 0)
    assert quant["int8_embeddings"] == ["encoder.base.embeddings.word_embeddings"]
    (method,) = info["ops"]
    assert info["ops"][method]["portable_ops"].get("quantized_decomposed.embedding_byte.default") == 1
    assert "aten.embedding.default" not in info["ops"][method]["portable_ops"]
    # the word embeddings (30522 x 32) dominate a tiny model: fp32 4 bytes per weight, int8 1
    assert path.stat().st_size < 0.4 * fp32_path.stat().st_size


def test_padded_rows_run_in_the_smallest_bucket(built, reference, feed):
    task = "sequence-classification"
    path, info = built[ROUTED]
    assert info["methods"] == {"8": "seq_8", "16": "seq_16"} and not info["dynamic"]
    outputs, used = _run(path, info, task, feed)
    assert used == [16, 16, 8]  # 16 and 11 real tokens in seq_16, 5 in seq_8
    assert _max_abs(task, outputs, reference("distilbert", task)) < FP32_ATOL


def test_dynamic_method_runs_each_row_at_its_length(built, reference, feed):
    task = "feature-extraction"
    path, info = built[DYNAMIC]
    assert info["methods"] == {"dynamic": "forward"} and info["dynamic"] and info["max_sequence"] == 16
    outputs, used = _run(path, info, task, feed)
    assert used == list(LENGTHS)
    assert _max_abs(task, outputs, reference("bert", task)) < FP32_ATOL
    assert np.all(outputs["last_hidden_state"][2, 5:] == 0)  # padding positions are zero-filled


def test_metadata_reads_back_through_the_runtime(built):
    from pocketbert.formats.executorch.runner import read_metadata

    path, info = built[("bert", "sequence-classification", "int8")]
    meta = read_metadata(path)
    assert meta == info["metadata"] == read_metadata(path, as_bytes=True)
    assert meta["task"] == "sequence-classification"
    assert meta["labels"] == ["label_a", "label_b", "label_c"]
    assert meta["output_names"] == ["logits"]
    assert meta["methods"] == {"16": "seq_16"} and meta["buckets"] == [16] and meta["dynamic"] is False
    assert meta["precision"] == "int8" and meta["scheme"] == info["quantization"]["scheme"]
    assert meta["input_names"] == ["input_ids", "attention_mask"] and meta["input_dtype"] == "int64"
    qa = read_metadata(built[("bert", "question-answering", "fp32")][0])
    assert qa["output_names"] == ["start_logits", "end_logits"] and qa["precision"] == "fp32"


def test_float_modules_keep_a_named_linear_float(built):
    _, info = built[ONE_FLOAT]
    quant = info["quantization"]
    assert quant["float_modules"] == [f"encoder.base.{KEPT_FLOAT}"]
    # read from the quantized graph: the one linear whose weight is not dequantized from int8
    assert quant["float_linear_modules"] == [f"encoder.base.{KEPT_FLOAT}"]
    # one layer (q, k, v, out, lin1, lin2) and the head (pre_classifier, classifier): 8 linears
    assert (quant["int8_linears"], quant["float_linears"]) == (7, 1)


def test_float_modules_all_float_matches_fp32(built, reference, feed):
    """Every unit named float: the int8 path quantizes nothing, so the outputs are the fp32 ones (the plain int8
    artifact of the same model is measurably off)."""
    task = "sequence-classification"
    path, info = built[ALL_FLOAT]
    outputs, _ = _run(path, info, task, feed)
    want = reference("distilbert", task)
    assert _max_abs(task, outputs, want) < FP32_ATOL
    assert info["quantization"]["int8_linears"] == 0 and info["quantization"]["int8_embeddings"] == []
    int8_path, int8_info = built[ONE_FLOAT]
    assert _max_abs(task, _run(int8_path, int8_info, task, feed)[0], want) > 10 * FP32_ATOL


def test_weight_units_in_call_order(tiny_models):
    from pocketbert.formats.executorch.quantize import weight_units

    wrapper, _ = _wrapper(str(tiny_models("bert", "sequence-classification")), "sequence-classification")
    units = weight_units(wrapper)
    names = [public for _, public in units]
    assert names[0] == "embeddings.word_embeddings"
    assert names[1:4] == [f"encoder.layer.0.attention.self.{p}" for p in ("query", "key", "value")]
    assert names[-2:] == ["pooler.dense", "head.classifier"]
    assert len(units) == 1 + 2 * 6 + 2
    assert all(name.startswith(("encoder.base.", "head.")) for name, _ in units)


def test_unknown_float_module_is_one_line(checkpoint, tmp_path):
    from pocketbert.formats.executorch.lower import lower

    wrapper, _ = _wrapper(checkpoint("distilbert", "feature-extraction"), "feature-extraction")
    with pytest.raises(PocketbertError, match="not a quantizable module"):
        lower(wrapper, [8], int8=True, float_modules=["no.such.layer"], metadata={}, path=tmp_path / "m.pte")
    assert not (tmp_path / "m.pte").exists()


def test_runner_refuses_missing_method(built):
    from pocketbert.formats.executorch.runner import ExecuTorchRunner

    path, _ = built[("distilbert", "feature-extraction", "fp32")]
    with pytest.raises(PocketbertError, match="lacks methods seq_64"):
        ExecuTorchRunner(path, task="feature-extraction", methods={"64": "seq_64"}).load()


def test_dynamic_method_refuses_longer_than_its_bound(built):
    from pocketbert.formats.executorch.runner import ExecuTorchRunner

    path, info = built[DYNAMIC]
    ids = np.ones((1, 17), dtype=np.int64)
    with ExecuTorchRunner(path, task="feature-extraction", methods=info["methods"]) as runner:
        assert runner.max_sequence == 16
        with pytest.raises(PocketbertError, match="longer than the method's maximum 16"):
            runner.infer({"input_ids": ids, "attention_mask": ids})


def test_threads_are_process_wide(built):
    from pocketbert.formats.executorch.runner import ExecuTorchRunner, thread_count

    path, info = built[("bert", "token-classification", "fp32")]
    first = ExecuTorchRunner(path, task="token-classification", methods=info["methods"], threads=2)
    second = ExecuTorchRunner(path, task="token-classification", methods=info["methods"], threads=1)
    with first:
        assert thread_count() == 2
        with pytest.raises(PocketbertError, match="threadpool is process-wide"):
            second.load()
    with second:
        assert thread_count() == 1
    assert not ExecuTorchRunner._live_threads


def test_probes_are_the_programs_layer_norms(built, reference, feed, tmp_path):
    """``diagnose``'s probes of a ``.pte``: every layer norm's output from the artifact's own run (ETDump), for
    bucket methods, the dynamic method and int8; the probed run's task outputs are the plain runner's."""
    from pocketbert.formats.executorch.runner import ExecuTorchProbeRunner

    for key in (ROUTED, DYNAMIC, PROBED_INT8):
        arch, task, variant = key
        path, info = built[key]
        scratch = tmp_path / "-".join(key)
        with ExecuTorchProbeRunner(path, task=task, methods=info["methods"], scratch=scratch) as runner:
            got = runner.infer(feed)
        plain, _ = _run(path, info, task, feed)
        for name in plain:
            np.testing.assert_allclose(got[name], plain[name], rtol=0, atol=1e-6)
        want = reference(arch, task, probes=True)
        names = sorted(n for n in got if n.startswith("probe_"))
        assert names == sorted(want) == ["probe_0", "probe_1", "probe_2"], key  # embeddings, attention, ffn
        for name in names:
            assert got[name].shape == want[name].shape == (len(LENGTHS), 16, 32) and got[name].dtype == np.float32
            assert not any(got[name][row, n:].any() for row, n in enumerate(LENGTHS))  # zero past real tokens
            error = max(float(np.abs(got[name][r, :n] - want[name][r, :n]).max()) for r, n in enumerate(LENGTHS))
            assert error < FP32_ATOL if variant == "fp32" else FP32_ATOL < error < 0.5, (key, name, error)
        if variant == "int8":  # the last layer norm is the hidden-state output, computed in the same run
            np.testing.assert_array_equal(got["probe_2"], got["last_hidden_state"])
        assert not any(scratch.iterdir())  # each row's ETDump and debug buffer are removed once read


def test_diagnose_cli_on_executorch_int8(et_out, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(et_out, out)
    assert main(["diagnose", str(out), "--artifact", "executorch-int8"]) == 0  # against executorch-fp32
    assert "grows most" in capsys.readouterr().out
    same = json.loads((out / "report/diagnose-executorch-int8.json").read_text())
    assert same["against"] == "executorch-fp32"
    assert [b["block"] for b in same["blocks"]] == ["embeddings", "layer 0 attention", "layer 0 ffn"]
    assert 0 < 1 - same["blocks"][0]["cosine_min"] < 1e-2  # the int8 word embeddings already differ, a little
    assert (out / "report/diagnose-executorch-int8.png").stat().st_size > 1000
    assert main(["diagnose", str(out), "--artifact", "executorch-int8", "--against", "onnx-fp32"]) == 0
    across = json.loads((out / "report/diagnose-executorch-int8.json").read_text())
    assert across["against"] == "onnx-fp32"
    assert [b["block"] for b in across["blocks"]] == [b["block"] for b in same["blocks"]]
    for a, b in zip(across["blocks"], same["blocks"]):  # the two float references compute the same blocks
        assert a["cosine_min"] == pytest.approx(b["cosine_min"], abs=1e-6)
