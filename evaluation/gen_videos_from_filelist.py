"""Lip-sync the pairs of an LRS2 / LRS3 / LRW test filelist, for LSE and FID scoring.

    python evaluation/gen_videos_from_filelist.py --filelist test_filelists/lrs2.txt \\
        --data_root LRS2/main --results_dir results/lrs2 --checkpoint_path checkpoints/wav2lip.pth

Each filelist line is "AUDIO_SOURCE VIDEO", both relative to --data_root and without the
.mp4 extension: the speech of the first file is synced onto the face of the second, as the
reference reads these lists. Line i gives RESULTS_DIR/i.mp4 at 25 fps. As in the reference,
a pair is skipped when its video is shorter than the audio or a frame has no face; each pair
that fails is a line on stderr and a row of RESULTS/failures.csv, the summary counts them, and
the exit status is then 1 (the videos made are kept, and a run again makes only what is missing).
"""

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
from evaluation.generation import Pair, generate, read_filelist
from system.cli import existing_folder, run
from system.flags import argument_parser
from system.sharding import Shard

TOOL = "gen_videos_from_filelist.py"


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--filelist", required=True, help="lines of 'audio_source video', relative to --data_root, no .mp4")
    p.add_argument("--data_root", required=True, help="the dataset's video folder (LRS2: mvlrs_v1/main)")
    add_generation_flags(p, pads=[0, 0, 0, 0])
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    check_flags(args)
    root = existing_folder(args.data_root, "--data_root")
    pairs = [Pair(index, root / f"{video}.mp4", root / f"{audio}.mp4")
             for index, (audio, video) in enumerate(read_filelist(args.filelist))]

    def options_for(pair, outfile):
        return generation_options(args, pair, outfile, tool=TOOL, short_video="error")

    return finish(args, generate(pairs, args.results_dir, options_for, flags_record(args, TOOL), progress=not args.quiet,
                                 shard=Shard.parse(args.shard)))


if __name__ == "__main__":
    sys.exit(run(main))
