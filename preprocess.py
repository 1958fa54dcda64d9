"""Preprocess LRS2-style videos for training: face crops and audio.wav per clip.

    python preprocess.py --data_root lrs2/mvlrs_v1/main --preprocessed_root lrs2_preprocessed/
    python preprocess.py --data_root ... --preprocessed_root ... --ngpu 4 --face_det_batch_size 64

Reads ``<data_root>/<video>/<clip>.mp4`` and writes ``<preprocessed_root>/<video>/<clip>/``
(``<frame>.jpg`` face crops, ``audio.wav``). Run it again after an interruption: finished
clips are skipped (and one marked done that has lost crops is redone). Runs on one root, such
as shards on several machines or a job restarted while the old one still runs, never work on
the same clip at once (see training/preprocessing.py). Exit status 1 when a video failed (see
preprocess_failures.csv); 130 on Ctrl-C. Then write the filelists with ``make_filelists.py``.
"""

import os
import sys
from pathlib import Path

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from system import cli, flags
from system.atomic_write import check_output, check_writable
from system.devices import pick_device
from system.errors import UserError
from system.progress import loading
from system.sharding import Shard, add_shard_flag

# Light imports only up here: the audio workers import this script again as they start, and until
# cli.run is called a Ctrl-C is a traceback. The rest is imported in main (PyTorch only without --box).


def build_parser():
    parser = flags.argument_parser(__doc__)
    parser.add_argument("--data_root", required=True, help="folder of <video>/<clip>.mp4 files (LRS2's mvlrs_v1/main)")
    parser.add_argument("--preprocessed_root", required=True, help="where the face crops and audio go")
    parser.add_argument("--ngpu", type=int, default=1, help="GPUs to detect faces on, one worker each")
    flags.add_face_det_batch_flag(parser, "--batch_size")
    parser.add_argument("--box", nargs=4, type=int, metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                        help="crop this fixed box (pixels of the upright frames) from every frame instead of "
                             "detecting faces (data with a known face position, such as synthetic_corpus.py's clips)")
    flags.add_detector_flag(parser)
    add_shard_flag(parser)
    parser.add_argument("--audio_workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes extracting audio")
    flags.add_run_flags(parser)
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    from tqdm import tqdm  # noqa: PLC0415 - see the imports

    from training import preprocessing  # noqa: PLC0415

    data_root = cli.existing_folder(args.data_root, "--data_root")
    check_writable(args.preprocessed_root)
    if args.face_det_batch_size < 1 or args.ngpu < 1 or args.audio_workers < 1:
        raise UserError("--face_det_batch_size, --ngpu and --audio_workers must be at least 1")
    shard = Shard.parse(args.shard)
    check_output(shard.path(Path(args.preprocessed_root) / preprocessing.FAILURES_NAME))
    videos = preprocessing.find_videos(data_root)
    if not videos:
        raise UserError(f"no <video>/<clip>.mp4 files under {data_root}")
    videos = shard.select(videos)

    if args.box:
        detectors = [preprocessing.FixedBoxDetector(args.box)]
    else:
        import torch  # noqa: PLC0415 - see the imports

        import face_detection  # noqa: PLC0415
        from face_detection.detect import weights_file  # noqa: PLC0415

        device = pick_device(args.device)
        if device.type == "cuda" and device.index is None:
            count = min(args.ngpu, torch.cuda.device_count())
            devices = [f"cuda:{i}" for i in range(count)]
        else:
            devices = [device]
        loading("S3FD", weights_file(args.detector_path), not args.quiet, ", ".join(map(str, devices)))
        detectors = [face_detection.S3FDDetector(d, args.detector_path, args.face_det_batch_size) for d in devices]
    bar = tqdm(unit="clip", desc="preprocessing", disable=args.quiet, dynamic_ncols=True)
    try:
        summary = preprocessing.preprocess(videos, args.preprocessed_root, detectors, args.face_det_batch_size,
                                           args.audio_workers, progress=bar, shard=shard)
    finally:
        bar.close()
    print(f"{summary.videos} videos: {summary.done} preprocessed now, {summary.already_done} already done, "
          f"{len(summary.failures)} failed" + (f" (see {shard.path(Path(args.preprocessed_root) / preprocessing.FAILURES_NAME)})"
                                               if summary.failures else "")
          + (f"; {shard.describe()}" if not shard.whole else ""))
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
