"""What a larger face costs: training steps, inference frames/s and peak memory at each face size.

    python benchmarks/bench_face_sizes.py                                   # 96 and 192, CPU (and CUDA when present)
    python benchmarks/bench_face_sizes.py --face_sizes 96 192 384 --devices cpu

Each row runs in a fresh process, so that its peak memory is its own: resident memory (VmHWM,
PyTorch's own ~0.3 GB included) on the CPU, torch.cuda.max_memory_allocated on a GPU.

    expert step       color_syncnet_train.py's step: --expert_batch windows (default 16), BCE, backward, Adam
    generator step    wav2lip_train.py's: --train_batch windows of 5 frames (default 4), L1 plus the frozen
                      expert's sync loss, backward, Adam
    generator         inference.py's generator (BatchNorm folded, channels-last), batches of --generator_batch (8)

Training rows in fp32 and under --amp's half precision (bf16 on a CPU); the generator in fp32
and bf16 (fp16 on CUDA). Weights are seeded random ones: time and memory do not depend on them.
Prints a Markdown table: frames/s (windows x 5 frames a second for the steps), ms a step, MB.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import system  # noqa: E402, F401 - the project's first: Ctrl-C from here on ends in one line
from benchmarks.shared import cpu_name  # noqa: E402
from models.inputs import FACE_SIZES  # noqa: E402
from system.cli import run  # noqa: E402
from system.errors import check_number  # noqa: E402
from system.flags import argument_parser  # noqa: E402

CASES = ("expert step", "generator step", "generator")


def child(spec):
    """One row, in this process: prints [what, precision, frames/s, seconds per call, peak MB] as JSON."""
    import torch

    from benchmarks import bench_models

    device, size, case, variant = torch.device(spec["device"]), spec["face_size"], spec["case"], spec["variant"]
    if case == "generator":
        (what, precision, fps), = bench_models.bench_generator(device, spec["batch"], spec["repeats"], size,
                                                               slice(variant + 1, variant + 2))
        frames = spec["batch"]
    else:
        bench = bench_models.bench_expert_step if case == "expert step" else bench_models.bench_training_step
        precisions = bench_models.training_precisions(device)[variant:variant + 1]
        (what, precision, fps), = bench(device, spec["batch"], spec["repeats"], size, precisions)
        frames = spec["batch"] * 5
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        with open("/proc/self/status") as status:
            peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    print(json.dumps([what, precision, fps, frames / fps, peak]))


def measure(spec):
    """The row of ``spec``, run in a child process; None and the error's last line if it failed."""
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        return None, (done.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(done.stdout.splitlines()[-1]), None


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--face_sizes", nargs="+", type=int, choices=FACE_SIZES, default=[96, 192],
                   help="face sizes to compare")
    p.add_argument("--devices", nargs="+", metavar="DEVICE", help="devices to run on (default: cpu, and cuda when present)")
    p.add_argument("--expert_batch", type=int, default=16, help="windows per expert training step")
    p.add_argument("--train_batch", type=int, default=4, help="5-frame windows per generator training step")
    p.add_argument("--generator_batch", type=int, default=8, help="faces per generator batch (8: inference's on a CPU)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs after the warm-up; the best counts")
    p.add_argument("--child", help=argparse.SUPPRESS)  # one row, in the process the benchmark starts
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    for name in ("expert_batch", "train_batch", "generator_batch", "repeats"):
        check_number(f"--{name}", getattr(args, name), 1, whole=True)
    import torch

    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}; CPU: {cpu_name()}\n")
    print("| device | face size | what | precision | frames/s | ms a call | peak MB |\n|---|---|---|---|---|---|---|")
    batches = {"expert step": args.expert_batch, "generator step": args.train_batch, "generator": args.generator_batch}
    failed = 0
    for device in devices:
        for case in CASES:
            for variant in (0, 1):
                for size in args.face_sizes:
                    spec = {"device": device, "face_size": size, "case": case, "variant": variant,
                            "batch": batches[case], "repeats": args.repeats}
                    row, error = measure(spec)
                    if row is None:
                        failed += 1
                        print(f"| {device} | {size} | {case} | variant {variant} | failed: {error} | | |", flush=True)
                        continue
                    what, precision, fps, seconds, peak = row
                    print(f"| {device} | {size} | {what} | {precision} | {fps:.1f} | {1000 * seconds:.0f} | {peak:.0f} |",
                          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run(main))
