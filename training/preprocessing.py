"""LRS2-style videos to training data: face crops numbered by source frame, and audio.wav.

``<data_root>/<video>/<clip>.mp4`` becomes ``<preprocessed_root>/<video>/<clip>/`` with
``<frame>.jpg`` for every frame where S3FD finds a face (its best box, unpadded, as the
reference crops) and the clip's audio track as ``audio.wav``. A clip counts as done only
once the marker ``.done`` is written, last, so an interrupted run picks up where it stopped.
Frames are streamed in detector batches (long videos do not fill memory), one worker per GPU
detects faces while a pool of processes extracts the audio, and the videos that fail are
listed with the reason in ``<preprocessed_root>/preprocess_failures.csv``, sorted by video.
Run as a shard (sharding.py) it does its share of the videos: the clips it writes are those
a whole run writes, and its failures go to ``preprocess_failures.shard-K-of-N.csv``.
"""

import errno
import queue
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import audio
from errors import UserError
from face_detection.boxes import from_top_bottom_left_right, to_int_box
from hparams import hparams
from media import read_frames, visible, write_jpeg
from processes import spawned_pool
from sharding import Shard, write_table
from training.dataset import DONE_MARKER

FAILURES_NAME = "preprocess_failures.csv"
# Refusals of the output's file system: every later clip would fail the same way, so the
# run stops at once instead of listing each video as failed.
_FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def find_videos(data_root):
    """The ``<video>/<clip>.mp4`` files under ``data_root``, as the reference globs them
    (hidden files, such as unfinished downloads or copies, left out)."""
    return sorted(visible(Path(data_root).glob("*/*.mp4"), Path(data_root)))


def clip_folder(video, preprocessed_root):
    return Path(preprocessed_root) / video.parent.name / video.stem


class FixedBox:
    """A stand-in for the detector: the same (top, bottom, left, right) box in every frame."""

    def __init__(self, box):
        self.box = from_top_bottom_left_right(box)

    def detect(self, frames):
        return [self.box for _ in frames]


def crop_faces(video, folder, detector, batch_size):
    """Write ``<frame>.jpg`` face crops of ``video`` into ``folder``; returns (frames, crops).

    Frames are read at hparams.fps (25: LRS2's own rate; other rates are resampled, so that
    frame k lies at k / 25 s as the trainers assume).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.jpg"):  # crops of an interrupted run: written again, or not at all
        if stale.stem.isdigit():
            stale.unlink()
    frames = crops = 0
    batch = []

    def flush():
        nonlocal crops
        for offset, (frame, box) in enumerate(zip(batch, detector.detect(batch))):
            if box is None:
                continue
            x1, y1, x2, y2 = to_int_box(box)
            face = frame[y1:y2, x1:x2]
            if face.size:
                write_jpeg(folder / f"{frames - len(batch) + offset}.jpg", face)
                crops += 1
        batch.clear()

    for frame in read_frames(video, fps=hparams.fps):
        batch.append(frame)
        frames += 1
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if crops == 0:
        raise UserError(f"no face found in any of its {frames} frames" if frames else "no video frames")
    return frames, crops


def is_fatal(error):
    """Whether ``error`` is the output's file system refusing writes (full, read-only, ...)."""
    return isinstance(error, OSError) and error.errno in _FATAL_ERRNOS


@dataclass
class Clip:
    video: Path
    folder: Path
    pending: set = field(default_factory=lambda: {"faces", "audio"})
    failed: bool = False


@dataclass
class Summary:
    videos: int = 0
    already_done: int = 0
    done: int = 0
    failures: list = field(default_factory=list)  # {video, stage, error}


def preprocess(videos, preprocessed_root, detectors, batch_size=32, audio_workers=2, progress=None, shard=Shard()):
    """Process ``videos`` not yet done: faces on ``detectors`` (one thread each), audio in
    ``audio_workers`` processes; returns a Summary and writes the failure list."""
    summary = Summary(videos=len(videos))
    clips = []
    for video in videos:
        folder = clip_folder(video, preprocessed_root)
        if (folder / DONE_MARKER).exists():
            summary.already_done += 1
        else:
            clips.append(Clip(video, folder))
    free = queue.Queue()
    for detector in detectors:
        free.put(detector)

    def faces(clip):
        detector = free.get()
        try:
            return crop_faces(clip.video, clip.folder, detector, batch_size)
        finally:
            free.put(detector)

    if progress is not None:
        progress.reset(total=len(clips))
    jobs = {}
    with ThreadPoolExecutor(len(detectors)) as face_pool, spawned_pool(audio_workers) as audio_pool:
        try:
            for clip in clips:
                # audio.extract_wav itself: a worker then imports audio.py alone, not PyTorch.
                jobs[audio_pool.submit(audio.extract_wav, clip.video, clip.folder / "audio.wav")] = (clip, "audio")
                jobs[face_pool.submit(faces, clip)] = (clip, "faces")
            while jobs:
                finished, _ = wait(jobs, return_when=FIRST_COMPLETED)
                for job in finished:
                    clip, stage = jobs.pop(job)
                    _finish(clip, stage, job, summary, progress)
        except BaseException:
            for job in jobs:  # stopped (a full disk, Ctrl-C): do not start what is still queued
                job.cancel()
            _write_failures(preprocessed_root, summary, shard, quietly=True)
            raise
    _write_failures(preprocessed_root, summary, shard)
    return summary


def _write_failures(preprocessed_root, summary, shard, quietly=False):
    summary.failures.sort(key=lambda failure: failure["video"])  # not the order the workers finished in
    try:
        write_table(shard, Path(preprocessed_root) / FAILURES_NAME, summary.failures)
    except OSError:
        if not quietly:  # the run is already stopping for a reason of its own
            raise


def _finish(clip, stage, job, summary, progress):
    try:
        job.result()
    except Exception as error:  # noqa: BLE001 - one bad video must not end a day-long run: it is listed
        if is_fatal(error):
            raise
        if not clip.failed:
            clip.failed = True
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            if not isinstance(error, UserError):
                reason = f"{type(error).__name__}: {reason}"
            summary.failures.append({"video": str(clip.video), "stage": stage, "error": reason})
            if progress is not None:
                progress.update()
        return
    clip.pending.discard(stage)
    if not clip.pending and not clip.failed:
        (clip.folder / DONE_MARKER).touch()  # last: the clip is complete
        summary.done += 1
        if progress is not None:
            progress.update()
