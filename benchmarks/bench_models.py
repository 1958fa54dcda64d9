"""Frames per second of the Wav2Lip generator, of a Wav2Lip training step and of S3FD face detection.

    python benchmarks/bench_models.py                      # CPU, and CUDA when present
    python benchmarks/bench_models.py --devices cpu --repeats 3

Generator: batches of --wav2lip_batch_size (default 128) 96x96 faces, as inference.py feeds it.
Training step: --train_batch (default 4) windows of 5 frames through the generator and the
frozen expert, L1 plus sync loss, backward and Adam, as wav2lip_train.py runs it with and
without ``--amp``.
S3FD: --face_det_batch_size (default 16) frames of --det_size (default 1280x720) through the network
and the post-processing (``S3FDDetector.detect``). Weights are random (seeded); the detector's
class biases are set so that, as with real weights on a video, few positions are candidates,
so post-processing costs what it does in practice. Prints a Markdown table.
"""

import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import system  # noqa: E402, F401 - the project's first: Ctrl-C from here on ends in one line
from benchmarks.shared import FrameSize, describe, frame_size  # noqa: E402
from face_detection import S3FD, S3FDDetector  # noqa: E402
from models import SyncNet_color, Wav2Lip  # noqa: E402
from models.fusion import fuse_for_inference  # noqa: E402
from models.inputs import stack_lower_halves  # noqa: E402
from system.cli import run  # noqa: E402
from system.errors import check_number  # noqa: E402
from system.flags import (  # noqa: E402
    add_face_det_batch_flag,
    add_wav2lip_batch_flag,
    argument_parser,
)
from training.losses import cosine_loss, generator_loss  # noqa: E402


def timed(step, device, repeats):
    """Best wall time of ``repeats`` calls after one warm-up call."""
    def once():
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()
    return min(once() for _ in range(repeats))


def generator_variants(device, face_size=96):
    """(name, model, input dtype, autocast dtype) for each way inference can run the generator."""
    torch.manual_seed(0)
    model = Wav2Lip(face_size).eval().to(device)
    variants = [("fp32", model, torch.float32, None), ("fp32, BN folded, channels-last", fuse_for_inference(model), torch.float32, None)]
    if device.type == "cuda":
        variants.append(("fp16", fuse_for_inference(model).half(), torch.float16, None))
    else:
        variants.append(("bf16 autocast, BN folded, channels-last", fuse_for_inference(model), torch.float32, torch.bfloat16))
    return variants


def bench_generator(device, batch, repeats, face_size=96, variants=None):
    rows = []
    for name, model, dtype, autocast in generator_variants(device, face_size)[variants or slice(None)]:
        mel = torch.randn(batch, 1, 80, 16, device=device, dtype=dtype)
        faces = torch.rand(batch, 6, face_size, face_size, device=device, dtype=dtype).contiguous(
            memory_format=torch.channels_last)

        def step():
            with torch.inference_mode(), torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                model(mel, faces)

        rows.append((f"generator, batch {batch}", name, batch / timed(step, device, repeats)))
    return rows


def half_precision(device):
    """The half-precision type training's --amp takes on ``device``."""
    return torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16


def training_precisions(device):
    half = half_precision(device)
    return (("fp32", None), (f"{str(half)[6:]} autocast", half))


def bench_training_step(device, batch, repeats, face_size=96, precisions=None):
    """wav2lip_train.py's step: the generator, the frozen expert's sync loss, L1, backward, Adam."""
    torch.manual_seed(0)
    generator, expert = Wav2Lip(face_size).to(device), SyncNet_color(face_size).to(device)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-4)
    faces = torch.rand(batch, 6, 5, face_size, face_size, device=device)
    target = torch.rand(batch, 3, 5, face_size, face_size, device=device)
    frame_mels, mel = torch.randn(batch, 5, 1, 80, 16, device=device), torch.randn(batch, 1, 80, 16, device=device)
    rows = []
    for name, dtype in precisions or training_precisions(device):
        def step():
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                generated = generator(frame_mels, faces)
                audio_embedding, face_embedding = expert(mel, stack_lower_halves(generated))
            sync = cosine_loss(audio_embedding, face_embedding, torch.ones(batch, 1, device=device))
            loss = generator_loss({"sync": sync, "l1": F.l1_loss(generated.float(), target)}, syncnet_wt=0.03)
            optimizer.zero_grad()
            loss.backward()  # float16 would need loss scaling to train; the cost is the same
            optimizer.step()

        rows.append((f"Wav2Lip training step, batch {batch}x5", name, batch * 5 / timed(step, device, repeats)))
    return rows


def bench_expert_step(device, batch, repeats, face_size=96, precisions=None):
    """color_syncnet_train.py's step: the expert on ``batch`` windows, BCE of the cosine, backward, Adam."""
    torch.manual_seed(0)
    expert = SyncNet_color(face_size).to(device)
    optimizer = torch.optim.Adam(expert.parameters(), lr=1e-4)
    faces = torch.rand(batch, 15, face_size // 2, face_size, device=device)
    mel, label = torch.randn(batch, 1, 80, 16, device=device), (torch.rand(batch, 1, device=device) > 0.5).float()
    rows = []
    for name, dtype in precisions or training_precisions(device):
        def step():
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                audio_embedding, face_embedding = expert(mel, faces)
            loss = cosine_loss(audio_embedding.float(), face_embedding.float(), label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        rows.append((f"expert training step, batch {batch}", name, batch * 5 / timed(step, device, repeats)))
    return rows


def bench_detector(device, batch, size, repeats, weights_dir):
    torch.manual_seed(0)
    net = S3FD()
    with torch.no_grad():  # background wins nearly everywhere, as on real video
        for level in ("conv3_3_norm", "conv4_3_norm", "conv5_3_norm", "fc7", "conv6_2", "conv7_2"):
            conf = getattr(net, f"{level}_mbox_conf")
            conf.weight.mul_(0.01)
            conf.bias.copy_(torch.tensor([8.0] * (conf.out_channels - 1) + [-8.0]))
    path = weights_dir / "s3fd_bench.pth"
    torch.save(net.state_dict(), path)
    width, height = size
    frames = np.random.default_rng(0).integers(0, 255, size=(batch, height, width, 3), dtype=np.uint8)
    rows = []
    detector = S3FDDetector(device, path, batch_size=batch)
    rows.append((f"S3FD {width}x{height}, batch {batch}", "fp32", batch / timed(lambda: detector.detect(frames), device, repeats)))
    half = torch.float16 if device.type == "cuda" else torch.bfloat16

    def step():
        with torch.autocast(device.type, dtype=half):
            detector.detect(frames)

    rows.append((f"S3FD {width}x{height}, batch {batch}", f"{str(half)[6:]} autocast", batch / timed(step, device, repeats)))
    return rows


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--devices", nargs="+", metavar="DEVICE", help="devices to run on (default: cpu, and cuda when present)")
    add_wav2lip_batch_flag(p, "--gen_batch")  # inference's name; the benchmark's first one still parses
    p.add_argument("--train_batch", type=int, default=4, help="5-frame windows per training step")
    add_face_det_batch_flag(p, "--det_batch")
    p.add_argument("--det_size", type=frame_size, default=FrameSize(1280, 720), metavar="WxH",
                   help="WIDTHxHEIGHT of the detector's frames")
    p.add_argument("--repeats", type=int, default=2, help="timed runs after the warm-up; the best counts")
    p.add_argument("--skip_detector", action="store_true", help="leave S3FD out (its rows take the longest on a CPU)")
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    for name in ("wav2lip_batch_size", "train_batch", "face_det_batch_size", "repeats"):
        check_number(f"--{name}", getattr(args, name), 1, whole=True)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, Python {platform.python_version()}\n")
    print("| device | what | precision | frames/s |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as weights_dir:
        for name in devices:
            device = torch.device(name)
            rows = bench_generator(device, args.wav2lip_batch_size, args.repeats)
            rows += bench_training_step(device, args.train_batch, args.repeats)
            if not args.skip_detector:
                rows += bench_detector(device, args.face_det_batch_size, args.det_size, args.repeats, Path(weights_dir))
            for what, precision, fps in rows:
                print(f"| {describe(device)} | {what} | {precision} | {fps:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
