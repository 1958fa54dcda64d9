"""LSE-D and LSE-C of every mp4 in a folder (generated test-set videos), as in the Wav2Lip paper.

    python evaluation/scores_LSE/calculate_scores_LRS.py --data_root results/lrs2 --initial_model checkpoints/syncnet_v2.model

Prints "Average Confidence" (LSE-C) and "Average Minimum Distance" (LSE-D) as the reference
script does, and writes each video's scores to --scores. Runs in this project's environment:
no syncnet_python clone, no ffmpeg, no temporary frames on disk.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root, for its modules

from tqdm import tqdm

from evaluation.metrics.lse import LSEScorer
from evaluation.scores_LSE import check_scoring_flags
from media.containers import visible
from system.atomic_write import check_output, check_writable
from system.cli import add_run_flags, argument_parser, existing_folder, run
from system.devices import pick_device
from system.errors import UserError
from system.reports import default_scores_path, lse_averages, write_rows
from system.sharding import Shard, add_shard_flag

COLUMNS = ("video", "lse_d", "lse_c", "offset", "windows", "notes", "error")


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--data_root", required=True, help="folder whose *.mp4 files are scored (not recursive)")
    p.add_argument("--initial_model", default="checkpoints/syncnet_v2.model", help="syncnet_v2.model, as released")
    p.add_argument("--batch_size", type=int, default=20, help="5-frame windows per SyncNet batch")
    p.add_argument("--vshift", type=int, default=15, help="audio offsets -vshift..+vshift frames are tried")
    p.add_argument("--tmp_dir", default=None, help="accepted for the reference's command lines; nothing is written there")
    p.add_argument("--scores", help="per-video scores (.csv or .json; default results/<data_root's name>_lse_scores.csv)")
    p.add_argument("--no_jpeg_roundtrip", action="store_true",
                   help="score the decoded frames directly, skipping the reference's JPEG frames (see README)")
    add_shard_flag(p)
    add_run_flags(p)
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    check_scoring_flags(args)
    root = existing_folder(args.data_root, "--data_root")
    videos = visible(sorted(root.glob("*.mp4")), root)  # not the hidden temporaries of unfinished videos
    if not videos:
        raise UserError(f"no .mp4 files in {root}")
    args.scores = args.scores or default_scores_path(root, "lse_scores")
    check_writable(Path(args.scores).parent)
    shard = Shard.parse(args.shard)
    videos, scores = shard.select(videos), shard.path(args.scores)
    check_output(scores, "--scores", {"--initial_model": args.initial_model,
                                       **{f"video {video.name}": video for video in videos}})
    scorer = LSEScorer(args.initial_model, pick_device(args.device), args.batch_size, args.vshift)

    rows = []
    for video in tqdm(videos, desc="LSE", unit="video", disable=args.quiet):
        try:
            score, source = scorer.score_video(video, jpeg_roundtrip=not args.no_jpeg_roundtrip)
        except UserError as error:
            tqdm.write(f"{video.name}: skipped: {error}", file=sys.stderr)
            rows.append({**dict.fromkeys(COLUMNS, ""), "video": video.name, "error": str(error)})
            continue
        notes = source.notes()
        if notes:
            tqdm.write(f"{video.name}: " + "; ".join(notes))
        rows.append({"video": video.name, "lse_d": score.min_distance, "lse_c": score.confidence,
                     "offset": score.offset, "windows": score.windows, "notes": "; ".join(notes), "error": ""})
    write_rows(scores, rows)

    scored = [row for row in rows if not row["error"]]
    if not shard.whole:
        print(f"{shard.describe()}: scored {len(scored)} of {len(videos)} videos into {scores}; "
              f"when every shard is done: python merge_shards.py {args.scores}")
        return 0
    if not scored:
        raise UserError(f"none of the {len(videos)} videos could be scored (see {scores})")
    print(f"Scored {len(scored)} of {len(videos)} videos; per-video scores in {scores}")
    print("\n".join(lse_averages(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
