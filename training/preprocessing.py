"""LRS2-style videos to training data: face crops numbered by source frame, and audio.wav.

``<data_root>/<video>/<clip>.mp4`` becomes ``<preprocessed_root>/<video>/<clip>/`` with
``<frame>.jpg`` for every frame where S3FD finds a face (its best box, unpadded, as the
reference crops) and the clip's audio track as ``audio.wav``. Frames are streamed in detector
batches (long videos do not fill memory), one worker per GPU detects faces while a pool of
processes extracts the audio, and the videos that fail are listed with the reason in
``<preprocessed_root>/preprocess_failures.csv``, sorted by video. Run as a shard (system/sharding.py)
it does its share of the videos: the clips it writes are those a whole run writes, and its
failures go to ``preprocess_failures.shard-K-of-N.csv``.

Runs that meet on one root (shards on several machines, a job restarted while the old one
still runs) cannot spoil each other's clips. A run works on a clip only while it holds the
clip's lock (``flock`` on ``<clip>/.preprocess.lock``; the kernel releases it when the holder
dies, even by kill -9, so the next run takes the clip over), and looks again under the lock
whether the clip is done. A clip another run holds is left for later and taken once that run
has let it go. The marker ``.done``, written last and whole, holds the number of face crops
the clip was finished with: a clip marked done counts as done only while that many crops and
its audio.wav are there, so a later run redoes one that lost crops.
"""

import errno
import os
import queue
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import audio
from face_detection.boxes import from_top_bottom_left_right, to_int_box
from hparams import hparams
from media.containers import read_frames, visible, write_jpeg
from system.atomic_write import atomic_output
from system.errors import UserError
from system.processes import spawned_pool
from system.sharding import Shard, write_table
from training.folder_lock import try_lock, unlock

FAILURES_NAME = "preprocess_failures.csv"
DONE_MARKER = ".done"  # written last: the clip is complete; it holds the number of face crops
LOCK_NAME = ".preprocess.lock"  # held by the run working on the clip
RETRY_SECONDS = 0.5  # how often a run looks whether another run has let go of a clip
# Refusals of the output's file system: every later clip would fail the same way, so the
# run stops at once instead of listing each video as failed.
_FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def find_videos(data_root):
    """The ``<video>/<clip>.mp4`` files under ``data_root``, as the reference globs them
    (hidden files, such as unfinished downloads or copies, left out)."""
    return sorted(visible(Path(data_root).glob("*/*.mp4"), Path(data_root)))


def clip_folder(video, preprocessed_root):
    return Path(preprocessed_root) / video.parent.name / video.stem


def frame_ids(clip):
    """The frame numbers of a clip folder's face crops, sorted."""
    try:
        names = os.listdir(clip)
    except OSError:
        return []
    return sorted(int(name[:-4]) for name in names if name.endswith(".jpg") and name[:-4].isdigit())


# --- the done marker and the clip lock ---------------------------------------------------------

def write_done_marker(folder, crops):
    """Mark ``folder`` done with ``crops`` face crops (whole or not at all)."""
    with atomic_output(Path(folder) / DONE_MARKER) as temporary:
        Path(temporary).write_text(f"{crops}\n")


def is_done(folder):
    """Whether ``folder`` is a finished clip: marked done, with as many crops as its marker
    counts and its audio.wav. An empty marker (written before markers counted) is trusted."""
    try:
        text = (Path(folder) / DONE_MARKER).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return False
    if not text:
        return True
    return text.isdigit() and len(frame_ids(folder)) == int(text) and (Path(folder) / "audio.wav").is_file()


def lock_clip(folder):
    """Take ``folder``'s lock if no live run holds it: its descriptor, or None."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return try_lock(Path(folder) / LOCK_NAME)


def unlock_clip(folder, handle):
    """Let go of ``folder``'s lock; the lock file goes first, while still held (see folder_lock)."""
    unlock(Path(folder) / LOCK_NAME, handle)


def remove_stale_lock(folder):
    """Remove the lock file a run killed after marking ``folder`` done left behind."""
    if (Path(folder) / LOCK_NAME).exists():
        handle = lock_clip(folder)
        if handle is not None:
            unlock_clip(folder, handle)


# --- one clip's work -----------------------------------------------------------------------------

class FixedBoxDetector:
    """A stand-in for the detector: the same (top, bottom, left, right) box in every frame."""

    def __init__(self, box):
        self.box = from_top_bottom_left_right(box)

    def detect(self, frames):
        return [self.box for _ in frames]


class Stopped(Exception):
    """The run is stopping (Ctrl-C, a full disk): the clip is left unfinished."""


def crop_faces(video, folder, detector, batch_size, stop=None):
    """Write ``<frame>.jpg`` face crops of ``video`` into ``folder``; returns (frames, crops).

    Frames are read at hparams.fps (25: LRS2's own rate; other rates are resampled, so that
    frame k lies at k / 25 s as the trainers assume). ``stop``, an Event, ends it between batches.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.jpg"):  # crops of an interrupted run: written again, or not at all
        if stale.stem.isdigit():
            stale.unlink()
    frames = crops = 0
    batch = []

    def flush():
        nonlocal crops
        if stop is not None and stop.is_set():
            raise Stopped
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


# --- a run -----------------------------------------------------------------------------------------

@dataclass(eq=False)
class Clip:
    video: Path
    folder: Path
    pending: set = field(default_factory=lambda: {"faces", "audio"})
    failed: bool = False
    crops: int = 0
    lock: int = None


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
        if is_done(folder):
            summary.already_done += 1
            remove_stale_lock(folder)
        else:
            clips.append(Clip(video, folder))
    if progress is not None:
        progress.reset(total=len(clips))
    stop = threading.Event()
    with _Run(clips, summary, progress) as run:
        with ThreadPoolExecutor(len(detectors)) as face_pool, spawned_pool(audio_workers) as audio_pool:
            run.start_faces = _face_starter(face_pool, detectors, batch_size, stop)
            run.start_audio = lambda clip: audio_pool.submit(audio.extract_wav, clip.video, clip.folder / "audio.wav")
            try:
                run.work(window=2 * (len(detectors) + audio_workers))
            except BaseException:
                stop.set()  # the face threads stop between batches; what is queued never starts
                run.cancel()
                _write_failures(preprocessed_root, summary, shard, quietly=True)
                raise
    _write_failures(preprocessed_root, summary, shard)
    return summary


def _face_starter(pool, detectors, batch_size, stop):
    """submit(clip) for the face threads: each takes a free detector for the clip."""
    free = queue.Queue()
    for detector in detectors:
        free.put(detector)

    def faces(clip):
        detector = free.get()
        try:
            return crop_faces(clip.video, clip.folder, detector, batch_size, stop)
        finally:
            free.put(detector)

    return lambda clip: pool.submit(faces, clip)


class _Run:
    """The clips of a run, each locked, worked on, marked done (or listed as failed) and let go.

    At most ``window`` clips are in flight (and locked) at a time. A clip another run holds
    goes to the back of the queue; once nothing else is left, the run waits for it.
    """

    def __init__(self, clips, summary, progress):
        self.waiting, self.summary, self.progress = deque(clips), summary, progress
        self.in_flight, self.jobs = [], {}  # jobs: future -> (clip, stage)
        self.start_faces = self.start_audio = None
        self.said_waiting = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for clip in self.in_flight:  # stopped: after the pools, so that nothing writes into them any more
            unlock_clip(clip.folder, clip.lock)
        self.in_flight.clear()

    def work(self, window):
        while self.waiting or self.jobs:
            self._start_clips(window)
            if self.jobs:
                finished, _ = wait(self.jobs, timeout=RETRY_SECONDS if self.waiting else None,
                                   return_when=FIRST_COMPLETED)
                for job in finished:
                    self._finish(job)
            elif self.waiting:  # every clip left is another run's for now
                self._say_waiting()
                time.sleep(RETRY_SECONDS)

    def _say_waiting(self):
        if not self.said_waiting:
            self.said_waiting = True
            print(f"waiting for {len(self.waiting)} clip(s) another run is preprocessing (first: "
                  f"{self.waiting[0].folder}); each is done here, or counted as done, once that run lets it go",
                  file=sys.stderr)

    def cancel(self):
        for job in self.jobs:
            job.cancel()

    def _start_clips(self, window):
        for _ in range(len(self.waiting)):
            if len(self.in_flight) >= window:
                return
            clip = self.waiting.popleft()
            clip.lock = lock_clip(clip.folder)
            if clip.lock is None:
                self.waiting.append(clip)  # another run is on it
            elif is_done(clip.folder):  # another run finished it since we looked
                unlock_clip(clip.folder, clip.lock)
                self.summary.already_done += 1
                self._update_progress()
            else:
                (clip.folder / DONE_MARKER).unlink(missing_ok=True)  # one that lost crops is not done while redone
                self.in_flight.append(clip)
                self.jobs[self.start_audio(clip)] = (clip, "audio")
                self.jobs[self.start_faces(clip)] = (clip, "faces")

    def _finish(self, job):
        clip, stage = self.jobs.pop(job)
        clip.pending.discard(stage)
        try:
            result = job.result()
        except Exception as error:  # noqa: BLE001 - one bad video must not end a day-long run: it is listed
            if is_fatal(error):
                raise
            self._fail(clip, stage, error)
        else:
            if stage == "faces":
                clip.crops = result[1]
        if clip.pending:
            return
        if not clip.failed:
            self._mark_done(clip)
        self.in_flight.remove(clip)
        unlock_clip(clip.folder, clip.lock)

    def _mark_done(self, clip):
        found = len(frame_ids(clip.folder))
        if found != clip.crops:  # a program that does not take the lock removed some
            self._fail(clip, "faces", UserError(f"{clip.crops - found} of its {clip.crops} face crops were removed "
                                                f"while it was preprocessed"))
            return
        write_done_marker(clip.folder, clip.crops)  # last: the clip is complete
        self.summary.done += 1
        self._update_progress()

    def _fail(self, clip, stage, error):
        if clip.failed:
            return
        clip.failed = True
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if not isinstance(error, UserError):
            reason = f"{type(error).__name__}: {reason}"
        self.summary.failures.append({"video": str(clip.video), "stage": stage, "error": reason})
        self._update_progress()

    def _update_progress(self):
        if self.progress is not None:
            self.progress.update()


def _write_failures(preprocessed_root, summary, shard, quietly=False):
    summary.failures.sort(key=lambda failure: failure["video"])  # not the order the workers finished in
    try:
        write_table(shard, Path(preprocessed_root) / FAILURES_NAME, summary.failures)
    except OSError:
        if not quietly:  # the run is already stopping for a reason of its own
            raise
