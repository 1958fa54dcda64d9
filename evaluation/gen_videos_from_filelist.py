"""Lip-sync the pairs of an LRS2 / LRS3 / LRW test filelist, for LSE and FID scoring.

    python evaluation/gen_videos_from_filelist.py --filelist test_filelists/lrs2.txt \\
        --data_root LRS2/main --results_dir results/lrs2 --checkpoint_path checkpoints/wav2lip.pth

Each filelist line is "AUDIO_SOURCE VIDEO", both relative to --data_root and without the
.mp4 extension: the speech of the first file is synced onto the face of the second, as the
reference reads these lists. Line i gives RESULTS_DIR/i.mp4 at 25 fps. As in the reference,
a pair is skipped when its video is shorter than the audio or a frame has no face.
"""

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for its modules

from cli import run
from errors import UserError
from evaluation.test_set import Pair, generate, read_filelist
from lipsync import Options


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--filelist", required=True, help="lines of 'audio_source video', relative to --data_root, no .mp4")
    p.add_argument("--results_dir", required=True, help="where <line index>.mp4 are written")
    p.add_argument("--data_root", required=True, help="the dataset's video folder (LRS2: mvlrs_v1/main)")
    p.add_argument("--checkpoint_path", required=True, help="Wav2Lip generator checkpoint")
    p.add_argument("--pads", nargs=4, type=int, default=[0, 0, 0, 0], metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                   help="padding added to each detected face box")
    p.add_argument("--face_det_batch_size", type=int, default=64, help="frames per S3FD batch")
    p.add_argument("--wav2lip_batch_size", type=int, default=128, help="frames per generator batch")
    p.add_argument("--detector_path", default=None, help="S3FD weights (default face_detection/detection/sfd/s3fd.pth)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="show tracebacks")
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    root = Path(args.data_root)
    if not root.is_dir():
        raise UserError(f"--data_root {root} is not a folder")
    pairs = [Pair(index, root / f"{video}.mp4", root / f"{audio}.mp4")
             for index, (audio, video) in enumerate(read_filelist(args.filelist))]

    def options_for(pair, outfile):
        return Options(checkpoint_path=args.checkpoint_path, face=str(pair.video), audio=str(pair.audio),
                       outfile=str(outfile), pads=tuple(args.pads), face_det_batch_size=args.face_det_batch_size,
                       wav2lip_batch_size=args.wav2lip_batch_size, on_no_face="error", short_video="error",
                       detector_path=args.detector_path, device=args.device, progress=False)

    summary = generate(pairs, args.results_dir, options_for, progress=not args.quiet)
    print(summary.line())
    return 0 if summary.generated + summary.existing else 1


if __name__ == "__main__":
    sys.exit(run(main))
