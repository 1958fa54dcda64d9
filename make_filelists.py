"""Write train/val/test filelists for a preprocessed folder (split by video, so no video is in two lists).

    python make_filelists.py --preprocessed_root lrs2_preprocessed/ --filelist_dir filelists/

With --min_confidence X, the clips whose sync confidence in <preprocessed_root>/sync_corrections.csv
(sync_audit.py --correct) is below X are left out, named, and listed in <filelist_dir>/low_confidence.txt.
"""

import sys
from pathlib import Path

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from system import cli, flags
from system.atomic_write import check_output, check_writable
from training import dataset
from training.sync_corrections import check_min_confidence


def build_parser():
    parser = flags.argument_parser(__doc__)
    parser.add_argument("--preprocessed_root", required=True, help="output folder of preprocess.py")
    flags.add_filelist_dir_flag(parser, help="where train.txt, val.txt and test.txt go (default: filelists/)")
    parser.add_argument("--val", type=float, default=0.05, help="fraction of the videos for validation")
    parser.add_argument("--test", type=float, default=0.05, help="fraction of the videos for testing")
    flags.add_seed_flag(parser, help="seeds the split, so that a rerun gives the same lists")
    parser.add_argument("--overwrite", action="store_true", help="replace existing filelists")
    dataset.add_min_confidence_flag(parser)
    flags.add_verbose_flag(parser)
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    root = cli.existing_folder(args.preprocessed_root, "--preprocessed_root")
    if args.min_confidence is not None:
        check_min_confidence(root, args.min_confidence)
    lists = args.filelist_dir or "filelists"  # as the trainers look for them
    check_writable(lists)  # before scanning what may be thousands of clips
    for name in (*(f"{split}.txt" for split in dataset.SPLITS), dataset.LEFT_OUT_LIST):
        check_output(Path(lists) / name, "--filelist_dir")
    counts = dataset.write_filelists(root, lists, args.val, args.test, args.seed, args.overwrite, args.min_confidence)
    print(", ".join(f"{split}.txt: {count} clips" for split, count in counts.items()) + f" in {lists}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
