"""ONNX: the deployment wrapper through the dynamo exporter, int8 with ONNX Runtime's quantizer, run by ONNX
Runtime (see :mod:`pocketbert.formats.onnx.format`)."""

from pocketbert.formats.onnx.format import FORMAT

__all__ = ["FORMAT"]
