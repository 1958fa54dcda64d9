"""Training checkpoints on disk: their names, the steps complete for every network, resume and pruning."""

import re
from pathlib import Path

from checkpoint import load_weights
from errors import UserError
from hparams import hparams

CHECKPOINT_NAME = re.compile(r"^(?P<prefix>.*)checkpoint_step(?P<step>\d+)\.pth$")


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
        changed = changed_hparams(state.get("hparams") or {})
        if changed:
            print(f"note: hyper-parameters differ from {Path(path).name}'s: {changed}")
    return state


def changed_hparams(saved):
    """"name: saved -> now" for each hyper-parameter a checkpoint was trained with that differs now."""
    now = hparams.values()
    return ", ".join(f"{name}: {saved[name]!r} -> {now[name]!r}"
                     for name in sorted(saved) if name in now and saved[name] != now[name])



def prune(folder, prefixes, keep_last):
    """Keep the newest ``keep_last`` complete steps (0: all). Only steps older than a complete
    one go, so a kill at any point leaves a step with every network's checkpoint to resume from."""
    complete = complete_steps(folder, prefixes)
    if 0 < keep_last < len(complete):
        oldest_kept = complete[-keep_last]
        for prefix in prefixes:
            for old_step, old in checkpoint_steps(folder, prefix):
                if old_step < oldest_kept:
                    old.unlink(missing_ok=True)
