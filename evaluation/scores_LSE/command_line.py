"""The flags both LSE scripts share, their checks, and the scorer they name."""

from evaluation.metrics.lse import LSEScorer
from system.errors import check_number
from system.flags import add_syncnet_flag
from system.progress import loading

MAX_VSHIFT = 1000  # frames (40 s at 25 fps): each offset tried is a distance per window
SYNCNET_WEIGHTS = "checkpoints/syncnet_v2.model"


def add_scoring_flags(parser):
    """The SyncNet both scripts score with (its weights under the reference's --initial_model
    too), --batch_size and --vshift."""
    add_syncnet_flag(parser, f"syncnet_v2.model, as released: LSE's SyncNet, not the training expert "
                             f"(default: {SYNCNET_WEIGHTS})", "--initial_model")
    parser.add_argument("--batch_size", type=int, default=20, help="5-frame windows per SyncNet batch")
    parser.add_argument("--vshift", type=int, default=15, help="audio offsets -vshift..+vshift frames are tried")


def check_scoring_flags(args, counts=()):
    """Refuse bad values of --batch_size and --vshift, then of the script's own ``counts``
    (names of whole numbers, 0 or more), in one line each, before anything is read."""
    check_number("--batch_size", args.batch_size, 1, whole=True)
    check_number("--vshift", args.vshift, 0, MAX_VSHIFT, whole=True)
    for name in counts:
        check_number(f"--{name}", getattr(args, name), 0, whole=True)


def syncnet_weights(args):
    """The SyncNet weights the flags name."""
    return args.syncnet_checkpoint_path or SYNCNET_WEIGHTS


def load_scorer(args, device):
    """The LSEScorer the flags name, on ``device``, saying so first."""
    loading("SyncNet", syncnet_weights(args), not args.quiet, device)
    return LSEScorer(syncnet_weights(args), device, args.batch_size, args.vshift)
