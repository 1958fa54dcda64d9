"""Generating test-set videos with inference.py's pipeline: pairs of (face video, audio) in,
``RESULTS/<index>.mp4`` out. Resumable, with a progress bar and a summary of the pairs that
failed and why (also in ``RESULTS/failures.csv``; any error of one pair is its row, never the
end of the batch). An existing output is kept only when its metadata records the same
checkpoint (by content), detector, settings and pair; otherwise it is made again, so one
checkpoint is never scored on another's videos. With --shard K/N (or under torchrun) a run
makes every N-th video: the same files a whole run makes, its failures in
``failures.shard-K-of-N.csv`` (merge_shards.py joins them). The scripts' flags are in
command_line.py."""

import dataclasses
import json
import sys
from pathlib import Path

import av
import cv2
from tqdm import tqdm

from face_detection.boxes import clip_to_frame, longer_side
from face_detection.loading import fingerprint, load_detector
from lipsync import lip_sync
from media.containers import read_frames
from models.checkpoint import file_digest, read_checkpoint
from system.atomic_write import check_output, check_writable
from system.errors import UserError
from system.sharding import Shard, write_table


@dataclasses.dataclass
class Pair:
    index: int  # the output is <index>.mp4, the line's position in the filelist
    video: Path
    audio: Path


def check_results_dir(results_dir, shard):
    """A read-only or full results folder, or a failures table that is no regular file: one
    line before the first video. Returns the folder."""
    results_dir = check_writable(results_dir)
    check_output(shard.path(Path(results_dir) / "failures.csv"))
    return results_dir


def run_record(tool, checkpoint_path, detector_path, settings):
    """What makes this run's videos what they are, but the pair: the script, the checkpoint's
    and the detector's content and every setting. Each video carries it with its pair (its
    "generation" metadata); a video that does not is made again. The checkpoint is read first:
    a missing or damaged one is one line before any video is touched."""
    read_checkpoint(checkpoint_path)
    load_detector("cpu", detector_path)  # a missing detector: the same, before any video
    return {"tool": tool, "checkpoint_sha256": file_digest(checkpoint_path),
            "detector_sha256": fingerprint(detector_path), "settings": settings}


def read_filelist(path):
    """The two fields of each non-empty line of a filelist (one line when there are none)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"filelist not found: {path}")
    lines = [line.split() for line in path.read_text().splitlines()]
    for number, fields in enumerate(lines, 1):
        if fields and len(fields) != 2:
            raise UserError(f"{path} line {number}: expected two paths, found {len(fields)} fields")
    pairs = [fields for fields in lines if fields]
    if not pairs:
        raise UserError(f"{path} lists no pairs")
    return pairs


@dataclasses.dataclass
class GenerationSummary:
    generated: int = 0
    remade: int = 0  # of those generated, the ones that replaced a video made otherwise
    existing: int = 0
    failures: list = dataclasses.field(default_factory=list)
    shard: Shard = Shard()

    def line(self):
        remade = f" ({self.remade} of them remade: made with another checkpoint or other settings)" * bool(self.remade)
        return (f"{self.generated} generated{remade}, {self.existing} already there, {len(self.failures)} failed"
                + (f" (see {self.shard.path('failures.csv')})" if self.failures else ""))


def generate(pairs, results_dir, options_for, record, progress=True, shard=Shard()):
    """lip_sync(options_for(pair, outfile)) for each of this shard's pairs whose output is not
    there yet as this run (``record``: ``run_record``) would make it."""
    results_dir = check_results_dir(results_dir, shard)
    summary = GenerationSummary(shard=shard)
    for pair in tqdm(shard.select(pairs), desc="videos", unit="video", disable=not progress):
        outfile = results_dir / f"{pair.index}.mp4"
        wanted = json.dumps({**record, "video": str(pair.video), "audio": str(pair.audio)}, sort_keys=True)
        earlier = outfile.is_file()
        if earlier and _recorded(outfile) == wanted:
            summary.existing += 1
            continue
        try:  # replaced atomically: the earlier video stays until the new one is whole
            lip_sync(dataclasses.replace(options_for(pair, outfile), generation_record=wanted))
        except Exception as error:  # noqa: BLE001 - whatever one pair raises is its row, not the batch's end
            summary.failures.append(_failure(pair, error, outfile if earlier else None))
            continue
        summary.generated += 1
        summary.remade += earlier
    write_table(shard, results_dir / "failures.csv", summary.failures)
    return summary


def _recorded(video):
    """The "generation" metadata of an mp4 this module made, or None (another file, damaged, --unmarked)."""
    try:
        with av.open(str(video)) as container:
            return container.metadata.get("generation")
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return None


def _failure(pair, error, superseded=None):
    """The failures.csv row of a pair (said on stderr too). ``superseded``: a video made
    otherwise that the failed remake would have replaced; it is removed, or it would be
    scored as this run's."""
    message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {_first_line(error)}"
    if superseded is not None:
        superseded.unlink(missing_ok=True)
        message += f"; the {superseded.name} made with another checkpoint or other settings was removed"
    tqdm.write(f"{pair.index}: {pair.video.name} + {pair.audio.name}: {message}", file=sys.stderr)
    return {"index": pair.index, "video": str(pair.video), "audio": str(pair.audio), "error": message}


def _first_line(error):
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else ""


def face_scaled_sizes(video, device, detector_path, face_res, min_frame_res, max_frame_res):
    """The frame sizes real_videos_inference.py brings a video to, in turn (see ``Options.resize_to``).

    As the reference: frames whose short side exceeds ``max_frame_res`` are scaled down to it;
    then they are divided by the integer factor that brings the face found in the first frame
    closest to ``face_res`` pixels, without the short side going below ``min_frame_res``.
    """
    first = next(iter(read_frames(video)), None)
    if first is None:
        raise UserError(f"no frames could be read from {video}")
    height, width = first.shape[:2]
    sizes = []
    if min(height, width) > max_frame_res:
        scale = min(height, width) / float(max_frame_res)
        height, width = int(height / scale), int(width / scale)
        sizes.append((width, height))
        first = cv2.resize(first, (width, height))
    box = load_detector(device, detector_path).detect(first[None])[0]
    # A box with nothing in the frame, or not finite (a detector gone wrong), is no face.
    if box is None or not len(clip_to_frame(box[:4], width, height)):
        raise UserError(f"no face in the first frame of {video}")
    factor = _downscale_factor(longer_side(box), height, width, face_res, min_frame_res)
    if factor > 1:
        sizes.append((width // factor, height // factor))
    return tuple(sizes)


def _downscale_factor(face, height, width, face_res, min_frame_res):
    # The reference compares each factor with the undivided face, and stops one past the answer.
    difference = abs(face - face_res)
    for factor in range(2, 16):
        if min(height // factor, width // factor) < min_frame_res or abs(face // factor - face_res) >= difference:
            return factor - 1
    return 14
