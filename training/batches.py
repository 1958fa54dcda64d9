"""What each training step trains on: the data loader and its step-determined batches."""

import functools
import os

import torch

from hparams import hparams
from system.errors import UserError
from system.processes import stop_signals_blocked
from training import dataset


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


def data_loader(dataset_class, split, config, batch_size, session, steps_per_epoch=None):
    """A DataLoader of ``split`` (the run's ``config`` says where its filelist and clips are, the
    seed and the workers) batched by a StepSampler: an epoch is as many steps as the
    filelist has clips for (at least one; every batch is full, as BatchNorm needs more than
    one sample), or ``steps_per_epoch``.

    Workers are spawned, not forked, for the reason system/processes.py gives: a fork of this
    process, which runs threads (PyTorch's, OpenCV's, TensorBoard's), can hang forever.
    """
    clips = dataset.read_filelist(config.filelist_dir, split, config.data_root, config.min_confidence)
    if split == "train" and session.is_main:
        note = dataset.small_crops_note(clips, config.hparams["face_size"])
        if note:
            print(note, flush=True)
    samples = dataset_class(clips, seed=f"{config.seed}/{split}", face_size=config.hparams["face_size"])
    steps = steps_per_epoch or max(1, len(clips) // (batch_size * session.world_size))
    workers = loader_workers(config)
    return torch.utils.data.DataLoader(
        samples, batch_sampler=StepSampler(batch_size, session.rank, session.world_size, steps), num_workers=workers,
        multiprocessing_context="spawn" if workers > 0 else None, pin_memory=session.device.type == "cuda",
        persistent_workers=workers > 0, worker_init_fn=functools.partial(_take_hparams, dict(config.hparams)),
    )


def _take_hparams(values, worker_id):
    """A spawned worker imports hparams.py afresh, with its defaults: it takes the run's (the
    fps that places the audio windows, the rate and mel bins of the audio) before any sample."""
    for name, value in values.items():
        hparams.set_hparam(name, value)


def loader_workers(config):
    return min(config.hparams["num_workers"], os.cpu_count() or 1)


def check_batch_memory(dataset_class, batch_size, config):
    """The input batches a run holds at once (both loaders' prefetched ones, two per worker,
    and the one in use) must fit in half the machine's memory: a batch size far too big is
    one line before any work, not hours of swapping until the kernel kills the run. Only the
    inputs are counted; the networks' activations come on top."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not said on this system: nothing to compare with
        return
    workers = loader_workers(config)
    held = 2 * (2 * workers + 1) * batch_size * dataset_class.sample_bytes()
    if held > memory / 2:
        raise UserError(f"batches of {batch_size} samples with num_workers={workers} hold {held / 1e9:.1f} GB of "
                        f"input at once, more than half of this machine's {memory / 1e9:.1f} GB of memory; "
                        "lower the batch size with --hparams")


def batches(loader, step=0):
    """Batches forever from global step ``step``: (False, batch) for each step, and (True, None)
    at each epoch's end. An epoch ends every len(loader) steps, counted from step 0, so a run
    resumed mid-epoch finishes that epoch where the uninterrupted run would."""
    sampler = loader.batch_sampler
    if step and step % len(sampler) == 0:
        yield True, None  # resumed at an epoch's end: the uninterrupted run counted it here
    while True:
        sampler.first = step
        for batch in reraise_worker_errors(loader):
            step += 1
            yield False, batch
        yield True, None


def reraise_worker_errors(loader):
    """The loader's batches, from workers deaf to Ctrl-C and SIGTERM (the trainer stops them). A
    UserError raised in a worker arrives wrapped in its traceback: keep its line."""
    try:
        with stop_signals_blocked():  # the workers start here and leave Ctrl-C to the trainer (system/processes.py)
            started = iter(loader)
        yield from started
    except UserError as error:
        raise UserError(str(error).strip().splitlines()[-1].split(": ", 1)[-1]) from None


def evaluation_batches(count, session):
    """Each rank's share of an evaluation over ``count`` batches."""
    return max(1, -(-count // session.world_size))

