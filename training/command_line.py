"""The trainers' command line: the flags every trainer takes, and the entry point that checks
them, builds the run's configuration from them and hands it to ``training.loop.run_training``."""

from hparams import add_hparams_argument, apply_hparams_argument
from system import cli, flags
from system.errors import UserError, check_number
from training.checkpoints import DISC_PREFIX, checkpoint_flag
from training.config import training_config
from training.loop import run_training

# The least value of each trainer flag that takes a number (None: not given, no limit).
FLAG_MINIMUMS = {"max_steps": 1, "eval_batches": 1, "keep_last": 0, "log_interval": 1}


def add_training_flags(parser, disc=False, syncnet=False):
    """The reference's flags and the ones every trainer adds to them."""
    parser.add_argument("--data_root", required=True, help="root folder of the preprocessed dataset")
    parser.add_argument("--checkpoint_dir", required=True, help="where checkpoints, samples and TensorBoard logs go")
    parser.add_argument("--checkpoint_path", help="resume from this checkpoint (step, epoch and optimiser included)")
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
    parser.add_argument("--filelists", help="folder of train.txt and val.txt (default: filelists/, as the reference; "
                                            "or <data_root>/filelists/ when only that one has them)")
    parser.add_argument("--max_steps", type=int, help="stop after this global step (default: train until interrupted)")
    parser.add_argument("--eval_batches", type=int, help="batches per evaluation (default: the reference's number)")
    parser.add_argument("--keep_last", type=int, default=0, metavar="N",
                        help="keep only the newest N checkpoints of each network; 0 keeps all")
    parser.add_argument("--log_interval", type=int, default=50, help="steps between TensorBoard scalars")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights' initialisation and the sampling")
    parser.add_argument("--amp", choices=["auto", "on", "off", "fp16", "bf16"], default="auto",
                        help="mixed precision: on = bfloat16, or float16 with loss scaling where bfloat16 is slow; "
                             "auto = on a CUDA GPU; fp16 or bf16 to choose")
    add_hparams_argument(parser)
    flags.add_run_flags(parser)


def trainer_parser(doc, disc=False, syncnet=False):
    """A trainer's command line: ``doc``'s first paragraph and the flags of ``add_training_flags``."""
    parser = flags.argument_parser(doc)
    add_training_flags(parser, disc=disc, syncnet=syncnet)
    return parser


def main_for(objective_class, build_parser):
    """The command-line entry point of a trainer: ``sys.exit(cli.run(main_for(...)))``."""

    def main(argv):
        run_training(objective_class, parse_config(objective_class, build_parser, argv))
        return 0

    return main


def parse_config(objective_class, build_parser, argv):
    """The TrainingConfig of a run of ``objective_class`` from its command line ``argv``:
    the flags checked and --hparams applied first."""
    args = build_parser().parse_args(argv)
    check_flags(args)
    apply_hparams_argument(args)
    cli.existing_folder(args.data_root, "--data_root")
    return training_config(objective_class, args)


def check_flags(args):
    """A trainer flag below its least value is one line, before any work."""
    check_number("--seed", args.seed, 0, 2**32 - 1, whole=True)  # what NumPy's generators take
    for name, least in FLAG_MINIMUMS.items():
        value = getattr(args, name)
        if value is not None and value < least:
            raise UserError(f"--{name} must be at least {least}, not {value}")
