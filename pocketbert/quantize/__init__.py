"""int8 quantization of exported graphs (one module per format's quantizer)."""
