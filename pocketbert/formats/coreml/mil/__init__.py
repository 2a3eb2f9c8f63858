"""A NumPy reference interpreter for Core ML ``mlprogram`` packages, so Linux CI can check Core ML numerics.

coremltools converts on Linux but its ``MLModel.predict`` needs Core ML, i.e. macOS. This package reads a saved
``.mlpackage`` (the MIL program in ``model.mlmodel`` and the weight blob ``weights/weight.bin``), and executes the
program op by op in NumPy, keeping every tensor in the dtype the program declares (fp16 values are rounded to fp16
after every op). It proves what the package computes; it says nothing about Apple's kernels or Neural Engine speed.

* :mod:`.package` loads and validates the package;
* :mod:`.ops` holds one small NumPy function per MIL op (the op registry);
* :mod:`.interpreter` runs a loaded program on a feed.
"""
