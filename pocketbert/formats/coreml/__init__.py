"""Core ML: the deployment wrapper (or its Neural Engine layout) through coremltools to a single-input ``mlprogram``
package with enumerated shapes, int8 weights (W8) or weights and activations (W8A8), run by Core ML on macOS and by
pocketbert's NumPy MIL interpreter elsewhere, with a report of where Core ML will run it (see
:mod:`pocketbert.formats.coreml.format`)."""

from pocketbert.formats.coreml.format import FORMAT

__all__ = ["FORMAT"]
