"""Draw a training run's curves from its TensorBoard logs and say where it stands.

    python -m training.report checkpoints/expert/

The picture (CHECKPOINT_DIR/report.png unless --out names a .png, .pdf or .svg) holds the training and
evaluation losses, sync accuracy and learning rate when they are logged, and steps/s, with the
reference's targets drawn in. The summary names the trainer, the steps done, the best and last
evaluation, the speed and where the reference's targets stand. The runs and resumes that
logged into one folder (one event file each) are joined in step order.
"""

import math
import sys
from collections import namedtuple
from pathlib import Path

from system import cli
from system.atomic_write import atomic_output
from system.errors import UserError, describe_os_error
from system.flags import add_verbose_flag, argument_parser
from training.objectives import (
    SYNC_LOSS_THRESHOLD,
    ExpertObjective,
    GANGeneratorObjective,
    GeneratorObjective,
)

# The reference's README: the expert's evaluation loss should reach ~0.25, the generator's
# evaluation sync loss ~0.2. A BCE of 0.693 (ln 2) is a coin toss.
EXPERT_TARGET, GENERATOR_SYNC_TARGET, CHANCE = 0.25, 0.2, math.log(2)
# The trainers log "train/<name>" and "eval/<name>" (training/loop.py); these are bookkeeping, not losses.
BOOKKEEPING = ("steps_per_second", "skipped_samples", "syncnet_wt")
ADVERSARIAL = ("perceptual", "disc_real", "disc_fake")  # the GAN's: a balance, no best
TITLES = {"loss": "expert: sync loss (BCE)", "sync": "sync loss: the expert on generated frames",
          "l1": "L1 loss", "perceptual": "adversarial loss (generator)", "discriminator": "discriminator losses"}

Point = namedtuple("Point", "step wall value run")  # run: which event file, in the order they were written
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}  # --out's suffix -> what matplotlib writes


def event_files(folder):
    """The event files of a checkpoint folder (the trainers log into its tensorboard/), or of
    that tensorboard folder itself."""
    return sorted(folder.glob("events.out.tfevents.*")) + sorted(folder.glob("tensorboard/events.out.tfevents.*"))


def checkpoint_dir_of(folder):
    """The trainer's --checkpoint_dir, also when its tensorboard/ folder is named."""
    return folder.parent if folder.name == "tensorboard" else folder


def picture_path(out, folder):
    """--out, or CHECKPOINT_DIR/report.png; a suffix that names no picture format is refused."""
    if out is None:
        return checkpoint_dir_of(folder) / "report.png"
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"--out {out}: the picture is written as PNG, PDF or SVG; name a file ending in "
                        f"{', '.join(FORMATS)}")
    return out


def read_logs(files):
    """({tag: [Point] in step order}, [the first step of each run]): every scalar of the event files, joined.
    A later run's points replace the earlier ones' from its first logged step on (a run resumed
    from an earlier checkpoint trains those steps again; --start_over trains them all again)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = []
    for path in files:
        log = EventAccumulator(str(path), size_guidance={"scalars": 0})  # 0: keep every point
        log.Reload()
        scalars = {tag: log.Scalars(tag) for tag in log.Tags()["scalars"]}
        if any(scalars.values()):
            runs.append(scalars)
    runs.sort(key=lambda scalars: min(e.wall_time for events in scalars.values() for e in events))
    joined, starts = {}, []
    for run, scalars in enumerate(runs):
        first = min(e.step for events in scalars.values() for e in events)
        starts.append(first)
        joined = {tag: [p for p in points if p.step < first] for tag, points in joined.items()}
        for tag, events in scalars.items():
            joined.setdefault(tag, []).extend(Point(e.step, e.wall_time, e.value, run) for e in events)
    return {tag: sorted(points) for tag, points in joined.items() if points}, starts


def name_of(tag):
    """"sync" of "eval/sync"."""
    return tag.split("/")[-1]


def trainer_of(logs):
    names = {name_of(tag) for tag in logs}
    if names & set(ADVERSARIAL):
        return GANGeneratorObjective.name
    if names & {"sync", "l1"}:
        return GeneratorObjective.name
    return ExpertObjective.name if "loss" in names else "unknown trainer"


def is_accuracy(tag):
    return "acc" in name_of(tag)


def is_learning_rate(tag):
    return name_of(tag) == "lr" or name_of(tag).endswith("_lr") or "learning_rate" in name_of(tag)


def rank(tag):
    """Where a tag's line goes: the losses in the pictures' order, then the rest by name."""
    order = ["loss", "sync", "l1", *ADVERSARIAL]
    return (order.index(name_of(tag)) if name_of(tag) in order else len(order), name_of(tag))


def best(points, tag):
    """The best point: the highest accuracy, the lowest loss."""
    return max(points, key=lambda p: p.value) if is_accuracy(tag) else min(points, key=lambda p: p.value)


def clock(logs):
    """The training series logged at every log interval (the longest), whose wall times time the run."""
    series = [points for tag, points in logs.items() if tag.startswith("train/")] or list(logs.values())
    return max(series, key=len)


def unchanged_since(points):
    """The first step of the last stretch of points with the last value."""
    since = points[-1].step
    for point in reversed(points):
        if point.value != points[-1].value:
            break
        since = point.step
    return since


def speeds(points):
    """[(step, steps/s)] between consecutive points of the same run, from their wall times."""
    return [(b.step, (b.step - a.step) / (b.wall - a.wall))
            for a, b in zip(points, points[1:]) if a.run == b.run and b.wall > a.wall]


def speed_curve(logs):
    logged = logs.get("train/steps_per_second")
    return [(p.step, p.value) for p in logged] if logged else speeds(clock(logs))


def training_time(points):
    """(steps, seconds) between the first and last point of each run, summed over the runs."""
    pairs = [(b.step - a.step, b.wall - a.wall) for a, b in zip(points, points[1:]) if a.run == b.run]
    return sum(steps for steps, _ in pairs), sum(seconds for _, seconds in pairs)


def duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 \
        else f"{seconds / 3600:.1f} h"


def target_lines(logs):
    """Where the reference's targets stand, judged by the best evaluation."""
    lines = []
    for tag, what, target, also in (("eval/loss", "expert eval loss", EXPERT_TARGET, f" (chance {CHANCE:.3f})"),
                                    ("eval/sync", "generator eval sync loss", GENERATOR_SYNC_TARGET, "")):
        if tag not in logs:
            continue
        top, reached = best(logs[tag], tag), next((p for p in logs[tag] if p.value <= target), None)
        verdict = f"reached at step {reached.step}" if reached else "not yet"
        lines.append(f"{what}: best {top.value:.4f} at step {top.step}; the reference's target ~{target}: "
                     f"{verdict}{also}")
    if "eval/sync" in logs:
        below = next((p for p in logs["eval/sync"] if p.value < SYNC_LOSS_THRESHOLD), None)
        lines.append(f"below {SYNC_LOSS_THRESHOLD}, where syncnet_wt switches on: "
                     + (f"first at step {below.step}" if below else "not yet"))
    return lines


def summary(folder, logs, starts):
    """The lines printed: trainer, steps, evaluations, speed, targets."""
    steps = sorted({p.step for points in logs.values() for p in points})
    done, seconds = training_time(clock(logs))
    lines = [f"{trainer_of(logs)} in {folder}: steps {steps[0]}..{steps[-1]} logged, {len(starts)} run(s), "
             f"{duration(seconds)} of training logged"]
    curves = sorted((tag for tag in logs if name_of(tag) not in BOOKKEEPING and not is_learning_rate(tag)),
                    key=lambda tag: (not tag.startswith("eval/"), rank(tag)))  # the evaluations first
    settings = [tag for tag in logs if is_learning_rate(tag) or tag == "train/syncnet_wt"]
    width = max(map(len, curves + settings))
    for tag in curves:
        points = logs[tag]
        last = f"last {points[-1].value:.4f} at step {points[-1].step}"
        if (tag.startswith("eval/") and name_of(tag) not in ADVERSARIAL) or is_accuracy(tag):
            top = best(points, tag)
            last = f"best {top.value:.4f} at step {top.step}, {last}"
        lines.append(f"  {tag:<{width}}  {last}")
    for tag in settings:
        lines.append(f"  {tag:<{width}}  {logs[tag][-1].value:.4g} since step {unchanged_since(logs[tag])}")
    recent = speed_curve(logs)
    if recent:
        step, rate = recent[-1]
        overall = f"; {done / seconds:.3g} steps/s over the run" if seconds else ""
        lines.append(f"speed: {rate:.3g} steps/s ({1 / rate:.3g} s/step) at step {step}{overall}")
    skipped = logs.get("train/skipped_samples")
    if skipped and skipped[-1].value:
        lines.append(f"unreadable samples skipped: {skipped[-1].value:.0f} in the last run")
    lines += target_lines(logs)
    return lines


def panels(logs):
    """[(title, [tags], [(y, label, style)])]: the losses, then sync accuracy, learning rate."""
    grouped = {}
    for tag in logs:
        name = name_of(tag)
        if name in BOOKKEEPING:
            continue
        title = "sync accuracy" if is_accuracy(tag) else "learning rate" if is_learning_rate(tag) \
            else TITLES["discriminator"] if name.startswith("disc_") else TITLES.get(name, name)
        grouped.setdefault(title, []).append(tag)
    targets = {TITLES["loss"]: [(EXPERT_TARGET, f"the reference's target ~{EXPERT_TARGET}", "--"),
                                (CHANCE, f"chance {CHANCE:.3f}", ":")],
               TITLES["sync"]: [(GENERATOR_SYNC_TARGET, f"the reference's target ~{GENERATOR_SYNC_TARGET}", "--"),
                                (SYNC_LOSS_THRESHOLD, f"syncnet_wt switches on below {SYNC_LOSS_THRESHOLD}", ":")]}
    last = ("sync accuracy", "learning rate")
    order = [title for title in TITLES.values() if title in grouped] \
        + sorted(title for title in grouped if title not in TITLES.values() and title not in last) \
        + [title for title in last if title in grouped]
    return [(title, sorted(grouped[title]), targets.get(title, [])) for title in order]


def figure_of(logs, starts, heading):
    """The picture: every panel and the steps/s, each point marked (a series of one point is a
    dot, not an invisible line), whole steps on the x axes."""
    import matplotlib
    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    shown = panels(logs) + [("steps/s", [], [])]
    columns = 2 if len(shown) > 1 else 1
    rows = math.ceil(len(shown) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.4 * rows), squeeze=False)
    for axis, (title, tags, targets) in zip(axes.flat, shown):
        for tag in tags:
            points = logs[tag]
            size = 3 if tag.startswith("eval/") else 1.5  # the evaluations, fewer, stand out
            axis.plot([p.step for p in points], [p.value for p in points], "o-", markersize=size, label=tag)
        if title == "learning rate":
            axis.set_yscale("log")
        if title == "steps/s":
            curve = speed_curve(logs)
            axis.plot([step for step, _ in curve], [rate for _, rate in curve], "o-", markersize=1.5, label="steps/s")
        for y, label, line in targets:
            axis.axhline(y, color="grey", ls=line, label=label)
        for number, step in enumerate(starts[1:]):
            axis.axvline(step, color="black", alpha=0.2, lw=1, label=None if number else "a later run's first step")
        axis.set(title=title, xlabel="step")
        low, high = axis.get_xlim()
        if high - low < 2:  # a step or two: widen the view, or the ticks fall between whole steps
            axis.set_xlim((low + high) / 2 - 1, (low + high) / 2 + 1)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    for axis in axes.flat[len(shown):]:
        axis.set_visible(False)
    figure.suptitle(heading)
    figure.tight_layout()
    return figure


def draw(figure, out):
    """Write ``figure`` to ``out`` atomically, in the format its suffix names."""
    import matplotlib.pyplot as plt

    try:
        with atomic_output(out) as temporary:
            figure.savefig(temporary, format=FORMATS[out.suffix.lower()], dpi=100)
    finally:
        plt.close(figure)


def build_parser():
    parser = argument_parser(__doc__)
    parser.prog = "python -m training.report"  # how it is run: "report.py" alone is no command
    parser.add_argument("checkpoint_dir", help="a trainer's --checkpoint_dir (or its tensorboard/ folder)")
    parser.add_argument("--out", metavar="PNG", help="where to write the picture, a .png, .pdf or .svg "
                                                     "(default: CHECKPOINT_DIR/report.png)")
    add_verbose_flag(parser)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    folder = cli.existing_folder(args.checkpoint_dir, "CHECKPOINT_DIR")
    out = picture_path(args.out, folder)
    files = event_files(folder)
    if not files:
        raise UserError(f"no TensorBoard logs in {folder}")
    logs, starts = read_logs(files)
    if not logs:
        raise UserError(f"the TensorBoard logs in {folder} hold no curves yet")
    home = checkpoint_dir_of(folder)
    print("\n".join(summary(home, logs, starts)), flush=True)  # the summary, whatever becomes of the picture
    try:
        draw(figure_of(logs, starts, f"{trainer_of(logs)}: {home}"), out)
    except OSError as error:  # a read-only or full folder: named, not the temporary file in it
        cause = describe_os_error(OSError(error.errno, error.strerror, str(out.parent)))
        raise UserError(f"{cause}: the picture was not written; name another place with --out PNG") from error
    print(f"picture: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
