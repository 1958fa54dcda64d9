"""onnxruntime sessions to run the exported networks, on the CPU or a CUDA GPU."""

from pathlib import Path

from system.errors import UserError


def inference_session(onnx_path, device="auto", cpu_threads=None):
    """An onnxruntime InferenceSession for ``onnx_path`` on ``device`` (auto, cpu, cuda, cuda:N),
    its CPU work on ``cpu_threads`` threads (onnxruntime's default: one per core)."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError("--backend onnxruntime needs the onnxruntime package: pip install onnxruntime "
                        "(onnxruntime-gpu for CUDA)") from None
    path = Path(onnx_path)
    if not path.is_file():
        raise UserError(f"ONNX model not found: {path} (export.py writes it from the .pth checkpoint)")
    available = onnxruntime.get_available_providers()
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device {device!r}: onnxruntime runs on cpu or cuda[:N]")
    if kind == "cuda" and "CUDAExecutionProvider" not in available:
        raise UserError("--device cuda: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
    providers = ["CPUExecutionProvider"]
    if kind == "cuda" or (kind == "auto" and "CUDAExecutionProvider" in available):
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(index or 0)}))
    settings = onnxruntime.SessionOptions()
    if cpu_threads:
        settings.intra_op_num_threads = cpu_threads
    try:
        return onnxruntime.InferenceSession(str(path), settings, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for bad files
        raise UserError(f"{path} is not an ONNX model onnxruntime can run: {str(error).splitlines()[0]}") from None
