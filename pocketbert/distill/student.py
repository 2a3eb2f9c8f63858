"""The student's shape and its initialisation from the teacher.

A student keeps the teacher's width (hidden size, heads, FFN size, vocabulary, positions) and a subset of its
layers: student layer ``k`` starts as a copy of teacher layer ``layer_map[k]``; the embeddings and the task head
are copied as well. The student is either the teacher's own architecture with fewer layers or, from a BERT
teacher, a DistilBERT: BERT's token-type row 0 (the only one a single-segment input uses) is folded into the
position embeddings as :func:`pocketbert.remap.bert_as_distilbert` does, and a BERT sequence classifier's pooler
``tanh(dense(CLS))`` becomes DistilBERT's ``relu(pre_classifier(CLS))`` with the same weights (approximate at
first; distillation adapts it).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import torch

from pocketbert.errors import PocketbertError
from pocketbert.tasks import Task

_LAYER_KEY = re.compile(r"^(.*?(?:encoder|transformer)\.layer\.)(\d+)\.(.*)$")


def teacher_layers(model: Any) -> int:
    """Number of transformer layers of a DistilBERT or BERT model."""
    cfg = model.config
    return int(cfg.n_layers if cfg.model_type == "distilbert" else cfg.num_hidden_layers)


def default_layer_map(teacher_depth: int, layers: int) -> list[int]:
    """``layers`` teacher layers spread evenly, first and last kept: ``round(k (L - 1) / (N - 1))`` rounding
    halves up (12 -> 6 gives 0,2,4,7,9,11, the layers of Hugging Face's DistilBERT; 6 -> 3 gives 0,3,5).
    One layer: the first."""
    if layers == 1:
        return [0]
    return [int(k * (teacher_depth - 1) / (layers - 1) + 0.5) for k in range(layers)]


def resolve_layer_map(teacher_depth: int, layers: int | None, layer_map: list[int] | None) -> list[int]:
    """The teacher layer of each student layer, from ``--layer-map`` or ``--layers`` (default: half, rounded up).

    Raises:
        PocketbertError: more layers than the teacher has, or a map that is out of range or not increasing.
    """
    if layer_map is not None:
        bad = [i for i in layer_map if not 0 <= i < teacher_depth]
        if bad:
            raise PocketbertError(
                f"layer map names teacher layer {bad[0]}, but the teacher has layers 0..{teacher_depth - 1}"
            )
        if any(b <= a for a, b in zip(layer_map, layer_map[1:])):
            raise PocketbertError(f"layer map {','.join(map(str, layer_map))} must be strictly increasing")
        return list(layer_map)
    layers = layers or (teacher_depth + 1) // 2
    if layers > teacher_depth:
        raise PocketbertError(f"--layers {layers} is more than the teacher's {teacher_depth} layers")
    return default_layer_map(teacher_depth, layers)


def _student_config(teacher: Any, depth: int, dropout: float | None) -> Any:
    cfg = copy.deepcopy(teacher.config)
    if cfg.model_type == "distilbert":
        cfg.n_layers = depth
        if dropout is not None:
            cfg.dropout = cfg.attention_dropout = cfg.seq_classif_dropout = cfg.qa_dropout = dropout
    else:
        cfg.num_hidden_layers = depth
        if dropout is not None:
            cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
            cfg.classifier_dropout = dropout
    cfg.architectures = [type(teacher).__name__]
    return cfg


def _same_architecture(teacher: Any, layer_map: list[int], dropout: float | None) -> Any:
    student = type(teacher)(_student_config(teacher, len(layer_map), dropout))
    source = teacher.state_dict()
    mapped = {}
    for key in student.state_dict():
        match = _LAYER_KEY.match(key)
        theirs = f"{match.group(1)}{layer_map[int(match.group(2))]}.{match.group(3)}" if match else key
        mapped[key] = source[theirs]
    student.load_state_dict(mapped, strict=True)
    return student


def _as_distilbert(bert_student: Any, task: Task, dropout: float | None) -> Any:
    import transformers

    from pocketbert.remap import bert_as_distilbert

    cfg = bert_student.config
    base_bert = getattr(bert_student, "bert", bert_student)
    base = bert_as_distilbert(base_bert)
    hidden_dropout = cfg.hidden_dropout_prob if dropout is None else dropout
    attention_dropout = cfg.attention_probs_dropout_prob if dropout is None else dropout
    head_dropout = getattr(cfg, "classifier_dropout", None)
    head_dropout = hidden_dropout if head_dropout is None else head_dropout
    values = base.config.to_dict()
    values.update(
        dropout=hidden_dropout,
        attention_dropout=attention_dropout,
        seq_classif_dropout=head_dropout,
        qa_dropout=head_dropout,
        num_labels=cfg.num_labels,
        id2label=dict(cfg.id2label),
        label2id=dict(cfg.label2id),
    )
    for key in ("model_type", "transformers_version", "architectures"):
        values.pop(key, None)
    classes = {
        Task.FEATURE_EXTRACTION: transformers.DistilBertModel,
        Task.SEQUENCE_CLASSIFICATION: transformers.DistilBertForSequenceClassification,
        Task.QUESTION_ANSWERING: transformers.DistilBertForQuestionAnswering,
        Task.TOKEN_CLASSIFICATION: transformers.DistilBertForTokenClassification,
    }
    model_cls = classes[task]
    config = transformers.DistilBertConfig(**values, architectures=[model_cls.__name__])
    student = model_cls(config)
    with torch.no_grad():
        if task is Task.FEATURE_EXTRACTION:
            student.load_state_dict(base.state_dict())
            return student
        student.distilbert.load_state_dict(base.state_dict())
        if task is Task.SEQUENCE_CLASSIFICATION:
            student.pre_classifier.load_state_dict(bert_student.bert.pooler.dense.state_dict())
            student.classifier.load_state_dict(bert_student.classifier.state_dict())
        elif task is Task.QUESTION_ANSWERING:
            student.qa_outputs.load_state_dict(bert_student.qa_outputs.state_dict())
        else:
            student.classifier.load_state_dict(bert_student.classifier.state_dict())
    return student


def student_architecture(teacher: Any, requested: str) -> str:
    """The student's ``model_type``: the teacher's for ``auto``; DistilBERT teachers make DistilBERT students.

    Raises:
        PocketbertError: a BertModel student asked of a DistilBERT teacher.
    """
    teacher_arch = teacher.config.model_type
    if requested in ("auto", teacher_arch):
        return teacher_arch
    if teacher_arch == "distilbert":
        raise PocketbertError(
            "a DistilBERT teacher makes DistilBERT students only (it has no token-type embedding or BERT pooler): "
            "drop --architecture bert"
        )
    return requested


def build_student(
    teacher: Any, task: Task, layer_map: list[int], architecture: str = "auto", dropout: float | None = None
) -> Any:
    """A new student model (train mode, float32, CPU) initialised from ``teacher``.

    Args:
        teacher: the teacher's Hugging Face model (DistilBERT or BERT, any supported head).
        task: the head to build (the teacher's).
        layer_map: teacher layer index (0-based) copied into each student layer, see :func:`resolve_layer_map`.
        architecture: ``auto`` / ``distilbert`` / ``bert`` (see :func:`student_architecture`).
        dropout: the student's dropout probability (``None``: the teacher config's).

    Raises:
        PocketbertError: an impossible architecture change, or a BERT whose LayerNorm epsilon or activation
            DistilBERT cannot express.
    """
    arch = student_architecture(teacher, architecture)
    student = _same_architecture(teacher, layer_map, dropout)
    if arch != teacher.config.model_type:
        student = _as_distilbert(student, task, dropout)
    return student.float().train()


def count_parameters(model: Any) -> int:
    """Number of parameters (each tied tensor once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def multiply_adds(model: Any, task: Task, seq: int = 128) -> int:
    """Multiply-adds of one forward pass of the deployed model (:class:`pocketbert.wrapper.DeploymentModel`) on
    one sequence of ``seq`` tokens, counted by torch's FLOP counter (matmuls and linear layers; FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    from pocketbert.wrapper import DeploymentModel

    wrapped = DeploymentModel(model, task).eval()
    device = next(model.parameters()).device
    ids = torch.ones((1, seq), dtype=torch.long, device=device)
    mask = torch.ones((1, seq), dtype=torch.long, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        wrapped(ids, mask)
    return int(counter.get_total_flops() // 2)
