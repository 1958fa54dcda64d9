"""End-to-end speed and peak memory of inference.py on generated talking-face videos.

    python benchmarks/bench_inference.py                                # all sizes, lengths, settings
    python benchmarks/bench_inference.py --sizes 1280x720 --seconds 10 40 --settings box fast

For each input size and length a synthetic video (a textured face moving over a noisy
background, H.264) and speech-like audio of the same length are generated; every setting
runs in a fresh process, which reports output frames per second of wall time (model loading
included) and its peak resident memory, and where the time went:

    start-up    imports, model loading (and BatchNorm folding), the mel spectrogram
    stages      decode, detection, crops, generator, paste, encode: seconds of work in each
    busy        each pipeline thread's working share of the pipeline's time (faces:
                decode + detection + crops; generator; compose: paste + encode); the one near
                100 % is the bottleneck
    first frame seconds from the process's start to the first frame handed to the encoder
    pipeline    frames/s from the stages' start to the last frame written (start-up left out),
                next to the generator's own rate, measured right after in the same process
                as the pipeline runs it (backend, precision, batch, batches side by side):
                their ratio is the share of the generator's speed that the pipeline keeps

Settings:

    reference   S3FD on every frame, everything else at the defaults (the reference's results)
    fast        --det_stride 5 --det_max_side 640 (plus bf16 on the CPU)
    box         --box: a fixed face box, no detection (the generator and the video I/O alone)
    box-fast    --box, --precision bf16 (on the CPU) and --preset ultrafast: the fast setting
    box-onnx    --box on --backend onnxruntime (export.py's generator; no PyTorch imported)
    box-onnx-fast  the same with --preset ultrafast

Weights are seeded random ones (the speed of a network does not depend on its weights); S3FD's
are tilted so that it finds one face-sized box per frame, as the real weights do on a talking
head (their post-processing then costs what it does in practice). Prints a Markdown table.
"""

import time

STARTED = time.perf_counter()

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import system  # noqa: E402, F401 - the project's first: Ctrl-C from here on ends in one line
from benchmarks.shared import FrameSize, describe, finished, frame_size  # noqa: E402
from system.cli import run  # noqa: E402
from system.errors import check_number  # noqa: E402
from system.flags import argument_parser  # noqa: E402

FPS = 25
STAGES = ("decode", "detection", "crops", "generator", "paste", "encode")


def make_weights(directory):
    import torch

    from face_detection import S3FD
    from models import Wav2Lip

    torch.manual_seed(0)
    torch.save({"state_dict": Wav2Lip().state_dict(), "optimizer": None, "global_step": 0, "global_epoch": 0},
               directory / "wav2lip.pth")
    net = S3FD()
    with torch.no_grad():  # only the stride-128 head (512-pixel priors) sees faces; boxes stay near their priors
        for level in ("conv3_3_norm", "conv4_3_norm", "conv5_3_norm", "fc7", "conv6_2", "conv7_2"):
            conf, loc = getattr(net, f"{level}_mbox_conf"), getattr(net, f"{level}_mbox_loc")
            conf.weight.mul_(0.001)
            loc.weight.mul_(0.001)
            face = 4.0 if level == "conv7_2" else -8.0
            conf.bias.copy_(torch.tensor([-face] * (conf.out_channels - 1) + [face]))
    torch.save(net.state_dict(), directory / "s3fd.pth")
    from deployment.onnx_export import export_network

    export_network(directory / "wav2lip.pth", directory / "wav2lip.onnx")


def make_input(directory, size, seconds):
    """A synthetic talking-face video of ``size`` and ``seconds``, and its audio."""
    import av
    import cv2
    import numpy as np

    from media.synthetic import speech_like, write_media

    width, height = size
    video = directory / f"face_{width}x{height}_{seconds}s.mp4"
    if not video.exists():
        rng = np.random.default_rng(0)
        background = cv2.resize(rng.integers(0, 200, (height // 8, width // 8, 3), dtype=np.uint8), (width, height))
        face = cv2.resize(rng.integers(150, 256, (40, 32, 3), dtype=np.uint8), (height // 3, height * 2 // 5))
        with av.open(str(video), "w") as container:
            stream = container.add_stream("libx264", rate=FPS, options={"crf": "23", "preset": "ultrafast"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for i in range(seconds * FPS):
                frame = np.roll(background, i, axis=1)
                x, y = width // 3 + int(20 * np.sin(i / 10)), height // 4 + int(10 * np.cos(i / 15))
                frame[y:y + face.shape[0], x:x + face.shape[1]] = face
                cv2.ellipse(frame, (x + face.shape[1] // 2, y + face.shape[0] * 3 // 4),
                            (face.shape[1] // 6, 2 + (i * 3) % 12), 0, 0, 360, (40, 30, 120), -1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    speech = directory / f"speech_{seconds}s.wav"
    if not speech.exists():
        write_media(speech, speech_like(seconds)[None], 16000, audio_codec="pcm_s16le")
    return video, speech, (height // 4, height // 4 + height * 2 // 5, width // 3, width // 3 + height // 3)


SETTINGS = {
    "reference": lambda device, box: {},
    "fast": lambda device, box: {"det_stride": 5, "det_max_side": 640, **({"precision": "bf16"} if device == "cpu" else {})},
    "box": lambda device, box: {"box": box},
    "box-fast": lambda device, box: {"box": box, "preset": "ultrafast",
                                     **({"precision": "bf16"} if device == "cpu" else {})},
    "box-onnx": lambda device, box: {"box": box, "backend": "onnxruntime"},
    "box-onnx-fast": lambda device, box: {"box": box, "backend": "onnxruntime", "preset": "ultrafast"},
}


def child(spec):
    """Run one setting in this process; print its figures as JSON."""
    from lipsync import Options, lip_sync
    from lipsync.stage_clock import StageClock

    clock = StageClock(STARTED)
    clock.add("imports", time.perf_counter() - STARTED)
    options = Options(**spec, progress=False)
    summary = lip_sync(options, clock=clock)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": summary.frames, "timings": summary.timings, "peak_mb": peak_mb,
                      "generator_alone": generator_alone(options, summary.frames)}))


def generator_alone(options, frames):
    """Frames/s of the run's generator by itself, as the pipeline runs it (backend, precision,
    batch, batches side by side), on random crops: up to 256 of the run's frames."""
    import numpy as np

    from lipsync.pipeline import generator_for

    generator = generator_for(options)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (generator.batch_size, 96, 96, 3), np.uint8)
    mels = rng.standard_normal((generator.batch_size, 80, 16)).astype(np.float32)
    with generator.workers(detecting=options.fixed_box is None) as (pool, count):
        for done in [pool.submit(generator.generate, faces, mels) for _ in range(count)]:  # warm-up
            done.result()
        batches = max(2 * count, min(frames, 256) // generator.batch_size)
        started = time.perf_counter()
        for done in [pool.submit(generator.generate, faces, mels) for _ in range(batches)]:
            done.result()
        return batches * generator.batch_size / (time.perf_counter() - started)


def report(device, size, seconds, setting, figures):
    """Two Markdown rows: the run, then where its time went."""
    t = figures["timings"]
    spent, busy = t["seconds"], t["busy"]
    wall = t["wall"]
    frames, pipeline, alone = figures["frames"], figures["frames"] / t["pipeline"], figures["generator_alone"]
    row = (f"| {describe(device)} | {size}, {seconds} s | {setting} | {frames} | {wall:.1f} | {frames / wall:.2f} | "
           f"{t['first_frame']:.2f} | {pipeline:.2f} | {alone:.2f} ({pipeline / alone:.0%}) | "
           f"{figures['peak_mb'] / 1024:.2f} GB |")
    start_up = " + ".join(f"{stage} {spent.get(stage, 0):.1f}" for stage in ("imports", "load", "mel"))
    stages = ", ".join(f"{stage} {spent.get(stage, 0):.1f}" for stage in STAGES)
    threads = ", ".join(f"{thread} {share:.0%}" for thread, share in busy.items())
    return row, f"| {size}, {seconds} s | {setting} | {start_up} | {stages} | {threads} |"


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--devices", nargs="+", metavar="DEVICE", help="devices to run on (default: cpu, and cuda when present)")
    p.add_argument("--sizes", nargs="+", type=frame_size, default=[FrameSize(1280, 720), FrameSize(1920, 1080)],
                   metavar="WxH", help="frame sizes of the generated videos")
    p.add_argument("--seconds", nargs="+", type=int, default=[10, 40], help="lengths of the generated videos")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                   help="what to run on each (see the description above)")
    p.add_argument("--workdir", help="keep the generated inputs here, to reuse them (default: a temporary folder)")
    p.add_argument("--child", help=argparse.SUPPRESS)  # one setting, in the process the benchmark starts
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    for seconds in args.seconds:
        check_number("--seconds", seconds, 1, whole=True)
    import torch

    args.devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    breakdown, runs, failed = [], 0, 0
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(args.workdir or temporary)
        work.mkdir(parents=True, exist_ok=True)
        make_weights(work)
        print(f"torch {torch.__version__}, Python {platform.python_version()}\n")
        print("| device | input | setting | frames | wall s | frames/s | first frame s | pipeline frames/s "
              "| generator alone frames/s (pipeline's share) | peak memory |\n|---|---|---|---|---|---|---|---|---|---|")
        for size in args.sizes:
            for seconds in args.seconds:
                started = time.perf_counter()
                video, speech, box = make_input(work, size, seconds)
                print(f"<!-- input generated in {time.perf_counter() - started:.0f} s -->", file=sys.stderr)
                for device in args.devices:
                    for setting in args.settings:
                        onnx = setting.startswith("box-onnx")
                        spec = {"checkpoint_path": str(work / ("wav2lip.onnx" if onnx else "wav2lip.pth")), "face": str(video), "audio": str(speech),
                                "outfile": str(work / "out.mp4"), "detector_path": str(work / "s3fd.pth"),
                                "device": device, **SETTINGS[setting](device, box)}
                        result = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                                capture_output=True, text=True, check=False)
                        runs += 1
                        if result.returncode != 0:
                            failed += 1
                            print(f"| {describe(device)} | {size}, {seconds} s | {setting} | failed: "
                                  f"{result.stderr.strip().splitlines()[-1:]} | | | | | | |", flush=True)
                            continue
                        run_row, stages = report(device, size, seconds, setting,
                                                 json.loads(result.stdout.strip().splitlines()[-1]))
                        print(run_row, flush=True)
                        breakdown.append(stages)
    print("\nSeconds of work per stage, and each pipeline thread's busy share:\n")
    print("| input | setting | start-up s | stages s | busy |\n|---|---|---|---|---|")
    print("\n".join(breakdown))
    return finished(runs, failed)


if __name__ == "__main__":
    sys.exit(run(main))
