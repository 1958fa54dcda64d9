"""Trainers run as a user runs them, for the benchmarks that train (the learning check, the
sync-audit check): each in its own process, in chunks that resume, read back from their
TensorBoard logs."""

import subprocess
import sys
import time
from pathlib import Path

from system.errors import UserError
from training.checkpoints import CHECKPOINT_NAME, checkpoints
from training.report import event_files, read_logs

ROOT = Path(__file__).resolve().parents[1]
HELD_FOR = 2  # evaluations in a row that must meet a target, so that one lucky draw does not pass


def held(values, target):
    """Whether the last ``HELD_FOR`` evaluations all meet ``target``."""
    return len(values) >= HELD_FOR and max(values[-HELD_FOR:]) <= target


def read_scalars(log_dir):
    """{tag: [points in step order]} of a TensorBoard log folder, its runs joined as
    training.report joins them ({} before it exists)."""
    return read_logs(event_files(Path(log_dir)))[0]


def curve(scalars, tag):
    """(steps, values) of one tag of ``read_scalars``."""
    events = scalars.get(tag, [])
    return [e.step for e in events], [e.value for e in events]


def run_trainer(script, args, stage_steps, interval, tag, target, checkpoint_dir, name):
    """Run a trainer in chunks of ``interval`` steps (resuming each time) until the evaluation
    ``tag`` has ``held`` the ``target`` (None: never) or ``stage_steps``; returns (steps, wall
    seconds of the stage). ``name``: the benchmark, for the line that says how to go on.

    A stage that an earlier run of this script finished or left half-way is picked up
    from its checkpoints and logs.
    """
    stamp = checkpoint_dir / "started_at"  # wall time of the stage across interrupted runs
    if not stamp.exists():
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(str(time.time()))
    started = float(stamp.read_text())
    found = checkpoints(checkpoint_dir)
    step = int(CHECKPOINT_NAME.match(found[-1].name)["step"]) if found else 0
    while step < stage_steps:
        _, values = curve(read_scalars(checkpoint_dir / "tensorboard"), tag)
        if target is not None and held(values, target):
            break
        step = min(step + interval, stage_steps)
        command = [sys.executable, str(ROOT / script), *args, "--checkpoint_dir", str(checkpoint_dir),
                   "--resume", "--max_steps", str(step), "--quiet"]
        status = subprocess.run(command, cwd=ROOT).returncode
        if status != 0:  # the trainer has said why, above
            raise UserError(f"{script} stopped with exit status {status} on its way to step {step}; "
                            f"{checkpoint_dir} keeps what it saved, and a rerun of {name} goes on from there")
        steps, values = curve(read_scalars(checkpoint_dir / "tensorboard"), tag)
        if values:
            print(f"  {script} step {steps[-1]}: {tag} {values[-1]:.4f} ({time.time() - started:.0f} s)", flush=True)
    last_logged = max((e.wall for events in read_scalars(checkpoint_dir / "tensorboard").values() for e in events),
                      default=started)
    return step, last_logged - started
