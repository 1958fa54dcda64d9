"""The LSE scoring scripts, the flags they share and their checks; scoring.py is the run both make."""

from system.errors import check_number

MAX_VSHIFT = 1000  # frames (40 s at 25 fps): each offset tried is a distance per window


def add_scoring_flags(parser):
    """--batch_size and --vshift, of the SyncNet both scripts score with."""
    parser.add_argument("--batch_size", type=int, default=20, help="5-frame windows per SyncNet batch")
    parser.add_argument("--vshift", type=int, default=15, help="audio offsets -vshift..+vshift frames are tried")


def check_scoring_flags(args, counts=()):
    """Refuse bad values of --batch_size and --vshift, then of the script's own ``counts``
    (names of whole numbers, 0 or more), in one line each, before anything is read."""
    check_number("--batch_size", args.batch_size, 1, whole=True)
    check_number("--vshift", args.vshift, 0, MAX_VSHIFT, whole=True)
    for name in counts:
        check_number(f"--{name}", getattr(args, name), 0, whole=True)
