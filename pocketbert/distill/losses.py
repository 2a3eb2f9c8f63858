"""Distillation losses by task, after DistilBERT's triple loss (Sanh et al. 2019, arXiv:1910.01108).

* ``kl``: Hinton et al.'s soft-target loss, ``T^2 KL(softmax(t / T) || softmax(s / T))`` on the logits: per
  sequence (classification), per real token (token classification), over the sequence for the QA start and end
  logits (padding masked out; start and end averaged).
* ``labels``: cross-entropy on the labels of the examples (tokens) that have one.
* ``cos``: ``1 - cosine`` between student and teacher hidden states, per real token (DistilBERT's ``L_cos``), on
  the last layer or on every student layer against the teacher layer it was copied from.
* ``embedding`` (feature extraction): on the mean-pooled sentence embedding, ``1 - cosine`` or the MSE of the
  un-normalised means (Reimers & Gurevych 2020, arXiv:2004.09813).
* ``similarity`` (feature extraction): MSE between the student's and the teacher's in-batch cosine-similarity
  matrices (relational distillation, Park et al. 2019, arXiv:1904.05068): what embedding rank agreement measures.

The total is the sum of each part times its ``alpha_*`` weight from :class:`~pocketbert.distill.config.DistillConfig`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from pocketbert.distill.config import DistillConfig
from pocketbert.distill.data import IGNORE_INDEX
from pocketbert.tasks import Task

MASK_LOGIT = -1.0e4  # QA logit of padded positions, as the deployment wrapper's attention mask


def needs_hidden_states(task: Task, config: DistillConfig) -> bool:
    """Whether the models must return every layer's hidden states for the losses."""
    if config.alpha_cos == 0 or config.hidden_layers == "none":
        return False
    return config.hidden_layers == "mapped" or task is not Task.FEATURE_EXTRACTION


def active_parts(task: Task, config: DistillConfig, labelled: bool) -> dict[str, float]:
    """The loss parts that apply to ``task`` with a non-zero weight: ``{name: alpha}``."""
    weights = {"cos": config.alpha_cos if config.hidden_layers != "none" else 0.0}
    if task is Task.FEATURE_EXTRACTION:
        weights |= {"embedding": config.alpha_embedding, "similarity": config.alpha_similarity}
    else:
        weights["kl"] = config.alpha_kl
        if labelled and task is not Task.QUESTION_ANSWERING:
            weights["labels"] = config.alpha_labels
    return {name: alpha for name, alpha in weights.items() if alpha > 0}


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 KL(softmax(teacher / T) || softmax(student / T))``, averaged over rows; logits ``(N, C)``."""
    log_p = F.log_softmax(student / temperature, dim=-1)
    q = F.softmax(teacher / temperature, dim=-1)
    return F.kl_div(log_p, q, reduction="batchmean") * temperature**2


def token_cosine(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cosine`` over real tokens; hidden states ``(B, S, H)``, ``mask`` ``(B, S)`` (1 = token)."""
    keep = mask.bool()
    return (1.0 - F.cosine_similarity(student[keep], teacher[keep], dim=-1)).mean()


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens' vectors: ``(B, S, H)``, ``(B, S)`` -> ``(B, H)`` (not normalised)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, S, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def similarity_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    """Cosine similarities of every pair of rows: ``(B, H)`` -> ``(B, B)``."""
    unit = F.normalize(embeddings, dim=-1)
    return unit @ unit.T


def _hidden_pairs(task: Task, config: DistillConfig, student: Any, teacher: Any, layer_map: list[int]) -> list:
    if config.hidden_layers == "mapped":
        return [(student.hidden_states[k + 1], teacher.hidden_states[t + 1]) for k, t in enumerate(layer_map)]
    if task is Task.FEATURE_EXTRACTION:
        return [(student.last_hidden_state, teacher.last_hidden_state)]
    return [(student.hidden_states[-1], teacher.hidden_states[-1])]


def _logit_pairs(task: Task, student: Any, teacher: Any, mask: torch.Tensor) -> list:
    keep = mask.bool()
    if task is Task.SEQUENCE_CLASSIFICATION:
        return [(student.logits, teacher.logits)]
    if task is Task.TOKEN_CLASSIFICATION:
        return [(student.logits[keep], teacher.logits[keep])]
    pairs = []
    for name in ("start_logits", "end_logits"):
        s, t = getattr(student, name), getattr(teacher, name)  # (B, S)
        pairs.append((s.masked_fill(~keep, MASK_LOGIT), t.masked_fill(~keep, MASK_LOGIT)))
    return pairs


def distill_loss(
    task: Task,
    student: Any,
    teacher: Any,
    attention_mask: torch.Tensor,
    labels: torch.Tensor | None,
    config: DistillConfig,
    layer_map: list[int],
    parts: dict[str, float],
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted distillation loss of one batch and each part's unweighted value.

    Args:
        student / teacher: the models' Hugging Face outputs on the same batch (``hidden_states`` present when
            :func:`needs_hidden_states`).
        attention_mask: ``(B, S)``, 1 for tokens.
        labels: ``(B,)`` or ``(B, S)`` with ``IGNORE_INDEX`` where there is no label, or ``None``.
        parts: :func:`active_parts`.

    Returns:
        the scalar loss to minimise, and ``{part: value}`` (floats, for logging).
    """
    values: dict[str, torch.Tensor] = {}
    if "cos" in parts:
        pairs = _hidden_pairs(task, config, student, teacher, layer_map)
        values["cos"] = torch.stack([token_cosine(s, t, attention_mask) for s, t in pairs]).mean()
    if task is Task.FEATURE_EXTRACTION:
        s_mean = mean_pool(student.last_hidden_state, attention_mask)  # (B, H)
        t_mean = mean_pool(teacher.last_hidden_state, attention_mask)  # (B, H)
        if "embedding" in parts:
            if config.embedding_loss == "mse":
                values["embedding"] = F.mse_loss(s_mean, t_mean)
            else:
                values["embedding"] = (1.0 - F.cosine_similarity(s_mean, t_mean, dim=-1)).mean()
        if "similarity" in parts:
            values["similarity"] = F.mse_loss(similarity_matrix(s_mean), similarity_matrix(t_mean))
    else:
        if "kl" in parts:
            pairs = _logit_pairs(task, student, teacher, attention_mask)
            values["kl"] = torch.stack([soft_kl(s, t, config.temperature) for s, t in pairs]).mean()
        if "labels" in parts and labels is not None and bool((labels != IGNORE_INDEX).any()):
            logits = student.logits
            values["labels"] = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX
            )
    total = sum((parts[name] * value for name, value in values.items()), torch.zeros((), device=attention_mask.device))
    return total, {name: float(value.detach()) for name, value in values.items()}
