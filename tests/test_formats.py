"""The format seam: the registry, the protocol, the option table, the typed scheme, the runner base's checks, and a
fifth format added from one folder only (a TorchScript format written here) that export, parity, bench planning,
the CLI, the run config and the bundler all pick up."""

from __future__ import annotations

import argparse
import sys
import textwrap

import numpy as np
import pytest

from pocketbert.cli import build_parser, main
from pocketbert.core.artifact import ExportSettings
from pocketbert.core.runner import Runner
from pocketbert.errors import PocketbertError
from pocketbert.exporting.options import export_options, settings_from
from pocketbert.formats import _registry, all_formats, format_names, get_format
from pocketbert.formats.base import Format, QuantScheme

BUILTIN = ["onnx", "tflite", "coreml", "executorch"]


def test_every_builtin_format_is_registered_and_complete():
    assert format_names() == BUILTIN
    for fmt in all_formats():
        assert isinstance(fmt, Format)
        for attr in ("name", "title", "extra", "precisions", "file_name", "runtime", "runtime_label"):
            assert getattr(fmt, attr), (fmt, attr)
        assert fmt.platforms and set(fmt.platforms) <= {"android", "ios"}
        for method in ("convert", "write", "make_runner"):
            assert getattr(type(fmt), method) is not getattr(Format, method), (fmt, method)
    assert get_format("coreml").float_precision == "fp16"
    with pytest.raises(PocketbertError, match="unknown format 'tensorrt'; valid: onnx, tflite, coreml, executorch"):
        get_format("tensorrt")


def test_scheme_names_come_from_one_place():
    assert QuantScheme("none").name == "none"
    assert QuantScheme("dynamic").name == "dynamic-per-channel"
    assert QuantScheme("dynamic", fused=True, mixed=True).name == "dynamic-per-channel-fused-mixed"
    assert QuantScheme("static", qdq=True).name == "static-qdq-per-channel"
    assert QuantScheme("w8", mixed=True).name == "w8-per-channel-mixed"
    assert QuantScheme("w8a8").calibrated and QuantScheme("static").calibrated
    assert QuantScheme("w8").weight_only and not QuantScheme("static").weight_only
    settings = ExportSettings(int8_scheme="static")
    assert get_format("onnx").scheme_for("int8", settings).name == "static-qdq-per-channel"
    assert get_format("coreml").scheme_for("int8", settings).name == "w8a8-per-channel"
    assert get_format("tflite").scheme_for("int8-dynamic", settings).name == "dynamic-per-channel"


def test_one_option_table_makes_the_flags_of_export_and_run_and_the_config_keys(tmp_path, capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("export", "run"):
        flags = {s for action in sub.choices[command]._actions for s in action.option_strings}
        for option in export_options():
            assert option.flag in flags, (command, option.flag)
    config = tmp_path / "pocketbert.toml"
    config.write_text('onnx_int8_weights = "s8"\nexecutorch_shapes = "dynamic"\n')
    assert main(["run", "--config", str(config), "--print-config", "--coreml-target", "iOS18"]) == 0
    text = capsys.readouterr().out
    assert 'onnx_int8_weights = "s8"' in text and 'executorch_shapes = "dynamic"' in text
    assert 'coreml_target = "iOS18"' in text and 'formats = ["onnx", "tflite", "coreml", "executorch"]' in text
    config.write_text('executorch_shapes = "ragged"\n')
    assert main(["run", "--config", str(config), "--print-config"]) == 2
    assert "executorch_shapes 'ragged' is not valid; valid: buckets, dynamic" in capsys.readouterr().err


def test_settings_of_export_and_run_are_built_by_one_function():
    from pocketbert.run.config import load_config
    from pocketbert.run.job import export_settings

    values = {"buckets": [16, 64], "onnx_int8_weights": "s7", "coreml_target": "iOS17", "budget": "cosine>=0.99"}
    from_run = export_settings(load_config(None, values))
    assert from_run == settings_from(values)
    assert from_run.max_length == 64 and from_run.onnx_int8_weights == "s7" and from_run.int8_budget == "cosine>=0.99"
    assert settings_from({}).get(get_format("onnx").options[0]) == 18  # a format option not given: its default
    with pytest.raises(PocketbertError, match="opset must be at least 17, got 13"):
        settings_from({"opset": 13})


class _Echo(Runner):
    def infer_impl(self, feed):
        return {"embedding": np.zeros((len(feed["input_ids"]), 2), np.float32)}


@pytest.mark.parametrize(
    "feed, message",
    [
        ({"input_ids": np.ones((1, 4), np.int64)}, "the feed lacks attention_mask"),
        ({"input_ids": np.ones((1, 4), np.int64), "attention_mask": np.ones((1, 3), np.int64)}, "one (batch, seq"),
        ({"input_ids": np.ones(4, np.int64), "attention_mask": np.ones(4, np.int64)}, "one (batch, seq"),
        ({"input_ids": np.ones((1, 4), np.float32), "attention_mask": np.ones((1, 4), np.int64)}, "integer token"),
    ],
)
def test_the_runner_base_checks_every_feed_before_the_runtime_sees_it(feed, message):
    runner = _Echo("echo")
    with pytest.raises(PocketbertError, match=message.replace("(", r"\(")):
        runner.infer(feed)
    assert not runner.loaded, "a refused feed loads nothing"
    ok = {"input_ids": np.ones((2, 4), np.int64), "attention_mask": np.ones((2, 4), np.int64)}
    assert runner.infer(ok)["embedding"].shape == (2, 2) and runner.loaded


FIFTH = '''
"""TorchScript: a format written for the seam test, in one folder."""
from pathlib import Path

from pocketbert.core.runner import Runner, as_float32
from pocketbert.formats.base import Built, Format


class _ScriptRunner(Runner):
    runtime = "torch"

    def __init__(self, path, name="torchscript"):
        super().__init__(name)
        self.path = Path(path)

    def load_impl(self):
        import torch

        self.module = torch.jit.load(str(self.path))

    def infer_impl(self, feed):
        import torch

        ids, mask = (torch.as_tensor(feed[k]).long() for k in ("input_ids", "attention_mask"))
        with torch.inference_mode():
            outs = self.module(ids, mask)
        return as_float32({n: t.numpy() for n, t in zip(self.names, outs)})


class TorchScriptFormat(Format):
    name = "torchscript"
    title = "TorchScript"
    extra = "torchscript"
    requires = ("torch",)
    precisions = ("fp32",)
    file_name = "model.pt"
    runtime = "torch"
    runtime_label = "torchscript"
    platforms = ("android",)
    app_preference = 99

    def convert(self, ctx, scheme):
        import torch

        ids, mask = ctx.sample_inputs(batch=1, seq=8)
        return torch.jit.trace(ctx.wrapper().eval(), (ids, mask), check_trace=False)

    def write(self, ctx, base, precision, scheme, mixed, out_dir, rel):
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        base.save(str(out_dir / rel))
        return Built(
            files=[str(rel)],
            inputs=ctx.input_infos("int64", ["batch", "sequence"]),
            outputs=ctx.output_infos({"B": "batch", "S": "sequence", **ctx.dims()}),
        )

    def make_runner(self, artifact, out_dir, threads=None):
        runner = _ScriptRunner(out_dir / artifact.path, artifact.name)
        runner.names = [o.name for o in artifact.outputs]
        return runner


FORMAT = TorchScriptFormat()
'''


@pytest.fixture()
def fifth_format(tmp_path, monkeypatch):
    import pocketbert.formats as formats

    folder = tmp_path / "extra" / "torchscript"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent(FIFTH))
    monkeypatch.setattr(formats, "__path__", [*formats.__path__, str(tmp_path / "extra")])
    _registry.cache_clear()
    yield get_format("torchscript")
    _registry.cache_clear()
    sys.modules.pop("pocketbert.formats.torchscript", None)


def test_a_fifth_format_from_one_folder_reaches_export_parity_bench_cli_config_and_bundle(
    fifth_format, tiny_models, tmp_path, capsys
):
    from pocketbert.bundle.bundler import app_formats
    from pocketbert.core.artifact import read_manifest
    from pocketbert.runtime_bench.bench import plan_specs

    assert format_names()[-1] == "torchscript" and "torchscript" in app_formats("android")
    out = tmp_path / "out"
    model = str(tiny_models("bert", "sequence-classification"))
    assert main(["export", model, "--format", "torchscript,onnx", "--precision", "fp32", "-o", str(out)]) == 0
    manifest = read_manifest(out)
    assert [a["name"] for a in manifest["artifacts"]] == ["torchscript-fp32", "onnx-fp32"]
    assert main(["parity", str(out)]) == 0
    assert "torchscript-fp32" in capsys.readouterr().out
    specs = plan_specs(manifest, out, "random:bert-base-uncased")
    assert [s.runtime for s in specs if s.artifact == "torchscript-fp32"] == ["torchscript"]
    assert main(["run", "--format", "torchscript", "--print-config"]) == 0
    assert 'formats = ["torchscript"]' in capsys.readouterr().out
