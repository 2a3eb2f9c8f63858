"""pocketbert: distilled BERT-family students from PyTorch to phones (ONNX, TFLite/LiteRT, Core ML), with parity."""

__version__ = "0.1.0"
