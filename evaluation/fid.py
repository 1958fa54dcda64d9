"""FID between the frames of generated and real videos, compatible with pytorch-fid.

    python evaluation/fid.py REAL GENERATED \\
        --inception_checkpoint_path checkpoints/pt_inception-2015-12-05-6726825d.pth

REAL and GENERATED are each a video, an image, a folder of videos and/or images, or a .npz of
statistics saved with --save_stats (pytorch-fid's format: mu, sigma). Every frame is read
losslessly as RGB, resized to 299 x 299 and embedded by pytorch-fid's InceptionV3; the
Fréchet distance between the two Gaussians of pool features is the FID, printed last (after
a line with the number of frames on each side). Statistics are accumulated batch by batch, so
memory does not grow with the number of frames. The older --weights still names the weights.

With --shard K/N (or under torchrun) a process embeds every N-th file of each side and saves
its running statistics to --shard_stats (as NAME.shard-K-of-N.npz); ``merge_shards.py NAME.npz``
joins them (Chan's pairwise update) and prints the FID. The merged mean and covariance are
one run's up to float64 rounding when the frames are batched alike (--batch_size 1; other
batches move InceptionV3's float32 features slightly, as another --batch_size does).
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for its modules

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from evaluation.metrics.fid_statistics import (
    WEIGHTS_NAME,
    frame_statistics,
    frechet_distance,
    load_inception,
    media_files,
    running_statistics,
    save_arrays,
)
from system.atomic_write import check_output, check_writable
from system.cli import run
from system.devices import pick_device
from system.errors import UserError, check_number
from system.flags import add_run_flags, argument_parser, flag
from system.progress import loading
from system.sharding import Shard, add_shard_flag


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("paths", nargs=2, metavar="PATH", help="real and generated: a video, an image, a folder, or a .npz")
    flag(p, "--inception_checkpoint_path", "--weights", dest="inception_checkpoint_path", metavar="PATH",
         default=f"checkpoints/{WEIGHTS_NAME}", help="pytorch-fid's InceptionV3 weights")
    p.add_argument("--batch_size", type=int, default=50, help="frames per InceptionV3 batch")
    p.add_argument("--save_stats", action="store_true",
                   help="save the statistics of the first PATH to the second (a .npz) instead of computing FID")
    add_shard_flag(p)
    p.add_argument("--shard_stats", default="results/fid_stats.npz",
                   help="with --shard: where the shards save their statistics (as NAME.shard-K-of-N.npz)")
    add_run_flags(p)
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    check_number("--batch_size", args.batch_size, 1, whole=True)
    first, second = args.paths
    if args.save_stats:
        if not second.endswith(".npz"):
            raise UserError("with --save_stats the second path is the .npz to write")
        check_writable(Path(second).parent)
        check_output(second, "the second PATH", {"first PATH": first, "--inception_checkpoint_path": args.inception_checkpoint_path})
    shard = Shard.parse(args.shard)
    if not shard.whole:
        if args.save_stats or any(path.endswith(".npz") for path in args.paths):
            raise UserError("--shard splits the frames of videos and images: not --save_stats or a .npz PATH")
        check_writable(Path(args.shard_stats).parent)
        check_output(shard.path(args.shard_stats), "--shard_stats", {"--inception_checkpoint_path": args.inception_checkpoint_path})
    check_inputs(args.paths[:1] if args.save_stats else args.paths)
    device = pick_device(args.device)
    loading("InceptionV3", args.inception_checkpoint_path, not args.quiet, device)
    model = load_inception(args.inception_checkpoint_path, device)
    if not shard.whole:
        return _save_shard(args, shard, model, device)
    if args.save_stats:
        mu, sigma, count = frame_statistics(first, model, device, args.batch_size, not args.quiet)
        save_arrays(second, compressed=True, mu=mu, sigma=sigma)
        print(f"Saved the statistics of {count} frames to {second}")
        return 0
    real = frame_statistics(first, model, device, args.batch_size, not args.quiet)
    generated = frame_statistics(second, model, device, args.batch_size, not args.quiet)
    print(f"Frames: {_counted(real[2], first)} real, {_counted(generated[2], second)} generated")
    print(f"FID: {frechet_distance(real[0], real[1], generated[0], generated[1])}")
    return 0


def check_inputs(paths):
    """A missing PATH, or a folder without videos or images, is one line before InceptionV3
    loads (seconds), not after."""
    for path in paths:
        if not path.endswith(".npz"):
            media_files(path)
        elif not Path(path).is_file():
            raise UserError(f"{path} not found")


def _counted(frames, path):
    """How many frames a side had, for the line before the FID (a .npz does not say)."""
    return f"{frames} ({path})" if frames is not None else f"the saved statistics of {path}"


def _save_shard(args, shard, model, device):
    """This shard's running statistics of both sides, for merge_shards.py."""
    arrays = {}
    for side, path in zip(("real_", "generated_"), args.paths):
        files = shard.select(media_files(path))
        arrays.update(running_statistics(files, model, device, args.batch_size, not args.quiet, Path(path).name)
                      .arrays(side))
    target = shard.path(args.shard_stats)
    save_arrays(target, **arrays)
    print(f"{shard.describe()}: statistics of {int(arrays['real_count'])} + {int(arrays['generated_count'])} frames "
          f"saved to {target}; when every shard is done: python merge_shards.py {args.shard_stats}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
