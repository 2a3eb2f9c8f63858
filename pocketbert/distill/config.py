"""Settings of ``pocketbert distill``: a :class:`DistillConfig`, from defaults, a ``[distill]`` TOML table and flags.

Example ``[distill]`` table (every key optional except ``data`` and ``output``, which flags may give instead)::

    [distill]
    teacher = "./my-bert-sst2"          # omitted: the embedded all-MiniLM-L6-v2
    output = "students/sst2-3l"
    data = "train.jsonl"                # .txt (one text per line), .jsonl or .csv/.tsv
    layers = 3                          # or layer_map = [0, 2, 5]
    architecture = "distilbert"         # "auto" (the teacher's), "distilbert" or "bert"
    epochs = 3
    temperature = 2.0

Default loss weights and temperature follow DistilBERT (Sanh et al. 2019, "DistilBERT, a distilled version of
BERT", arXiv:1910.01108) as its reference training command sets them (Hugging Face
``examples/research_projects/distillation``: ``--alpha_ce 5.0 --alpha_mlm 2.0 --alpha_cos 1.0``, temperature
2.0, gradient clipping at 5.0, warm-up over 5% of the steps, layers 0,2,4,7,9,11 of 12 kept): ``alpha_kl`` is
their ``alpha_ce`` (KL on temperature-scaled logits), ``alpha_labels`` takes the weight of their ``alpha_mlm`` (the
hard-label loss), and ``alpha_cos`` is the same cosine loss on hidden states. The feature-extraction losses
(``alpha_embedding`` on the pooled embedding, as in Reimers & Gurevych 2020, arXiv:2004.09813, and
``alpha_similarity`` on the in-batch cosine-similarity matrix, after Park et al. 2019's relational distillation,
arXiv:1904.05068) have no DistilBERT counterpart; their defaults were chosen on all-MiniLM-L6-v2 (see
``docs/distill.md``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from pocketbert.errors import PocketbertError

ARCHITECTURES: tuple[str, ...] = ("auto", "distilbert", "bert")
EMBEDDING_LOSSES: tuple[str, ...] = ("cosine", "mse")
HIDDEN_LAYERS: tuple[str, ...] = ("last", "mapped", "none")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass
class DistillConfig:
    """Everything one distillation does. Units: lengths in tokens, rates per optimizer step.

    Attributes:
        teacher: model source as for ``pocketbert export`` (``None``: the embedded all-MiniLM-L6-v2).
        output: the student directory to write (``save_pretrained`` model and tokenizer plus ``distill/``).
        data: training texts: ``.txt`` (one per line), ``.jsonl`` or ``.csv``/``.tsv`` with named fields.
        eval_data: held-out texts in the same format; ``None``: ``eval_fraction`` of ``data`` is held out.
        task: the teacher's head (``None``: from its ``architectures``).
        tokenizer: tokenizer dir or hub id when the teacher has none of its own.
        layers: number of student layers (``None`` with no ``layer_map``: half the teacher's, rounded up).
        layer_map: teacher layer (0-based) each student layer is initialised from, strictly increasing.
        architecture: ``auto`` (the teacher's), ``distilbert`` or ``bert`` (a BERT teacher can become either).
        text_field / question_field / context_field: field names in JSONL/CSV rows (QA reads the last two).
        label_field: the label field; ``None``: a field named ``label`` is used where rows have one, a name given
            here must be in at least one row. Sequence classification: a label name or id; token
            classification: one label per whitespace-separated word (a JSON list, or a space-separated string).
        eval_fraction: share of ``data`` held out when ``eval_data`` is not given (0 < f < 1).
        max_eval: at most this many held-out examples are evaluated.
        max_length: texts are truncated to this many tokens (at most the teacher's positions).
        epochs: passes over the training split (fractions allowed); ``max_steps`` overrides it.
        max_steps: optimizer steps to run (``None``: from ``epochs``).
        batch_size: examples per step (padded to the longest in the batch).
        learning_rate: AdamW peak learning rate.
        weight_decay: AdamW decoupled weight decay (not applied to biases and LayerNorm weights).
        warmup: fraction of the steps with a linear warm-up from 0; linear decay to 0 after it.
        max_grad_norm: gradient clipping threshold (global L2 norm).
        dropout: dropout probability of the student while training (``None``: the teacher config's).
        temperature: softmax temperature T of the KL losses (the KL is multiplied by T^2).
        alpha_kl: weight of KL(teacher || student) on logits (classification, token classification, QA).
        alpha_labels: weight of the cross-entropy on labels, for examples that have them.
        alpha_cos: weight of 1 - cosine between student and teacher hidden states, per real token.
        hidden_layers: which hidden states ``alpha_cos`` aligns: ``last``, ``mapped`` (each student layer with the
            teacher layer it came from) or ``none``.
        alpha_embedding: weight of the pooled-embedding loss (feature extraction).
        embedding_loss: ``cosine`` (1 - cosine of the pooled embeddings) or ``mse`` (on the un-normalised means).
        alpha_similarity: weight of the MSE between the student's and teacher's in-batch cosine-similarity
            matrices of pooled embeddings (feature extraction).
        eval_every: evaluate on the held-out split (and save a resumable checkpoint) every this many steps.
        group_by_length: batch texts of similar length together (less padding), order still seeded.
        teacher_cache_mb: keep the teacher's outputs on the training split in memory (computed once, reused
            every epoch) when they fit in this many MB and training lasts more than one epoch; 0: never.
        seed: seed of the split, the batch order, dropout and the head weights not copied.
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.
        threads: CPU threads for torch (``None``: torch's default).
        resume: continue the interrupted distillation of ``output`` from its checkpoint.
        force: replace an ``output`` that is not a previous distill output, or drop a checkpoint and start over.
    """

    teacher: str | None = None
    output: str | None = None
    data: str | None = None
    eval_data: str | None = None
    task: str | None = None
    tokenizer: str | None = None
    layers: int | None = None
    layer_map: list[int] | None = None
    architecture: str = "auto"
    text_field: str = "text"
    label_field: str | None = None
    question_field: str = "question"
    context_field: str = "context"
    eval_fraction: float = 0.1
    max_eval: int = 512
    max_length: int = 128
    epochs: float = 3.0
    max_steps: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.05
    max_grad_norm: float = 5.0
    dropout: float | None = None
    temperature: float = 2.0
    alpha_kl: float = 5.0
    alpha_labels: float = 2.0
    alpha_cos: float = 1.0
    hidden_layers: str = "last"
    alpha_embedding: float = 1.0
    embedding_loss: str = "cosine"
    alpha_similarity: float = 0.0
    eval_every: int = 200
    group_by_length: bool = True
    teacher_cache_mb: int = 2048
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    resume: bool = False
    force: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-able values."""
        return asdict(self)


# The settings a checkpoint must share with the run resuming it (the others may change between runs).
TRAINING_KEYS: tuple[str, ...] = tuple(
    f.name
    for f in fields(DistillConfig)
    if f.name not in ("output", "eval_every", "device", "threads", "resume", "force", "teacher_cache_mb")
)


# The settings a finished student depends on: a student made with other values of these is out of date.
RESULT_KEYS: tuple[str, ...] = (*TRAINING_KEYS, "eval_every")


def _kind(name: str) -> str:
    return next(str(f.type) for f in fields(DistillConfig) if f.name == name)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _coerce(key: str, value: Any, where: str) -> Any:
    kind = _kind(key)
    optional = kind.endswith(" | None")
    base = kind.removesuffix(" | None")
    if value is None and optional:
        return None
    if base == "float" and (_is_int(value) or isinstance(value, float)):
        return float(value)
    checks = {
        "str": lambda v: isinstance(v, str),
        "int": _is_int,
        "bool": lambda v: isinstance(v, bool),
        "list[int]": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
    }
    if base in checks and checks[base](value):
        return list(value) if base == "list[int]" else value
    expected = "a list of integers" if base == "list[int]" else base
    raise PocketbertError(f"{where}{key} must be {expected}, got {value!r}")


def apply_values(
    config: DistillConfig, values: dict[str, Any], where: str = "distill key ", exclude: tuple[str, ...] = ()
) -> DistillConfig:
    """Set ``values`` (TOML keys or flag values, same names as the fields) on ``config`` with one-line errors for
    unknown keys and wrong types; ``where`` prefixes the key in errors; ``exclude`` names fields that count as
    unknown here (a caller that sets them itself)."""
    valid = [f.name for f in fields(DistillConfig) if f.name not in exclude]
    for key, value in values.items():
        if key not in valid:
            raise PocketbertError(f"unknown {where}{key!r}; valid: {', '.join(valid)}")
        setattr(config, key, _coerce(key, value, where))
    return config


def validate(config: DistillConfig) -> None:
    """Cross-field and range checks with one-line errors (nothing is read or loaded here)."""

    def choice(name: str, valid: tuple[str, ...]) -> None:
        if getattr(config, name) not in valid:
            raise PocketbertError(f"distill {name} {getattr(config, name)!r} is not one of: {', '.join(valid)}")

    choice("architecture", ARCHITECTURES)
    choice("embedding_loss", EMBEDDING_LOSSES)
    choice("hidden_layers", HIDDEN_LAYERS)
    choice("device", DEVICES)
    if config.layers is not None and config.layer_map is not None and config.layers != len(config.layer_map):
        raise PocketbertError(
            f"--layers {config.layers} disagrees with --layer-map of {len(config.layer_map)} layers: give one of them"
        )
    if config.teacher_cache_mb < 0:
        raise PocketbertError(f"distill teacher_cache_mb must be >= 0, got {config.teacher_cache_mb}")
    for name in ("layers", "max_eval", "max_length", "batch_size", "eval_every", "max_steps", "threads"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise PocketbertError(f"distill {name} must be at least 1, got {value}")
    if config.layer_map is not None and not config.layer_map:
        raise PocketbertError("distill layer_map is empty: name at least one teacher layer")
    if not 0.0 < config.eval_fraction < 1.0:
        raise PocketbertError(f"distill eval_fraction must be between 0 and 1 (exclusive), got {config.eval_fraction}")
    if not 0.0 <= config.warmup < 1.0:
        raise PocketbertError(f"distill warmup is a fraction of the steps in [0, 1), got {config.warmup}")
    if config.dropout is not None and not 0.0 <= config.dropout < 1.0:
        raise PocketbertError(f"distill dropout must be in [0, 1), got {config.dropout}")
    positive = ("epochs", "learning_rate", "temperature", "max_grad_norm")
    for name in positive:
        value = getattr(config, name)
        if not math.isfinite(value) or value <= 0:
            raise PocketbertError(f"distill {name} must be a positive number, got {value}")
    for name in ("weight_decay", "alpha_kl", "alpha_labels", "alpha_cos", "alpha_embedding", "alpha_similarity"):
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0:
            raise PocketbertError(f"distill {name} must be a number >= 0, got {value}")


def parse_distill_section(table: dict[str, Any]) -> DistillConfig:
    """A :class:`DistillConfig` from a ``[distill]`` TOML table (keys as the fields), validated.

    Raises:
        PocketbertError: one line naming an unknown key (with the valid ones), a wrong type or an invalid value.
    """
    if not isinstance(table, dict):
        raise PocketbertError("config key distill must be a table: [distill]")
    config = apply_values(DistillConfig(), table)
    validate(config)
    return config
