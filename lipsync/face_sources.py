"""Where each frame's face box comes from: a fixed --box, the face cache, or S3FD.

Each source turns the first pass over the frames into (index, frame, box) for the first
``total`` output frames, box = (y1, y2, x1, x2) or None (pass the frame through); once they
are all out, its ``counts()`` say what it found (FaceCounts), for the caller to report.
"""

import contextlib
import dataclasses
from collections import deque

import cv2
import numpy as np

from face_detection.boxes import has_area, pad_and_clip, to_int_box
from lipsync.box_planning import FACE, NO_FACE, NOT_RUN, BoxPlanner
from lipsync.face_tracks import MISSED_SECONDS, link_tracks, pick_track, track_detections
from lipsync.heap import trim_heap
from lipsync.progress import frame_bar
from media.yuv import bgr_of
from system.progress import counted, loading, say

NO_PADS = (0, 0, 0, 0)


@dataclasses.dataclass(frozen=True)
class FaceCounts:
    """What a box source found in the frames it boxed."""

    detected: int = 0  # frames with a detected face
    filled: int = 0  # frames given a box from their neighbours
    passed_through: int = 0  # frames without a box
    cache: str = "off"  # the face cache: off, hit, or miss (saved)


def face_source(options, frames, total, device):
    """The box source ``options`` ask for, for ``frames`` (a FrameSource) and ``total`` output frames."""
    if options.fixed_box is not None:
        return GivenBox(options.fixed_box)
    from lipsync.detection_cache import DetectionCache  # noqa: PLC0415 - torch only when detecting

    tracking = options.pick != "best"
    # A chosen face may leave the picture: frames without it pass through rather than stop the run.
    on_no_face = "skip" if tracking and options.on_no_face == "error" else options.on_no_face
    planner = BoxPlanner(frames.frame_size, options.pads, not options.nosmooth, on_no_face,
                         max_gap=int(options.max_gap * float(frames.fps)), limit=total, fps=float(frames.fps),
                         stride=options.det_stride, source=frames.described, single_frame=frames.static)
    if tracking:
        return TrackedBoxes(_detector(options, device), planner, options, frames, device, total)
    cache = None
    if options.face_cache and not frames.static:
        cache = DetectionCache(options.face_cache, options.face, options.detection_settings(device))
        cached = cache.load()
        if cached is not None:
            return CachedBoxes(planner, cached)
    detector = _detector(options, device)
    # The frames S3FD runs on: the output's (or with a cache every frame of the video, by a
    # probe's estimate), every --det_stride'th of them.
    count = frames.frame_count if cache is not None else min(total, frames.frame_count)
    return DetectedBoxes(detector, planner, options, frames.frame_size, device, cache,
                         -(-count // options.det_stride))


def _detector(options, device):
    # Detection needs PyTorch (S3FD's post-processing, and the network unless it runs in onnxruntime).
    from face_detection.loading import load_detector  # noqa: PLC0415

    loading("S3FD", options.detector_weights(), options.progress)
    return load_detector(device, options.detector_weights(), options.face_det_batch_size)


class GivenBox:
    """--box: the box given, the same in every frame; no detection, no pads, no smoothing."""

    detects = False  # runs S3FD beside the generator

    def __init__(self, box):
        self.box = box

    def boxed_frames(self, frames, total):
        for index, frame in zip(range(total), frames):
            yield index, frame, self.box

    def counts(self):
        return FaceCounts()


class CachedBoxes:
    """Detections of an earlier run, read from the face cache."""

    detects = False  # runs S3FD beside the generator

    def __init__(self, planner, detections):
        self.planner, self.detections = planner, detections

    def boxed_frames(self, frames, total):
        self.planner.add(*self.detections)
        self.planner.finish()
        for index, frame in zip(range(self.planner.ready), frames):
            yield index, frame, self.planner.box(index)

    def counts(self):
        return FaceCounts(*self.planner.counts(), cache="hit")


class DetectedBoxes:
    """S3FD on blocks of frames as they stream by; a frame is handed on once its box is final,
    so only a block and the planner's lookahead wait in memory. With a face cache the whole
    video is detected and saved. A bar counts the frames S3FD has run on against ``count``."""

    detects = True  # runs S3FD beside the generator

    def __init__(self, detector, planner, options, frame_size, device, cache=None, count=None):
        self.detector, self.planner, self.options = detector, planner, options
        self.frame_size, self.device, self.cache, self.count = frame_size, device, cache, count

    def boxed_frames(self, frames, total):
        with frame_bar("face detection", self.count, self.options.progress) as bar:
            self.detector.on_frames_done = bar.update  # the detector is shared by the runs of a process
            try:
                yield from self._boxed_frames(frames, total)
            finally:
                self.detector.on_frames_done = None

    def _boxed_frames(self, frames, total):
        planner, keep_detecting = self.planner, self.cache is not None  # a cache entry covers the whole video
        all_boxes, all_status, pending, block = [], [], deque(), []

        def detect_block():
            found = self.detect(block)
            trim_heap()
            all_boxes.extend(found[0])
            all_status.extend(found[1])
            if not planner.finished:
                planner.add(*found)
            pending.extend((index, frame) for index, frame in block if index < total)
            block.clear()

        for index, frame in enumerate(frames):
            if index >= total and not keep_detecting:
                break
            block.append((index, frame))
            if len(block) == self.options.face_det_batch_size:
                detect_block()
            while pending and pending[0][0] < planner.ready:
                index, frame = pending.popleft()
                yield index, frame, planner.box(index)
        if block:
            detect_block()
        planner.finish()
        while pending:
            index, frame = pending.popleft()
            yield index, frame, planner.box(index)
        if self.cache is not None:
            self.cache.save(all_boxes, all_status)

    def counts(self):
        return FaceCounts(*self.planner.counts(), cache="off" if self.cache is None else "miss (saved)")

    def detect(self, block):
        """Detector boxes [x1, y1, x2, y2] and FACE / NO_FACE / NOT_RUN for a block of (index, frame)."""
        chosen = [k for k, (index, _) in enumerate(block) if index % self.options.det_stride == 0]
        found = detect_faces(self.detector, [block[k][1] for k in chosen], self.options, self.frame_size, self.device)
        boxes, status = [(0, 0, 0, 0)] * len(block), [NOT_RUN] * len(block)
        for k, faces in zip(chosen, found):
            if faces:
                boxes[k], status[k] = faces[0], FACE
            else:
                status[k] = NO_FACE
        return boxes, status


class TrackedBoxes:
    """--pick_face largest or X,Y: S3FD finds every face in a first pass over the frames (every
    --det_stride'th), the faces are linked into tracks (lipsync/face_tracks.py), and the chosen
    track's boxes are planned as the one face's are; frames without it pass through."""

    detects = False  # its detection is over before the generator starts

    def __init__(self, detector, planner, options, source, device, total):
        self.detector, self.planner, self.options = detector, planner, options
        self.source, self.device, self.total = source, device, total

    def boxed_frames(self, frames, total):
        detections = self._detect_all()
        o, fps = self.options, float(self.source.fps)
        tracks = link_tracks(detections, max(o.det_stride, round(MISSED_SECONDS * fps)))
        track = pick_track(tracks, o.pick, self.source.described)
        say(f"{counted(len(tracks), 'face')} found in {self.source.described}; lip-syncing {track.described()}",
            o.progress)
        ran = [index for index, found in enumerate(detections) if found is not None]
        self.planner.add(*track_detections(track, ran, len(detections)))
        self.planner.finish()
        for index, frame in zip(range(self.planner.ready), frames):
            yield index, frame, self.planner.box(index)

    def _detect_all(self):
        """Every face of every --det_stride'th frame of the output's first pass: None where not run."""
        o, detections, block = self.options, [], []
        count = min(self.total, self.source.frame_count)
        with frame_bar("face detection", -(-count // o.det_stride), o.progress) as bar:
            self.detector.on_frames_done = bar.update
            try:
                for index, frame in zip(range(self.total), self.source.frames()):
                    detections.append(None)
                    if index % o.det_stride == 0:
                        block.append((index, frame))
                    if len(block) == o.face_det_batch_size:
                        self._detect_block(block, detections)
                if block:
                    self._detect_block(block, detections)
            finally:
                self.detector.on_frames_done = None
        return detections

    def _detect_block(self, block, detections):
        found = detect_faces(self.detector, [frame for _, frame in block], self.options, self.source.frame_size,
                             self.device, every_face=True)
        for (index, _), faces in zip(block, found):
            detections[index] = faces
        block.clear()
        trim_heap()

    def counts(self):
        return FaceCounts(*self.planner.counts())


def detect_faces(detector, frames, options, frame_size, device, every_face=False):
    """For each of ``frames``, the face boxes [x1, y1, x2, y2] (whole pixels of the frame): the
    reference's best one (or none), or ``every_face`` S3FD keeps (the best first)."""
    from face_detection.detect import best_box, kept_boxes  # noqa: PLC0415 - torch only when detecting

    frames = [bgr_of(frame) for frame in frames]
    scale = 1.0
    if options.det_max_side and max(frame_size) > options.det_max_side:
        scale = options.det_max_side / max(frame_size)
        size = tuple(max(1, round(side * scale)) for side in frame_size)
        frames = [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames]
    if options.backend == "torch":
        from lipsync.generator import autocast  # noqa: PLC0415

        context = autocast(device, options.precision)
    else:  # onnxruntime runs the exported fp32 network
        context = contextlib.nullcontext()
    with context:
        detections = detector.detect(np.stack(frames), select=kept_boxes if every_face else best_box) if frames else []
    found = []
    for detection in detections:
        rows = np.zeros((0, 5)) if detection is None else np.asarray(detection).reshape(-1, 5)
        boxes = [to_int_box(row[:4] / scale) for row in rows]
        # A box with nothing in the frame (outside it, or absurd) is no face; one that the
        # pads empty is the planner's to refuse.
        found.append([box for box in boxes if has_area(pad_and_clip([box], frame_size, NO_PADS)[0])])
    return found
