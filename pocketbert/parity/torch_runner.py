"""PyTorch runners: the unmodified Hugging Face model (the parity reference) and the deployment wrapper."""

from __future__ import annotations

import numpy as np
import torch

from pocketbert.core.runner import Feed, Runner, as_float32
from pocketbert.loading import LoadedModel
from pocketbert.wrapper import DeploymentModel, reference_outputs


class TorchRunner(Runner):
    """Runs the Hugging Face model's own forward; embeddings are mean-pooled and L2-normalised as in the wrapper."""

    runtime = "torch"

    def __init__(self, loaded: LoadedModel, name: str = "pytorch") -> None:
        super().__init__(name)
        self.loaded = loaded

    def infer_impl(self, feed: Feed) -> dict[str, np.ndarray]:
        ids = torch.from_numpy(np.asarray(feed["input_ids"], dtype=np.int64))
        mask = torch.from_numpy(np.asarray(feed["attention_mask"], dtype=np.int64))
        out = reference_outputs(self.loaded.model, self.loaded.task, ids, mask)
        return as_float32({k: v.numpy() for k, v in out.items()})


class WrapperRunner(Runner):
    """Runs a :class:`DeploymentModel` (or a quantized copy of it) in PyTorch."""

    runtime = "torch"

    def __init__(self, module: DeploymentModel, name: str = "pytorch-wrapper") -> None:
        super().__init__(name)
        self.module = module

    def infer_impl(self, feed: Feed) -> dict[str, np.ndarray]:
        ids = torch.from_numpy(np.asarray(feed["input_ids"], dtype=np.int64))
        mask = torch.from_numpy(np.asarray(feed["attention_mask"], dtype=np.int64))
        with torch.inference_mode():
            outs = self.module(ids, mask)
        return as_float32({name: t.numpy() for name, t in zip(self.module.output_names, outs)})
