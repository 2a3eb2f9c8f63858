"""Silence third-party import chatter that says nothing to a pocketbert user.

transformers imports torchao when it is installed (litert-torch brings it), and torchao logs failures to load CUDA
kernels that a CPU machine never needs; torch.onnx warns that torchvision ops are unavailable; transformers draws
progress bars while loading tiny checkpoints,
and coremltools one per conversion pass. Real errors still propagate as exceptions.
"""

from __future__ import annotations

import logging
import os

_NOISY_LOGGERS = (
    "torchao",
    "torch.utils._pytree",
    "torch.onnx._internal.exporter._registration",
    "torch.onnx._internal.exporter._core",
    "onnxscript",
    "root",
)


def quiet_third_party() -> None:
    """Raise the log level of noisy third-party loggers and disable HF progress bars (idempotent)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TQDM_DISABLE", "1")  # coremltools draws a progress bar per conversion pass
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
