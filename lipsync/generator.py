"""The Wav2Lip generator at inference: loaded once, BatchNorm folded, run under the chosen precision."""

import contextlib
import functools
import sys

import torch

from lipsync.threads import worker_pool
from models import Wav2Lip
from models.checkpoint import file_version, load_network
from models.fusion import fuse_for_inference
from models.inputs import mask_lower_half
from system.devices import pick_device

# The CPU's generator batch, by precision. On the 2-core development host (whose speed drifts
# by 20 % from minute to minute) fp32 ran within 10 % from batch 1 to 128, slightly ahead at
# 8, and bf16 at 8 and 16 within that drift; the results do not depend on the batch.
CPU_GENERATOR_BATCH = {"fp32": 8, "bf16": 16, "fp16": 16}
# How much faster the generator runs in bf16 than in fp32 on a CPU with native bf16: measured
# with benchmarks/bench_models.py, 2.7-3.4x with AMX (Intel Xeon), 2.0-2.3x with AVX-512 BF16
# alone (AMD EPYC), at batches 8 and 16.
BF16_SPEEDUP = "2-3x"


def resolved_precision(device, precision):
    """``auto`` made concrete: fp16 on CUDA, exact fp32 elsewhere."""
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    return precision


def batch_size(requested, device, precision="auto"):
    """The generator batch: ``requested`` on a GPU; on the CPU the smaller of it and the batch
    that runs best there (large batches leave the cache and hold frames longer)."""
    if device.type != "cpu":
        return requested
    return min(requested, CPU_GENERATOR_BATCH[resolved_precision(device, precision)])


def native_bf16(cpuinfo="/proc/cpuinfo"):
    """Whether this CPU computes in bf16 natively: AMX or AVX-512 BF16 (x86), BF16 (Arm). oneDNN's
    own check also says yes for plain AVX-512, where bf16 is emulated: measured 3-4x slower than
    fp32 on such a Xeon (benchmarks/bench_face_sizes.py), so the CPU's flags are read first."""
    try:
        with open(cpuinfo) as handle:
            flags = {word for line in handle if line.lower().startswith(("flags", "features")) for word in line.split()}
        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    except OSError:  # no /proc (macOS, Windows): oneDNN's word
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        try:
            return bool(check and check())
        except RuntimeError:
            return False


def suggest_bf16(device, precision):
    """With ``--precision auto`` on a CPU with native bf16, say what bf16 would give."""
    if precision == "auto" and device.type == "cpu" and native_bf16():
        print(f"note: this CPU has native bf16: --precision bf16 runs the generator about {BF16_SPEEDUP} "
              "faster here, within about one grey level of the exact fp32 default", file=sys.stderr)


def autocast(device, precision):
    """The autocast context for ``precision``: fp16 on CUDA by default, exact fp32 elsewhere.

    fp16 also runs on the CPU (slowly, unless it has AMX-FP16): that is how the tests check the
    path a GPU takes."""
    precision = resolved_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


class TorchGenerator:
    """The generator in PyTorch on the device and precision asked for: generate(faces, mels)."""

    def __init__(self, path, device, precision, requested_batch, notes=False):
        self.device, self.precision = pick_device(device), precision
        autocast(self.device, precision)  # checks the precision first
        self.batch_size = batch_size(requested_batch, self.device, precision)
        self.model = load_generator(path, self.device)
        self.face_size = self.model.face_size  # the checkpoint's: 96 as released
        if notes:  # --verbose: the same note on every run of every day would be noise
            suggest_bf16(self.device, precision)

    def generate(self, faces, mels):
        return generate(self.model, faces, mels, self.device, self.precision)

    @property
    def described(self):
        """Where and how it runs, for the run's report: "cpu, fp32"."""
        return f"{self.device}, {resolved_precision(self.device, self.precision)}"

    @contextlib.contextmanager
    def workers(self, detecting, single=False):
        """(a pool, its size) to generate batches side by side in.

        On a CPU of several cores, two batches at once with half the threads each: measured
        4 % (fp32) to 23 % (bf16) faster than one batch on all of them, and in the pipeline a
        stage that takes a core then slows one batch down instead of stalling both threads of
        one batch at every layer. Not while S3FD runs in PyTorch beside it: torch keeps a
        thread count per thread, but a thread takes the last count set anywhere when it first
        uses one, so detection could start on half its threads. ``single``: one worker with
        every thread (each batch sooner: a realtime stream)."""
        threads = torch.get_num_threads()
        count = 2 if self.device.type == "cpu" and threads >= 2 and not detecting and not single else 1
        shares = iter([threads - threads // 2, threads // 2])  # each worker's threads
        try:
            with worker_pool(count, (lambda: _use_threads(next(shares))) if count > 1 else None) as pool:
                yield pool, count
        finally:
            torch.set_num_threads(threads)  # the count threads started later take


def _use_threads(count):
    """The calling thread's intra-op thread count, for good: its first use of the count reads
    the process-wide one, so make that happen before setting its own."""
    torch.get_num_threads()
    torch.set_num_threads(count)


def load_generator(path, device):
    """The generator of checkpoint ``path`` on ``device``, ready for inference; test-set
    generation calls lip_sync once per video, so the last one loaded is kept."""
    return _load_generator(path, file_version(path), device)


@functools.lru_cache(maxsize=1)
def _load_generator(path, version, device):
    # Built at the face size the checkpoint records, on the meta device: no random
    # initialisation of weights about to be replaced (0.2-0.3 s).
    generator, _ = load_network(Wav2Lip, path, "cpu", meta=True)
    return fuse_for_inference(generator, in_place=True).to(device)


def prepare_generator_input(faces, mels, device):
    """(k, S, S, 3) uint8 BGR faces (S: the generator's face size) and (k, MEL_BINS, MEL_STEP) mel chunks (models.inputs) -> the
    generator's tensors on ``device``.

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
    """Generated (k, S, S, 3) uint8 BGR faces for the crops and mel chunks of one batch."""
    if not len(faces):
        return faces
    mels, faces = prepare_generator_input(faces, mels, device)
    with autocast(device, precision):
        output = generator(mels, faces)
    # x 255 then truncated to uint8, as the reference does
    return (output.float() * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
