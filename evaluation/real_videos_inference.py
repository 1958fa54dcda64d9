"""Lip-sync real-world videos (pairs of face video and audio file), for LSE scoring in the wild.

    python evaluation/real_videos_inference.py --mode dubbed --data_root real_videos \\
        --results_dir results/real --checkpoint_path checkpoints/wav2lip.pth

--mode dubbed syncs every file in --data_root to its own audio; tts and random read
--filelist, whose lines are "VIDEO AUDIO" relative to --data_root (with extensions). Frames
are scaled so the face is about --face_res pixels, as the reference does (180; a larger
generator's own face size when that is more). A video shorter
than its audio is an error, except in tts mode, where its frames are repeated evenly. A video
that fails, for any reason, is a line on stderr and a row of RESULTS/failures.csv, and the
others go on; the summary counts them and the exit status is then 1.
"""

import functools
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for its modules

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from evaluation.command_line import (
    add_generation_flags,
    check_flags,
    finish,
    flags_record,
    generation_options,
)
from evaluation.generation import Pair, face_scaled_sizes, generate, read_filelist
from media.containers import visible
from models.checkpoint import face_size_of, read_checkpoint
from system.cli import existing_folder, run
from system.devices import pick_device
from system.errors import UserError
from system.flags import argument_parser
from system.sharding import Shard

TOOL = "real_videos_inference.py"
REFERENCE_FACE_RES = 180  # pixels: the face size the reference tests the 96-pixel networks at


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--mode", required=True, choices=["dubbed", "tts", "random"],
                   help="dubbed: each file with its own audio; tts / random: the pairs of --filelist")
    p.add_argument("--filelist", default=None, help="lines of 'video audio', relative to --data_root")
    p.add_argument("--data_root", required=True, help="folder of the videos (and audio files)")
    add_generation_flags(p, pads=[0, 10, 0, 0])
    p.add_argument("--face_res", type=int, help="approximate face size, in pixels, to test at (default: the "
                                                "reference's 180, or the generator's face size when larger)")
    p.add_argument("--min_frame_res", type=int, default=480, help="do not downscale the short side below this")
    p.add_argument("--max_frame_res", type=int, default=720, help="downscale the short side to at most this")
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    given = [("face_res", 1)] if args.face_res is not None else []  # else the generator's, read later
    check_flags(args, [*given, ("min_frame_res", 0), ("max_frame_res", 1)])
    root = existing_folder(args.data_root, "--data_root")
    if args.mode == "dubbed":
        names = [p.name for p in visible(sorted(root.iterdir()), root) if p.is_file()]
        lines = [(name, name) for name in names]
        if not lines:
            raise UserError(f"no videos in {root}")
    elif args.filelist is None:
        raise UserError(f"--mode {args.mode} needs --filelist")
    else:
        lines = read_filelist(args.filelist)
    pairs = [Pair(index, root / video, root / audio) for index, (video, audio) in enumerate(lines)]
    device = pick_device(args.device)

    @functools.cache
    def face_res():  # read once the run is known to go ahead (its checkpoint and outputs checked)
        if args.face_res is not None:
            return args.face_res
        # a 192-pixel generator is not given faces scaled down to 180 pixels
        return max(REFERENCE_FACE_RES, face_size_of(read_checkpoint(args.checkpoint_path), args.checkpoint_path))

    def options_for(pair, outfile):
        sizes = face_scaled_sizes(pair.video, device, args.detector_path, face_res(), args.min_frame_res,
                                  args.max_frame_res)
        return generation_options(args, pair, outfile, tool=TOOL, resize_to=sizes,
                                  short_video="stretch" if args.mode == "tts" else "error")

    summary = generate(pairs, args.results_dir, options_for, flags_record(args, TOOL), progress=not args.quiet,
                       shard=Shard.parse(args.shard))
    return finish(args, summary)


if __name__ == "__main__":
    sys.exit(run(main))
