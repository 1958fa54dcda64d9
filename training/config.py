"""A training run's configuration: built once from the trainer's flags, the hyper-parameters
and the objective's constants, then only read.

The session, the objective and the data loader take their settings from it. Every checkpoint
carries it whole (key "config", a plain dict that readers of the released format ignore) and
the checkpoint folder holds it as ``run.json``, so that a run says what it was; a resumed run
names each value that differs from its checkpoint's (``changes_since``). A run.json is itself
a --config file for its trainer (training/config_file.py): each key a flag of the trainer sets
is that flag, ``hparams`` its hyper-parameters, and the keys in ``RECORDED`` are checked, not set.
"""

import dataclasses
import json
import os
from pathlib import Path
from types import MappingProxyType

from hparams import hparams
from system.atomic_write import atomic_output
from training.checkpoints import checkpoint_flag
from training.dataset import find_filelists
from training.sync_corrections import fingerprint

RUN_FILE = "run.json"

# Not named by a resumed run's note: what a resume changes by its nature (what to resume from,
# how far to go, how much to print), and the hyper-parameters, which have their own note.
EXPECTED_TO_CHANGE = frozenset({"resume", "start_over", "checkpoint_path", "disc_checkpoint_path", "max_steps",
                                "quiet", "filelists_from_data_root", "hparams"})
# The keys of run.json that no flag of its trainer sets: what the run found or was (which
# trainer, how it was launched), and the flags of the other trainers (null there).
RECORDED = frozenset({"objective", "filelists_from_data_root", "world_size", "constants", "syncnet_checkpoint_path",
                      "disc_checkpoint_path", "sync_corrections", "sync_corrections_sha256"})


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything a training run depends on. Paths are kept as given (messages name them so)."""

    objective: str  # what is trained: the objective's name ("expert SyncNet", "Wav2Lip", ...)
    data_root: str
    filelist_dir: str  # the folder of train.txt and val.txt the run reads
    filelists_from_data_root: bool  # --filelist_dir not given and filelists/ has no train.txt: <data_root>/filelists
    min_confidence: float | None  # clips of a lower sync confidence are left out (training/sync_corrections.py)
    sync_corrections: str | None  # <data_root>/sync_corrections.csv when there is one: the audio it shifts
    sync_corrections_sha256: str | None  # what it held, so that a repeat or a resume can tell it changed
    checkpoint_dir: str
    checkpoint_path: str | None
    disc_checkpoint_path: str | None
    syncnet_checkpoint_path: str | None
    resume: bool
    start_over: bool
    max_steps: int | None
    eval_batches: int  # batches per evaluation: --eval_batches, else the objective's
    keep_last: int
    log_interval: int
    seed: int
    amp: str
    device: str
    quiet: bool
    world_size: int  # processes training together (torchrun); the batches depend on it
    constants: MappingProxyType  # the objective's fixed settings (Objective.constants)
    hparams: MappingProxyType  # every hyper-parameter, --hparams applied

    def checkpoint_path_of(self, prefix):
        """The checkpoint given for network ``prefix`` (--checkpoint_path, --disc_checkpoint_path)."""
        return getattr(self, checkpoint_flag(prefix)[2:], None)

    def as_dict(self):
        """The configuration as plain JSON values (what checkpoints and run.json hold)."""
        return json.loads(json.dumps({field.name: _plain(getattr(self, field.name))
                                      for field in dataclasses.fields(self)}))

    def changes_since(self, saved):
        """"name: saved -> now" for each value that differs from ``saved`` (a checkpoint's
        "config"), but for those a resume changes by its nature; values the saved one lacks
        (a checkpoint of an older trainer) are not compared."""
        saved = dict(_flat(saved))
        changed = [(name, saved[name], value) for name, value in _flat(self.as_dict()) if name in saved
                   and name.split(".")[0] not in EXPECTED_TO_CHANGE and saved[name] != value]
        return ", ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in changed)

    def write_run_file(self):
        """run.json in --checkpoint_dir: the configuration of the run that started there last."""
        with atomic_output(Path(self.checkpoint_dir) / RUN_FILE) as temporary:
            Path(temporary).write_text(json.dumps(self.as_dict(), indent=1) + "\n")


def training_config(objective_class, args):
    """The configuration of a run of ``objective_class`` from its parsed, checked flags
    ``args``, once --hparams has been applied."""
    filelists = args.filelist_dir
    if filelists is None:  # not given: filelists/, or the data's own
        filelists = find_filelists("filelists", args.data_root)
    corrections, corrections_sha256 = fingerprint(absolute(args.data_root))
    return TrainingConfig(
        objective=objective_class.name, data_root=absolute(args.data_root), filelist_dir=absolute(filelists),
        filelists_from_data_root=args.filelist_dir is None and filelists != Path("filelists"),
        min_confidence=args.min_confidence, sync_corrections=corrections, sync_corrections_sha256=corrections_sha256,
        checkpoint_dir=absolute(args.checkpoint_dir), checkpoint_path=absolute(args.checkpoint_path),
        disc_checkpoint_path=absolute(getattr(args, "disc_checkpoint_path", None)),
        syncnet_checkpoint_path=absolute(getattr(args, "syncnet_checkpoint_path", None)),
        resume=args.resume, start_over=args.start_over, max_steps=args.max_steps,
        eval_batches=args.eval_batches or objective_class.eval_batches, keep_last=args.keep_last,
        log_interval=args.log_interval, seed=args.seed, amp=args.amp, device=args.device, quiet=args.quiet,
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        constants=MappingProxyType(objective_class.constants()), hparams=MappingProxyType(hparams.values()),
    )


def absolute(path):
    """A path as recorded: absolute (symbolic links kept), so that run.json repeats the run
    from any working directory."""
    return None if path is None else os.path.abspath(path)


def _plain(value):
    if isinstance(value, (MappingProxyType, dict)):
        return {name: _plain(item) for name, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def _flat(values, within=""):
    """(dotted name, value) of every leaf of nested dicts: "constants.eval_batches", ..."""
    for name, value in values.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{within}{name}.")
        else:
            yield f"{within}{name}", value
