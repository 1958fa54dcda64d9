"""The Wav2Lip generator at inference: loaded once, BatchNorm folded, run under the chosen precision."""

import contextlib
import functools

import torch

from checkpoint import file_version, load_weights
from errors import UserError
from models import Wav2Lip
from models.fusion import fuse_for_inference
from models.inputs import mask_lower_half

CPU_GENERATOR_BATCH = 16


def batch_size(requested, device):
    """On the CPU, batches of 16 run faster than 128 (they stay in cache), need about 1 GB less
    memory and keep the stages evenly fed; the results do not depend on the batch."""
    return requested if device.type == "cuda" else min(requested, CPU_GENERATOR_BATCH)


def autocast(device, precision):
    """The autocast context for ``precision``: fp16 on CUDA by default, exact fp32 elsewhere."""
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise UserError("--precision fp16 needs a CUDA device; on the CPU use bf16")
    return torch.autocast(device.type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


def load_generator(path, device):
    """The generator of checkpoint ``path`` on ``device``, ready for inference; test-set
    generation calls lip_sync once per video, so the last one loaded is kept."""
    return _load_generator(path, file_version(path), device)


@functools.lru_cache(maxsize=1)
def _load_generator(path, version, device):
    generator = Wav2Lip()
    load_weights(generator, path, "cpu")
    return fuse_for_inference(generator).to(device)


def prepare_generator_input(faces, mels, device):
    """(k, 96, 96, 3) uint8 BGR faces and (k, 80, 16) mel chunks -> the generator's tensors on ``device``.

    As the reference: [face with its lower half zeroed, face] on channels, scaled to [0, 1].
    """
    faces, mels = torch.from_numpy(faces), torch.from_numpy(mels)
    if device.type == "cuda":
        faces, mels = faces.pin_memory(), mels.pin_memory()
    faces = faces.to(device, non_blocking=True).permute(0, 3, 1, 2).float() / 255
    faces = torch.cat([mask_lower_half(faces), faces], dim=1).contiguous(memory_format=torch.channels_last)
    return mels.to(device, non_blocking=True).float().unsqueeze(1), faces


@torch.no_grad()
def generate(generator, faces, mels, device, precision):
    """Generated (k, 96, 96, 3) uint8 BGR faces for the crops and mel chunks of one batch."""
    if not len(faces):
        return faces
    mels, faces = prepare_generator_input(faces, mels, device)
    with autocast(device, precision):
        output = generator(mels, faces)
    # x 255 then truncated to uint8, as the reference does
    return (output.float() * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
