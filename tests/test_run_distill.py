"""``pocketbert run`` with a ``[distill]`` table: distil, export, parity, bench against the teacher, resume logic."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from pocketbert.cli import main
from pocketbert.core.artifact import sha256_of
from pocketbert.runtime_bench.fidelity import agreement_note, agreement_text

WORDS = "the a movie film plot actor scene was very not music story city night day friend house river".split()


def _config(path: Path, teacher: Path, data: Path, **distill) -> Path:
    values = {"teacher": str(teacher), "data": str(data), "layers": 1, "max_steps": 4, "eval_every": 4}
    values |= {"batch_size": 8, "eval_fraction": 0.25, "device": "cpu", "threads": 1, **distill}
    table = "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
    head = 'formats = ["onnx"]\nprecisions = ["fp32"]\n\n[bench]\nseq = [16]\nrepeats = 2\nthreads = 1\n'
    path.write_text(f"{head}\n[distill]\n{table}\n")
    return path


@pytest.fixture(scope="module")
def distilled(tiny_models, tmp_path_factory):
    """One run from the tiny BERT feature extractor as teacher: (exit code, OUT, config file, teacher)."""
    root = tmp_path_factory.mktemp("run-distill")
    rng = random.Random(0)
    data = root / "texts.txt"
    data.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(48)))
    teacher = tiny_models("bert", "feature-extraction")
    config = _config(root / "pocketbert.toml", teacher, data)
    out = root / "out"
    code = main(["run", "--config", str(config), "-o", str(out), "--quiet"])
    return code, out, config, teacher


def _agreement_column(markdown: str, runner: str, header: str = "agreement with baseline") -> list[str]:
    """The cells of ``header`` in every row of ``runner`` across the Markdown tables that have that column."""
    cells, column = [], None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            column = None
            continue
        parts = [p.strip() for p in line.strip("|").split("|")]
        if header in parts:
            column = parts.index(header)
        elif column is not None and parts[0] == runner:
            cells.append(parts[column])
    return cells


def test_run_distils_then_ships_the_student_against_its_teacher(distilled, capsys):
    code, out, _, teacher = distilled
    assert code == 0
    student = (out / "student").resolve()
    assert (student / "model.safetensors").is_file() and (student / "distill" / "summary.json").is_file()
    manifest_text = (out / "manifest.json").read_text()
    assert ".building-" not in manifest_text and ".staging-" not in manifest_text
    manifest = json.loads(manifest_text)
    assert manifest["model"]["source"] == str(student)
    assert manifest["model"]["origin"] == f"local checkpoint {student}"
    assert json.loads((student / "config.json").read_text())["num_hidden_layers"] == 1
    bench = json.loads((out / "report" / "bench.json").read_text())
    assert bench["baseline"]["source"] == str(teacher)
    fidelity = bench["fidelity_vs_baseline"]
    assert fidelity["meaningful"] and fidelity["metric"] == "embedding_cosine_mean"
    assert set(fidelity["values"]) >= {"pytorch-fp32", "onnx-fp32"}
    spearman = fidelity["extra"]["onnx-fp32"]["embedding_spearman"]
    assert -1.0 <= spearman <= 1.0
    assert fidelity["extra"]["pytorch-fp32"]["embedding_spearman"] == pytest.approx(spearman, abs=1e-3)
    for name in ("report/report.md", "report/bench.md"):
        cells = _agreement_column((out / name).read_text(), "onnx-fp32")
        assert cells, name
        for cell in cells:
            numbers = [float(x) for x in re.findall(r"-?\d+\.\d+", cell)]
            assert cell.startswith("cosine mean") and "Spearman" in cell and len(numbers) == 2, cell
            assert numbers[0] == pytest.approx(fidelity["values"]["onnx-fp32"], abs=1e-4)
            assert numbers[1] == pytest.approx(spearman, abs=1e-4)
    capsys.readouterr()
    assert main(["parity", str(out)]) == 0  # the manifest names the student where it now is


def test_a_second_run_skips_an_up_to_date_student_and_a_changed_setting_retrains(distilled, monkeypatch, capsys):
    import pocketbert.distill.job as job

    code, out, config, teacher = distilled
    assert code == 0
    weights = out / "student" / "model.safetensors"
    before = sha256_of([weights])
    capsys.readouterr()

    def no_training(*args, **kwargs):
        raise AssertionError("the up-to-date student was trained again")

    with monkeypatch.context() as patch:
        patch.setattr(job, "run_distill", no_training)
        assert main(["run", "--config", str(config), "-o", str(out), "--no-bench", "--json", "--quiet"]) == 0
    stages = {s["name"]: s for s in json.loads(capsys.readouterr().out)["stages"]}
    assert stages["distill"]["status"] == "skipped" and "up to date" in stages["distill"]["note"]
    assert sha256_of([weights]) == before
    assert json.loads((out / "manifest.json").read_text())["model"]["source"] == str((out / "student").resolve())

    data = Path(json.loads((out / "student" / "distill" / "summary.json").read_text())["settings"]["data"])
    _config(config, teacher, data, max_steps=6)
    assert main(["run", "--config", str(config), "-o", str(out), "--no-bench", "--json", "--quiet"]) == 0
    stages = {s["name"]: s for s in json.loads(capsys.readouterr().out)["stages"]}
    assert stages["distill"]["status"] == "ok"
    assert "retrained (max_steps: 4 then, 6 now)" in stages["distill"]["note"]
    summary = json.loads((out / "student" / "distill" / "summary.json").read_text())
    assert summary["training"]["steps"] == 6
    _config(config, teacher, data)  # back to the module's settings for the other tests


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("layer = 1", "unknown config key distill.'layer'; valid: teacher, data,"),
        ('layers = "1"', "config key distill.layers must be int"),
        ('output = "x"', "config key distill.output is set by pocketbert run"),
        ("temperature = 0", "temperature must be a positive number"),
        ("layers = 1", "[distill] needs data = FILE"),
    ],
)
def test_bad_distill_table_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch, table, message):
    import pocketbert.run.job as job

    monkeypatch.setattr(job, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    config = tmp_path / "pocketbert.toml"
    data = "" if "needs data" in message else 'data = "texts.txt"\n'
    config.write_text(f'formats = ["onnx"]\n[distill]\n{data}{table}\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["run", "--config", str(config), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("pocketbert run: error: "), err
    assert message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_print_config_shows_the_distill_table(tmp_path, capsys):
    config = tmp_path / "pocketbert.toml"
    config.write_text('[distill]\ndata = "texts.txt"\nlayers = 2\n')
    assert main(["run", "--config", str(config), "-o", "o", "--print-config"]) == 0
    text = capsys.readouterr().out
    section = text[text.index("[distill]") :]
    assert 'data = "texts.txt"' in section and "layers = 2" in section and "temperature = 2.0" in section
    assert "# the student: o/student" in section and "\noutput =" not in section and "resume" not in section


def test_agreement_cell_and_note_say_why_when_not_meaningful():
    random_weights = {"meaningful": False, "metric": "top1_agreement", "note": "agreement not meaningful (x)"}
    assert agreement_text({**random_weights, "values": {}}, "onnx-int8") == "n/a"
    assert agreement_note(random_weights) == "Agreement with the baseline: agreement not meaningful (x)."
    real = {"meaningful": True, "metric": "top1_agreement", "note": None, "values": {"onnx-int8": 0.75}, "extra": {}}
    assert agreement_text(real, "onnx-int8") == "0.7500"
    assert agreement_text(real, "baseline") == "–"
