"""What ships: the TorchScript stream, the ONNX graph and its runtime, latency, playback."""
