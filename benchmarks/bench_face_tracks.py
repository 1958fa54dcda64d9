"""Several faces: what following one face among several costs beside the reference's detection.

    python benchmarks/bench_face_tracks.py                       # 1280x720, 4 s
    python benchmarks/bench_face_tracks.py --size 640x360 --seconds 10

Times inference's face-box source over the frames of a synthetic talking-face video
(bench_inference.make_input) with S3FD: ``--pick_face best`` (the reference: the best box of
each frame, planned as the frames stream by) against ``--pick_face largest`` (every face S3FD
keeps, linked into tracks, the chosen track planned; its first pass decodes the video once
more). Each setting runs twice, alternately; the better run counts. S3FD's weights are seeded
as bench_inference's (its network costs what the released one costs; its boxes lie near their
priors, a few a frame), so the tracking's share here is that of a few faces, not of a crowd.
"""

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import system  # noqa: E402, F401 - the project's first: Ctrl-C from here on ends in one line
from benchmarks.bench_inference import make_input, make_weights  # noqa: E402
from benchmarks.shared import describe, frame_size  # noqa: E402
from system.cli import run  # noqa: E402
from system.errors import check_number  # noqa: E402
from system.flags import argument_parser  # noqa: E402


def build_parser():
    parser = argument_parser(__doc__)
    parser.add_argument("--size", type=frame_size, default=frame_size("1280x720"), help="the video's WIDTHxHEIGHT")
    parser.add_argument("--seconds", type=int, default=4, help="the video's length, whole seconds")
    return parser


def box_source_seconds(work, video, pick):
    """Seconds the face-box source takes over every frame of ``video`` with ``pick``, and the boxes."""
    import torch  # noqa: PLC0415

    from lipsync import Options  # noqa: PLC0415
    from lipsync.face_sources import face_source  # noqa: PLC0415
    from lipsync.frames import FrameSource  # noqa: PLC0415

    options = Options(str(work / "wav2lip.pth"), str(video), "", pick_face=pick, detector_path=str(work / "s3fd.pth"),
                      progress=False)
    frames = FrameSource(options)
    total = sum(1 for _ in frames.frames())
    started = time.perf_counter()
    source = face_source(options, frames, total, torch.device("cpu"))
    boxes = [box for _, _, box in source.boxed_frames(frames.frames(), total)]
    return time.perf_counter() - started, boxes


def main(argv):
    args = build_parser().parse_args(argv)
    check_number("--seconds", args.seconds, 1, 600, whole=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        make_weights(work)
        video = make_input(work, args.size, args.seconds)[0]
        best = {"best": float("inf"), "largest": float("inf")}
        for _ in range(2):
            for pick in best:
                seconds, boxes = box_source_seconds(work, video, pick)
                best[pick] = min(best[pick], seconds)
        frames = len(boxes)
    print(f"{args.size}, {frames} frames, on {describe('cpu')}:")
    for pick, seconds in best.items():
        print(f"  --pick_face {pick:8s} {seconds / frames * 1000:7.1f} ms a frame ({seconds:.1f} s)")
    print(f"  following faces costs {best['largest'] / best['best']:.2f}x the reference's detection")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
