"""Core ML for the Neural Engine: single-input packages with enumerated shapes on every target, the ANE layout
against PyTorch in the MIL runner, the pad id's neighbours, and the placement report, on tiny models."""

from __future__ import annotations

import json

import coremltools as ct
import numpy as np
import pytest
import torch

from pocketbert.cli import main
from pocketbert.core.artifact import ExportSettings, manifest_artifacts, read_manifest
from pocketbert.core.buckets import choose_bucket
from pocketbert.errors import PocketbertError
from pocketbert.exporting.pipeline import export_model
from pocketbert.formats.coreml.ane import AneDeploymentModel, ChannelLayerNorm, PointwiseConv, swap_for_ane
from pocketbert.formats.coreml.mil.package import load_program
from pocketbert.formats.coreml.placement import placement, report_table, summary
from pocketbert.formats.coreml.runner import CoreMLRunner, MilProbeRunner, MilRunner, coreml_available
from pocketbert.loading import load_model
from pocketbert.parity.check import check_parity
from pocketbert.parity.data import BUILTIN_TEXTS, build_feeds
from pocketbert.tasks import Task
from pocketbert.wrapper import reference_outputs
from tests.tiny import ARCHS, TASKS

BUCKETS = [16, 32, 64]
SETTINGS = {"sequence_buckets": BUCKETS, "max_length": 64}


def _failures(report):
    return [(a.name, a.failures, a.error) for a in report.artifacts if not a.passed]


def with_trained_norms(loaded):
    """``loaded`` with random layer-norm weights and biases (a fresh checkpoint has 1 and 0, which coremltools folds
    away), so the per-channel scale and shift of the ANE layout's layer norms reach the converted program."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in loaded.model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1.0 + 0.2 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))
    return loaded


@pytest.fixture(scope="module")
def built(tiny_models, tmp_path_factory):
    """``built(arch, task, precisions, **coreml_options) -> (loaded, out)``: each export is made once per module."""
    cache = {}

    def get(arch, task, precisions, **options):
        key = (arch, task, tuple(precisions), tuple(sorted(options.items())))
        if key not in cache:
            loaded = with_trained_norms(load_model(str(tiny_models(arch, task))))
            out = tmp_path_factory.mktemp(f"ane-{arch}-{task}") / "out"
            export_model(loaded, ["coreml"], list(precisions), out, ExportSettings(**SETTINGS, **options))
            cache[key] = (loaded, out)
        return cache[key]

    return get


def _artifacts(out):
    return {a.name: a for a in manifest_artifacts(read_manifest(out))}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("task", TASKS)
def test_ane_layout_matches_pytorch_fp16_and_int8(built, arch, task, monkeypatch):
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "mil")
    loaded, out = built(arch, task, ["fp16", "int8"], coreml_layout="ane", coreml_target="iOS17")
    artifacts = _artifacts(out)
    assert list(artifacts) == ["coreml-fp16", "coreml-int8"]
    for artifact in artifacts.values():
        assert [i.name for i in artifact.inputs] == ["input_ids"] and artifact.sequence_buckets == BUCKETS
        assert artifact.metadata["layout"] == "ane" and artifact.metadata["deployment_target"] == "iOS17"
        program = load_program(out / artifact.path)
        assert {"conv", "einsum"} <= program.op_types(), "linear layers are 1x1 convs, attention is per-head einsum"
        assert "batch_norm" in program.op_types(), "coremltools writes the channel norms' scale and shift so"
        assert not program.op_types() & {"linear", "matmul"}, "no (B, S, C) linear layer or batched matmul is left"
        data_format = {c["check"]: c for c in artifact.metadata["placement"]["checks"]}["data format"]
        assert data_format["status"] == "pass", data_format
    assert "constexpr_affine_dequantize" in load_program(out / artifacts["coreml-int8"].path).op_types()
    report = check_parity(out, loaded=loaded)  # the fp16 and int8 gates of pocketbert/parity/gates.py
    assert report.passed, _failures(report)
    assert {a.name: a.precision for a in report.artifacts} == {"coreml-fp16": "fp16", "coreml-int8": "int8"}


# Every arch x task of the single-input package is checked on iOS16 (tests/test_coreml.py); iOS18 changes only the
# opset the same graph is written in, so each task runs here once, the architectures alternating between tasks.
@pytest.mark.parametrize("arch, task", [(ARCHS[i % len(ARCHS)], task) for i, task in enumerate(TASKS)])
def test_single_input_on_iOS18_passes_parity_in_every_bucket(built, arch, task, monkeypatch):
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "mil")
    loaded, out = built(arch, task, ["fp16"], coreml_target="iOS18")
    artifact = _artifacts(out)["coreml-fp16"]
    assert [(i.name, i.shape) for i in artifact.inputs] == [("input_ids", [1, "sequence"])]
    assert artifact.metadata["shapes"]["kind"] == "enumerated" and artifact.metadata["layout"] == "standard"
    report = check_parity(out, loaded=loaded)
    assert report.passed, _failures(report)


def test_the_package_has_one_input_with_enumerated_shapes_and_records_the_pad_id(built):
    loaded, out = built("distilbert", "sequence-classification", ["fp16"], coreml_target="iOS18")
    spec = ct.utils.load_spec(str(out / "coreml/fp16/model.mlpackage"))
    assert [f.name for f in spec.description.input] == ["input_ids"]
    shapes = spec.description.input[0].type.multiArrayType.enumeratedShapes.shapes
    assert sorted(tuple(s.shape) for s in shapes) == [(1, 16), (1, 32), (1, 64)]
    user = dict(spec.description.metadata.userDefined)
    assert json.loads(user["inputs"]) == ["input_ids"] and json.loads(user["pad_token_id"]) == 0
    assert user["attention_mask"] == "derived in the graph: input_ids != pad_token_id"
    manifest = read_manifest(out)
    artifact = manifest["artifacts"][0]
    assert artifact["metadata"]["pad_token_id"] == manifest["tokenizer"]["pad_token_id"] == 0
    assert artifact["metadata"]["attention_mask"] == user["attention_mask"]
    # parity's feeds reach every bucket, so "passes parity" above covers each enumerated shape
    feeds = build_feeds(loaded.tokenizer, list(BUILTIN_TEXTS), 64)
    lengths = [int(row.sum()) for feed in feeds for row in feed["attention_mask"]]
    assert {choose_bucket(n, BUCKETS) for n in lengths} == set(BUCKETS)


def _neighbour_pad(tokenizer):
    """An odd id P in 2049..4095 whose neighbours P-1 and P+1 are whole words: fp16 cannot hold P, so an fp16
    comparison would take one of them for P."""
    vocab = {i: w for w, i in tokenizer.get_vocab().items()}
    for p in range(3001, 4096, 2):
        if all(vocab[q].isalpha() and len(vocab[q]) > 2 for q in (p - 1, p, p + 1)):
            return p, vocab[p - 1], vocab[p], vocab[p + 1]
    raise AssertionError("no word triple found")


def test_texts_with_the_pad_ids_neighbours_but_not_the_pad_id(built, tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "mil")
    # the default pad id 0: its neighbour 1 ([unused0]) in a text is a token, not padding
    loaded, out = built("bert", "feature-extraction", ["fp16"], coreml_target="iOS18")
    ids = np.array([[101, 1, 2057, 1, 102, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 1, 0, 0]])
    with MilRunner(out / "coreml/fp16/model.mlpackage", buckets=BUCKETS, task=loaded.task) as runner:
        got = runner.infer({"input_ids": ids, "attention_mask": mask})["embedding"][0]
    want = reference_outputs(loaded.model, loaded.task, torch.tensor(ids), torch.tensor(mask))["embedding"][0]
    assert float(np.dot(got, want.numpy())) > 0.999

    # a pad id fp16 cannot represent, and a text made of its two neighbours
    loaded = load_model(str(tiny_models("bert", "feature-extraction")))
    pad, before, pad_word, after = _neighbour_pad(loaded.tokenizer)
    loaded.tokenizer.pad_token = pad_word
    assert loaded.tokenizer.pad_token_id == pad and float(np.float16(pad)) in (pad - 1, pad + 1)
    text = f"{before} {after} {before} {after}"
    tokens = loaded.tokenizer(text)["input_ids"]
    assert {pad - 1, pad + 1} <= set(tokens) and pad not in tokens
    out = tmp_path / "out"
    export_model(loaded, ["coreml"], ["fp16", "int8"], out, ExportSettings(sequence_buckets=[16], max_length=16))
    artifact = _artifacts(out)["coreml-fp16"]
    assert artifact.metadata["pad_token_id"] == pad
    program = load_program(out / artifact.path)
    (compare,) = [op for op in program.ops if op.type == "not_equal"]
    assert program.inputs["input_ids"] == "int32" and int(compare.inputs["y"]) == pad, "ids are compared in int32"
    texts = tmp_path / "texts.txt"
    texts.write_text(f"{text}\n{after} {before}\n{before}\n", encoding="utf-8")
    report = check_parity(out, loaded=loaded, texts_file=texts)  # padded batches hold the pad id P
    assert report.passed, _failures(report)
    with MilRunner(out / artifact.path, buckets=[16], task=loaded.task) as runner:
        with pytest.raises(PocketbertError, match=f"is the pad id {pad}") as err:
            runner.infer({"input_ids": np.array([[101, pad, 102]]), "attention_mask": np.ones((1, 3), np.int64)})
    assert "\n" not in str(err.value)


def test_static_placement_flags_a_range_package_and_is_labelled_a_check(built, monkeypatch):
    monkeypatch.setenv("POCKETBERT_COREML_RUNNER", "mil")
    loaded, out = built("distilbert", "feature-extraction", ["fp16", "fp32"], coreml_shapes="range")
    artifacts = _artifacts(out)
    fp16 = artifacts["coreml-fp16"]
    assert [i.name for i in fp16.inputs] == ["input_ids", "attention_mask"] and fp16.sequence_buckets is None
    assert fp16.metadata["shapes"] == {"kind": "range", "batch": [1, 64], "sequence": [1, 64]}
    assert fp16.metadata["attention_mask"] == "input" and "pad_token_id" not in fp16.metadata
    result = placement(fp16, out)
    assert result == fp16.metadata["placement"], "the export records what the report shows"
    if not coreml_available():
        assert result["source"] == "static-check" and result["from_core_ml"] is False
        assert "not a measurement" in result["label"]
        checks = {c["check"]: c for c in result["checks"]}
        assert (
            checks["flexible shapes"]["status"] == "flag" and "range (RangeDim)" in checks["flexible shapes"]["found"]
        )
        assert "724930" in checks["flexible shapes"]["source"] and all(c["source"] for c in result["checks"])
        assert checks["data format"]["status"] == "advice" and checks["compute precision"]["status"] == "pass"
        assert result["verdict"] == "flagged: flexible shapes" and summary(result).startswith("static check:")
        header, rows, flagged, notes = report_table(read_manifest(out), out)
        assert sorted((rows[i][0], rows[i][4]) for i in flagged) == [
            ("coreml-fp16", "flexible shapes"),
            ("coreml-fp32", "compute precision"),
            ("coreml-fp32", "flexible shapes"),
        ]
        assert all(rows[i][1:4] == ["standard", "range", "static check"] for i in flagged)
        assert len(header) == len(rows[0]) and notes == [f"static-check: {result['label']}."]
        from pocketbert.report.write import build_report

        blocks = build_report(out, read_manifest(out), None, None, [], {})
        heading = next(i for i, b in enumerate(blocks) if getattr(b, "text", None) == "Core ML placement")
        assert blocks[heading + 2].rows == rows and blocks[heading + 2].fail_rows == flagged
        fp32 = placement(artifacts["coreml-fp32"], out)
        assert {c["check"]: c["status"] for c in fp32["checks"]}["compute precision"] == "flag"
        _, enumerated = built(
            "distilbert", "feature-extraction", ["fp16", "int8"], coreml_layout="ane", coreml_target="iOS17"
        )
        ane = placement(_artifacts(enumerated)["coreml-int8"], enumerated)
        assert ane["verdict"] == "no documented blocker found"
    with MilRunner(out / fp16.path) as runner:  # ranges still take batches of any length
        feed = {"input_ids": np.full((3, 7), 1000), "attention_mask": np.ones((3, 7), np.int64)}
        assert runner.infer(feed)["last_hidden_state"].shape == (3, 7, 32)
    report = check_parity(out, loaded=loaded)
    assert report.passed, _failures(report)


def test_refusals_are_one_line_and_early(tiny_models, tmp_path, capsys):
    model = str(tiny_models("bert", "sequence-classification"))
    out = tmp_path / "out"
    code = main(
        [
            "export",
            model,
            "--format",
            "coreml",
            "--precision",
            "fp16",
            "-o",
            str(out),
            "--buckets",
            "16",
            "--coreml-layout",
            "ane",
            "--coreml-shapes",
            "range",
        ]
    )
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2 and not out.exists() and len(errors) == 1 and "needs enumerated shapes" in errors[0]
    with pytest.raises(SystemExit):
        main(["export", model, "--format", "coreml", "-o", str(out), "--coreml-layout", "sideways"])
    loaded = load_model(model)
    loaded.tokenizer.pad_token = None
    with pytest.raises(PocketbertError, match="no pad token"):
        export_model(loaded, ["coreml"], ["fp16"], out, ExportSettings(sequence_buckets=[16], max_length=16))
    assert not out.exists()


@pytest.mark.parametrize("arch", ARCHS)
def test_ane_modules_keep_the_checkpoint_names_and_compute_what_it_computes(tiny_models, arch):
    loaded = load_model(str(tiny_models(arch, "sequence-classification")))
    linear = torch.nn.Linear(8, 3)
    conv = PointwiseConv(8, 3)
    conv.load_state_dict(linear.state_dict())  # the load hook reshapes (out, in) to (out, in, 1, 1)
    x = torch.randn(2, 8, 1, 5)  # (B, C, 1, S)
    torch.testing.assert_close(conv(x), linear(x.squeeze(2).transpose(1, 2)).transpose(1, 2).unsqueeze(2))
    norm = torch.nn.LayerNorm(8, eps=1e-12)
    torch.nn.init.normal_(norm.weight)
    channel = ChannelLayerNorm.from_layer_norm(norm)
    assert channel.eps == 2.0**-24, "an epsilon below fp16's smallest value is raised to it"
    torch.testing.assert_close(channel(x), norm(x.squeeze(2).transpose(1, 2)).transpose(1, 2).unsqueeze(2))
    copy = load_model(str(tiny_models(arch, "sequence-classification"))).model
    before = {k: tuple(v.shape) for k, v in copy.state_dict().items()}
    swap_for_ane(copy)
    after = {k: tuple(v.shape) for k, v in copy.state_dict().items()}
    assert after.keys() == before.keys()
    assert all(after[k] == (*before[k], 1, 1) for k in before if len(before[k]) == 2 and "embeddings" not in k)
    model = AneDeploymentModel(loaded.model, Task.SEQUENCE_CLASSIFICATION).eval()
    enc = loaded.tokenizer(
        ["a short one", "a much longer text about paris and france"], padding=True, return_tensors="pt"
    )
    with torch.inference_mode():
        (logits,) = model(enc["input_ids"], enc["attention_mask"])
    ref = reference_outputs(loaded.model, loaded.task, enc["input_ids"], enc["attention_mask"])["logits"]
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-5)


def test_layer_probes_of_the_ane_layout_are_token_major(built):
    loaded, out = built("bert", "token-classification", ["fp16", "int8"], coreml_layout="ane", coreml_target="iOS17")
    feed = {"input_ids": np.array([[101, 2057, 2003, 102]]), "attention_mask": np.ones((1, 4), np.int64)}
    with MilProbeRunner(out / "coreml/fp16/model.mlpackage", buckets=BUCKETS, task=loaded.task) as runner:
        result = runner.infer(feed)
    probes = [k for k in result if k.startswith("probe_")]
    assert len(probes) == 5 and all(result[k].shape == (1, 4, 32) for k in probes)


@pytest.mark.skipif(not coreml_available(), reason="Core ML runs only on macOS; the MIL runner stands in elsewhere")
def test_ane_layout_on_core_ml_and_its_compute_plan_on_macos(built):
    loaded, out = built(
        "distilbert", "feature-extraction", ["fp16", "int8"], coreml_layout="ane", coreml_target="iOS17"
    )
    feed = {"input_ids": np.array([[101, 7592, 2088, 102]]), "attention_mask": np.ones((1, 4), np.int64)}
    for precision in ("fp16", "int8"):
        path = out / f"coreml/{precision}/model.mlpackage"
        shapes = {"buckets": BUCKETS, "task": loaded.task}
        with MilRunner(path, **shapes) as mil, CoreMLRunner(path, compute_units="CPU_AND_NE", **shapes) as coreml:
            a, b = mil.infer(feed)["embedding"], coreml.infer(feed)["embedding"]
        assert float(np.dot(a.ravel(), b.ravel())) > 0.999
        plan = placement(_artifacts(out)[f"coreml-{precision}"], out)
        assert plan["source"] == "compute-plan" and plan["from_core_ml"] and sum(plan["by_device"].values()) > 0
