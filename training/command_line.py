"""The trainers' command line: the flags every trainer takes, and the entry point that checks
them, builds the run's configuration from them (and from a --config file) and hands it to
``training.loop.run_training``."""

import json
import os
import shlex
import sys
from pathlib import Path

from hparams import add_hparams_argument, apply_hparams_argument
from system import cli, flags
from system.errors import UserError, check_number
from training.checkpoints import (
    DISC_PREFIX,
    MAIN_PREFIX,
    checkpoint_flag,
    complete_steps,
)
from training.config import RECORDED, RUN_FILE, training_config
from training.config_file import add_config_flag, blame_file, take_config
from training.dataset import add_min_confidence_flag
from training.loop import run_training
from training.sync_corrections import check_min_confidence, summary

# The least value of each trainer flag that takes a number (None: not given, no limit).
FLAG_MINIMUMS = {"max_steps": 1, "eval_batches": 1, "keep_last": 0, "log_interval": 1}
AMP_CHOICES = ("auto", "on", "off", "fp16", "bf16")


def add_amp_flag(parser):
    """--amp, as the trainers and the learning check take it."""
    parser.add_argument("--amp", choices=AMP_CHOICES, default="auto",
                        help="mixed precision: on = bfloat16, or float16 with loss scaling where bfloat16 is slow; "
                             "auto = on a CUDA GPU; fp16 or bf16 to choose")


def add_training_flags(parser, disc=False, syncnet=False):
    """The reference's flags and the ones every trainer adds to them."""
    add_config_flag(parser)
    parser.add_argument("--data_root", required=True, help="root folder of the preprocessed dataset")
    parser.add_argument("--checkpoint_dir", required=True, help="where checkpoints, samples and TensorBoard logs go")
    parser.add_argument(checkpoint_flag(MAIN_PREFIX),  # --checkpoint_path
                        help="resume from this checkpoint (step, epoch and optimiser included)")
    if syncnet:
        parser.add_argument("--syncnet_checkpoint_path", required=True, help="the trained expert lip-sync discriminator")
    if disc:
        parser.add_argument(checkpoint_flag(DISC_PREFIX),  # --disc_checkpoint_path
                            help="resume the visual-quality discriminator from this checkpoint")
    parser.add_argument("--resume", action="store_true",
                        help="resume from the newest checkpoint(s) in --checkpoint_dir of the run that saved there "
                             "last, if there are any")
    parser.add_argument("--start_over", action="store_true",
                        help="train a new run in a --checkpoint_dir that holds checkpoints already (another "
                             "run's, or later steps of the one resumed): this run's checkpoints replace theirs of "
                             "the same step numbers; the others are kept, and --keep_last never prunes them")
    flags.add_filelist_dir_flag(parser, help="folder of train.txt and val.txt (default: filelists/, as the reference; "
                                             "or <data_root>/filelists/ when only that one has them)")
    add_min_confidence_flag(parser)
    parser.add_argument("--max_steps", type=int, help="stop after this global step (default: train until interrupted)")
    parser.add_argument("--eval_batches", type=int, help="batches per evaluation (default: the reference's number)")
    parser.add_argument("--keep_last", type=int, default=0, metavar="N",
                        help="keep only the newest N checkpoints of each network; 0 keeps all")
    parser.add_argument("--log_interval", type=int, default=50, help="steps between TensorBoard scalars")
    flags.add_seed_flag(parser, help="seeds the weights' initialisation and the sampling")
    add_amp_flag(parser)
    add_hparams_argument(parser)
    flags.add_run_flags(parser)


def trainer_parser(doc, disc=False, syncnet=False):
    """A trainer's command line: ``doc``'s first paragraph and the flags of ``add_training_flags``."""
    parser = flags.argument_parser(doc)
    add_training_flags(parser, disc=disc, syncnet=syncnet)
    return parser


def main_for(objective_class, build_parser):
    """The command-line entry point of a trainer: ``sys.exit(cli.run(main_for(...)))``. A run
    stopped by Ctrl-C or SIGTERM ends, as cli.run would end it, with a line that says how to
    resume it."""

    def main(argv):
        config = parse_config(objective_class, build_parser, argv)
        corrections = summary(config.data_root)
        if corrections and os.environ.get("RANK", "0") == "0":
            print(corrections)
        try:
            run_training(objective_class, config)
        except (KeyboardInterrupt, cli.Terminated) as stop:
            resume = resume_line(objective_class, config)
            if resume is None:
                raise
            word, status = ("interrupted", 130) if isinstance(stop, KeyboardInterrupt) else ("terminated", 143)
            print(f"{word}; {resume}", file=sys.stderr)  # the line and status cli.run gives a stop, and how to go on
            return status
        return 0

    return main


def parse_config(objective_class, build_parser, argv):
    """The TrainingConfig of a run of ``objective_class`` from its command line ``argv`` and
    the --config file it names: the flags checked and the hyper-parameters applied first."""
    parser = build_parser()
    from_file = take_config(parser, argv, recorded=RECORDED)
    if from_file.path:
        take_recorded(objective_class, from_file)  # another trainer's run.json: refused before its flags are missed
    args = parser.parse_args(argv)
    if args.resume and not from_file.flags.get("resume"):
        # --resume given on the command line: the newest checkpoint, not one the file names
        for dest in ("checkpoint_path", "disc_checkpoint_path"):
            if dest in from_file.flags and getattr(args, dest) == from_file.flags[dest]:
                setattr(args, dest, None)
    try:
        check_flags(args)
    except UserError as error:
        raise blame_file(error, from_file, argv) from None
    apply_hparams_argument(args, from_file.hparams, f"--config {from_file.path}")
    cli.existing_folder(args.data_root, "--data_root")
    if args.min_confidence is not None:
        check_min_confidence(args.data_root, args.min_confidence)
    return training_config(objective_class, args)


def take_recorded(objective_class, from_file):
    """Check what a run.json given as --config records beyond the flags: the trainer that
    wrote it must be this one; a flag of another trainer must be null; a run launched on
    another number of processes draws other batches, which is said."""
    path, recorded = from_file.path, from_file.recorded
    objective = recorded.get("objective", objective_class.name)
    if objective != objective_class.name:
        raise UserError(f"--config {path} records a run of {objective!r}, not of {objective_class.name!r} "
                        f"({objective_class.script}); give it to the trainer that wrote it")
    for key in ("syncnet_checkpoint_path", "disc_checkpoint_path"):
        if recorded.get(key) is not None:
            raise UserError(f"--config {path}: {key} is not a flag of {objective_class.script}")
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if recorded.get("world_size", processes) != processes and os.environ.get("RANK", "0") == "0":
        print(f"note: {path} records a run of {recorded['world_size']} processes, this one has {processes}: "
              "each step trains on other batches")


def check_flags(args):
    """A trainer flag below its least value is one line, before any work."""
    check_number("--seed", args.seed, 0, 2**32 - 1, whole=True)  # what NumPy's generators take
    for name, least in FLAG_MINIMUMS.items():
        value = getattr(args, name)
        if value is not None and value < least:
            raise UserError(f"--{name} must be at least {least}, not {value}")


def resume_line(objective_class, config):
    """"resume with: python <trainer> --config <checkpoint_dir>/run.json --resume" once the run
    has written its run.json (rank 0 alone says it); None before that, or on another rank."""
    run_file = Path(config.checkpoint_dir) / RUN_FILE
    if os.environ.get("RANK", "0") != "0" or not run_file.is_file():
        return None
    try:
        if json.loads(run_file.read_text()) != config.as_dict():
            return None  # another run's
    except ValueError:
        return None
    steps = complete_steps(config.checkpoint_dir, objective_class.prefixes)
    saved = f"its newest checkpoint is of step {steps[-1]}" if steps else "no checkpoint was saved yet"
    script = sys.argv[0] if Path(sys.argv[0]).name == objective_class.script else objective_class.script
    launcher = "python" if config.world_size == 1 else f"torchrun --nproc_per_node {config.world_size} ..."
    return f"{saved}; resume with: {launcher} {shlex.join([script, '--config', str(run_file), '--resume'])}"
