"""Training checkpoints on disk: their names, saving them, the steps complete for every
network, resume, the run that wrote each, and pruning.

Each network a trainer trains has a name prefix (``MAIN_PREFIX``, and the GAN's
``DISC_PREFIX``): its checkpoints are ``<prefix>checkpoint_step<step>.pth`` and the flag that
resumes it is ``--<prefix>checkpoint_path``.

Every checkpoint a trainer writes carries the id of its run (``run_id``, a key that readers
of the released format ignore): made at a fresh start, inherited by a run resumed from it.
``checkpoint_runs.json`` in the folder records the run of each checkpoint written there, so
that --keep_last prunes the run's own checkpoints alone without loading any.
"""

import json
import re
import secrets
import shutil
from pathlib import Path

from models.checkpoint import load_weights, save_checkpoint
from system.atomic_write import atomic_output
from system.errors import UserError

CHECKPOINT_NAME = re.compile(r"^(?P<prefix>.*)checkpoint_step(?P<step>\d+)\.pth$")
RUNS_RECORD = "checkpoint_runs.json"
MAIN_PREFIX = ""  # the network a trainer trains: the expert, or the generator
DISC_PREFIX = "disc_"  # the GAN's visual-quality discriminator
NETWORK_NAMES = {MAIN_PREFIX: "generator", DISC_PREFIX: "discriminator"}  # the GAN trainer's two, as lines name them


def checkpoint_file(folder, prefix, step):
    """Where the trainers write the checkpoint of network ``prefix`` at ``step``."""
    return Path(folder) / f"{prefix}checkpoint_step{step:09d}.pth"


def checkpoint_flag(prefix):
    """The flag that resumes network ``prefix``: --checkpoint_path, --disc_checkpoint_path."""
    return f"--{prefix}checkpoint_path"


def checkpoint_steps(folder, prefix=""):
    """(step, path) of the ``<prefix>checkpoint_step*.pth`` files in ``folder``, oldest first."""
    found = []
    for path in Path(folder).glob("*.pth"):
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
    network, of the run that saved last in ``folder`` when it saved one (so that --resume after
    --start_over continues the new run, not the older one's later steps); {} when ``folder``
    has none at all. Checkpoints are written atomically, so a file that exists is whole; a
    step that misses a network (killed while saving) is passed over for the one before."""
    steps = complete_steps(folder, prefixes)
    last, runs = last_run(folder), runs_of(folder)
    own = [step for step in steps
           if all(runs.get(checkpoint_file(folder, prefix, step).name) == last for prefix in prefixes)]
    steps = own if last and own else steps
    if steps:
        return {prefix: checkpoint_file(folder, prefix, steps[-1]) for prefix in prefixes}
    found = {NETWORK_NAMES[prefix]: [step for step, _ in checkpoint_steps(folder, prefix)] for prefix in prefixes}
    if any(found.values()):
        listed = "; ".join(f"{name}: steps {steps or 'none'}" for name, steps in found.items())
        raise UserError(f"--resume: no step in {folder} has a checkpoint of every network ({listed}); "
                        "pass --checkpoint_path (and --disc_checkpoint_path) to choose")
    return {}


def restore(session, model, optimizer, path, config):
    """Load the checkpoint at ``path`` (None: start afresh) into ``model`` and ``optimizer``.
    Weights load strictly; returns the checkpoint dict ({} when starting afresh). The
    hyper-parameters and the settings of ``config`` that differ from the checkpoint's are named."""
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
        for what, changed in (("hyper-parameters", changed_hparams(state.get("hparams") or {}, config.hparams)),
                              ("training settings", config.changes_since(state.get("config") or {}))):
            if changed and (what, changed) not in session.noted:  # the GAN's two checkpoints: said once
                session.noted.add((what, changed))
                print(f"note: {what} differ from {Path(path).name}'s: {changed}")
    return state


def changed_hparams(saved, now):
    """"name: saved -> now" for each hyper-parameter a checkpoint was trained with that differs now."""
    return ", ".join(f"{name}: {saved[name]!r} -> {now[name]!r}"
                     for name in sorted(saved) if name in now and saved[name] != now[name])


def check_same_run(runs):
    """Refuse checkpoints ({path: its run id}) to be resumed together when their ids differ
    (a generator and a discriminator of two runs); files without an id (None: the released
    ones, or older trainers') are taken as they are."""
    runs = {path: run for path, run in runs.items() if run}
    if len(set(runs.values())) > 1:
        first, second = list(runs)[:2]
        raise UserError(f"{first} and {second} were saved by different training runs; resume a generator and a "
                        "discriminator saved together (--checkpoint_path and --disc_checkpoint_path)")


def new_run_id():
    return secrets.token_hex(8)


def runs_of(folder):
    """{checkpoint file name: id of the run that wrote it} as the folder's record says; {} without one."""
    return _record(folder)["runs"]


def last_run(folder):
    """The id of the run that saved a checkpoint in ``folder`` last (None: no record says)."""
    return _record(folder).get("last_run")


def _record(folder):
    path = Path(folder) / RUNS_RECORD
    try:
        record = json.loads(path.read_text())
        runs, last = record["runs"], record.get("last_run")
        if not all(isinstance(value, str) for value in runs.values()) or not isinstance(last, (str, type(None))):
            raise ValueError("a run id that is not text")
    except FileNotFoundError:
        return {"runs": {}}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{path} is damaged ({error}); delete it (--keep_last then prunes none of the "
                        "checkpoints now there)") from None
    return {"runs": runs, "last_run": last}


def record_run(folder, names, run_id):
    """Record the checkpoint files ``names`` as ``run_id``'s, and it as the run that saved
    last. Done before they are written, so that a kill at any point leaves no file of the run
    unrecorded; an entry whose file never came is harmless."""
    _write_runs(folder, {**runs_of(folder), **dict.fromkeys(names, run_id)}, run_id)


def _write_runs(folder, runs, last):
    record = {"about": "the training run that wrote each checkpoint here: --keep_last prunes its own run's alone",
              "last_run": last, "runs": dict(sorted(runs.items()))}
    with atomic_output(Path(folder) / RUNS_RECORD) as temporary:
        Path(temporary).write_text(json.dumps(record, indent=1) + "\n")


def other_runs_checkpoints(folder, prefixes, run_id=None, after=0, until=None):
    """(step, path) of the checkpoints in ``folder`` not recorded as ``run_id``'s (None: any
    run's), at the steps after ``after`` and up to ``until`` (None: no end), oldest first."""
    runs = runs_of(folder)
    found = [(step, path) for prefix in prefixes for step, path in checkpoint_steps(folder, prefix)
             if after < step and (until is None or step <= until)]
    return sorted((step, path) for step, path in found if run_id is None or runs.get(path.name) != run_id)


def refuse_inputs_named_as_checkpoints(folder, prefixes, inputs):
    """A file the run reads ({flag: path}) that sits in ``folder`` under a name the run's own
    checkpoints take (say the expert copied in as checkpoint_step000000001.pth) would be
    overwritten by a save: one line, before any work. The checkpoint a run resumes from is
    never saved again (steps only grow), so only the frozen expert is at risk."""
    path = inputs.get("--syncnet_checkpoint_path")
    match = path and CHECKPOINT_NAME.match(Path(path).name)
    if match and match["prefix"] in prefixes and Path(path).resolve().parent == Path(folder).resolve():
        raise UserError(f"--syncnet_checkpoint_path {path} lies in --checkpoint_dir {folder} under a name this run's "
                        "checkpoints take: it would be overwritten; move the expert out of that folder")


def refuse_beside_other_runs(folder, prefixes):
    """A fresh run: refuse a folder that holds checkpoints already (whoever wrote them)."""
    found = other_runs_checkpoints(folder, prefixes)
    if found:
        raise UserError(f"--checkpoint_dir {folder} already holds another run's checkpoints ({_count(found)}); "
                        "pass --resume to continue that run, --start_over to train beside them, "
                        "or choose another folder")


def refuse_replacing_later_steps(folder, prefixes, run_id, step, max_steps):
    """A resumed run at ``step``: refuse a folder where it would replace checkpoints of the
    steps it is to train (up to ``max_steps``, or forever): another run's, or its own of a
    complete later step (resumed from an earlier one). Its own later files of a step left
    incomplete (killed while saving) are what it is to redo, and go."""
    found = other_runs_checkpoints(folder, prefixes, run_id, after=step, until=max_steps)
    if found:
        raise UserError(f"--checkpoint_dir {folder} holds another run's checkpoints after step {step} "
                        f"({_count(found)}) that this run would replace; pass --start_over to allow that, "
                        "or choose another folder")
    runs = runs_of(folder)
    own = [(later, checkpoint_file(folder, prefix, later)) for later in complete_steps(folder, prefixes)
           if step < later and (max_steps is None or later <= max_steps) for prefix in prefixes]
    own = [(later, path) for later, path in own if runs.get(path.name) == run_id]
    if own:
        raise UserError(f"--checkpoint_dir {folder} holds this run's own checkpoints after step {step} "
                        f"({_count(own)}), which resuming from an earlier step would replace; resume from the "
                        "newest (--resume), pass --start_over to allow that, or choose another folder")


def _count(found):
    """"3 files, steps 2 to 9" of (step, path)s."""
    steps = sorted({step for step, _ in found})
    files = f"{len(found)} file{'s' if len(found) > 1 else ''}"
    return f"{files}, step {steps[0]}" if len(steps) == 1 else f"{files}, steps {steps[0]} to {steps[-1]}"


def save_step(config, objective, step, epoch):
    """Checkpoint every network of ``objective`` at ``step`` in ``config``'s --checkpoint_dir,
    each carrying the run's id, its hyper-parameters and its whole configuration, then keep
    only the run's newest --keep_last steps.

    The files are recorded as the run's before they are written, and older steps removed only
    once every network of this step is saved, so a kill at any point leaves a step whose
    checkpoints are all complete to resume from.
    """
    folder, kept = Path(config.checkpoint_dir), config.hparams["save_optimizer_state"]
    paths = {prefix: checkpoint_file(folder, prefix, step) for prefix in objective.prefixes}
    record_run(folder, [path.name for path in paths.values()], objective.run_id)
    for prefix, model, optimizer in objective.networks():
        save_checkpoint(paths[prefix], model, optimizer if kept else None, step, epoch, hparams=dict(config.hparams),
                        run_id=objective.run_id, config=config.as_dict(), **objective.checkpoint_extras())
    prune(folder, objective.prefixes, config.keep_last, objective.run_id, step)


def checkpoint_bytes(model, optimizer_kept):
    """About the size of a checkpoint of ``model``: its weights and buffers, and Adam's two
    moments of each trained weight when the optimiser's state is saved with it."""
    state = sum(tensor.numel() * tensor.element_size() for tensor in model.state_dict().values())
    moments = 2 * sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return state + (moments if optimizer_kept else 0)


def disk_use(objective, config, interval):
    """One line: what each saved step takes on disk, and what --keep_last keeps of them."""
    sizes = {NETWORK_NAMES[prefix]: checkpoint_bytes(model, config.hparams["save_optimizer_state"])
             for prefix, model, _ in objective.networks()}
    step, keep = sum(sizes.values()), config.keep_last
    each = (f"each checkpoint: {_size(step)}" if len(sizes) == 1 else
            f"each checkpoint step: {_size(step)} ({', '.join(f'{name} {_size(n)}' for name, n in sizes.items())})")
    kept = (f"--keep_last {keep} keeps {_size(keep * step)} ({_size((keep + 1) * step)} while the next step is saved)"
            if keep else f"all are kept (--keep_last 0): {_size(step)} more every {interval} steps")
    try:
        free = f"; {_size(shutil.disk_usage(config.checkpoint_dir).free)} free in {config.checkpoint_dir}"
    except OSError:
        free = ""
    return f"{each}; {kept}{free}"


def _size(count):
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"


def prune(folder, prefixes, keep_last, run_id, step):
    """Keep the newest ``keep_last`` steps (0: all) that run ``run_id`` saved complete up to
    ``step``, the one it has just saved. Only its own checkpoints of older steps go: other
    runs' files and its own of later steps (a run resumed from an earlier step) stay. A kill
    at any point leaves the newest complete step; at worst an old file is left."""
    if keep_last == 0:
        return
    runs = runs_of(folder)
    own = {prefix: [(old_step, path) for old_step, path in checkpoint_steps(folder, prefix)
                    if runs.get(path.name) == run_id and old_step <= step] for prefix in prefixes}
    complete = sorted(set.intersection(*({old_step for old_step, _ in own[prefix]} for prefix in prefixes)))
    if keep_last < len(complete):
        oldest_kept = complete[-keep_last]
        removed = [path for prefix in prefixes for old_step, path in own[prefix] if old_step < oldest_kept]
        for path in removed:
            path.unlink(missing_ok=True)
        gone = {path.name for path in removed}
        _write_runs(folder, {name: run for name, run in runs.items() if name not in gone}, last_run(folder))
