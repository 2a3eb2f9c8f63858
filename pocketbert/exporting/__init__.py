"""Exporters from the deployment wrapper to ONNX, TFLite (LiteRT) and Core ML."""
