"""What the benchmarks share: the machine a figure was measured on, their WIDTHxHEIGHT flags, and
the exit status of a benchmark some of whose runs failed."""

import argparse
import platform
import sys
from pathlib import Path
from typing import NamedTuple


def cpu_name():
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform says."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def describe(device):
    """A GPU's name, or the CPU's with the threads PyTorch uses."""
    import torch  # noqa: PLC0415 - not for the benchmarks' children that never need it

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


class FrameSize(NamedTuple):
    """(width, height), written WIDTHxHEIGHT (as --help shows a default)."""

    width: int
    height: int

    def __str__(self):
        return f"{self.width}x{self.height}"

    __repr__ = __str__


def frame_size(text):
    """WIDTHxHEIGHT, as a flag's type: a FrameSize of positive whole numbers."""
    try:
        width, height = (int(value) for value in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, such as 1280x720, not {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"expected a positive width and height, not {text!r}")
    return FrameSize(width, height)


def finished(runs, failed):
    """The exit status of a benchmark of ``runs`` runs: 1, with a line saying so, when any failed."""
    if failed:
        print(f"{failed} of {runs} runs failed (their rows say why)", file=sys.stderr)
    return 1 if failed else 0
