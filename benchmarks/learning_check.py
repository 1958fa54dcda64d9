"""Learning check: on the synthetic corpus, the expert learns sync, then the generator learns to be in sync.

    python benchmarks/learning_check.py --workdir /tmp/learning_check            # GPU: reference batch sizes
    python benchmarks/learning_check.py --workdir /tmp/learning_check --reduced  # CPU: small batches, fewer steps
    python benchmarks/learning_check.py --workdir /tmp/learning_check192 --reduced --face_size 192  # larger networks

It writes a synthetic corpus (synthetic_corpus.py), trains the expert SyncNet with
color_syncnet_train.py until its evaluation loss is <= 0.35 (chance is 0.693), then trains
Wav2Lip with wav2lip_train.py against that expert until its evaluation sync loss is below
0.75 (the point where the reference starts to use the expert); each target must hold for
two evaluations in a row. ``--reduced`` weights the sync loss from the first step: the
reference's schedule (L1 alone until the expert agrees) takes longer than a CPU budget.
The trainers run as a user runs them, each in its own process; the curves come from their
TensorBoard logs. For scale, the expert's sync loss on true, still and wrong mouths is
measured too, and on generated ones with another sample's audio. Prints the steps, wall
time and machine, and writes ``learning_check.png`` and ``learning_check.json`` to the
workdir. ``--config FILE`` takes the flags (and, under "hparams", hyper-parameters for both
trainers) from a YAML or JSON file, as the trainers do.
"""

import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import system  # noqa: E402, F401 - the project's first: Ctrl-C from here on ends in one line
from benchmarks.shared import cpu_name  # noqa: E402
from benchmarks.training_runs import curve, held, read_scalars, run_trainer  # noqa: E402
from hparams import add_hparams_argument, apply_hparams_argument, hparams  # noqa: E402
from system import cli, flags  # noqa: E402
from system.atomic_write import check_writable  # noqa: E402
from system.errors import UserError  # noqa: E402
from training.checkpoints import checkpoints  # noqa: E402
from training.command_line import add_amp_flag  # noqa: E402
from training.config_file import add_config_flag, parse_with_config  # noqa: E402

EXPERT_TARGET = 0.35
GENERATOR_TARGET = 0.75
def evaluations(values, suffix=""):
    """The first, lowest and last of a run's evaluation ``values`` (None before its first)."""
    return {f"first_eval{suffix}": values[0] if values else None, f"best_eval{suffix}": min(values, default=None),
            f"last_eval{suffix}": values[-1] if values else None}


def sync_scale(expert_checkpoint, generator_checkpoint, corpus, batches=25, batch_size=4, seed=1):
    """The expert's sync loss on validation windows whose lower halves are the truth, the
    truth's middle frame held still, the wrong window's (what a generator that copies its
    identity input would show) or the generator's; and the generator's frames scored against
    another sample's audio, or made from another sample's audio and scored against the true
    one: both are as high as for a wrong window only if the generated mouths follow their
    own audio (rather than pleasing the expert whatever the audio)."""
    from models import SyncNet_color, Wav2Lip
    from models.checkpoint import load_network
    from models.inputs import stack_lower_halves
    from training import dataset
    from training.losses import cosine_loss

    expert = load_network(SyncNet_color, expert_checkpoint)[0]  # left in train mode, as the generator's trainer uses it
    generator = load_network(Wav2Lip, generator_checkpoint)[0].eval()
    samples = dataset.GeneratorSamples(dataset.read_filelist(corpus / "filelists", "val", corpus), seed,
                                       face_size=generator.face_size)
    sums = {}
    with torch.no_grad():
        for b in range(batches):
            # Sample n is the draw seeded by n: distinct numbers, distinct windows.
            items = [samples[b * batch_size + k][:4] for k in range(batch_size)]
            faces, frame_mels, mel, target = (torch.stack(part) for part in zip(*items))
            half = target.size(3) // 2
            generated = generator(frame_mels, faces)
            lowers = {"truth": target[:, :, :, half:], "still": target[:, :, 2:3, half:].expand_as(target[:, :, :, half:]),
                      "wrong window": faces[:, 3:, :, half:], "generated": generated[:, :, :, half:]}
            scored = [(name, mel, lower) for name, lower in lowers.items()]
            scored.append(("generated, other audio", mel.roll(1, 0), generated[:, :, :, half:]))
            scored.append(("generated from other audio", mel, generator(frame_mels.roll(1, 0), faces)[:, :, :, half:]))
            for name, audio, lower in scored:
                audio_embedding, face_embedding = expert(audio, stack_lower_halves(torch.cat([target[:, :, :, :half], lower], 3)))
                loss = cosine_loss(audio_embedding, face_embedding, torch.ones(batch_size, 1)).item()
                sums[name] = sums.get(name, 0.0) + loss / batches
    return {name: round(value, 3) for name, value in sums.items()}


def plot(out, expert, generator, scale, face_size=96):
    """The expert's curves, and the generator's beside them once it has trained (None: not yet)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2 if generator else 1, figsize=(11 if generator else 5.5, 4), squeeze=False)
    left = axes[0][0]
    left.plot(*expert["eval"], "o-", label="evaluation")
    left.plot(*expert["train"], alpha=0.5, label="training (running mean)")
    left.axhline(0.693, color="grey", ls=":", label="chance 0.693")
    left.axhline(EXPERT_TARGET, color="green", ls="--", label=f"target {EXPERT_TARGET}")
    left.set(title=f"expert SyncNet, {face_size}-pixel faces: BCE loss", xlabel="step")
    left.legend()
    if generator:
        right = axes[0][1]
        right.plot(*generator["eval"], "o-", label="evaluation sync loss")
        right.plot(*generator["l1"], "s-", label="evaluation L1")
        right.axhline(GENERATOR_TARGET, color="green", ls="--", label=f"syncnet_wt switch {GENERATOR_TARGET}")
        for name, style in (("truth", "-."), ("still", ":"), ("wrong window", (0, (5, 5)))):
            right.axhline(scale[name], color="grey", ls=style, label=f"expert on {name} mouths {scale[name]:.2f}")
        right.set(title=f"Wav2Lip, {face_size}-pixel faces: sync loss under the expert", xlabel="step")
        right.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def build_parser():
    parser = flags.argument_parser(__doc__)
    add_config_flag(parser, more=" (the hyper-parameters go to both trainers)")
    parser.add_argument("--workdir", required=True,
                        help="where the corpus, both runs and the results go; a check left half-way there goes on")
    parser.add_argument("--reduced", action="store_true", help="CPU-sized run: small batches, short evaluations")
    parser.add_argument("--device", default="auto", help="the trainers' device: auto (CUDA, else Apple MPS, else the "
                                                         "CPU), cpu, cuda, cuda:1, mps")
    add_amp_flag(parser)
    add_hparams_argument(parser)  # to both trainers, after the check's own
    parser.add_argument("--expert_steps", type=int, help="most expert steps (default: 20000; 4000 with --reduced)")
    parser.add_argument("--generator_steps", type=int, help="most generator steps (default: 20000; 3000 with --reduced)")
    parser.add_argument("--report", action="store_true",
                        help="train no further: write the figures and the plot from the workdir's logs so far")
    parser.add_argument("--face_size", type=int, choices=[96, 192, 384], default=96,
                        help="the networks' face size (or --hparams face_size=N); the corpus is drawn for it")
    parser.add_argument("--speakers", type=int, default=40, help="speakers of the synthetic corpus")
    parser.add_argument("--clips", type=int, default=6, help="clips per speaker")
    flags.add_verbose_flag(parser)
    return parser


def hparams_text(from_file, given):
    """The hyper-parameters of a --config file ({name: value}, or --hparams text) and of
    --hparams, as one --hparams text for the trainers (later names win)."""
    if isinstance(from_file, dict):
        from_file = ",".join(f"{name}={value}" for name, value in from_file.items())
    return ",".join(part for part in (from_file, given) if part)


def main(argv):
    args, from_file = parse_with_config(build_parser(), argv)
    apply_hparams_argument(args, from_file.hparams, f"--config {from_file.path}")  # checked here, once
    if 96 not in (args.face_size, hparams.face_size) and args.face_size != hparams.face_size:
        raise UserError(f"--face_size {args.face_size} and --hparams face_size={hparams.face_size} disagree: give one")
    face_size = args.face_size if args.face_size != 96 else hparams.face_size
    extra_hp = hparams_text(from_file.hparams, ",".join(part for part in (args.hparams, f"face_size={face_size}") if part))
    from training.synthetic_data import make_corpus

    work = Path(args.workdir).absolute()  # the trainers run in the project's folder
    check_writable(work)  # a file named as --workdir, or a read-only one: one line, before any work
    # Each face size has its corpus; a workdir's runs are of one size (a resume at another is one line).
    corpus = work / ("corpus" if face_size == 96 else f"corpus{face_size}")
    expert_dir, generator_dir = work / "expert", work / "wav2lip"
    if args.report and not checkpoints(expert_dir):
        raise UserError(f"--workdir {work}: nothing to report, no expert checkpoint in {expert_dir} yet; "
                        "run the learning check without --report first")
    if not (corpus / "filelists" / "train.txt").exists():
        print(f"writing the synthetic corpus to {corpus}", flush=True)
        make_corpus(corpus, "preprocessed", speakers=args.speakers, clips=args.clips, seconds=4.0, seed=0,
                    face_size=face_size)
    workers = min(8, os.cpu_count() or 1)
    if args.reduced:
        expert_hp = f"syncnet_batch_size=16,num_workers={workers},syncnet_checkpoint_interval=100000,syncnet_eval_interval=100"
        # A CPU budget is too short for the reference's schedule (L1 alone until the expert
        # agrees): the generator takes the paper's sync weight (0.03) from the first step.
        generator_hp = f"batch_size=4,num_workers={workers},checkpoint_interval=250,eval_interval=50,syncnet_wt=0.03"
        expert_eval, generator_eval, expert_interval, generator_interval = 25, 25, 250, 100
        expert_steps, generator_steps = args.expert_steps or 4000, args.generator_steps or 3000
    else:
        expert_hp = f"num_workers={workers},syncnet_checkpoint_interval=100000,syncnet_eval_interval=250"
        generator_hp = f"num_workers={workers},checkpoint_interval=1000,eval_interval=250"
        expert_eval, generator_eval, expert_interval, generator_interval = 40, 40, 2000, 1000
        expert_steps, generator_steps = args.expert_steps or 20000, args.generator_steps or 20000
    expert_hp, generator_hp = (f"{hp},{extra_hp}" if extra_hp else hp for hp in (expert_hp, generator_hp))
    if args.report:
        expert_steps = generator_steps = 0
    common = ["--data_root", str(corpus), "--filelist_dir", str(corpus / "filelists"), "--device", args.device,
              "--amp", args.amp, "--log_interval", "25", "--keep_last", "2"]

    print("reading the runs' logs" if args.report else "training the expert SyncNet", flush=True)
    e_steps, e_seconds = run_trainer("color_syncnet_train.py", [*common, "--hparams", expert_hp, "--eval_batches",
                                     str(expert_eval)], expert_steps, expert_interval, "eval/loss", EXPERT_TARGET, expert_dir,
                                     "the learning check")
    expert_checkpoint = checkpoints(expert_dir)[-1]

    if not (args.report and not checkpoints(generator_dir)):
        if not args.report:
            print("training Wav2Lip against it", flush=True)
        g_steps, g_seconds = run_trainer("wav2lip_train.py", [*common, "--hparams", generator_hp, "--eval_batches",
                                         str(generator_eval), "--syncnet_checkpoint_path", str(expert_checkpoint)],
                                         generator_steps, generator_interval, "eval/sync", GENERATOR_TARGET, generator_dir,
                                         "the learning check")

    expert_logs = read_scalars(expert_dir / "tensorboard")
    expert = {"eval": curve(expert_logs, "eval/loss"), "train": curve(expert_logs, "train/loss")}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else \
        f"CPU: {cpu_name()}, {os.cpu_count()} cores"
    result = {
        "machine": device, "torch": torch.__version__, "reduced": args.reduced, "amp": args.amp, "face_size": face_size,
        "corpus": {"speakers": args.speakers, "clips_per_speaker": args.clips, "seconds": 4.0},
        "expert": {"steps": e_steps, "seconds": round(e_seconds), **evaluations(expert["eval"][1]),
                   "hparams": expert_hp},
        "generator": None,
    }
    generator = None
    if checkpoints(generator_dir):
        generator_logs = read_scalars(generator_dir / "tensorboard")
        generator = {"eval": curve(generator_logs, "eval/sync"), "l1": curve(generator_logs, "eval/l1")}
        result["sync_scale"] = sync_scale(expert_checkpoint, checkpoints(generator_dir)[-1], corpus)
        result["generator"] = {"steps": g_steps, "seconds": round(g_seconds), **evaluations(generator["eval"][1], "_sync"),
                               "hparams": generator_hp}
    else:
        print(f"{generator_dir}: no generator checkpoint yet: the expert alone is reported")
    (work / "learning_check.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    plot(work / "learning_check.png", expert, generator, result.get("sync_scale"), face_size)
    print(f"plot: {work / 'learning_check.png'}")
    ok = held(expert["eval"][1], EXPERT_TARGET) and generator is not None and held(generator["eval"][1], GENERATOR_TARGET)
    print("PASS" if ok else "NOT REACHED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(cli.run(main))
