"""LSE-D and LSE-C of real-world videos: per face track, per video and on average.

    python evaluation/scores_LSE/calculate_scores_real_videos.py --data_root results/real \\
        --syncnet_checkpoint_path checkpoints/syncnet_v2.model

Faces are tracked with the project's S3FD (a new track at each scene cut or jump of the face)
and cropped as syncnet_python's pipeline crops them; each track is scored against the audio of
its own frames. Prints a line per video, then "Average Confidence" and "Average Minimum
Distance" over all tracks, and writes every track's scores to --scores. A video that cannot
be scored (unreadable, or without a face track long enough) is a row with its error and a line
on stderr; the others go on, and the exit status is then 1. The reference's --initial_model
still names the SyncNet weights.
"""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root, for its modules

import system  # noqa: F401 - first of all: Ctrl-C while the rest imports ends in one line (system/startup.py)
from evaluation.metrics.face_tracks import (
    MIN_FACE_SIZE,
    MIN_TRACK,
    find_tracks,
    score_tracks,
)
from evaluation.metrics.lse import VIDEO_FPS
from evaluation.scores_LSE.command_line import (
    add_scoring_flags,
    check_scoring_flags,
    load_scorer,
    syncnet_weights,
)
from evaluation.scores_LSE.scoring import ScoringRun, scored
from face_detection.detect import weights_file
from face_detection.loading import load_detector
from media.containers import VIDEO_EXTENSIONS, visible
from system.cli import existing_folder, run
from system.devices import pick_device
from system.errors import UserError
from system.flags import (
    add_detector_flag,
    add_face_det_batch_flag,
    add_run_flags,
    argument_parser,
)
from system.progress import loading
from system.reports import default_scores_path
from system.sharding import add_shard_flag

COLUMNS = ("video", "track", "start_s", "end_s", "lse_d", "lse_c", "offset", "error")


def build_parser():
    p = argument_parser(__doc__)
    p.add_argument("--data_root", required=True, help="folder of videos to score (not recursive)")
    add_scoring_flags(p)
    add_detector_flag(p)
    add_face_det_batch_flag(p)
    p.add_argument("--min_track", type=int, default=MIN_TRACK, help="shortest face track scored, in frames at 25 fps")
    p.add_argument("--min_face_size", type=int, default=MIN_FACE_SIZE, help="smallest mean face size scored, in pixels")
    p.add_argument("--scores", help="per-track scores, .csv or .json (default: results/<data_root's name>_lse_real_scores.csv)")
    add_shard_flag(p)
    add_run_flags(p)
    return p


def main(argv):
    args = build_parser().parse_args(argv)
    check_scoring_flags(args, ["min_track", "min_face_size"])
    root = existing_folder(args.data_root, "--data_root")
    videos = visible(sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS), root)
    if not videos:
        raise UserError(f"no videos in {root}")
    scores = args.scores or default_scores_path(root, "lse_real_scores")
    scoring = ScoringRun.plan(videos, scores, args.shard, syncnet_weights(args), COLUMNS, args.verbose)
    device = pick_device(args.device)
    scorer = load_scorer(args, device)
    loading("S3FD", weights_file(args.detector_path), not args.quiet, device)
    detector = load_detector(device, args.detector_path, args.face_det_batch_size)

    def score_video(video):
        tracks = find_tracks(video, detector, args.face_det_batch_size, args.min_track, args.min_face_size)
        found = score_tracks(video, tracks, scorer)
        if not found:
            return [scoring.failure(video, f"no face track of {args.min_track} frames or more",
                                    "no face track long enough")]
        scoring.say(f"{video.name}: {len(found)} tracks, LSE-D {statistics.mean(s.min_distance for _, s in found):.3f}, "
                   f"LSE-C {statistics.mean(s.confidence for _, s in found):.3f}")
        return [{"video": video.name, "track": number, "start_s": track.first / VIDEO_FPS,
                 "end_s": (track.last + 1) / VIDEO_FPS, "lse_d": score.min_distance, "lse_c": score.confidence,
                 "offset": score.offset, "error": ""} for number, (track, score) in enumerate(found)]

    rows = scoring.score(score_video, progress=not args.quiet)
    tracks = scored(rows)
    videos = len(scoring.videos)
    return scoring.finish(rows, f"scored {len(tracks)} face track{'s' * (len(tracks) != 1)} in "
                                f"{len({row['video'] for row in tracks})} of {videos} video{'s' * (videos != 1)}",
                          f"no face track could be scored in the {videos} video{'s' * (videos != 1)}", per="per-track")


if __name__ == "__main__":
    sys.exit(run(main))
