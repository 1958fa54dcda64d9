"""Pixel fidelity of inference.py outside the face box, on real clips, at --crf 0.

    python benchmarks/bench_colour.py                       # the clips in ../shared/data/real/
    python benchmarks/bench_colour.py --clips_dir my_clips/   # its *.mp4, with its speech_48k_short.wav
    python benchmarks/bench_colour.py --videos a.mp4 b.mov --audio speech.wav

Each video is lip-synced with a fixed box over its middle (seeded random generator weights:
what lands inside the box does not matter here) at --crf 0, and the Y, U and V samples
outside the box's chroma blocks are compared with the input's. Side by side, three ways of
round-tripping the same frames that skip the model:

    this project via BGR   containers.read_frames to BGR and VideoWriter back, the exact pair the
                     pipeline uses where it cannot keep YUV (--resize_factor, an odd --crop)
    swscale+opencv   libswscale's BGR decode (to_ndarray("bgr24")) and OpenCV's BT.601 encode:
                     what this project did before
    swscale          libswscale both ways (bgr24 in, yuv420p out), as an FFmpeg pipe would

Prints a Markdown table: mean signed error, the share within one level and the share exact,
per plane, and the milliseconds one frame takes to decode to BGR.
"""

import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import system  # noqa: E402, F401 - the project's first: Ctrl-C from here on ends in one line
from benchmarks.shared import cpu_name  # noqa: E402
from lipsync import Options, lip_sync  # noqa: E402
from media import containers  # noqa: E402
from media.synthetic import read_planes  # noqa: E402
from models import Wav2Lip  # noqa: E402
from system.cli import run  # noqa: E402
from system.errors import UserError  # noqa: E402
from system.flags import argument_parser  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real"
AUDIO_NAME = "speech_48k_short.wav"


def middle_box(width, height):
    return (height // 3, height // 3 + height // 3, width // 3, width // 3 + width // 3)


def outside_errors(before, after, box):
    """Per plane: (mean signed error, share within one level, share exact) outside ``box``'s chroma blocks."""
    y1, y2, x1, x2 = box
    touched = np.zeros(before[0][0].shape, bool)
    touched[y1 - y1 % 2:y2 + y2 % 2, x1 - x1 % 2:x2 + x2 % 2] = True
    keep = [~touched, ~touched[::2, ::2], ~touched[::2, ::2]]
    stats = []
    for plane in range(3):
        difference = np.concatenate([(a[plane].astype(int) - b[plane])[keep[plane]] for a, b in zip(after, before)])
        stats.append((difference.mean(), (np.abs(difference) <= 1).mean(), (difference == 0).mean()))
    return stats


def round_trip(video, out, encode):
    """Decode with libswscale's BGR and write at crf 0 with ``encode`` (BGR -> yuv420p array)."""
    with av.open(str(video)) as source, av.open(str(out), "w") as target:
        video = source.streams.video[0]
        stream = target.add_stream("libx264", rate=video.average_rate, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        for frame in source.decode(video=0):
            for packet in stream.encode(av.VideoFrame.from_ndarray(encode(frame.to_ndarray(format="bgr24")),
                                                                   format="yuv420p")):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)


def swscale_encode(bgr):
    return av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p").to_ndarray()


def opencv_encode(bgr):
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)


def decode_ms(video, decode):
    started, count = time.perf_counter(), 0
    for _ in decode(video):
        count += 1
    return 1000 * (time.perf_counter() - started) / count


def swscale_frames(video):
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="bgr24")


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--clips_dir", default=str(REAL), metavar="DIR",
                   help=f"folder of the clips: every *.mp4 in it, with its {AUDIO_NAME}")
    p.add_argument("--videos", nargs="+", metavar="VIDEO", help="these videos instead of --clips_dir's")
    p.add_argument("--audio", help=f"the speech to lip-sync them to (default: --clips_dir's {AUDIO_NAME})")
    return p


def inputs(args):
    """The videos and the audio to run: one line when there is nothing to run."""
    folder = Path(args.clips_dir)
    videos = [Path(video) for video in args.videos] if args.videos else sorted(folder.glob("*.mp4"))
    if not videos:
        where = "does not exist" if not folder.exists() else "holds no .mp4 clips"
        raise UserError(f"no clips to benchmark: {folder} {where} (give --clips_dir DIR or --videos)")
    audio = Path(args.audio or folder / AUDIO_NAME)
    for path in (*videos, audio):
        if not path.is_file():
            raise UserError(f"{path}: no such file")
    return videos, audio


def main(argv):
    args = build_parser().parse_args(argv)
    videos, audio = inputs(args)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; torch {torch.__version__}, PyAV {av.__version__}\n")
    print("| input | path | Y mean / within 1 / exact | U mean / within 1 / exact | V mean / within 1 / exact "
          "| decode ms/frame |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        torch.manual_seed(0)
        torch.save({"state_dict": Wav2Lip().state_dict()}, work / "wav2lip.pth")
        for video in map(str, videos):
            info = containers.probe_video(video)
            box = middle_box(info.width, info.height)
            lip_sync(Options(str(work / "wav2lip.pth"), video, str(audio), str(work / "out.mp4"), box=box, crf=0,
                             progress=False))
            round_trip(video, work / "swscale_opencv.mp4", opencv_encode)
            round_trip(video, work / "swscale.mp4", swscale_encode)
            stored, _ = read_planes(video)
            # Inference's output frame i shows the input frame due at i / fps (variable-rate
            # input repeats some): its stored planes, as read_pictures gives them unconverted.
            shown = [(p.y, p.u, p.v) for p in containers.read_pictures(video)]
            label = f"{Path(video).name} ({info.width}x{info.height}, matrix {info.colour.matrix}, " \
                    f"range {info.colour.range})"
            with containers.VideoWriter(work / "bgr.mp4", info.fps, crf=0, colour=info.colour) as writer:
                for frame in containers.read_frames(video):
                    writer.write(frame)
            for name, out, before, decode in (("this project", work / "out.mp4", shown, containers.read_frames),
                                              ("this project via BGR", work / "bgr.mp4", shown, containers.read_frames),
                                              ("swscale+opencv", work / "swscale_opencv.mp4", stored, swscale_frames),
                                              ("swscale", work / "swscale.mp4", stored, swscale_frames)):
                after, _ = read_planes(out)
                cells = " | ".join(f"{mean:+.3f} / {100 * within:.2f} % / {100 * exact:.2f} %"
                                   for mean, within, exact in outside_errors(before[:len(after)], after, box))
                print(f"| {label} | {name} | {cells} | {decode_ms(video, decode):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
