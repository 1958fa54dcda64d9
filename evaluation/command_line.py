"""The command line of the test-set generation scripts (gen_videos_from_filelist.py and
real_videos_inference.py): their shared flags, built from inference.py's declarations with the
reference's defaults for each script, the checks of their values, and the run's last lines.
What the scripts run is generation.py."""

import sys

from evaluation.generation import check_results_dir, run_record
from face_detection.detect import weights_file
from lipsync import Options
from lipsync.command_line import (
    add_batch_size_flags,
    add_checkpoint_flag,
    add_no_face_flags,
    add_pads_flag,
)
from lipsync.marking import add_marking_flags
from media.provenance import unmarked_warning
from system.errors import check_number
from system.flags import add_detector_flag, add_run_flags
from system.progress import say
from system.sharding import Shard, add_shard_flag

# Flags that say where things are or how the run reports, not what a video becomes.
NOT_SETTINGS = {"results_dir", "checkpoint_path", "detector_path", "filelist", "data_root", "shard", "quiet", "verbose"}


def add_generation_flags(parser, pads):
    """The flags both generation scripts take, with the reference's defaults for each."""
    parser.add_argument("--results_dir", required=True, help="where <index>.mp4 are written")
    add_checkpoint_flag(parser)
    add_pads_flag(parser, pads, note="")
    add_batch_size_flags(parser)
    add_detector_flag(parser)
    add_no_face_flags(parser, default="error", choices_mean="error skips the pair (the reference); interpolate and "
                                                           "skip carry on as inference.py does")
    add_shard_flag(parser)
    add_run_flags(parser)
    add_marking_flags(parser, label=False)


def check_flags(args, counts=()):
    """Refuse bad flag values before any video: inference's checks, then the script's own
    ``counts`` ((flag name, lowest), whole numbers)."""
    Options.from_args(args, face="", audio="").check_values()
    for name, low in counts:
        check_number(f"--{name}", getattr(args, name), low, whole=True)
    check_results_dir(args.results_dir, Shard.parse(args.shard))  # before the checkpoint is read


def generation_options(args, pair, outfile, **settings):
    """lipsync Options for one pair from the flags of ``add_generation_flags`` (by default a
    frame without a face fails the pair, as in the reference)."""
    return Options.from_args(args, face=str(pair.video), audio=str(pair.audio), outfile=str(outfile),
                             progress=False, **settings)


def flags_record(args, tool):
    """``run_record`` of the flags: every flag that changes what a video becomes is a setting."""
    settings = {name: value for name, value in sorted(vars(args).items()) if name not in NOT_SETTINGS}
    say(f"checking the generator {args.checkpoint_path} and S3FD {weights_file(args.detector_path)}", not args.quiet)
    return run_record(tool, args.checkpoint_path, args.detector_path, settings)


def finish(args, summary):
    """Print the summary (and the --unmarked warning); the exit status: 1 when any pair failed
    (each said in a line of its own, and in failures.csv)."""
    print(summary.line() + (f"; {summary.shard.describe()}" if not summary.shard.whole else ""))
    if args.unmarked:
        print(unmarked_warning(f"{args.results_dir}/*.mp4"), file=sys.stderr)
    return 1 if summary.failures else 0
