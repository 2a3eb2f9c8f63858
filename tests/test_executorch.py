"""ExecuTorch (.pte) lowering, int8 and runner on tiny DistilBERT and BERT models of every task.

Every artifact is lowered once per session (two worker processes build them side by side) and compared with the
PyTorch deployment wrapper on a padded batch of three texts of different lengths.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("executorch")

from pocketbert.errors import PocketbertError  # noqa: E402
from pocketbert.tasks import Task, output_specs  # noqa: E402
from tests.tiny import ARCHS, TASKS  # noqa: E402

BUCKETS = [16]
ROUTED = ("distilbert", "sequence-classification", "fp32")  # lowered with buckets 8 and 16: bucket routing
DYNAMIC = ("bert", "feature-extraction", "fp32")  # lowered with one dynamic-length method
ONE_FLOAT = ("distilbert", "sequence-classification", "int8")  # int8 with one linear kept float
KEPT_FLOAT = "transformer.layer.0.ffn.lin2"  # its public name
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


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[tuple[str, str], str]:
    """A one-layer tiny checkpoint per architecture and task."""
    return {
        (arch, task): str(_save_one_layer(tmp_path_factory.mktemp(f"et-{arch}-{task}"), arch, task))
        for arch in ARCHS
        for task in TASKS
    }


@pytest.fixture(scope="session")
def built(checkpoints, tmp_path_factory) -> dict:
    """``built[(arch, task, variant)] -> (path, info)`` for every artifact the tests use, lowered once by two
    worker processes side by side."""
    out = tmp_path_factory.mktemp("executorch")
    jobs: dict[tuple[str, str, str], dict] = {}
    for arch in ARCHS:
        for task in TASKS:
            for precision in ("fp32", "int8"):
                jobs[(arch, task, precision)] = {
                    "checkpoint": checkpoints[(arch, task)],
                    "task": task,
                    "int8": precision == "int8",
                    "buckets": BUCKETS,
                }
    jobs[ROUTED]["buckets"] = [8, 16]
    jobs[DYNAMIC]["strategy"] = "dynamic"
    jobs[ONE_FLOAT]["float_modules"] = [KEPT_FLOAT]
    jobs[("distilbert", "sequence-classification", "all-float")] = {**jobs[ONE_FLOAT], "float_modules": "all"}
    for key, job in jobs.items():
        job["path"] = str(out / f"{'-'.join(key)}.pte")
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = {key: pool.submit(_build, job) for key, job in jobs.items()}
        return {key: (Path(jobs[key]["path"]), future.result()) for key, future in futures.items()}


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
def reference(checkpoints, feed):
    """``reference(arch, task) -> {output: array}`` from the PyTorch deployment wrapper on :func:`feed`."""
    import torch

    cache: dict[tuple[str, str], dict[str, np.ndarray]] = {}

    def get(arch: str, task: str) -> dict[str, np.ndarray]:
        if (arch, task) not in cache:
            wrapper, _ = _wrapper(checkpoints[(arch, task)], task)
            with torch.inference_mode():
                out = wrapper(torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"]))
            cache[(arch, task)] = {name: value.numpy() for name, value in zip(wrapper.output_names, out)}
        return cache[(arch, task)]

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


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
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
    path, info = built[("distilbert", task, "all-float")]
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


def test_unknown_float_module_is_one_line(checkpoints, tmp_path):
    from pocketbert.formats.executorch.lower import lower

    wrapper, _ = _wrapper(checkpoints[("distilbert", "feature-extraction")], "feature-extraction")
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
