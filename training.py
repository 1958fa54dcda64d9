"""The training loop the three trainers share: data, devices, checkpoints, logging, resume.

A trainer is an *objective* (see ``objectives.py``): its networks and optimisers, one
training step, one evaluation step and what to do with an evaluation. ``train`` runs it
the way the reference trainers run: a checkpoint at step 1 and every checkpoint interval,
sample collages every checkpoint interval, an evaluation every evaluation interval. Beyond
the reference: ``--max_steps``, resume of step, epoch, optimiser and ``syncnet_wt``, atomic
checkpoints with ``--keep_last``, TensorBoard, ``--seed``, mixed precision on the GPU and
multi-GPU / multi-node training with ``torchrun`` (DDP; each rank draws its own samples;
rank 0 logs and writes checkpoints).
"""

import argparse
import contextlib
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

import cli
import lrs2_dataset
from atomic_write import check_writable
from checkpoint import load_weights, save_checkpoint
from errors import UserError
from hparams import add_hparams_argument, apply_hparams_argument, hparams
from media import write_jpeg

CHECKPOINT_NAME = re.compile(r"^(?P<prefix>.*)checkpoint_step(?P<step>\d+)\.pth$")


def add_training_flags(parser, disc=False, syncnet=False):
    """The reference's flags and the ones every trainer adds to them."""
    parser.add_argument("--data_root", required=True, help="root folder of the preprocessed dataset")
    parser.add_argument("--checkpoint_dir", required=True, help="where checkpoints, samples and TensorBoard logs go")
    parser.add_argument("--checkpoint_path", help="resume from this checkpoint (step, epoch and optimiser included)")
    if syncnet:
        parser.add_argument("--syncnet_checkpoint_path", required=True, help="the trained expert lip-sync discriminator")
    if disc:
        parser.add_argument("--disc_checkpoint_path", help="resume the visual-quality discriminator from this checkpoint")
    parser.add_argument("--resume", action="store_true",
                        help="resume from the newest checkpoint(s) in --checkpoint_dir, if there are any")
    parser.add_argument("--filelists", default="filelists", help="folder of train.txt and val.txt (default: filelists/)")
    parser.add_argument("--max_steps", type=int, help="stop after this global step (default: train until interrupted)")
    parser.add_argument("--eval_batches", type=int, help="batches per evaluation (default: the reference's number)")
    parser.add_argument("--keep_last", type=int, default=0, metavar="N",
                        help="keep only the newest N checkpoints of each network (default: keep all)")
    parser.add_argument("--log_interval", type=int, default=50, help="steps between TensorBoard scalars")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights' initialisation and the sampling")
    parser.add_argument("--amp", choices=["auto", "on", "off"], default="auto",
                        help="mixed precision (bfloat16, or float16 with loss scaling): auto = on a CUDA GPU")
    add_hparams_argument(parser)
    cli.add_run_flags(parser)


class Session:
    """Where training runs: device, rank, precision, TensorBoard, checkpoints."""

    def __init__(self, args):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.distributed = self.world_size > 1
        if self.distributed:
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            use_cuda = args.device != "cpu" and torch.cuda.is_available()
            self.device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
            if use_cuda:
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if use_cuda else "gloo")
        else:
            self.device = cli.pick_device(args.device)
        self.is_main = self.rank == 0
        self.quiet = args.quiet or not self.is_main
        self.checkpoint_dir = Path(args.checkpoint_dir)
        self.keep_last = args.keep_last
        self.amp_dtype = self._amp_dtype(args.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.writer = None
        if self.is_main:
            check_writable(self.checkpoint_dir)  # a read-only or full folder: say so before any work
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(self.checkpoint_dir / "tensorboard")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def _amp_dtype(self, amp):
        if amp == "off" or (amp == "auto" and self.device.type != "cuda"):
            return None
        if self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16

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

    def save(self, objective, step, epoch):
        """Checkpoint every network (rank 0 only), then keep only the newest --keep_last steps.

        Older steps are removed only once every network of this step is saved, so a kill at
        any point leaves a step whose checkpoints are all complete to resume from.
        """
        if not self.is_main:
            return
        for prefix, model, optimizer in objective.networks():
            path = self.checkpoint_dir / f"{prefix}checkpoint_step{step:09d}.pth"
            save_checkpoint(path, model, optimizer if hparams.save_optimizer_state else None, step, epoch,
                            **objective.checkpoint_extras())
        complete = complete_steps(self.checkpoint_dir, objective.prefixes)
        if 0 < self.keep_last < len(complete):
            oldest_kept = complete[-self.keep_last]
            for prefix in objective.prefixes:
                for old_step, old in checkpoint_steps(self.checkpoint_dir, prefix):
                    if old_step < oldest_kept:
                        old.unlink(missing_ok=True)

    def close(self):
        if self.writer:
            self.writer.close()
        if self.distributed:
            dist.destroy_process_group()


def checkpoint_steps(folder, prefix=""):
    """(step, path) of the ``<prefix>checkpoint_step*.pth`` files in ``folder``, oldest first."""
    found = []
    for path in Path(folder).glob(f"{prefix}checkpoint_step*.pth"):
        match = CHECKPOINT_NAME.match(path.name)
        if match and match["prefix"] == prefix:
            found.append((int(match["step"]), path))
    return sorted(found)


def checkpoints(folder, prefix=""):
    """The ``<prefix>checkpoint_step*.pth`` files in ``folder``, oldest step first."""
    return [path for _, path in checkpoint_steps(folder, prefix)]


def complete_steps(folder, prefixes):
    """The steps, oldest first, for which every network (one ``prefix`` each) has a checkpoint."""
    steps = [{step for step, _ in checkpoint_steps(folder, prefix)} for prefix in prefixes]
    return sorted(set.intersection(*steps))


def resume_paths(folder, prefixes):
    """{prefix: checkpoint} of the newest step whose checkpoints are complete for every
    network; {} when ``folder`` has none at all. Checkpoints are written atomically, so a
    file that exists is whole; a step that misses a network (killed while saving) is passed
    over for the one before."""
    steps = complete_steps(folder, prefixes)
    if steps:
        return {prefix: Path(folder) / f"{prefix}checkpoint_step{steps[-1]:09d}.pth" for prefix in prefixes}
    found = {prefix or "generator": [step for step, _ in checkpoint_steps(folder, prefix)] for prefix in prefixes}
    if any(found.values()):
        listed = "; ".join(f"{name}: steps {steps or 'none'}" for name, steps in found.items())
        raise UserError(f"--resume: no step in {folder} has a checkpoint of every network ({listed}); "
                        "pass --checkpoint_path (and --disc_checkpoint_path) to choose")
    return {}


def restore(session, model, optimizer, path):
    """Load the checkpoint at ``path`` (None: start afresh) into ``model`` and ``optimizer``.
    Weights load strictly; returns the checkpoint dict ({} when starting afresh)."""
    if path is None:
        return {}
    state = load_weights(model, path, session.device)
    if optimizer is not None and state.get("optimizer"):
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as error:
            raise UserError(f"{path}: its optimiser state does not fit this trainer ({error})") from None
    if session.is_main:
        print(f"resuming from {path} (step {state.get('global_step', 0)}, epoch {state.get('global_epoch', 0)})")
    return state


def seed_everything(seed, rank=0):
    """Same weights on every rank (the seed); the samples are seeded apart (see StepSampler)."""
    torch.manual_seed(seed)
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)


class StepSampler(torch.utils.data.Sampler):
    """The batches of one epoch, from global step ``first`` to the epoch's end, as sample numbers.

    Item k of step s on rank r is sample number (s * world + r) * batch + k, and the dataset
    draws sample n from a generator seeded by n alone. A batch therefore depends on its step
    only, not on the number of workers or on where a run was resumed: a resumed run trains
    on exactly the batches the uninterrupted run would have, and every rank on its own.
    """

    def __init__(self, batch_size, rank, world_size, steps_per_epoch):
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.steps_per_epoch, self.first = steps_per_epoch, 0

    def __len__(self):
        return self.steps_per_epoch

    def __iter__(self):
        end = (self.first // self.steps_per_epoch + 1) * self.steps_per_epoch
        for step in range(self.first, end):
            start = (step * self.world_size + self.rank) * self.batch_size
            yield list(range(start, start + self.batch_size))


def data_loader(dataset_class, split, args, batch_size, session, steps_per_epoch=None):
    """A DataLoader of ``split`` batched by a StepSampler: an epoch is as many steps as the
    filelist has clips for (at least one; every batch is full, as BatchNorm needs more than
    one sample), or ``steps_per_epoch``.

    Workers are spawned, not forked, for the reason processes.py gives: a fork of this
    process, which runs threads (PyTorch's, OpenCV's, TensorBoard's), can hang forever.
    """
    clips = lrs2_dataset.read_filelist(args.filelists, split, args.data_root)
    dataset = dataset_class(clips, seed=f"{args.seed}/{split}")
    steps = steps_per_epoch or max(1, len(clips) // (batch_size * session.world_size))
    workers = min(hparams.num_workers, os.cpu_count() or 1)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=StepSampler(batch_size, session.rank, session.world_size, steps), num_workers=workers,
        multiprocessing_context="spawn" if workers > 0 else None, pin_memory=session.device.type == "cuda",
        persistent_workers=workers > 0,
    )


def batches(loader, step=0):
    """Batches forever from global step ``step``: (False, batch) for each step, and (True, None)
    at each epoch's end. An epoch ends every len(loader) steps, counted from step 0, so a run
    resumed mid-epoch finishes that epoch where the uninterrupted run would."""
    sampler = loader.batch_sampler
    if step and step % len(sampler) == 0:
        yield True, None  # resumed at an epoch's end: the uninterrupted run counted it here
    while True:
        sampler.first = step
        for batch in _reraise_worker_errors(loader):
            step += 1
            yield False, batch
        yield True, None


def _reraise_worker_errors(loader):
    """A UserError raised in a DataLoader worker arrives wrapped in its traceback: keep its line."""
    try:
        yield from loader
    except UserError as error:
        raise UserError(str(error).strip().splitlines()[-1].split(": ", 1)[-1]) from None


def evaluation_batches(count, session):
    """Each rank's share of an evaluation over ``count`` batches."""
    return max(1, -(-count // session.world_size))


def evaluate(objective, loader, session):
    """Mean of each evaluation loss over the loader's batches on every rank: the same
    validation samples at every evaluation (the loader's one epoch, from step 0)."""
    totals = {}
    objective.set_train(False)
    with torch.no_grad():
        for batch in _reraise_worker_errors(loader):
            _accumulate(totals, objective.eval_step(to_device(batch[:-1], session.device)))
    objective.set_train(True)
    return session.all_mean(totals)


def to_device(batch, device):
    return [tensor.to(device, non_blocking=True) for tensor in batch]


def train(objective, args):
    """Run ``objective`` from its resumed step until --max_steps (or forever); returns the last step."""
    session = objective.session
    eval_batches = args.eval_batches or objective.eval_batches
    train_loader = data_loader(objective.dataset_class, "train", args, objective.batch_size, session)
    eval_loader = data_loader(objective.dataset_class, "val", args, objective.batch_size, session,
                              evaluation_batches(eval_batches, session))
    step, epoch = objective.global_step, objective.global_epoch
    first_step, started = step, time.time()
    if args.max_steps is not None and step >= args.max_steps:
        raise UserError(f"the checkpoint is at step {step}, already at --max_steps {args.max_steps}")
    if session.is_main:
        print(f"{objective.name}: {len(train_loader.dataset.clips)} training clips, {len(eval_loader.dataset.clips)} validation clips; "
              f"batch {objective.batch_size} x {session.world_size} process(es) on {session.device}"
              + (f", mixed precision {str(session.amp_dtype).split('.')[-1]}" if session.amp_dtype else "")
              + f"; starting at step {step}")

    running, skipped, last_eval, tick, tick_step = {}, 0, {}, time.time(), step
    bar = tqdm(total=args.max_steps, initial=step, unit="step", disable=session.quiet, dynamic_ncols=True)
    try:
        for epoch_ended, batch in batches(train_loader, step):
            if epoch_ended:
                epoch += 1
                continue
            *tensors, skip_counts = batch
            skipped += int(skip_counts.sum())
            losses = objective.train_step(to_device(tensors, session.device))
            if step % objective.checkpoint_interval == 0 and session.is_main:
                objective.write_samples(session, step)
            step += 1
            _accumulate(running, losses)
            bar.update()
            bar.set_description(format_losses(_means(running)))

            if step == 1 or step % objective.checkpoint_interval == 0:
                session.save(objective, step, epoch)
            if (step == 1 and objective.evaluate_first_step) or step % objective.eval_interval == 0:
                last_eval = evaluate(objective, eval_loader, session)
                objective.after_evaluation(last_eval)
                session.log_scalars("eval", last_eval, step)
                if session.is_main:
                    tqdm.write(f"step {step}: evaluation over {eval_batches} batches: {format_losses(last_eval)}"
                               f"{objective.status()}", file=sys.stderr)
            if step % args.log_interval == 0 or step == args.max_steps:
                now = time.time()
                session.log_scalars("train", {**_means(running), **objective.scalars(), "skipped_samples": skipped,
                                              "steps_per_second": (step - tick_step) / max(now - tick, 1e-9)}, step)
                running, tick, tick_step = {}, now, step
            if args.max_steps is not None and step >= args.max_steps:
                break
    finally:
        bar.close()
    if step % objective.checkpoint_interval != 0 and step != 1:
        session.save(objective, step, epoch)  # the final state, unless that step was just saved
    if session.is_main:
        seconds = time.time() - started
        steps = step - first_step
        print(f"{objective.name}: trained steps {first_step}..{step} ({steps} steps, {seconds:.0f} s, "
              f"{steps / max(seconds, 1e-9):.2f} steps/s); last evaluation: {format_losses(last_eval) or 'none'}"
              f"{objective.status()}; {skipped} unreadable samples skipped; checkpoints in {session.checkpoint_dir}")
    return step


def _accumulate(sums, values):
    """Add {name: value} to {name: (sum, count)}."""
    for name, value in values.items():
        total, n = sums.get(name, (0.0, 0))
        sums[name] = (total + value, n + 1)


def _means(running):
    return {name: total / n for name, (total, n) in running.items()}


def format_losses(values):
    return ", ".join(f"{name} {value:.4f}" for name, value in values.items())


def collage(inputs, generated, targets):
    """The reference's sample collage: per item and frame, [reference | masked | generated |
    target] side by side, as uint8 BGR (B, T, H, 4W, 3)."""
    def frames(tensor):
        return (tensor.detach().float().cpu().numpy().transpose(0, 2, 3, 4, 1) * 255.0).clip(0, 255).astype(np.uint8)

    x, g, gt = frames(inputs), frames(generated), frames(targets)
    return np.concatenate((x[..., 3:], x[..., :3], g, gt), axis=-2)


def write_collage(images, folder, writer=None, step=0, shown=4):
    """Each frame of ``images`` as ``<item>_<frame>.jpg`` in ``folder`` (the reference's
    samples) and the first items, frames stacked, as one TensorBoard image."""
    folder.mkdir(parents=True, exist_ok=True)
    for item, frames in enumerate(images):
        for t, image in enumerate(frames):
            write_jpeg(folder / f"{item}_{t}.jpg", image)
    if writer:
        grid = np.concatenate([np.concatenate(list(frames), axis=0) for frames in images[:shown]], axis=1)
        writer.add_image("samples", grid[..., ::-1].copy(), step, dataformats="HWC")


def main_for(objective_class, description, disc=False, syncnet=False):
    """The command-line entry point of a trainer: ``sys.exit(cli.run(main_for(...)))``."""

    def main(argv):
        parser = argparse.ArgumentParser(description=description)
        add_training_flags(parser, disc=disc, syncnet=syncnet)
        args = parser.parse_args(argv)
        apply_hparams_argument(args)
        cli.existing_folder(args.data_root, "--data_root")
        session = Session(args)
        try:
            seed_everything(args.seed, session.rank)
            objective = objective_class(session, args)
            train(objective, args)
        finally:
            session.close()
        return 0

    return main
