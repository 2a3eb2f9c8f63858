"""``pocketbert distill`` on tiny teachers: initialisation, learning, resume, bad input, settings."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from pocketbert.cli import main
from pocketbert.distill.config import DistillConfig, parse_distill_section
from pocketbert.distill.evaluate import PRIMARY_METRIC, selection_score
from pocketbert.distill.job import run_distill
from pocketbert.distill.student import build_student, default_layer_map, resolve_layer_map
from pocketbert.distill.train import Checkpoint
from pocketbert.errors import PocketbertError
from pocketbert.tasks import Task
from tests.tiny import tiny_config

WORDS = (
    "the a movie film plot actor scene was is very quite rather not really music story ending camera city night "
    "day friend house river road light dark old new small large red blue green"
).split()
GOOD, BAD = ("good", "great", "superb"), ("bad", "awful", "boring")
TEACHER_LAYERS = 3


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))


def keyword_texts(count: int, seed: int = 0) -> list[tuple[str, int]]:
    """Texts with a synthetic sentiment: label 0 with a GOOD word, 1 with a BAD word, 2 with neither."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        words = _sentence(rng).split()
        label = i % 3
        if label < 2:
            words.insert(rng.randrange(len(words) + 1), rng.choice(GOOD if label == 0 else BAD))
        out.append((" ".join(words), label))
    return out


def _model_class(task: str):
    import transformers

    return {
        "feature-extraction": transformers.AutoModel,
        "sequence-classification": transformers.AutoModelForSequenceClassification,
        "question-answering": transformers.AutoModelForQuestionAnswering,
        "token-classification": transformers.AutoModelForTokenClassification,
    }[task]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and the CPU is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fit_keyword_task(model, tokenizer) -> None:
    """Train a tiny sequence classifier on :func:`keyword_texts` so the teacher solves a real task."""
    data = keyword_texts(600, seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    gen = random.Random(0)
    for _ in range(200):
        batch = gen.sample(data, 32)
        enc = tokenizer([t for t, _ in batch], padding=True, return_tensors="pt")
        labels = torch.tensor([y for _, y in batch])
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=labels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    model.eval()


@pytest.fixture(scope="session")
def teachers(tmp_path_factory: pytest.TempPathFactory):
    """``teachers(arch, task) -> Path``: a 3-layer tiny teacher, saved once. The sequence classifier is trained on
    the keyword task and the feature extractor is its encoder (texts cluster by keyword class); the token
    classifier and QA model keep their random (seeded) function."""
    from pocketbert.loading import uncased_tokenizer

    cache: dict[tuple[str, str], Path] = {}

    def get(arch: str, task: str) -> Path:
        if (arch, task) not in cache:
            config = tiny_config(arch, num_labels=2 if task == "question-answering" else 3)
            if arch == "distilbert":
                config.n_layers = TEACHER_LAYERS
            else:
                config.num_hidden_layers = TEACHER_LAYERS
            torch.manual_seed(0)
            trained = task in ("sequence-classification", "feature-extraction")
            model = _model_class("sequence-classification" if trained else task).from_config(config)
            tokenizer = uncased_tokenizer(config.max_position_embeddings)
            if trained:
                _fit_keyword_task(model, tokenizer)
            if task == "feature-extraction":
                model = getattr(model, model.base_model_prefix)
            path = tmp_path_factory.mktemp(f"teacher-{arch}-{task}")
            model.save_pretrained(path)
            tokenizer.save_pretrained(path)
            cache[(arch, task)] = path
        return cache[(arch, task)]

    return get


def write_data(path: Path, task: str, count: int = 240, labels: bool = False) -> Path:
    """Training data for ``task``: plain text, or JSONL (QA pairs; labelled keyword texts)."""
    rng = random.Random(7)
    if task == "question-answering":
        rows = [{"question": f"what is the {rng.choice(WORDS)}?", "context": _sentence(rng)} for _ in range(count)]
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    elif labels:
        rows = [{"text": t, "label": ["label_a", "label_b", "label_c"][y]} for t, y in keyword_texts(count, seed=3)]
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        path.write_text("\n".join(t for t, _ in keyword_texts(count, seed=3)) + "\n")
    return path


def _config(teacher: Path, out: Path, data: Path, **values) -> DistillConfig:
    base = {
        "teacher": str(teacher),
        "output": str(out),
        "data": str(data),
        "layers": 1,
        "max_steps": 60,
        "eval_every": 20,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "eval_fraction": 0.25,
        "seed": 0,
    }
    base.update(values)
    return DistillConfig(**base)


def _layer_params(model) -> list:
    base = getattr(model, model.base_model_prefix, model)
    return list(base.transformer.layer if model.config.model_type == "distilbert" else base.encoder.layer)


def test_default_layer_map_spreads_evenly_and_keeps_ends():
    assert default_layer_map(12, 6) == [0, 2, 4, 7, 9, 11]  # Hugging Face's DistilBERT
    assert default_layer_map(6, 3) == [0, 3, 5]
    assert default_layer_map(6, 6) == list(range(6))
    assert default_layer_map(6, 1) == [0]
    assert resolve_layer_map(6, None, None) == [0, 3, 5]
    assert resolve_layer_map(6, None, [1, 4]) == [1, 4]
    for layers, layer_map, message in ((7, None, "more than"), (None, [0, 6], "layers 0..5"), (None, [2, 2], "incr")):
        with pytest.raises(PocketbertError, match=message):
            resolve_layer_map(6, layers, layer_map)


@pytest.mark.parametrize("task", [t.value for t in Task])
@pytest.mark.parametrize("arch,student_arch", [("bert", "bert"), ("distilbert", "distilbert"), ("bert", "distilbert")])
def test_student_copies_exactly_the_mapped_layers(teachers, arch, student_arch, task):
    from pocketbert.loading import load_model

    teacher = load_model(str(teachers(arch, task))).model
    layer_map = [0, 2]
    student = build_student(teacher, Task(task), layer_map, student_arch)
    assert student.config.model_type == student_arch
    t_layers, s_layers = _layer_params(teacher), _layer_params(student)
    assert len(s_layers) == 2
    t_base = getattr(teacher, teacher.base_model_prefix, teacher)
    s_base = getattr(student, student.base_model_prefix, student)
    if arch == student_arch:
        for k, t in enumerate(layer_map):
            ours, theirs = s_layers[k].state_dict(), t_layers[t].state_dict()
            assert ours.keys() == theirs.keys()
            assert all(torch.equal(ours[name], theirs[name]) for name in ours)
            other = t_layers[1].state_dict()  # the dropped layer differs from the copied ones
            assert not all(torch.equal(ours[name], other[name]) for name in ours)
        assert all(
            torch.equal(a, b)
            for a, b in zip(s_base.embeddings.state_dict().values(), t_base.embeddings.state_dict().values())
        )
    else:
        for k, t in enumerate(layer_map):
            ours, theirs = s_layers[k], t_layers[t]
            assert torch.equal(ours.attention.q_lin.weight, theirs.attention.self.query.weight)
            assert torch.equal(ours.attention.k_lin.bias, theirs.attention.self.key.bias)
            assert torch.equal(ours.attention.v_lin.weight, theirs.attention.self.value.weight)
            assert torch.equal(ours.attention.out_lin.weight, theirs.attention.output.dense.weight)
            assert torch.equal(ours.ffn.lin1.weight, theirs.intermediate.dense.weight)
            assert torch.equal(ours.ffn.lin2.weight, theirs.output.dense.weight)
            assert torch.equal(ours.output_layer_norm.weight, theirs.output.LayerNorm.weight)
        folded = t_base.embeddings.position_embeddings.weight + t_base.embeddings.token_type_embeddings.weight[0]
        assert torch.equal(s_base.embeddings.position_embeddings.weight, folded)
        assert torch.equal(s_base.embeddings.word_embeddings.weight, t_base.embeddings.word_embeddings.weight)
    heads = {
        "sequence-classification": "classifier",
        "token-classification": "classifier",
        "question-answering": "qa_outputs",
    }
    if task in heads:
        assert torch.equal(getattr(student, heads[task]).weight, getattr(teacher, heads[task]).weight)
    if arch == "bert" and student_arch == "distilbert" and task != "sequence-classification":
        # the same function as the layer-dropped BERT (the DistilBERT form only re-expresses it)
        same = build_student(teacher, Task(task), layer_map, "bert").eval()
        ids = torch.randint(1000, 2000, (2, 9))
        mask = torch.ones_like(ids)
        mask[1, 6:] = 0
        with torch.no_grad():
            a, b = same(input_ids=ids, attention_mask=mask), student.eval()(input_ids=ids, attention_mask=mask)
        assert torch.allclose(a[0], b[0], atol=1e-5)


CASES = [(arch, task) for arch in ("distilbert", "bert") for task in (t.value for t in Task)]


@pytest.mark.parametrize("student_arch,task", CASES)
def test_distillation_lowers_the_loss_and_raises_agreement(teachers, tmp_path, student_arch, task):
    from pocketbert.loading import load_model

    data = write_data(tmp_path / ("data.jsonl" if task == "question-answering" else "data.txt"), task)
    out = tmp_path / "student"
    config = _config(teachers("bert", task), out, data, architecture=student_arch)
    result = run_distill(config, quiet=True)
    history = json.loads((out / "distill" / "history.json").read_text())
    losses = [h["loss"] for h in history["steps"]]
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    init, best = result.summary["metrics"]["initial"], result.summary["metrics"]["best"]
    assert selection_score(Task(task), best) > selection_score(Task(task), init)
    primary = PRIMARY_METRIC[Task(task)] if task != "feature-extraction" else "embedding.cosine_min"
    assert best[primary] > init[primary], (init[primary], best[primary])
    assert best["eval_loss"] < init["eval_loss"]
    student = load_model(str(out))  # a save_pretrained directory with its tokenizer, through the real path
    assert student.task is Task(task) and student.architecture == student_arch
    assert len(_layer_params(student.model)) == 1
    assert (out / "distill" / "curves.png").stat().st_size > 1000
    report = (out / "distill" / "report.md").read_text()
    assert f"pocketbert run {out} --baseline {teachers('bert', task)}" in report
    assert not Checkpoint.beside(out).directory.exists()


def test_labelled_distillation_learns_the_teachers_task(teachers, tmp_path):
    data = write_data(tmp_path / "data.jsonl", "sequence-classification", count=300, labels=True)
    config = _config(
        teachers("bert", "sequence-classification"), tmp_path / "s", data, max_steps=90, teacher_cache_mb=0
    )
    summary = run_distill(config, quiet=True).summary
    init, best = summary["metrics"]["initial"], summary["metrics"]["best"]
    assert summary["metrics"]["teacher_accuracy"] > 0.9  # the teacher solves the keyword task
    assert best["accuracy"] > init["accuracy"] and best["accuracy"] > 0.8
    assert best["top1_agreement"] > init["top1_agreement"]
    assert summary["data"]["labelled_train_examples"] == summary["data"]["train_examples"]


class Stop(KeyboardInterrupt):
    pass


def _interrupt_at(step: int):
    def hook(current: int) -> None:
        if current == step:
            raise Stop()

    return hook


def test_resume_continues_from_the_checkpoint_and_matches_an_uninterrupted_run(teachers, tmp_path):
    from safetensors.torch import load_file

    teacher = teachers("distilbert", "token-classification")
    data = write_data(tmp_path / "data.txt", "token-classification", count=120)
    values = {"max_steps": 14, "eval_every": 5, "dropout": 0.1, "layers": 2}
    whole = run_distill(_config(teacher, tmp_path / "whole", data, **values), quiet=True)

    out = tmp_path / "parts"
    with pytest.raises(Stop):
        run_distill(_config(teacher, out, data, **values), quiet=True, on_step=_interrupt_at(7))
    checkpoint = Checkpoint.beside(out)
    assert checkpoint.step() == 7 and not out.exists()
    with pytest.raises(PocketbertError, match="--resume to continue"):
        run_distill(_config(teacher, out, data, **values), quiet=True)
    with pytest.raises(PocketbertError, match="learning_rate"):
        run_distill(_config(teacher, out, data, resume=True, **{**values, "learning_rate": 1e-3}), quiet=True)
    state, _ = checkpoint.load("cpu")
    assert state["optimizer"]["state"] and int(state["scheduler"]["last_epoch"]) == 7

    resumed = run_distill(_config(teacher, out, data, resume=True, **values), quiet=True)
    assert resumed.summary["training"]["resumed_from"] == 7
    assert resumed.summary["training"]["steps"] == whole.summary["training"]["steps"] == 14
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    history_a = json.loads((tmp_path / "whole" / "distill" / "history.json").read_text())
    history_b = json.loads((out / "distill" / "history.json").read_text())
    assert [round(h["loss"], 5) for h in history_a["steps"]] == [round(h["loss"], 5) for h in history_b["steps"]]
    assert not checkpoint.directory.exists()


def _bad_inputs(tmp_path: Path, teacher: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    no_field = tmp_path / "nofield.jsonl"
    no_field.write_text('{"sentence": "a text"}\n{"sentence": "another"}\n')
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"text": "fine", "label": 1}\n{"text": "not fine", "label": 7}\n')
    unknown = tmp_path / "unknown.csv"
    unknown.write_text('text,label\nfine,label_a\n"not fine",label_q\n')
    data = write_data(tmp_path / "ok.txt", "sequence-classification", count=20)
    t = str(teacher)
    return {
        "empty file": ([t, "--data", str(empty)], "is empty"),
        "missing field": ([t, "--data", str(no_field)], "no 'text' field"),
        "label outside the head": ([t, "--data", str(outside)], "label 7 is outside the teacher's head of 3 labels"),
        "unknown label": ([t, "--data", str(unknown)], "label 'label_q' is not one of the teacher's labels"),
        "missing data file": ([t, "--data", str(tmp_path / "nope.txt")], "does not exist"),
        "unknown teacher": ([str(tmp_path / "no-teacher"), "--data", str(data)], "does not exist"),
        "too many layers": ([t, "--data", str(data), "--layers", "4"], "more than the teacher's 3 layers"),
        "resume without checkpoint": ([t, "--data", str(data), "--resume"], "no checkpoint"),
        "bad option": ([t, "--data", str(data), "--eval-fraction", "1.5"], "eval_fraction"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "empty file",
        "missing field",
        "label outside the head",
        "unknown label",
        "missing data file",
        "unknown teacher",
        "too many layers",
        "resume without checkpoint",
        "bad option",
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(teachers, tmp_path, capsys, case):
    args, message = _bad_inputs(tmp_path, teachers("bert", "sequence-classification"))[case]
    out = tmp_path / "out" / "student"
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(["distill", *args, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("pocketbert distill: error: "), err
    assert message in err, err
    assert not out.exists()
    assert not (out.parent.exists() and [p for p in out.parent.iterdir() if not p.name.endswith(".lock")])
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_output_must_be_empty_or_a_previous_distill_output(teachers, tmp_path, capsys):
    teacher = teachers("bert", "feature-extraction")
    data = write_data(tmp_path / "data.txt", "feature-extraction", count=40)
    out = tmp_path / "student"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["distill", str(teacher), "-o", str(out), "--data", str(data), "--max-steps", "2", "--quiet"]
    assert main(args) == 2
    assert "not empty and not a previous pocketbert distill output" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    assert main([*args, "--force"]) == 0
    assert not (out / "notes.txt").exists() and (out / "config.json").is_file()
    assert main([*args, "--layer-map", "2"]) == 0  # a previous distill output is replaced without --force
    assert json.loads((out / "distill" / "summary.json").read_text())["student"]["layer_map"] == [2]
    assert main(["distill", str(teacher), "-o", str(teacher), "--data", str(data), "--quiet"]) == 2
    assert "is the teacher's directory" in capsys.readouterr().err


def test_parse_distill_section_checks_keys_types_and_values():
    config = parse_distill_section({"layers": 3, "epochs": 2, "temperature": 4, "layer_map": [0, 2, 5]})
    assert config.layers == 3 and config.epochs == 2.0 and config.temperature == 4.0 and config.alpha_kl == 5.0
    for table, message in (
        ({"layer": 3}, "unknown distill key 'layer'; valid: teacher"),
        ({"layers": "3"}, "distill key layers must be int"),
        ({"layer_map": [0, "2"]}, "must be a list of integers"),
        ({"temperature": 0}, "temperature must be a positive number"),
        ({"embedding_loss": "l1"}, "not one of: cosine, mse"),
        ({"layers": 2, "layer_map": [0, 2, 4]}, "disagrees"),
    ):
        with pytest.raises(PocketbertError, match=message):
            parse_distill_section(table)


def test_config_file_distill_table_and_flags(teachers, tmp_path):
    from pocketbert.cli import build_parser
    from pocketbert.cli.distill_cmd import resolve_config

    toml = tmp_path / "p.toml"
    toml.write_text('[distill]\nlayers = 2\nlearning_rate = 0.001\ndata = "x.txt"\n')
    args = build_parser().parse_args(["distill", "--config", str(toml), "--lr", "0.002", "-o", "o"])
    config = resolve_config(args)
    assert (config.layers, config.learning_rate, config.data, config.output) == (2, 0.002, "x.txt", "o")


@pytest.mark.parametrize("task", [t.value for t in Task])
def test_teacher_cache_gives_the_teachers_batch_outputs(teachers, task):
    from pocketbert.distill.data import Example, collate, encode
    from pocketbert.distill.evaluate import forward
    from pocketbert.distill.teacher_cache import TeacherCache
    from pocketbert.loading import load_model

    lm = load_model(str(teachers("bert", task)))
    rng = random.Random(5)
    examples = [Example(_sentence(rng), _sentence(rng) if task == "question-answering" else None) for _ in range(9)]
    encoded = encode(examples, lm.tokenizer, Task(task), 64)
    config = DistillConfig(hidden_layers="mapped")
    cache = TeacherCache.build(lm.model, encoded, Task(task), config, [0, 2], 0, "cpu", quiet=True)
    indices = [4, 0, 7]
    batch = collate([encoded[i] for i in indices], 0)
    got = cache.batch(indices, batch["input_ids"].shape[1], "cpu")
    with torch.no_grad():
        want = forward(lm.model, batch, True)
    keep = batch["attention_mask"].bool()
    for key in (1, 3):
        assert torch.allclose(got.hidden_states[key][keep], want.hidden_states[key][keep], atol=1e-5)
    names = {"feature-extraction": ["last_hidden_state"], "question-answering": ["start_logits", "end_logits"]}
    for name in names.get(task, ["logits"]):
        g, w = getattr(got, name), getattr(want, name)
        if task != "sequence-classification":
            g, w = g[keep], w[keep]
        assert torch.allclose(g, w, atol=1e-5)


def test_token_labels_go_to_each_words_first_sub_token(teachers):
    from pocketbert.distill.data import IGNORE_INDEX, collate, encode, examples_from_rows
    from pocketbert.loading import load_model

    lm = load_model(str(teachers("bert", "token-classification")))
    rows = [
        (1, {"text": "antidisestablishmentarianism is long", "label": ["label_b", 2, "label_a"]}),
        (2, {"text": "no"}),
    ]
    examples = examples_from_rows(rows, Task.TOKEN_CLASSIFICATION, lm.labels)
    encoded = encode(examples, lm.tokenizer, Task.TOKEN_CLASSIFICATION, 32)
    words = [lm.tokenizer.tokenize(w) for w in examples[0].text.split()]
    want = [IGNORE_INDEX]  # [CLS]
    for word, label in zip(words, [1, 2, 0]):
        want += [label] + [IGNORE_INDEX] * (len(word) - 1)
    assert encoded[0].labels == want + [IGNORE_INDEX]  # [SEP]
    batch = collate(encoded, 0)
    assert batch["labels"].shape == batch["input_ids"].shape
    assert (batch["labels"][1] == IGNORE_INDEX).all()  # the unlabelled row
    with pytest.raises(PocketbertError, match="one label per whitespace-separated word"):
        examples_from_rows([(3, {"text": "two words", "label": [0]})], Task.TOKEN_CLASSIFICATION, lm.labels)
