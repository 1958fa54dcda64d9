"""LSE-D and LSE-C of every mp4 in a folder (generated test-set videos), as in the Wav2Lip paper.

    python evaluation/scores_LSE/calculate_scores_LRS.py --data_root results/lrs2 \\
        --syncnet_checkpoint_path checkpoints/syncnet_v2.model

Prints "Average Confidence" (LSE-C) and "Average Minimum Distance" (LSE-D) as the reference
script does, and writes each video's scores to --scores. A video that cannot be scored is a
row with its error and a line on stderr; the others go on, and the exit status is then 1.
Runs in this project's environment: no syncnet_python clone, no ffmpeg, no temporary frames
on disk. The reference's --initial_model still names the weights.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root, for its modules

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from evaluation.scores_LSE.command_line import (
    add_scoring_flags,
    check_scoring_flags,
    load_scorer,
    syncnet_weights,
)
from evaluation.scores_LSE.scoring import ScoringRun, scored
from media.containers import visible
from system.cli import existing_folder, run
from system.devices import pick_device
from system.errors import UserError
from system.flags import add_run_flags, argument_parser
from system.reports import default_scores_path
from system.sharding import add_shard_flag

COLUMNS = ("video", "lse_d", "lse_c", "offset", "windows", "notes", "error")


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--data_root", required=True, help="folder whose *.mp4 files are scored (not recursive)")
    add_scoring_flags(p)
    p.add_argument("--tmp_dir", default=None, help="accepted for the reference's command lines; nothing is written there")
    p.add_argument("--reference", default=None, help="accepted for the reference's command lines (a run's name); unused")
    p.add_argument("--scores", help="per-video scores, .csv or .json (default: results/<data_root's name>_lse_scores.csv)")
    p.add_argument("--no_jpeg_roundtrip", action="store_true",
                   help="score the decoded frames directly, skipping the reference's JPEG frames (see docs/evaluation.md)")
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
    scores = args.scores or default_scores_path(root, "lse_scores")
    scoring = ScoringRun.plan(videos, scores, args.shard, syncnet_weights(args), COLUMNS, args.verbose)
    device = pick_device(args.device)
    scorer = load_scorer(args, device)

    def score_video(video):
        score, source = scorer.score_video(video, jpeg_roundtrip=not args.no_jpeg_roundtrip)
        return [{"video": video.name, "lse_d": score.min_distance, "lse_c": score.confidence, "offset": score.offset,
                 "windows": score.windows, "notes": scoring.note(video, source.notes()), "error": ""}]

    rows = scoring.score(score_video, progress=not args.quiet)
    return scoring.finish(rows, f"scored {len(scored(rows))} of {len(scoring.videos)} videos",
                          f"none of the {len(scoring.videos)} videos could be scored")


if __name__ == "__main__":
    sys.exit(run(main))
