"""TFLite (LiteRT): the deployment wrapper through litert-torch, one signature per sequence bucket, int8 with
ai-edge-quantizer, run by ai-edge-litert (see :mod:`pocketbert.formats.tflite.format`)."""

from pocketbert.formats.tflite.format import FORMAT

__all__ = ["FORMAT"]
