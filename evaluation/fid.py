"""FID between the frames of generated and real videos, compatible with pytorch-fid.

    python evaluation/fid.py REAL GENERATED --weights checkpoints/pt_inception-2015-12-05-6726825d.pth

REAL and GENERATED are each a video, an image, a folder of videos and/or images, or a .npz of
statistics saved with --save_stats (pytorch-fid's format: mu, sigma). Every frame is read
losslessly as RGB, resized to 299 x 299 and embedded by pytorch-fid's InceptionV3; the
Fréchet distance between the two Gaussians of pool features is the FID. Statistics are
accumulated batch by batch, so memory does not grow with the number of frames.
"""

import sys
from pathlib import Path

import numpy as np

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for its modules

from atomic_write import atomic_output, check_writable
from cli import add_run_flags, argument_parser, pick_device, run
from errors import UserError
from evaluation.metrics.fid_statistics import WEIGHTS_NAME, frame_statistics, frechet_distance, load_inception


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("paths", nargs=2, metavar="PATH", help="real and generated: a video, an image, a folder, or a .npz")
    p.add_argument("--weights", default=f"checkpoints/{WEIGHTS_NAME}", help="pytorch-fid's InceptionV3 weights")
    p.add_argument("--batch_size", type=int, default=50, help="frames per InceptionV3 batch")
    p.add_argument("--save_stats", action="store_true",
                   help="save the statistics of the first PATH to the second (a .npz) instead of computing FID")
    add_run_flags(p)
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    first, second = args.paths
    if args.save_stats:
        if not second.endswith(".npz"):
            raise UserError("with --save_stats the second path is the .npz to write")
        check_writable(Path(second).parent)
    device = pick_device(args.device)
    model = load_inception(args.weights, device)
    if args.save_stats:
        mu, sigma, count = frame_statistics(first, model, device, args.batch_size, not args.quiet)
        with atomic_output(second) as temporary, open(temporary, "wb") as handle:
            np.savez_compressed(handle, mu=mu, sigma=sigma)
        print(f"Saved the statistics of {count} frames to {second}")
        return 0
    real = frame_statistics(first, model, device, args.batch_size, not args.quiet)
    generated = frame_statistics(second, model, device, args.batch_size, not args.quiet)
    print(f"FID: {frechet_distance(real[0], real[1], generated[0], generated[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
