"""Core ML: the deployment wrapper through coremltools to an ``mlprogram`` package, int8 weights (W8) or weights
and activations (W8A8), run by Core ML on macOS and by pocketbert's NumPy MIL interpreter elsewhere (see
:mod:`pocketbert.formats.coreml.format`)."""

from pocketbert.formats.coreml.format import FORMAT

__all__ = ["FORMAT"]
