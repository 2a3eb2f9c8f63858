"""The latency harness, smoke only: tiny models, --quick, one thread. No test asserts anything about timing."""

from __future__ import annotations

import json
import shutil
import sys

import jsonschema
import numpy as np
import pytest

from pocketbert.cli import main
from pocketbert.core.artifact import read_manifest
from pocketbert.errors import PocketbertError
from pocketbert.exporting.pipeline import export_model
from pocketbert.loading import load_model
from pocketbert.parity.data import BUILTIN_TEXTS, build_feeds
from pocketbert.parity.torch_runner import TorchRunner
from pocketbert.runtime_bench.bench import plan_specs
from pocketbert.runtime_bench.fidelity import RANDOM_NOTE, agreement, agreement_applicable
from pocketbert.runtime_bench.inputs import make_feed
from pocketbert.runtime_bench.report import render_markdown, validate
from pocketbert.runtime_bench.rules import Rule, check_names, evaluate, load_rules
from pocketbert.runtime_bench.schedule import round_order, run_rounds
from pocketbert.runtime_bench.stats import paired_ratio, summarize
from pocketbert.runtime_bench.worker import WorkerError
from pocketbert.tasks import Task
from tests.tiny import save_tiny

STUDENT_RUNNERS = ["pytorch-fp32", "pytorch-int8", "onnx-fp32", "onnx-int8"]


@pytest.fixture(scope="module")
def pair(tiny_models, tmp_path_factory):
    """A tiny DistilBERT student exported to ONNX fp32+int8, and a tiny BERT 'teacher' with the same labels."""
    root = tmp_path_factory.mktemp("bench")
    student = load_model(str(tiny_models("distilbert", "sequence-classification")))
    out = root / "out"
    export_model(student, ["onnx"], ["fp32", "int8"], out)
    baseline = save_tiny(root / "bert", "bert", "sequence-classification", seed=1)
    return out, baseline


@pytest.fixture(scope="module")
def quick_run(pair, tmp_path_factory):
    """One real ``pocketbert bench --quick`` with an unreachable ``--check`` rule; (exit code, report dir)."""
    out, baseline = pair
    report_dir = tmp_path_factory.mktemp("report")
    rules = report_dir.parent / "unreachable.toml"
    rules.write_text('[[rule]]\nrunner = "onnx-int8"\nseq = 16\nmin_speedup = 1e9\n')
    argv = ["bench", str(out), "--baseline", str(baseline), "--quick", "--threads", "1", "--quiet"]
    code = main([*argv, "--report", str(report_dir), "--check", str(rules)])
    return code, report_dir


def test_quick_bench_writes_json_markdown_and_png(quick_run):
    code, report_dir = quick_run
    report = json.loads((report_dir / "bench.json").read_text())
    assert report["schema_version"] == 1
    validate(report)
    broken = json.loads(json.dumps(report))
    broken["cells"][0].pop("speedup_vs_baseline")
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    assert report["settings"]["seqs"] == [16, 32] and report["settings"]["repeats"] == 3
    assert report["settings"]["threads"] == 1 and report["settings"]["settle"] == 1
    assert [r["name"] for r in report["runners"]] == ["baseline", *STUDENT_RUNNERS]
    assert all(r["status"] == "ok" for r in report["runners"]), [(r["name"], r["error"]) for r in report["runners"]]
    for row in report["runners"]:
        assert row["peak_rss_bytes"] >= row["idle_rss_bytes"] > 0
        assert row["size_bytes"] > row["compressed_bytes"] > 0
        assert row["first_inference_s"] > row["load_s"] > 0
    assert len(report["cells"]) == 5 * 2 and all(c["status"] == "ok" for c in report["cells"])
    assert {"cpu_model", "cpu_flags", "logical_cores", "libraries"} <= set(report["machine"])
    markdown = (report_dir / "bench.md").read_text()
    for name in ["baseline", *STUDENT_RUNNERS]:
        assert f"| {name} | 16 |" in markdown
    for png in ("bench_latency.png", "bench_tradeoff.png"):
        assert (report_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert code == 1  # the unreachable --check rule


def test_ratios_and_statistics_come_from_the_measured_samples(quick_run):
    _, report_dir = quick_run
    report = json.loads((report_dir / "bench.json").read_text())
    cells = {(c["runner"], c["seq"]): c for c in report["cells"]}
    for (name, seq), cell in cells.items():
        samples = np.asarray(cell["samples_ms"])
        assert samples.shape == (3, 1)
        assert cell["median_ms"] == pytest.approx(np.median(samples), rel=1e-6)
        assert cell["p90_ms"] == pytest.approx(np.percentile(samples, 90), rel=1e-6)
        assert cell["ci_low_ms"] <= cell["median_ms"] <= cell["ci_high_ms"]
        for ref, key in (("baseline", "speedup_vs_baseline"), ("pytorch-fp32", "speedup_vs_student_fp32")):
            expected = np.median(cells[(ref, seq)]["samples_ms"]) / np.median(samples)
            ratio = cell[key]
            assert ratio["value"] == pytest.approx(expected, rel=1e-6), (name, seq, key)
            assert ratio["ci_low"] <= ratio["value"] * (1 + 1e-9) and ratio["value"] <= ratio["ci_high"] * (1 + 1e-9)


def test_agreement_with_a_real_baseline_is_measured_on_the_parity_texts(quick_run, pair):
    out, baseline = pair
    _, report_dir = quick_run
    fidelity = json.loads((report_dir / "bench.json").read_text())["fidelity_vs_baseline"]
    assert fidelity["meaningful"] and fidelity["metric"] == "top1_agreement"
    assert set(fidelity["values"]) == set(STUDENT_RUNNERS)
    # recompute the student fp32's agreement with BERT in-process, independently of the workers
    teacher = load_model(str(baseline))
    manifest = read_manifest(out)
    student = load_model(manifest["model"]["source"])
    feeds = build_feeds(student.tokenizer, list(BUILTIN_TEXTS), manifest["max_length"])
    t, s = TorchRunner(teacher), TorchRunner(student)
    expected = agreement(Task.SEQUENCE_CLASSIFICATION, feeds, [t.infer(f) for f in feeds], [s.infer(f) for f in feeds])
    assert fidelity["values"]["pytorch-fp32"] == pytest.approx(expected)
    assert fidelity["values"]["onnx-fp32"] == pytest.approx(expected)  # same model, other runtime


def test_unreachable_check_rule_fails_and_a_trivial_one_passes(quick_run, capsys):
    _, report_dir = quick_run
    report = json.loads((report_dir / "bench.json").read_text())
    results = evaluate([Rule("onnx-int8", 1e9, seq=16), Rule("onnx-int8", 1e-9, vs="pytorch-int8")], report)
    assert [r.passed for r in results] == [False, True, True]
    assert results[0].value == pytest.approx(report["cells"][-2]["speedup_vs_baseline"]["value"])
    missing = evaluate([Rule("onnx-int8", 1.0, seq=64)], report)
    assert not missing[0].passed and "not measured" in missing[0].detail


def test_crashing_runner_is_reported_and_the_others_still_measured(pair, tmp_path, capsys):
    from tests.test_integrity import reseal

    out, baseline = pair
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "onnx" / "int8" / "model.onnx").write_bytes(b"not an onnx model")
    reseal(broken)  # broken at export, not damaged after it: the checksums match and the runner must crash
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["artifacts"][0]["sequence_buckets"] = [16]  # as if onnx-fp32 had static shapes up to 16 tokens
    (broken / "manifest.json").write_text(json.dumps(manifest))
    report_dir = tmp_path / "report"
    argv = ["bench", str(broken), "--baseline", str(baseline), "--seq", "16,32", "--repeats", "2", "--warmup", "0"]
    code = main([*argv, "--threads", "1", "--quiet", "--report", str(report_dir)])
    assert code == 1
    report = json.loads((report_dir / "bench.json").read_text())
    status = {r["name"]: r for r in report["runners"]}
    assert status["onnx-int8"]["status"] == "failed" and "cannot load" in status["onnx-int8"]["error"]
    assert all(status[n]["status"] == "ok" for n in ("baseline", "pytorch-fp32", "pytorch-int8", "onnx-fp32"))
    cells = {(c["runner"], c["seq"]): c for c in report["cells"]}
    assert cells[("onnx-int8", 16)]["status"] == "failed" and cells[("onnx-fp32", 16)]["status"] == "ok"
    assert cells[("onnx-fp32", 32)]["status"] == "not-applicable"
    assert "largest static bucket (16)" in cells[("onnx-fp32", 32)]["reason"]
    assert all(cells[(n, s)]["status"] == "ok" for n in ("baseline", "pytorch-int8") for s in (16, 32))
    markdown = (report_dir / "bench.md").read_text()
    assert "| onnx-int8 | 16 | **failed**" in markdown and "| onnx-fp32 | 32 | **not-applicable**" in markdown


def test_a_worker_dying_mid_run_drops_only_that_runner():
    calls = []

    def timer(name, die_at=None):
        def run(seq, k):
            calls.append(name)
            if die_at is not None and calls.count(name) >= die_at:
                raise WorkerError("worker exited with code -11")
            return [0.001] * k

        return run

    timers = {"a": timer("a"), "b": timer("b", die_at=2), "c": timer("c")}
    cells = {"a": [16], "b": [16], "c": [16]}
    timed, crashed = run_rounds(timers, cells, [16], repeats=3, iterations=2)
    assert crashed == {"b": "worker exited with code -11"}
    assert timed[("a", 16)].array().shape == (3, 2) and timed[("c", 16)].array().shape == (3, 2)
    assert timed[("b", 16)].samples == [] and timed[("b", 16)].error
    assert calls[:3] == ["a", "b", "c"] and calls[3:5] == ["b", "c"]  # round 2 starts one runner later


def test_each_visit_settles_untimed_before_timing():
    from pocketbert.runtime_bench.worker import _Child

    class Counting:
        calls = 0

        def infer(self, feed):
            Counting.calls += 1

    child = _Child()
    child.runner, child.feeds = Counting(), {16: {}}
    assert len(child.time(16, k=3, settle=2)) == 3 and Counting.calls == 5
    assert len(child.time(16, k=1)) == 1 and Counting.calls == 6


def test_round_order_rotates_so_every_runner_leads_once():
    names = ["a", "b", "c"]
    assert [round_order(names, r) for r in range(4)] == [names, ["b", "c", "a"], ["c", "a", "b"], names]


def test_stats_on_known_samples():
    samples = np.arange(1, 101, dtype=np.float64).reshape(50, 2) / 1000.0
    stats = summarize(samples, batch=2, seq=8)
    assert stats.median_ms == pytest.approx(50.5) and stats.p90_ms == pytest.approx(90.1)
    assert stats.iqr_ms == pytest.approx(49.5) and stats.n == 100
    assert stats.ci_low_ms < 50.5 < stats.ci_high_ms
    assert stats.sequences_per_s == pytest.approx(2 / 0.0505) and stats.tokens_per_s == pytest.approx(16 / 0.0505)
    noisy = samples * np.linspace(1.0, 3.0, 50)[:, None]  # round-level noise hits both runners alike
    ratio = paired_ratio(noisy * 2.0, noisy)
    assert (
        ratio.value == pytest.approx(2.0) and ratio.ci_low == pytest.approx(2.0) and ratio.ci_high == pytest.approx(2.0)
    )
    with pytest.raises(ValueError):
        paired_ratio(samples, samples[:10])


def test_feeds_have_exact_lengths_of_real_text_and_padding_in_batches(tiny_models):
    tokenizer = load_model(str(tiny_models("distilbert", "sequence-classification"))).tokenizer
    for seq in (2, 16, 200):
        feed = make_feed(tokenizer, seq, batch=3)
        ids, mask = feed["input_ids"], feed["attention_mask"]
        assert ids.shape == mask.shape == (3, seq) and ids.dtype == np.int64
        assert mask.sum(axis=1).tolist() == [seq, max(2, 3 * seq // 4), seq]
        for row, n in zip(ids, mask.sum(axis=1)):
            assert row[0] == tokenizer.cls_token_id and row[n - 1] == tokenizer.sep_token_id
            assert (row[n:] == tokenizer.pad_token_id).all()
    text = tokenizer.decode(make_feed(tokenizer, 16)["input_ids"][0], skip_special_tokens=True)
    assert text.startswith("the quick brown fox")
    with pytest.raises(PocketbertError, match="at least 2"):
        make_feed(tokenizer, 1)


def test_random_baseline_says_agreement_is_not_meaningful(quick_run):
    _, report_dir = quick_run
    student = {"random_weights": False, "task": "sequence-classification", "labels": ["a", "b"], "vocab_size": 9}
    assert agreement_applicable({**student, "random_weights": True}, student) == RANDOM_NOTE
    assert "task" in agreement_applicable({**student, "task": "feature-extraction"}, student)
    assert "labels" in agreement_applicable({**student, "labels": ["x", "y"]}, student)
    assert agreement_applicable(dict(student), student) is None
    report = json.loads((report_dir / "bench.json").read_text())
    report["fidelity_vs_baseline"] = {
        "meaningful": False,
        "metric": "top1_agreement",
        "note": RANDOM_NOTE,
        "values": {},
    }
    assert "agreement not meaningful (random weights)" in render_markdown(report)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[rule]]\nrunner = "onnx-int8"\nmax_ms = 20\n', "absolute time"),
        ('[[rule]]\nrunner = "onnx-int8"\nmin_speedup = 2\nlatency_p90 = 3\n', "absolute time"),
        ('[[rule]]\nrunner = "onnx-int8"\nmin_speedup = 2\nspeed = 3\n', "unknown key 'speed'"),
        ('[[rule]]\nrunner = "onnx-int8"\n', "needs runner and min_speedup"),
        ('[[rule]]\nrunner = "onnx-int8"\nmin_speedup = -1\n', "positive number"),
        ("[gates]\nx = 1\n", "unknown section"),
        ("[[rule]\n", "not valid TOML"),
    ],
)
def test_bad_rules_are_one_line_errors(tmp_path, body, message):
    path = tmp_path / "rules.toml"
    path.write_text(body)
    with pytest.raises(PocketbertError, match=message) as info:
        load_rules(path)
    assert "\n" not in str(info.value)


def test_rules_naming_an_unknown_runner_are_refused_before_measuring(pair):
    out, _ = pair
    names = [s.name for s in plan_specs(read_manifest(out), out, "random:bert-base-uncased")]
    assert names == ["baseline", *STUDENT_RUNNERS]
    with pytest.raises(PocketbertError, match="tflite-int8"):
        check_names([Rule("tflite-int8", 2.0)], names)


def test_bad_input_is_a_one_line_error_and_writes_nothing(pair, tmp_path, capsys):
    out, baseline = pair
    empty = tmp_path / "empty"
    empty.mkdir()
    no_artifacts = tmp_path / "none"
    shutil.copytree(out, no_artifacts)
    manifest = json.loads((no_artifacts / "manifest.json").read_text())
    manifest["artifacts"] = []
    (no_artifacts / "manifest.json").write_text(json.dumps(manifest))
    cases = [
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(empty)], "has no manifest.json"),
        ([str(no_artifacts)], "has no artifacts"),
        ([str(out), "--threads", "0"], "--threads must be at least 1"),
        ([str(out), "--seq", "16,300"], "longer than the student allows (256 positions)"),
        ([str(out), "--seq", "1"], "at least 2"),
    ]
    for args, message in cases:
        report_dir = tmp_path / "report"
        assert main(["bench", *args, "--baseline", str(baseline), "--report", str(report_dir)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not report_dir.exists()


def test_core_ml_is_not_measurable_off_macos_and_static_buckets_limit_lengths():
    from pocketbert.runtime_bench.bench import _not_measurable_here, _static_limits
    from pocketbert.runtime_bench.specs import RunnerSpec

    spec = RunnerSpec("coreml-fp16", "artifact", "student", "coreml", "fp16", out_dir=".", artifact="coreml-fp16")
    reason = _not_measurable_here(spec)
    assert (reason is None) == (sys.platform == "darwin")
    manifest = {"artifacts": [{"format": "tflite", "precision": "int8", "path": "x", "sequence_buckets": [32, 64]}]}
    assert _static_limits(manifest) == {"tflite-int8": (64, "longer than the largest static bucket (64)")}


def test_a_baseline_that_cannot_load_stops_the_run_with_one_line(pair, tmp_path, capsys):
    out, _ = pair
    report_dir = tmp_path / "report"
    missing = tmp_path / "no-such-bert"
    code = main(["bench", str(out), "--baseline", str(missing), "--quick", "--quiet", "--report", str(report_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"baseline {missing} failed: model directory {missing} does not exist" in err[0]
    assert not report_dir.exists()


def test_parity_report_supplies_fidelity_for_the_tradeoff_plot(quick_run, tmp_path):
    from pocketbert.runtime_bench.fidelity import parity_fidelity
    from pocketbert.runtime_bench.report import plot_tradeoff

    parity = {
        "task": "feature-extraction",
        "artifacts": [
            {"name": "onnx-int8", "metrics": {"embedding.cosine_min": 0.9981, "rank_spearman": 0.99}},
            {"name": "onnx-fp32", "metrics": {"rank_spearman": 1.0}},
            {"name": "tflite-int8", "metrics": {}, "error": "crashed"},
        ],
    }
    assert parity_fidelity(parity) == {
        "onnx-int8": {"metric": "embedding.cosine_min", "value": 0.9981},
        "onnx-fp32": {"metric": "rank_spearman", "value": 1.0},
    }
    assert parity_fidelity(None) == {}
    _, report_dir = quick_run
    report = json.loads((report_dir / "bench.json").read_text())
    report["fidelity_vs_baseline"]["meaningful"] = False
    report["fidelity_parity"] = parity_fidelity(parity)
    plot_tradeoff(report, tmp_path / "tradeoff.png")
    assert (tmp_path / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
