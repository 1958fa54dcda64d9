"""The generator on onnxruntime: what lipsync.generator does, from export.py's .onnx, without torch."""

import numpy as np

from models.inputs import mask_lower_half
from onnx_models import inference_session

CPU_BATCH = 8  # onnxruntime's fp32 rate varies under 10 % from batch 1 to 16 on the CPU


class OnnxGenerator:
    """generate(faces, mels) -> generated faces, as lipsync.generator.generate gives them."""

    def __init__(self, path, device, requested_batch):
        self.session = inference_session(path, device)
        on_gpu = self.session.get_providers()[0] == "CUDAExecutionProvider"
        self.device = "cuda" if on_gpu else "cpu"
        self.batch_size = requested_batch if on_gpu else min(requested_batch, CPU_BATCH)

    def generate(self, faces, mels):
        """(k, 96, 96, 3) uint8 BGR crops and (k, 80, 16) mel chunks -> (k, 96, 96, 3) uint8 BGR."""
        if not len(faces):
            return faces
        # As the reference: [face with its lower half zeroed, face] on channels, scaled to [0, 1].
        faces = faces.transpose(0, 3, 1, 2).astype(np.float32) / 255
        face_input = np.concatenate([mask_lower_half(faces), faces], axis=1)
        output, = self.session.run(None, {"mel": mels[:, None].astype(np.float32), "face": face_input})
        # x 255 then truncated to uint8, as the reference does
        return (output * 255).astype(np.uint8).transpose(0, 2, 3, 1)
