"""The networks packaged for other runtimes: ONNX export, checked against PyTorch."""
