"""Several people in the picture: does --pick_face auto lip-sync whoever speaks?

    python benchmarks/who_speaks_check.py --syncnet_checkpoint_path EXPERT --workdir /tmp/who_speaks

Writes --scenes synthetic conversations (synthetic_corpus.py --layout conversation: --people
cartoon speakers side by side taking turns, with the truth of who speaks when), then runs
inference's face-box source for ``--pick_face auto`` over each, with one --box per face (no S3FD
weights needed) and the expert given, and holds each frame's chosen face against the truth:

    accuracy      of the frames in which someone's syllable sounds, the share whose chosen face
                  is that person's (switch moments included)
    switch        frames from the first syllable of a turn until its speaker's face is chosen
    release       frames a face stays chosen after its speaker's last syllable of a turn
    cost          seconds of the expert's scoring per second of video (this machine)

``--pick_face largest`` on the same scenes is the baseline (a face chosen once). The expert
should be one trained on the synthetic corpus (color_syncnet_train.py on synthetic_corpus.py's
clips): a seeded random one picks at chance. Results: <workdir>/who_speaks.json.
"""

import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import system  # noqa: E402, F401 - the project's first: Ctrl-C from here on ends in one line
from benchmarks.shared import describe  # noqa: E402
from system.cli import run  # noqa: E402
from system.errors import UserError, check_number  # noqa: E402
from system.flags import argument_parser  # noqa: E402


def build_parser():
    parser = argument_parser(__doc__)
    parser.add_argument("--syncnet_checkpoint_path", required=True, help="the expert SyncNet that tells who speaks")
    parser.add_argument("--workdir", required=True, help="where the scenes and who_speaks.json go")
    parser.add_argument("--scenes", type=int, default=4, help="conversations to write and score")
    parser.add_argument("--people", type=int, default=2, help="speakers in each scene (2 or 3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each scene")
    parser.add_argument("--seed", type=int, default=7, help="seeds the scenes (another than the expert's corpus)")
    return parser


def truth_of(path):
    with open(path.with_suffix(".speakers.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    speaking = [int(row["speaking"]) if row["speaking"] else None for row in rows]
    turn = [int(row["turn"]) if row["turn"] else None for row in rows]
    return speaking, turn


def chosen_faces(scene, boxes, pick, expert):
    """Each frame's chosen person (index into ``boxes``) or None, and the seconds it took."""
    import torch  # noqa: PLC0415

    from lipsync import Options  # noqa: PLC0415
    from lipsync.face_sources import face_source  # noqa: PLC0415
    from lipsync.frames import FrameSource  # noqa: PLC0415

    options = Options("unused.pth", str(scene), str(scene), boxes=tuple(boxes), pick_face=pick,
                      syncnet_checkpoint_path=expert, progress=False)
    options.check_values()
    frames = FrameSource(options)
    total = sum(1 for _ in frames.frames())
    started = time.perf_counter()
    source = face_source(options, frames, total, torch.device("cpu"))
    chosen = [box for _, _, box in source.boxed_frames(frames.frames(), total)]
    seconds = time.perf_counter() - started
    return [boxes.index(box) if box is not None else None for box in chosen], seconds


def turn_figures(chosen, speaking, turn):
    """(switch delays, release lengths) in frames, one of each per turn."""
    switches, releases = [], []
    k = 0
    while k < len(turn):
        if turn[k] is None:
            k += 1
            continue
        person, start = turn[k], k
        while k < len(turn) and turn[k] == person:
            k += 1
        sounding = [i for i in range(start, k) if speaking[i] == person]
        if not sounding:
            continue
        first, last = sounding[0], sounding[-1]
        picked = next((i for i in range(first, len(chosen)) if chosen[i] == person), len(chosen))
        switches.append(picked - first)
        after = last + 1
        while after < len(chosen) and chosen[after] == person and speaking[after] != person:
            after += 1
        releases.append(after - last - 1)
    return switches, releases


def main(argv):
    args = build_parser().parse_args(argv)
    check_number("--scenes", args.scenes, 1, whole=True)
    check_number("--people", args.people, 2, 3, whole=True)
    check_number("--seconds", args.seconds, 2, 3600)
    if not Path(args.syncnet_checkpoint_path).is_file():
        raise UserError(f"no expert at {args.syncnet_checkpoint_path} (--syncnet_checkpoint_path)")
    from training.synthetic_conversations import face_box, make_conversations  # noqa: PLC0415

    workdir = Path(args.workdir)
    scenes = make_conversations(workdir / "scenes", args.scenes, args.people, args.seconds, args.seed, progress=True)
    boxes = [face_box(person) for person in range(args.people)]
    results = {"machine": describe("cpu"), "expert": str(Path(args.syncnet_checkpoint_path).resolve()),
               "scenes": args.scenes, "people": args.people, "seconds": args.seconds, "picks": {}}
    for pick in ("auto", "largest"):
        right = sounding = frames = 0
        switches, releases, seconds = [], [], 0.0
        for scene in scenes:
            speaking, turn = truth_of(scene)
            chosen, took = chosen_faces(scene, boxes, pick, args.syncnet_checkpoint_path)
            right += sum(c == s for c, s in zip(chosen, speaking) if s is not None)
            sounding += sum(s is not None for s in speaking)
            frames += len(chosen)
            found = turn_figures(chosen, speaking, turn)
            switches, releases, seconds = switches + found[0], releases + found[1], seconds + took
        figures = {"accuracy": right / sounding, "frames": frames, "sounding_frames": sounding, "turns": len(switches),
                   "switch_mean": sum(switches) / len(switches), "switch_max": max(switches),
                   "release_mean": sum(releases) / len(releases), "release_max": max(releases),
                   "seconds_per_video_second": seconds / (frames / 25)}
        results["picks"][pick] = figures
        print(f"--pick_face {pick:8s} accuracy {figures['accuracy']:.1%} of {sounding} sounding frames; "
              f"{figures['turns']} turns: switch {figures['switch_mean']:.1f} frames (max {figures['switch_max']}), "
              f"release {figures['release_mean']:.1f} (max {figures['release_max']}); "
              f"{figures['seconds_per_video_second']:.2f} s per second of video", flush=True)
    (workdir / "who_speaks.json").write_text(json.dumps(results, indent=1))
    print(f"machine: {results['machine']}; results: {workdir / 'who_speaks.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
