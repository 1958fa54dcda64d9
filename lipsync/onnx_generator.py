"""The generator on onnxruntime: what lipsync.generator does, from export.py's .onnx, without torch."""

import contextlib
from pathlib import Path

import numpy as np

from lipsync.threads import worker_pool
from models.inputs import mask_lower_half
from system.digests import file_digest
from system.errors import UserError
from system.onnx_runtime import inference_session
from system.processes import usable_cores

CPU_BATCH = 8  # onnxruntime's fp32 rate varies under 10 % from batch 1 to 16 on the CPU


class OnnxGenerator:
    """generate(faces, mels) -> generated faces, as lipsync.generator.generate gives them."""

    def __init__(self, path, device, requested_batch, checkpoint_path=None):
        # On the CPU two batches run at once, each on half the cores: 18 % faster than one
        # batch on all of them, measured on two cores (as lipsync.generator does in PyTorch).
        cores = usable_cores()
        self.cpu_workers = 2 if cores >= 2 else 1
        self.session = inference_session(path, device, cpu_threads=cores // self.cpu_workers)
        stale = checkpoint_path and source_checkpoint_error(self.session, path, checkpoint_path)
        if stale:  # an export left from another checkpoint (of another face size, say) beside it
            raise UserError(stale)
        on_gpu = self.session.get_providers()[0] == "CUDAExecutionProvider"
        self.device = "cuda" if on_gpu else "cpu"
        self.batch_size = requested_batch if on_gpu else min(requested_batch, CPU_BATCH)
        self.face_size = self.session.get_inputs()[1].shape[-1]  # the exported network's: (batch, 6, S, S)

    @property
    def described(self):
        """Where and how it runs, for the run's report."""
        return f"onnxruntime on {self.device}"

    @contextlib.contextmanager
    def workers(self, detecting, single=False):
        """(a pool, its size) to generate batches side by side in: a session runs calls
        concurrently, and S3FD's session has threads of its own, so detection changes nothing."""
        count = 1 if self.device == "cuda" or single else self.cpu_workers
        with worker_pool(count) as pool:
            yield pool, count

    def generate(self, faces, mels):
        """(k, S, S, 3) uint8 BGR crops and (k, MEL_BINS, MEL_STEP) mel chunks -> (k, S, S, 3) uint8 BGR."""
        if not len(faces):
            return faces
        # As the reference: [face with its lower half zeroed, face] on channels, scaled to [0, 1].
        faces = faces.transpose(0, 3, 1, 2).astype(np.float32) / 255
        face_input = np.concatenate([mask_lower_half(faces), faces], axis=1)
        output, = self.session.run(None, {"mel": mels[:, None].astype(np.float32), "face": face_input})
        # x 255 then truncated to uint8, as the reference does
        return (output * 255).astype(np.uint8).transpose(0, 2, 3, 1)


def source_checkpoint_error(session, onnx_path, checkpoint_path):
    """Why the .onnx of ``session`` is not the export of ``checkpoint_path`` (it was exported from
    another file, or rewritten since), or None: it is, or either cannot tell (no .pth beside it;
    an export made before exports recorded their source)."""
    recorded = session.get_modelmeta().custom_metadata_map
    path = Path(checkpoint_path)
    if "checkpoint_sha256" not in recorded or not path.is_file() or path.suffix == ".onnx":
        return None  # nothing recorded, no checkpoint beside it, or the .onnx was named itself
    stat = path.stat()
    if (str(stat.st_size), str(stat.st_mtime_ns)) == (recorded["checkpoint_bytes"], recorded["checkpoint_mtime_ns"]):
        return None  # the file it was exported from, untouched: no need to read 436 MB
    if str(stat.st_size) == recorded["checkpoint_bytes"] and file_digest(path) == recorded["checkpoint_sha256"]:
        return None  # a copy of it
    network = f" (a network for {recorded['face_size']}-pixel faces)" if "face_size" in recorded else ""
    return (f"{onnx_path} is the export of another checkpoint{network}, not of {path} beside it: "
            f"export it again: python export.py {path}")
