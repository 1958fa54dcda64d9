"""Where training runs: device, rank, mixed precision, TensorBoard, and rank 0's checkpoint
writing (training/checkpoints.py names and saves them)."""

import contextlib
import os
import random
import textwrap
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from hparams import hparams
from system.atomic_write import check_writable
from system.devices import pick_device
from system.errors import UserError
from training import folder_lock
from training.checkpoints import save_step


class Session:
    """Where training runs (as the run's TrainingConfig says): device, rank, precision,
    TensorBoard, checkpoints."""

    def __init__(self, config):
        self.config = config
        self.world_size = config.world_size
        self.rank = int(os.environ.get("RANK", "0"))
        self.distributed = self.world_size > 1
        if self.distributed:
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            use_cuda = config.device != "cpu" and torch.cuda.is_available()
            self.device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
            if use_cuda:
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if use_cuda else "gloo")
        else:
            self.device = pick_device(config.device)
        self.is_main = self.rank == 0
        self.quiet = config.quiet or not self.is_main
        self.checkpoint_dir = Path(config.checkpoint_dir)
        self.amp_dtype = amp_dtype(config.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.writer = self.lock = None
        self.noted = set()  # notes said once for the run, not once per checkpoint read
        if self.is_main:
            check_writable(self.checkpoint_dir)  # a read-only or full folder: say so before any work
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def claim(self):
        """Hold --checkpoint_dir for this run's life (rank 0, which alone writes checkpoints): a
        second run is refused, the lock a killed one left is taken over."""

        def hold():
            self.lock, left = folder_lock.hold(self.checkpoint_dir)
            if left:
                print(f"note: {self.checkpoint_dir / folder_lock.LOCK_NAME} was left by a training run that ended "
                      f"without releasing it ({left}); taken over")

        self.check_on_main(hold)

    def check_on_main(self, check):
        """Run ``check`` on rank 0 alone (the checkpoint folder may be on its node only); when it
        refuses, every rank stops: rank 0 with the error's line, the others quietly."""
        refused = None
        if self.is_main:
            try:
                check()
            except (UserError, OSError) as error:
                refused = error
        if self.distributed:
            verdict = [refused is not None]
            dist.broadcast_object_list(verdict, src=0)
            if verdict[0] and not self.is_main:
                raise SystemExit(1)
        if refused is not None:
            raise refused

    def autocast(self):
        """Forward passes under mixed precision when it is on; losses are computed outside."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def wrap(self, model):
        """The model on the device; under DDP when distributed."""
        model.to(self.device)
        if not self.distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def backward(self, loss):
        self.scaler.scale(loss).backward()

    def step(self, optimizer):
        self.scaler.step(optimizer)

    def update(self):
        """End of a training step: the loss scale (float16 only) adapts once per step."""
        self.scaler.update()

    def all_mean(self, values):
        """{name: mean over every rank} of {name: (sum, count)}."""
        names = sorted(values)
        totals = torch.tensor([[values[name][0], values[name][1]] for name in names], dtype=torch.float64)
        if self.distributed:
            totals = totals.to(self.device)
            dist.all_reduce(totals)
        return {name: float(total / max(count, 1)) for name, (total, count) in zip(names, totals.tolist())}

    def log_scalars(self, group, values, step):
        if self.writer:
            for name, value in values.items():
                self.writer.add_scalar(f"{group}/{name}", value, step)

    def start_logging(self):
        """TensorBoard in --checkpoint_dir (rank 0), once the run is sure to start; the effective
        hyper-parameters printed and logged there as text (each checkpoint holds them too,
        under "hparams", and the run's whole configuration under "config")."""
        if not self.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(self.checkpoint_dir / "tensorboard")
        print(textwrap.fill(hparams.summary(), width=100, subsequent_indent="    ", break_long_words=False,
                            break_on_hyphens=False))
        changed = set(hparams.overridden())
        rows = "".join(f"| {name} | {value!r}{' (--hparams)' if name in changed else ''} |\n"
                       for name, value in sorted(hparams.values().items()))
        self.writer.add_text("hparams", "| hyper-parameter | value |\n|---|---|\n" + rows, 0)

    def save(self, objective, step, epoch):
        """Checkpoint every network (rank 0 only), then keep the run's newest --keep_last steps."""
        if self.is_main:
            save_step(self.config, objective, step, epoch)

    def close(self):
        if self.writer:
            self.writer.close()
        folder_lock.release(self.lock, self.checkpoint_dir)
        self.lock = None
        if self.distributed:
            dist.destroy_process_group()


def amp_dtype(amp, device):
    """The dtype of --amp's mixed precision on ``device`` (None: off)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp in ("fp16", "bf16"):  # fp16 on the CPU too: the GPU's path (with loss scaling), testable anywhere
        return torch.float16 if amp == "fp16" else torch.bfloat16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def seed_everything(seed, rank=0):
    """Same weights on every rank (the seed); the samples are seeded apart (see StepSampler)."""
    torch.manual_seed(seed)
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)

