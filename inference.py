"""Lip-sync a talking-face video (or a still image) to any speech audio with Wav2Lip.

    python inference.py --checkpoint_path checkpoints/wav2lip_gan.pth --face video.mp4 --audio speech.wav

The flags and defaults of the reference implementation, plus options for frames without a
face, speed and blending; the work is done by ``lipsync.lip_sync``.
"""

import sys

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from lipsync import Options, lip_sync
from lipsync.command_line import add_lipsync_flags, report
from system.cli import run
from system.flags import argument_parser


def build_parser():
    p = argument_parser(__doc__)
    add_lipsync_flags(p)
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    options = Options.from_args(args)
    summary = lip_sync(options)
    report(summary, options)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
