"""The encoder re-expressed for the Apple Neural Engine, after the principles of Apple's ml-ane-transformers.

Apple's reference (machinelearning.apple.com/research/apple-neural-engine, github.com/apple/ml-ane-transformers)
explains what a BERT-family encoder needs to run well on the Neural Engine; this module applies those principles to
the Hugging Face DistilBERT and BertModel checkpoints pocketbert exports, every task head included:

* **data format** ``(B, C, 1, S)``: the hidden states are 4-D and channels-first from the embedding onwards (the
  format the Neural Engine's hardware and compiler handle best), and go back to ``(B, S, C)`` only at the outputs;
* **linear layers as 1x1 convolutions**: every ``nn.Linear`` of the encoder and the heads becomes a
  :class:`PointwiseConv` whose load hook reshapes the checkpoint's ``(out, in)`` weight to ``(out, in, 1, 1)``;
* **layer norm over the channel axis** (:class:`ChannelLayerNorm`), with the epsilon kept representable in fp16;
* **attention split per head**: each head's scores are an ``einsum`` on ``(B, d, 1, S)`` slices, laid out
  ``(B, S_keys, 1, S_queries)`` with the softmax over the key axis: no 5-D tensor, reshape or per-head transpose.

What is reused unchanged: the Hugging Face module tree (a deep copy, its ``Linear``/``LayerNorm`` children swapped
in place so parameter names stay the checkpoint's), the embedding tables and the activation functions. Masking
and fp16 safety follow :mod:`pocketbert.wrapper`: the additive mask uses ``-1e4`` and BERT's segment embedding is
row 0. The module's call signature and outputs are the deployment wrapper's, so the same converter, parity
checker and runners serve both layouts.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from pocketbert.tasks import Task, output_specs
from pocketbert.wrapper import MASK_NEGATIVE

FP16_TINY = 2.0**-24  # the smallest positive fp16 value; a layer-norm epsilon below it would be 0 in fp16


def _linear_weight_to_conv(
    module: nn.Module,
    state_dict: dict[str, torch.Tensor],
    prefix: str,
    local_metadata: dict[str, Any],
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Load hook of :class:`PointwiseConv`: an ``nn.Linear`` weight ``(out, in)`` becomes ``(out, in, 1, 1)``."""
    key = prefix + "weight"
    weight = state_dict.get(key)
    if weight is not None and weight.dim() == 2:
        state_dict[key] = weight[:, :, None, None]  # (out, in, 1, 1)


class PointwiseConv(nn.Conv2d):
    """``nn.Linear`` as a 1x1 convolution: ``(B, C_in, 1, S) -> (B, C_out, 1, S)``.

    It loads an ``nn.Linear`` state dict as it is (the load hook adds the two kernel axes), so checkpoints trained
    with ``nn.Linear`` need no conversion step.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, kernel_size=1, bias=bias)
        self.register_load_state_dict_pre_hook(_linear_weight_to_conv)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> PointwiseConv:
        """The convolution computing what ``linear`` computes, its weights loaded through the hook."""
        conv = cls(linear.in_features, linear.out_features, bias=linear.bias is not None)
        conv.load_state_dict(linear.state_dict())
        return conv


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channel axis of ``(B, C, 1, S)`` with per-channel ``weight`` and ``bias`` (the names and
    shapes of ``nn.LayerNorm``'s parameters, so its state dict loads directly).

    ``eps`` is raised to :data:`FP16_TINY` when smaller (BERT's 1e-12 is 0 in fp16), as coremltools' fp16 pass does
    for its own ``layer_norm`` op.
    """

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))  # (C,)
        self.bias = nn.Parameter(torch.zeros(channels))  # (C,)
        self.eps = max(float(eps), FP16_TINY)

    @classmethod
    def from_layer_norm(cls, norm: nn.LayerNorm) -> ChannelLayerNorm:
        """The channel-axis norm with ``norm``'s parameters (a 1-D ``normalized_shape`` only)."""
        if len(norm.normalized_shape) != 1 or not norm.elementwise_affine:
            raise ValueError(f"only 1-D affine LayerNorms map to the channel axis, got {norm}")
        channel_norm = cls(norm.normalized_shape[0], norm.eps)
        channel_norm.load_state_dict(norm.state_dict())
        return channel_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)  # (B, 1, 1, S)
        centred = x - mean  # (B, C, 1, S)
        variance = (centred * centred).mean(dim=1, keepdim=True)  # (B, 1, 1, S)
        normed = centred * torch.rsqrt(variance + self.eps)  # (B, C, 1, S)
        return normed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)  # (B, C, 1, S)


def swap_for_ane(module: nn.Module) -> None:
    """Replace, in place and recursively, every ``nn.Linear`` by a :class:`PointwiseConv` and every ``nn.LayerNorm``
    by a :class:`ChannelLayerNorm` with the same parameters; everything else stays as it is."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, PointwiseConv.from_linear(child))
        elif isinstance(child, nn.LayerNorm):
            setattr(module, name, ChannelLayerNorm.from_layer_norm(child))
        else:
            swap_for_ane(child)


def per_head_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_bias: torch.Tensor, heads: int
) -> torch.Tensor:
    """Scaled dot-product attention computed one head at a time in the ``(B, C, 1, S)`` format.

    Args:
        q, k, v: projected queries, keys and values, ``(B, C, 1, S)`` with ``C = heads * d``.
        key_bias: additive mask per key, ``(B, S, 1, 1)`` (0 for tokens, ``-1e4`` for padding).
        heads: number of attention heads.

    Returns:
        ``(B, C, 1, S)``: the heads' outputs concatenated along the channel axis in head order.
    """
    d = q.shape[1] // heads
    q = q * (1.0 / math.sqrt(d))  # (B, C, 1, S): scaled before the product, so fp16 scores stay small
    keys = k.transpose(1, 3)  # (B, S, 1, C): one transpose for every head
    outputs = []
    for qh, kh, vh in zip(q.split(d, dim=1), keys.split(d, dim=3), v.split(d, dim=1)):
        # qh (B, d, 1, S_queries), kh (B, S_keys, 1, d), vh (B, d, 1, S_keys): both products are the
        # rank-4 einsum form Core ML's einsum op takes as it is ("nchw,nwhu->nchu"), with no reshape around it
        scores = torch.einsum("bkhd,bdhq->bkhq", kh, qh)  # (B, S_keys, 1, S_queries)
        probs = torch.softmax(scores + key_bias, dim=1)  # (B, S_keys, 1, S_queries)
        outputs.append(torch.einsum("bdhk,bkhq->bdhq", vh, probs))  # (B, d, 1, S_queries)
    return torch.cat(outputs, dim=1)  # (B, C, 1, S)


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    """``(B, S, C) -> (B, C, 1, S)``."""
    return x.transpose(1, 2).unsqueeze(2)  # (B, C, 1, S)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, 1, S) -> (B, S, C)``."""
    return x.squeeze(2).transpose(1, 2)  # (B, S, C)


class _AneDistilBert:
    """Where a DistilBERT checkpoint keeps what the ANE forward needs (modules already swapped)."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.heads = int(base.config.n_heads)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        emb = self.base.embeddings
        words = emb.word_embeddings(input_ids)  # (B, S, C)
        positions = emb.position_embeddings.weight[: input_ids.shape[1]]  # (S, C)
        return emb.LayerNorm(_channels_first(words + positions))  # (B, C, 1, S)

    def blocks(self) -> nn.ModuleList:
        return self.base.transformer.layer

    def block(self, layer: Any, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        att = layer.attention
        q, k, v = att.q_lin(x), att.k_lin(x), att.v_lin(x)  # each (B, C, 1, S)
        attended = att.out_lin(per_head_attention(q, k, v, key_bias, self.heads))  # (B, C, 1, S)
        x = layer.sa_layer_norm(attended + x)  # (B, C, 1, S)
        ffn = layer.ffn
        inner = ffn.activation(ffn.lin1(x))  # (B, I, 1, S)
        return layer.output_layer_norm(ffn.lin2(inner) + x)  # (B, C, 1, S)


class _AneBert:
    """Where a BertModel checkpoint (BERT, MiniLM, TinyBERT) keeps what the ANE forward needs."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.heads = int(base.config.num_attention_heads)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        emb = self.base.embeddings
        words = emb.word_embeddings(input_ids)  # (B, S, C)
        positions = emb.position_embeddings.weight[: input_ids.shape[1]]  # (S, C)
        segment = emb.token_type_embeddings.weight[0]  # (C,), one segment
        return emb.LayerNorm(_channels_first(words + positions + segment))  # (B, C, 1, S)

    def blocks(self) -> nn.ModuleList:
        return self.base.encoder.layer

    def block(self, layer: Any, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        sa = layer.attention.self
        q, k, v = sa.query(x), sa.key(x), sa.value(x)  # each (B, C, 1, S)
        out = layer.attention.output
        attended = out.dense(per_head_attention(q, k, v, key_bias, self.heads))  # (B, C, 1, S)
        x = out.LayerNorm(attended + x)  # (B, C, 1, S)
        inner = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(x))  # (B, I, 1, S)
        return layer.output.LayerNorm(layer.output.dense(inner) + x)  # (B, C, 1, S)


def _base_model(model: Any) -> Any:
    return getattr(model, model.base_model_prefix, model)


class AneDeploymentModel(nn.Module):
    """The deployment wrapper's contract in the Neural Engine layout: ``forward(input_ids, attention_mask)`` with
    ``(B, S)`` integer inputs returns the task's outputs (:func:`pocketbert.tasks.output_specs` order and shapes).

    The Hugging Face model is deep-copied and its ``Linear``/``LayerNorm`` children swapped by
    :func:`swap_for_ane`; parameter names stay the checkpoint's.
    """

    def __init__(self, hf_model: Any, task: Task) -> None:
        super().__init__()
        model = copy.deepcopy(hf_model).eval().float()
        swap_for_ane(model)
        self.model = model
        self.task = task
        self.architecture = model.config.model_type
        self.output_names = tuple(spec.name for spec in output_specs(task))
        layout = {"distilbert": _AneDistilBert, "bert": _AneBert}[self.architecture]
        self._parts = layout(_base_model(model))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        keep = attention_mask.to(torch.float32)  # (B, S)
        key_bias = ((1.0 - keep) * MASK_NEGATIVE).unsqueeze(2).unsqueeze(3)  # (B, S, 1, 1)
        hidden = self._parts.embed(input_ids)  # (B, C, 1, S)
        for layer in self._parts.blocks():
            hidden = self._parts.block(layer, hidden, key_bias)  # (B, C, 1, S)
        return self._head(hidden, keep)

    def _head(self, hidden: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        if self.task is Task.FEATURE_EXTRACTION:
            weights = keep.unsqueeze(1).unsqueeze(2)  # (B, 1, 1, S)
            summed = (hidden * weights).sum(dim=3)  # (B, C, 1)
            count = keep.sum(dim=1).clamp(min=1.0).view(-1, 1, 1)  # (B, 1, 1)
            pooled = (summed / count).squeeze(2)  # (B, C)
            norm = torch.sqrt((pooled * pooled).sum(dim=1, keepdim=True)).clamp(min=1e-12)  # (B, 1)
            return _channels_last(hidden), pooled / norm  # (B, S, C), (B, C)
        if self.task is Task.SEQUENCE_CLASSIFICATION:
            first = hidden[:, :, :, 0:1]  # (B, C, 1, 1): the [CLS] token
            if self.architecture == "distilbert":
                pooled = torch.relu(model.pre_classifier(first))  # (B, C, 1, 1)
            else:
                pooled = model.bert.pooler.activation(model.bert.pooler.dense(first))  # (B, C, 1, 1)
            return (model.classifier(pooled).flatten(1),)  # (B, L)
        if self.task is Task.QUESTION_ANSWERING:
            logits = model.qa_outputs(hidden)  # (B, 2, 1, S)
            return logits[:, 0, 0, :], logits[:, 1, 0, :]  # (B, S), (B, S)
        return (_channels_last(model.classifier(hidden)),)  # (B, S, L) token classification
