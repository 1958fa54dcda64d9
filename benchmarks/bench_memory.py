"""Peak memory of inference against the length of the audio and the size of the frames.

    python benchmarks/bench_memory.py                       # every case
    python benchmarks/bench_memory.py --cases mel-1min mel-7h

Each case runs in a fresh process; its peak resident memory (VmHWM, which the process reads
from /proc at its end: ru_maxrss would count this parent's peak too, as exec records it) is
reported with its wall time:

    mel-1min, mel-7h     the speech as inference reads it (checked, then its mel computed in
                         pieces and cut into one chunk per output frame at 25 fps), for a FLAC
                         of 1 minute and of 7 hours of silence (the 7-hour file is 4.8 MB)
    still-small, still-24mp, video-4k
                         inference.py --box on a 640x480 still, a 6000x4000 (24-megapixel) still
                         and a 2-second 3840x2160 video, with 2 s of speech, to an mp4

Weights are seeded random ones (memory does not depend on them). Prints a Markdown table.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import system  # noqa: E402, F401 - the project's first: Ctrl-C from here on ends in one line
from benchmarks.shared import cpu_name, finished  # noqa: E402
from system.cli import run  # noqa: E402
from system.flags import argument_parser  # noqa: E402

SPEECH_SECONDS = 2


def make_inputs(work, cases):
    """The files the cases need, made once in ``work``."""
    import cv2
    import numpy as np
    import torch

    from media.synthetic import silent_flac, speech_like, write_media
    from models import Wav2Lip

    made = {"checkpoint": work / "wav2lip.pth", "speech": work / "speech.wav"}
    torch.manual_seed(0)
    torch.save({"state_dict": Wav2Lip().state_dict(), "global_step": 0}, made["checkpoint"])
    write_media(made["speech"], speech_like(SPEECH_SECONDS)[None], 16000, audio_codec="pcm_s16le")
    rng = np.random.default_rng(0)
    for name, (width, height) in (("still-small", (640, 480)), ("still-24mp", (6000, 4000))):
        if name in cases:
            made[name] = work / f"{name}.jpg"
            cv2.imwrite(str(made[name]), cv2.resize(rng.integers(0, 256, (height // 16, width // 16, 3), np.uint8),
                                                    (width, height)))
    if "video-4k" in cases:
        made["video-4k"] = work / "video-4k.mp4"
        _video(made["video-4k"], (3840, 2160), 25 * SPEECH_SECONDS, rng)
    for name, seconds in (("mel-1min", 60), ("mel-7h", 7 * 3600)):
        if name in cases:
            made[name] = silent_flac(work / f"{name}.flac", seconds)
    return made


def _video(path, size, frames, rng):
    import av
    import cv2
    import numpy as np

    width, height = size
    background = cv2.resize(rng.integers(0, 256, (height // 16, width // 16, 3), np.uint8), size)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(background, 8 * i, axis=1), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def box_of(width, height):
    """A face box in the middle of the frame: top, bottom, left, right."""
    return height // 3, height // 3 + height // 4, width // 3, width // 3 + height // 4


def child(spec):
    """Run one case in this process; print its peak resident MB."""
    if spec["case"].startswith("mel"):
        from lipsync.audio_chunks import Speech

        speech = Speech(spec["audio"])
        for _ in speech.chunks(speech.chunk_starts(25.0)):
            pass
    else:
        from lipsync import Options, lip_sync

        lip_sync(Options(**spec["options"], progress=False))
    with open("/proc/self/status") as status:
        print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024)


def measure(spec):
    """Wall seconds and peak resident MB of one case, run in a child process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return wall, None, done.stderr.strip().splitlines()[-1:]
    return wall, float(done.stdout.split()[-1]), None


def spec_of(case, made, work):
    if case.startswith("mel"):
        return {"case": case, "audio": str(made[case])}
    if case == "video-4k":
        size = (3840, 2160)
    else:
        size = (640, 480) if case == "still-small" else (6000, 4000)
    options = {"checkpoint_path": str(made["checkpoint"]), "face": str(made[case]), "audio": str(made["speech"]),
               "outfile": str(work / f"{case}.out.mp4"), "box": box_of(*size)}
    return {"case": case, "options": options}


CASES = ("mel-1min", "mel-7h", "still-small", "still-24mp", "video-4k")


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="the cases to run (see above)")
    p.add_argument("--child", help=argparse.SUPPRESS)  # one case, in the process the benchmark starts
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    print(f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| case | wall s | peak memory |\n|---|---|---|")
    failed = 0
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        made = make_inputs(work, args.cases)
        for case in args.cases:
            wall, peak, error = measure(spec_of(case, made, work))
            failed += error is not None
            figures = f"{peak:,.0f} MB" if error is None else f"failed: {error}"
            print(f"| {case} | {wall:.1f} | {figures} |", flush=True)
    return finished(len(args.cases), failed)


if __name__ == "__main__":
    sys.exit(run(main))
