"""pocketbert: distilled BERT-family students from PyTorch to phones (ONNX, TFLite/LiteRT, Core ML, ExecuTorch),
int8-quantized, with parity against PyTorch and a latency bench against full BERT.

The public API is :func:`export`, :func:`check_parity` and :func:`bench` (:mod:`pocketbert.api`), imported on
first use so that ``import pocketbert`` stays cheap.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "bench", "check_parity", "export"]


def __getattr__(name: str) -> Any:
    if name in ("export", "check_parity", "bench"):
        from pocketbert import api

        return getattr(api, name)
    raise AttributeError(f"module 'pocketbert' has no attribute {name!r}")
