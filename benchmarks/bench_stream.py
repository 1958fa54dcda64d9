"""Realtime streaming: is LipSyncStream faster than real time, and how late are its frames?

    python benchmarks/bench_stream.py                                  # 720p, 10 minutes, fast and fp32
    python benchmarks/bench_stream.py --minutes 1 --precisions fast

A synthetic 720p talking-face video (bench_inference.make_input, 10 s, looped by the stream)
with its box given, and speech-like audio pushed in 20 ms chunks at the pace it is spoken
(realtime=True), for ``--minutes``. The reader takes each frame as it leaves (no encoding).
Each setting runs in a fresh process. Reported:

    frames/s      frames out per second of wall time, from the first frame out to the last
    speaking      share of frames drawn in time (the rest left idle: the generator was late)
    late          frames that left more than two frame periods after their time
    latency       speaking frames: from the push that completed the frame's mel window to the
                  frame leaving the stream, p50 and p95 (the stream's delay minus the 212.5 ms
                  lookahead is its floor)
    drift         audio handed out with the frames against the frames' own time, at the end
    audio lost    pushed audio that no frame carried (audio pushed late plays from the next frame)
    memory        resident memory after the first minute and at the end (flat: no growth)

Settings: ``fast`` is bf16 on the CPU (the fast setting of bench_inference), ``fp32`` the
exact default. Weights are seeded random ones (speed does not depend on them).
"""

import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import system  # noqa: E402, F401 - the project's first: Ctrl-C from here on ends in one line
from benchmarks.bench_inference import make_input, make_weights  # noqa: E402
from benchmarks.shared import describe  # noqa: E402
from system.cli import run  # noqa: E402
from system.flags import argument_parser  # noqa: E402

SETTINGS = {"fast": "bf16", "fp32": "fp32"}  # fast: bf16 on a CPU, the default (fp16) on a GPU
CHUNK = 320  # 20 ms at 16 kHz


def rss_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def child(spec):
    """One setting in this process: push for spec["minutes"], read every frame; print JSON."""
    import numpy as np

    import audio
    from lipsync.stream import LipSyncStream

    stream = LipSyncStream(spec["weights"], spec["video"], box=spec["box"], realtime=True, progress=False,
                           device=spec["device"], precision=spec["precision"], delay=spec["delay"])
    speech = audio.load_wav(spec["speech"], 16000)
    total = int(spec["minutes"] * 60 * 16000)

    def push():
        started, pushed = time.perf_counter(), 0
        while pushed < total:
            chunk = speech[pushed % len(speech):][:min(CHUNK, total - pushed)]
            pushed += len(chunk)
            time.sleep(max(0.0, started + pushed / 16000 - time.perf_counter()))
            stream.push_audio(chunk, 16000)
        stream.close()

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    period, late, latencies, speaking, frames, audio_out, carried, memory = 1 / stream.fps, 0, [], 0, 0, 0, 0, {}
    first_at = last_at = None
    for frame in stream:
        now = last_at = time.perf_counter()
        first_at = first_at or now
        if now - stream.due_at(frame.index) > 2 * period:
            late += 1
        if frame.speaking:
            speaking += 1
            latencies.append(frame.latency)
        frames += 1
        audio_out += len(frame.audio)
        if np.any(frame.audio):  # frames left without audio carry zeros
            carried += len(frame.audio)
        if frames == int(60 * stream.fps):
            memory["after_1_min_mb"] = rss_mb()
    wall = last_at - first_at  # from the first frame out to the last
    memory["end_mb"] = rss_mb()
    print(json.dumps({
        "setting": spec["setting"], "minutes": spec["minutes"], "frames": frames, "wall_s": round(wall, 1),
        "frames_per_s": round((frames - 1) / wall, 2), "speaking_share": round(speaking / max(1, frames), 4),
        "late_frames": late, "latency_p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1) if latencies else None,
        "latency_p95_ms": round(1000 * float(np.percentile(latencies, 95)), 1) if latencies else None,
        "drift_ms": round(1000 * (audio_out / 16000 - frames * period), 1), "delay_ms": round(1000 * stream.delay, 1),
        "audio_lost_ms": round(1000 * max(0, total - carried) / 16000, 1),
        **{key: round(value) for key, value in memory.items()}}))


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--minutes", type=float, default=10.0, help="how long the speech is pushed")
    p.add_argument("--precisions", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                   help="fast: bf16 on the CPU (the fast setting); fp32: the exact default")
    p.add_argument("--delay", type=float, default=None,
                   help="the stream's delay in seconds (default: the stream's, the mel window's 212.5 ms + 100 ms)")
    p.add_argument("--device", default="auto", help="auto (CUDA, else Apple MPS, else the CPU), cpu, cuda, cuda:1, mps")
    return p


def main(argv):
    if argv and argv[0] == "--child":
        child(json.loads(argv[1]))
        return 0
    args = build_parser().parse_args(argv)
    from system.devices import pick_device  # noqa: PLC0415 - torch, in the parent only once its flags are read

    device = str(pick_device(args.device))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        make_weights(folder)
        video, speech, box = make_input(folder, (1280, 720), 10)
        for setting in args.precisions:
            spec = {"weights": str(folder / "wav2lip.pth"), "video": str(video), "speech": str(speech), "box": box,
                    "setting": setting, "minutes": args.minutes, "device": device, "delay": args.delay,
                    "precision": SETTINGS[setting] if device == "cpu" or setting == "fp32" else "auto"}
            done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"Realtime stream, 1280x720 face video (10 s, looped), --box, audio pushed in 20 ms chunks at the pace "
          f"it is spoken; {describe(device)}\n")
    print("| setting | delay ms | minutes | frames | frames/s | speaking | late (> 2 periods) | latency p50 / p95 ms | "
          "drift ms | audio lost ms | memory after 1 min / end MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['setting']} | {row['delay_ms']:g} | {row['minutes']:g} | {row['frames']} | {row['frames_per_s']} | "
              f"{row['speaking_share']:.1%} | {row['late_frames']} | {row['latency_p50_ms']} / {row['latency_p95_ms']} | "
              f"{row['drift_ms']} | {row['audio_lost_ms']} | {row.get('after_1_min_mb', '-')} / {row['end_mb']} |")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
