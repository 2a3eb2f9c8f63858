"""The deployment wrapper: a Hugging Face encoder as a module with plain tensor inputs and outputs.

Every converter (ONNX, LiteRT, Core ML) sees the same simple graph: ``forward(input_ids, attention_mask)``
returning the task's named outputs (see :mod:`pocketbert.tasks`). Like Apple's ml-ane-transformers, it reuses the
Hugging Face layers and swaps only what deployment needs:

* the attention mask is computed here, as an additive ``(B, 1, 1, S)`` tensor, instead of by transformers'
  ``create_bidirectional_mask`` (whose ``new_ones``/vmap code coremltools 9 cannot convert);
* the mask constant is ``-1e4`` rather than ``finfo(float32).min``, so it survives fp16 (Core ML, GPU delegates);
* BERT's token type embedding is the constant row 0 (one segment), so no ``token_type_ids`` input is needed;
* attention is plain matmul/softmax (:func:`deployment_attention`), which every converter understands and
  ONNX Runtime can fuse.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from pocketbert.tasks import Task, output_specs

MASK_NEGATIVE = -1.0e4  # additive mask for padded keys: exp(-1e4) underflows to 0 in fp16 and fp32
ATTENTION_NAME = "pocketbert"


def deployment_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain attention for export: ``softmax(q k^T / sqrt(d) + mask) v``.

    Transformers' eager attention multiplies the scores by ``scaling``; this divides by ``1 / scaling``, the same
    number, because ONNX Runtime's attention fusion tells the score scale from the mask by op type (Div vs Mul) and
    cannot fuse the all-Mul form. Shapes: ``query``/``key``/``value`` ``(B, heads, S, d)``, ``attention_mask``
    additive ``(B, 1, 1, S)``; returns ``(B, S, heads, d)`` and the probabilities ``(B, heads, S, S)``.
    """
    divisor = 1.0 / scaling if scaling is not None else math.sqrt(query.size(-1))
    scores = torch.matmul(query, key.transpose(2, 3)) / divisor  # (B, heads, S, S)
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1)  # (B, heads, S, S)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs


def _register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, deployment_attention)


def mean_pool_normalize(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the unpadded token vectors, L2-normalised (sentence-transformers' pooling).

    Args:
        hidden: ``(B, S, H)`` token vectors.
        mask: ``(B, S)`` float, 1 for real tokens and 0 for padding.

    Returns:
        ``(B, H)`` unit vectors.
    """
    summed = (hidden * mask.unsqueeze(-1)).sum(dim=1)  # (B, H)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, 1)
    pooled = summed / count  # (B, H)
    norm = torch.sqrt((pooled * pooled).sum(dim=-1, keepdim=True)).clamp(min=1e-12)  # (B, 1)
    return pooled / norm  # (B, H)


class _Encoder(nn.Module):
    """Embeddings and transformer blocks of one architecture, returning ``(B, S, H)`` hidden states."""

    def __init__(self, base: Any) -> None:
        super().__init__()
        self.base = base

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def blocks(self) -> nn.ModuleList:
        raise NotImplementedError

    def forward(self, input_ids: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(input_ids)  # (B, S, H)
        for block in self.blocks():
            hidden = block(hidden, additive_mask)  # (B, S, H)
        return hidden


class _DistilBertEncoder(_Encoder):
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        emb = self.base.embeddings
        seq = input_ids.shape[1]
        words = emb.word_embeddings(input_ids)  # (B, S, H)
        positions = emb.position_embeddings.weight[:seq]  # (S, H)
        return emb.LayerNorm(words + positions)  # (B, S, H)

    def blocks(self) -> nn.ModuleList:
        return self.base.transformer.layer


class _BertEncoder(_Encoder):
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        emb = self.base.embeddings
        seq = input_ids.shape[1]
        words = emb.word_embeddings(input_ids)  # (B, S, H)
        positions = emb.position_embeddings.weight[:seq]  # (S, H)
        segment = emb.token_type_embeddings.weight[0]  # (H,), one segment
        return emb.LayerNorm(words + positions + segment)  # (B, S, H)

    def blocks(self) -> nn.ModuleList:
        return self.base.encoder.layer


def _base_model(model: Any) -> Any:
    prefix = model.base_model_prefix
    return getattr(model, prefix, model)


class DeploymentModel(nn.Module):
    """``forward(input_ids, attention_mask) -> tuple`` of the task's outputs, in :func:`output_specs` order.

    Inputs are ``(B, S)`` integer tensors (int32 or int64); ``attention_mask`` is 1 for tokens, 0 for padding.
    The wrapped model is a deep copy, so converters may mutate it freely.
    """

    def __init__(self, hf_model: Any, task: Task) -> None:
        super().__init__()
        model = copy.deepcopy(hf_model).eval().float()
        _register_attention()
        model.config._attn_implementation = ATTENTION_NAME
        self.task = task
        self.architecture = model.config.model_type
        self.output_names = tuple(spec.name for spec in output_specs(task))
        base = _base_model(model)
        encoder_cls = {"distilbert": _DistilBertEncoder, "bert": _BertEncoder}[self.architecture]
        self.encoder = encoder_cls(base)
        self.head = model if model is not base else None  # task heads live on the outer model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # Unsqueeze, Cast, Sub, Mul in this order: the pattern ONNX Runtime's attention fusion recognises.
        additive = (1.0 - attention_mask.unsqueeze(1).unsqueeze(2).to(torch.float32)) * MASK_NEGATIVE  # (B, 1, 1, S)
        mask = attention_mask.to(torch.float32)  # (B, S)
        hidden = self.encoder(input_ids, additive)  # (B, S, H)
        if self.task is Task.FEATURE_EXTRACTION:
            return hidden, mean_pool_normalize(hidden, mask)  # (B, S, H), (B, H)
        head = self.head
        if self.task is Task.SEQUENCE_CLASSIFICATION:
            if self.architecture == "distilbert":
                pooled = torch.relu(head.pre_classifier(hidden[:, 0]))  # (B, H)
            else:
                pooled = head.bert.pooler(hidden)  # (B, H): tanh(dense(CLS))
            return (head.classifier(pooled),)  # (B, L)
        if self.task is Task.QUESTION_ANSWERING:
            logits = head.qa_outputs(hidden)  # (B, S, 2)
            return logits[..., 0], logits[..., 1]  # (B, S), (B, S)
        return (head.classifier(hidden),)  # (B, S, L) token classification


def reference_outputs(hf_model: Any, task: Task, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
    """The task's named outputs computed by the unmodified Hugging Face forward (the parity reference).

    Returns a dict of float32 tensors named as :func:`output_specs` (shapes there).
    """
    with torch.inference_mode():
        out = hf_model(input_ids=input_ids, attention_mask=attention_mask)
    if task is Task.FEATURE_EXTRACTION:
        hidden = out.last_hidden_state
        return {"last_hidden_state": hidden, "embedding": mean_pool_normalize(hidden, attention_mask.float())}
    if task is Task.QUESTION_ANSWERING:
        return {"start_logits": out.start_logits, "end_logits": out.end_logits}
    return {"logits": out.logits}


def public_module_name(name: str) -> str:
    """A module path inside :class:`DeploymentModel` as the checkpoint names it: the wrapper's ``encoder.base.``
    (where it keeps the Hugging Face base model) removed, e.g. ``encoder.layer.0.output.dense``."""
    return name.replace("encoder.base.", "")
